"""Time the release step's checks and diff, which it runs before publishing and publishing
runs again (``check_publishable`` + ``propose_version``): the cost of that repetition."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from nasmr import paths
from nasmr.release import check_publishable, propose_version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", type=Path, default=paths.out_dir())
    parser.add_argument("--releases", type=Path, default=paths.releases_dir())
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    checks, diffs = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        latest = check_publishable(args.build, args.releases, args.raw)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        propose_version(args.build, None if latest is None else str(latest), args.releases)
        diffs.append(time.perf_counter() - start)
    print(
        f"checks {statistics.median(checks):.2f} s, diff {statistics.median(diffs):.2f} s "
        f"(median of {args.repeat}; latest release {latest})"
    )


if __name__ == "__main__":
    main()
