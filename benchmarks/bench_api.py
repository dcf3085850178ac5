"""Time opening a release with the query API, its memory, and the latency of queries.

Each run is a fresh Python process (so import time and peak RSS, read from
``/proc/self/status``, are those of a user's first ``Benchmark.open``); the figures
are the median over ``--runs``.
``--fresh`` ingests the raw drop (analytic FLOPs) and publishes it to a temporary
releases dir first, so the script needs nothing but the drop.

    .venv/bin/python benchmarks/bench_api.py [--release latest] [--releases DIR] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from nasmr import paths

CHILD = r"""
import json, random, sys, time


def peak_rss_mb():
    # VmHWM is this process's own peak; ru_maxrss would include the parent's at fork time
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


start = time.perf_counter()
from nasmr.api import Benchmark
imported = time.perf_counter()
bench = Benchmark.open(sys.argv[1], sys.argv[2])
opened = time.perf_counter()
rss_mb = peak_rss_mb()
rng = random.Random(int(sys.argv[4]))
n = int(sys.argv[3])
picks = [(rng.choice(bench.codes), rng.choice(bench.settings)) for _ in range(n)]
arch_picks = [(bench.arch(bench.index(c)), s) for c, s in picks[:1000]]
t = time.perf_counter()
for code, setting in picks:
    bench.query(code, setting)
query_us = (time.perf_counter() - t) / n * 1e6
t = time.perf_counter()
for arch, setting in arch_picks:
    bench.query(arch, setting)
arch_us = (time.perf_counter() - t) / len(arch_picks) * 1e6
t = time.perf_counter()
for code, setting in picks:
    bench.metric(code, setting, bench.metrics(setting)[0])
metric_us = (time.perf_counter() - t) / n * 1e6
t = time.perf_counter()
for setting in bench.settings:
    bench.best(setting, bench.metrics(setting)[0], max_gflops=2.0, k=10)
best_ms = (time.perf_counter() - t) / len(bench.settings) * 1e3
t = time.perf_counter()
for setting in bench.settings:
    bench.pareto(setting, bench.metrics(setting)[0])
pareto_ms = (time.perf_counter() - t) / len(bench.settings) * 1e3
print(json.dumps({
    "import_s": imported - start, "open_s": opened - imported, "rss_after_open_mb": rss_mb,
    "query_us": query_us, "query_arch_us": arch_us, "metric_us": metric_us,
    "best_ms": best_ms, "pareto_ms": pareto_ms,
    "rss_end_mb": peak_rss_mb(),
}))
"""


def fresh_release(workdir: Path) -> Path:
    """Ingest the raw drop and publish it into ``workdir/releases``; return that folder."""
    from nasmr.release import publish_release
    from nasmr.warehouse import ingest

    ingest(paths.raw_dir(), workdir / "build", method="analytic")
    publish_release(workdir / "build", workdir / "releases")
    return workdir / "releases"


def main() -> None:
    """Run the child ``--runs`` times and print the median of each figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="latest", help="version, 'latest' or a folder")
    parser.add_argument("--releases", type=Path, default=paths.releases_dir())
    parser.add_argument("--fresh", action="store_true", help="build and publish the drop first")
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        releases = fresh_release(Path(tmp)) if args.fresh else args.releases
        runs = []
        for run in range(args.runs):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    args.release,
                    str(releases),
                    str(args.queries),
                    str(args.seed + run),
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode:  # the child's error (no release there, say), not its source
                sys.exit(f"bench_api: the measuring process failed:\n{out.stderr.strip()}")
            runs.append(json.loads(out.stdout))
    print(f"{args.runs} runs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:<18} median {statistics.median(values):10.3f}  max {max(values):10.3f}")


if __name__ == "__main__":
    main()
