"""Time the two exact FLOPs/params paths on the real drop and check both reproduce it.

Analytic (closed form) over every record; module-built (Supernet + thop) per
architecture in one process on a random sample, and over every record on a
process pool. Prints wall-clock and CPU time (CPU time is what other processes
sharing the machine do not inflate) and the per-architecture speed-up.

    .venv/bin/python benchmarks/bench_complexity.py [--raw DIR] [--sample 40] [--workers 2]
        [--pool-limit N]   (the pool's first N architectures only: a quick run)
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time
from pathlib import Path

from nasmr import paths
from nasmr.complexity import (
    Complexity,
    analytic_complexity,
    module_complexity,
    module_complexity_many,
)
from nasmr.rawdrop import load_pickle, trainval_path
from nasmr.space import Arch


def main() -> None:
    """Run the three timings and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument("--sample", type=int, default=40, help="archs timed one by one")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="pool size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="analytic passes (best kept)")
    parser.add_argument(
        "--pool-limit", type=int, default=None, help="count only this many on the pool (all)"
    )
    args = parser.parse_args()

    records = load_pickle(trainval_path(args.raw, "seg"))
    archs = [Arch.from_embedding(r["embedding"]) for r in records]
    published = [Complexity.from_published(r["flops"], r["params"]) for r in records]
    n = len(archs)
    print(f"{n} architectures, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        analytic = [analytic_complexity(a) for a in archs]
        best = min(best, time.perf_counter() - start)
    analytic_ok = sum(a == p for a, p in zip(analytic, published, strict=True))

    import torch

    torch.set_num_threads(1)
    picks = random.Random(args.seed).sample(range(n), min(args.sample, n))
    module_complexity(archs[picks[0]])  # warm-up: imports and first-call setup
    times, cpu_times, single_ok = [], [], 0
    for i in picks:
        start, cpu = time.perf_counter(), time.process_time()
        count = module_complexity(archs[i])
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
        single_ok += count == published[i]
    sample_gmac = statistics.mean(published[i].gmac for i in picks)
    all_gmac = statistics.mean(p.gmac for p in published)

    children = _children_cpu()
    start = time.perf_counter()
    pool_n = n if args.pool_limit is None else min(args.pool_limit, n)
    pooled = module_complexity_many(archs[:pool_n], workers=args.workers)
    pool_wall = time.perf_counter() - start
    pool_cpu = _children_cpu() - children
    pool_ok = sum(c == p for c, p in zip(pooled, published[:pool_n], strict=True))

    per_analytic = best / n
    per_module = statistics.mean(times)
    rows = [
        ("analytic, 1 process", n, best, per_analytic, None, analytic_ok),
        (
            f"module, 1 process (sample of {len(picks)})",
            len(picks),
            sum(times),
            per_module,
            statistics.mean(cpu_times),
            single_ok,
        ),
        (
            f"module, pool of {args.workers}",
            pool_n,
            pool_wall,
            pool_wall / pool_n,
            pool_cpu / pool_n,
            pool_ok,
        ),
    ]
    print(
        f"{'path':<32} {'archs':>6} {'wall s':>8} {'wall/arch':>10} {'CPU/arch':>10} {'exact':>11}"
    )
    for name, count, total, per, cpu, ok in rows:
        cpu_text = _duration(cpu) if cpu is not None else "-"
        print(
            f"{name:<32} {count:>6} {total:>8.2f} {_duration(per):>10} {cpu_text:>10} "
            f"{ok:>5}/{count:<5}"
        )
    print(
        f"module per arch (1 process): median {_duration(statistics.median(times))}, "
        f"max {_duration(max(times))}; sample mean {sample_gmac:.2f} GMac, "
        f"drop mean {all_gmac:.2f} GMac"
    )
    print(
        f"speed-up analytic vs module (1 process, wall per arch): {per_module / per_analytic:,.0f}x"
    )
    print(
        f"module, {pool_n} of {n} on {args.workers} workers: {pool_wall / 60:.2f} min wall, "
        f"{pool_cpu / 60:.2f} CPU-min in the workers "
        f"(= {pool_cpu / args.workers / 60:.2f} min on {args.workers} otherwise idle cores)"
    )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _children_cpu() -> float:
    """CPU seconds used so far by finished child processes (the pool's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


if __name__ == "__main__":
    main()
