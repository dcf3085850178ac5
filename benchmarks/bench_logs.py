"""Throughput of ``parse_log_drop`` on a large generated log drop (lines per second).

The drop is generated in a temporary folder in the format ``nasmr train`` writes
(OpenMMLab JSON lines: a meta line, ``train`` lines, one ``val`` line per epoch)
for ``--runs`` sampled architectures split over digits-cls and digits-seg, with
random losses and metrics. ``--bad`` files get one corrupted line each, which
sends them through the line-by-line pass. The page cache is warmed first, so the
figure is the parser's, not the disk's.

    .venv/bin/python benchmarks/bench_logs.py --runs 500 --epochs 100 --bad 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from nasmr.logs import parse_log_drop
from nasmr.space import sample
from nasmr.train_config import TrainConfig
from nasmr.training import config_text, env_info, log_path
from schemas.logs import DIGITS_SETTINGS

TRAIN_LINES_PER_EPOCH = 10
SETTINGS = tuple(DIGITS_SETTINGS)


def generate(root: Path, runs: int, epochs: int, bad: int, seed: int) -> tuple[int, int]:
    """Write the drop; returns (lines, bytes)."""
    rng = random.Random(seed)
    config = TrainConfig(epochs=epochs)
    lines = size = 0
    for i, arch in enumerate(sample(runs, seed)):
        setting = SETTINGS[i % 2]
        meta = {
            "env_info": env_info(),
            "config": config_text(arch, setting, config),
            "seed": seed,
            "exp_name": f"{setting}.py",
        }
        out = [json.dumps(meta)]
        for epoch in range(1, epochs + 1):
            lr = 0.05 * (1 - epoch / (epochs + 1))
            for it in range(1, TRAIN_LINES_PER_EPOCH + 1):
                train = {"mode": "train", "epoch": epoch, "iter": 5 * it, "lr": round(lr, 5)}
                train |= {"data_time": round(rng.random() / 100, 5)}
                train |= {"loss": round(2 * rng.random(), 5), "time": round(rng.random(), 5)}
                out.append(json.dumps(train))
            val = {"mode": "val", "epoch": epoch, "iter": 50, "lr": round(lr, 5)}
            if setting == "digits-cls":
                top1 = round(100 * rng.random(), 5)
                val |= {"accuracy_top-1": top1, "accuracy_top-5": round(max(top1, 99.0), 5)}
            else:
                val |= {k: round(rng.random(), 4) for k in ("aAcc", "mIoU", "mAcc")}
            out.append(json.dumps(val))
        if i < bad:
            out[len(out) // 2] = out[len(out) // 2][:20]  # a truncated line mid-run
        text = "\n".join(out) + "\n"
        path = log_path(root, setting, arch, "20240101_000000")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        lines += len(out)
        size += len(text)
    return lines, size


def main() -> None:
    """Generate a drop, parse it ``--repeat`` times, print lines/s (best and median)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--bad", type=int, default=5, help="files with one corrupted line")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines, size = generate(root, args.runs, args.epochs, args.bad, args.seed)
        for path in root.rglob("*.log.json"):
            path.read_bytes()  # warm the page cache
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            parsed = parse_log_drop(root)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    assert parsed.lines == lines, (parsed.lines, lines)
    print(
        f"{args.runs} runs, {lines:,} lines, {size / 1e6:.1f} MB, {args.bad} files with a bad "
        f"line -> {len(parsed.curves):,} curve points, {len(parsed.quarantine)} quarantined"
    )
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(
        f"wall: best {min(walls):.3f} s ({lines / min(walls):,.0f} lines/s), "
        f"median {statistics.median(walls):.3f} s ({lines / statistics.median(walls):,.0f} lines/s)"
    )
    print(f"cpu (all threads): median {statistics.median(cpus):.3f} s")


if __name__ == "__main__":
    main()
