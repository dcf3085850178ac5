"""How many worker processes a parallel step uses: one rule for every pool in nasmr."""

from __future__ import annotations

import os


def pool_size(workers: int | None, tasks: int) -> int:
    """``workers`` (None: the CPU count), never more than ``tasks`` nor fewer than 1."""
    return max(1, min(workers or os.cpu_count() or 1, tasks))
