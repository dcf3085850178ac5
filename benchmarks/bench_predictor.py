"""Time predictor training on the real drop and, with --full, produce the whole report.

Default: one default, one baseline and (MR settings) one ``BRANCH_ATTENTION`` training
per setting given and split seed (0..--seeds-1), each timed (wall clock and CPU time;
CPU time is what other processes sharing the machine do not inflate) with its test
Kendall tau on the primary metric, then the mean and std of tau over the seeds. With
--full: ``train_all`` over every available setting and --seeds seeds, writing the
predictors and report to --out, then printing the report.

    .venv/bin/python benchmarks/bench_predictor.py [--raw DIR] [--settings S,S] [--seeds 5]
    .venv/bin/python benchmarks/bench_predictor.py --full [--seeds 5] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from nasmr import paths
from nasmr.ingest import load_setting
from nasmr.predictor import (
    BASELINE,
    BRANCH_ATTENTION,
    default_config,
    torch_threads,
    train_all,
    train_predictor,
)
from schemas.settings import SETTINGS, get_setting


def main() -> None:
    """Run the timings (or the full report) and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument(
        "--settings", default="seg,nas-bench-201", help="comma-separated (default: %(default)s)"
    )
    parser.add_argument("--full", action="store_true", help="train_all: the whole report")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="--full output (default: temp)")
    parser.add_argument("--workers", type=int, default=1, help="--full training processes")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch 1 thread")

    if args.full:
        frames = {}
        for name in SETTINGS:
            load = load_setting(args.raw, name)
            if load.status == "ok":
                frames[name] = load.valid
        out = args.out or Path(tempfile.mkdtemp(prefix="nasmr-predictors-"))
        start, cpu = time.perf_counter(), time.process_time()
        report = train_all(
            frames, out, seeds=range(args.seeds), data_version="bench", workers=args.workers
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print((out / "report.md").read_text())
        print(
            f"train_all: {len(frames)} settings x {args.seeds} seeds, {len(report)} rows, "
            f"{args.workers} worker(s), {wall:.1f} s wall, {cpu:.1f} s CPU in this process; "
            f"output in {out}"
        )
        return

    print(
        f"{'setting':<14}{'model':<10}{'seed':>5}{'wall s':>8}"
        f"{'CPU s':>8}{'epoch':>7}{'test tau':>10}"
    )
    summary = []
    for name in args.settings.split(","):
        frames = {name: load_setting(args.raw, name).valid}
        primary = f"{name}.{get_setting(name).primary_metric}"
        configs = {"default": default_config([name]), "baseline": BASELINE}
        if get_setting(name).is_mr:
            configs["attention"] = BRANCH_ATTENTION
        for label, config in configs.items():
            taus, walls = [], []
            for seed in range(args.seeds):
                start, cpu = time.perf_counter(), time.process_time()
                with torch_threads(1):
                    predictor = train_predictor(frames, [name], config, seed=seed)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                walls.append(wall)
                taus.append({m.column: m.kendall for m in predictor.card.test_metrics}[primary])
                epoch = predictor.card.training.selected_epoch
                print(
                    f"{name:<14}{label:<10}{seed:>5}{wall:>8.1f}{cpu:>8.1f}{epoch:>7}"
                    f"{taus[-1]:>10.3f}"
                )
            std = statistics.stdev(taus) if len(taus) > 1 else 0.0
            mean = statistics.mean(taus)
            summary.append(
                f"{primary} {label}: tau {mean:.3f} +- {std:.3f}, "
                f"median {statistics.median(walls):.1f} s wall to train"
            )
    print("\n".join(summary))


if __name__ == "__main__":
    main()
