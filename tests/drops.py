"""Small raw drops generated in code, laid out like the real one (never copied from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nasmr.complexity import analytic_complexity
from nasmr.rawdrop import trainval_path
from nasmr.space import Arch


def exact(arch: Arch) -> tuple[float, float]:
    """The FLOPs (GMac) and params (M) the benchmark would publish for ``arch``."""
    count = analytic_complexity(arch)
    return count.gmac, count.mparams


def mr_record(arch: Arch, flops: float, params: float, **metrics: float) -> dict[str, Any]:
    """A record laid out like the drop's NAS-Bench-MR records."""
    return {
        **metrics,
        "flops": flops,
        "params": params,
        "input_channel": arch.input_channel,
        "inverted_residual_setting": arch.setting,
        "last_channel": arch.last_channel,
        "embedding": arch.embedding,
    }


def nb201_record(ops: list[int], acc: float) -> dict[str, Any]:
    """A nas-bench-201 record: one-hot float32 embedding of 6 edges x 5 ops."""
    return {
        "embedding": np.eye(5, dtype=np.float32)[ops].ravel(),
        "Acc": acc,
        "Flops": 10.0 + sum(ops),
        "Params": 0.1,
    }


def write_drop(root: Path, files: dict[str, bytes], codes: list[str]) -> Path:
    """A raw drop in ``root``: a search list and one ``trainval.pkl`` per entry of ``files``."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "search_list.txt").write_text("\n".join(codes) + "\n")
    for setting, payload in files.items():
        path = trainval_path(root, setting)
        path.parent.mkdir(parents=True)
        path.write_bytes(payload)
    return root
