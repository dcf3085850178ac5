"""nasmr: the curated NAS-Bench-MR benchmark (space, complexity, warehouse, search, releases)."""

from nasmr.space import Arch, ArchError

__all__ = ["Arch", "ArchError"]
__version__ = "0.1.0"
