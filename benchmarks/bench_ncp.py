"""Time NCP searches: one start and a batch of starts, 70 steps each, on a seg predictor.

Uses ``<predictors>/seg.json`` when it exists, otherwise trains the default seg
predictor on the real drop first (not timed). Prints wall clock and CPU time per
search, distinct architectures scored, and the mean predicted mIoU gain from the
start to each start's result (the authors' script: 73 s for one 70-step search).

    .venv/bin/python benchmarks/bench_ncp.py [--raw DIR] [--predictors DIR] [--starts 128]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from nasmr import paths
from nasmr.ingest import load_setting
from nasmr.ncp import Objective, ncp_search
from nasmr.predictor import load_predictor, torch_threads, train_predictor
from nasmr.space import sample


def main() -> None:
    """Run the searches and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument("--predictors", type=Path, default=paths.out_dir() / "predictors")
    parser.add_argument("--starts", type=int, default=128)
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch 1 thread")

    with torch_threads(1):
        card = args.predictors / "seg.json"
        if card.is_file():
            predictor = load_predictor(card)
            print(f"predictor {card}")
        else:
            frames = {"seg": load_setting(args.raw, "seg").valid}
            predictor = train_predictor(frames, ["seg"], seed=0)
            print("predictor: default seg, trained now (split seed 0)")
        ncp_search(predictor, Objective({"seg": 1.0}), sample(2, args.seed), steps=2)  # warm-up

        print(
            f"{'starts':>7}{'budget':>9}{'wall s':>9}{'CPU s':>8}{'queries':>9}"
            f"{'feasible':>10}{'mIoU gain':>11}"
        )
        for starts, budget in ((1, None), (args.starts, None), (args.starts, 1.0)):
            objective = Objective({"seg": 1.0}, max_gflops=budget)
            archs = sample(starts, args.seed)
            start, cpu = time.perf_counter(), time.process_time()
            result = ncp_search(predictor, objective, archs, steps=args.steps)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            first = result.trajectory[result.trajectory["step"] == 0].set_index("start")
            final = result.final.set_index("start")
            ok = final["status"] == "feasible"
            gain = (final.loc[ok, "seg.mIoU"] - first.loc[ok, "seg.mIoU"]).mean()
            label = "-" if budget is None else f"{budget:g} GMac"
            print(
                f"{starts:>7}{label:>9}{wall:>9.2f}{cpu:>8.2f}{result.queries:>9}"
                f"{int(ok.sum()):>10}{gain:>11.2f}"
            )


if __name__ == "__main__":
    main()
