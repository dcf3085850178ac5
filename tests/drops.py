"""Small inputs generated in code (never copied from the real drop): raw drops laid out like
the real one, frames shaped like ingested settings, a file that cannot be read, and writable
copies of published releases."""

from __future__ import annotations

import os
import pickle
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nasmr.complexity import analytic_complexity, nb201_complexity
from nasmr.rawdrop import trainval_path
from nasmr.space import Arch, sample
from nasmr.training import log_path
from schemas.logs import LogLine
from schemas.nb201 import ops_text, parse_ops

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
"""The ingest time of the small drops' builds."""

ARCHS = sample(7, seed=3)
EVALUATED, UNEVALUATED, OUTSIDER = ARCHS[:5], ARCHS[5], ARCHS[6]
"""A small drop's architectures: five with results, one listed only, one not listed."""


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


def seg_record(arch: Arch, i: int = 0) -> dict[str, Any]:
    """A valid seg record of ``arch``, its metrics offset by ``i``."""
    return mr_record(arch, *exact(arch), mIoU=60.0 + i, mAcc=70.0 + i, aAcc=90.0 + i / 10)


def cls_record(arch: Arch, i: int = 0) -> dict[str, Any]:
    """A valid classification record of ``arch``, its metrics offset by ``i``."""
    return mr_record(arch, *exact(arch), top1=50.0 + i, top5=80.0 + i)


def nb201_record(ops: list[int], acc: float) -> dict[str, Any]:
    """A nas-bench-201 record: one-hot float32 embedding of 6 edges x 5 ops, the cell's costs."""
    cost = nb201_complexity(ops)
    return {
        "embedding": np.eye(5, dtype=np.float32)[ops].ravel(),
        "Acc": acc,
        "Flops": round(cost.macs / 1e6, 2),
        "Params": round(cost.params / 1e6, 3),
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


def det_drop(root: Path, archs: list[Arch], det: int | None = None) -> Path:
    """A drop in ``root`` as the authors publishing 3ddet's missing file would make it: video
    and 3ddet results of ``archs`` (3ddet's of the first ``det``; all by default, no 3ddet
    file for 0), values varied enough to train predictors on."""
    video = [
        mr_record(a, *exact(a), top1=40.0 + (i * 7919 % 60) / 4, top5=70.0 + i / 4)
        for i, a in enumerate(archs)
    ]
    det_records = [
        mr_record(a, *exact(a), moderate=50.0 + (i * 31 % 60) / 3)
        for i, a in enumerate(archs[:det])
    ]
    files = {"video": pickle.dumps(video)}
    if det_records:
        files["3ddet"] = pickle.dumps(det_records)
    return write_drop(root, files, [a.code for a in archs])


def small_drop(root: Path, files: dict[str, bytes]) -> Path:
    """A drop of ``files`` whose search list is the evaluated and the unevaluated archs."""
    return write_drop(root, files, [a.code for a in [*EVALUATED, UNEVALUATED]])


def nb201_records() -> list[dict[str, Any]]:
    """Two valid nas-bench-201 cells."""
    return [nb201_record([0, 3, 2, 3, 2, 2], 25.5), nb201_record([4, 4, 4, 2, 4, 4], 47.0)]


def clean_files() -> dict[str, bytes]:
    """seg, cls-10c and nas-bench-201 results of ``small_drop`` that all validate."""
    return {
        "seg": pickle.dumps([seg_record(a, i) for i, a in enumerate(EVALUATED)]),
        "cls-10c": pickle.dumps([cls_record(a, i) for i, a in enumerate(EVALUATED)]),
        "nas-bench-201": pickle.dumps(nb201_records()),
    }


class Exploit:
    """Unpickling this runs a shell command that creates ``target``: a loader that runs it
    has executed code from the file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)


def seg_drop(root: Path, seg: pd.DataFrame) -> Path:
    """A raw drop in ``root`` holding a seg frame (``synthetic_frames`` shape) as its results."""
    records = [
        mr_record(Arch.from_code(r.code), r.flops, r.params, mIoU=r.mIoU, mAcc=r.mAcc, aAcc=r.aAcc)
        for r in seg.itertuples()
    ]
    return write_drop(root, {"seg": pickle.dumps(records)}, list(seg["code"]))


def synthetic_frames(n: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Frames shaped like ingested MR settings (plus nas-bench-201), metrics a known function.

    Accuracy grows with log FLOPs and stage-1 channels, plus noise: learnable, not trivial.
    """
    rng = np.random.default_rng(seed)
    archs = sample(n, seed)
    counts = [analytic_complexity(a) for a in archs]
    gflops = np.array([c.gmac for c in counts])
    signal = np.log(gflops) + np.array([a.stages[0].channels[0] for a in archs]) / 64
    base = {
        "record_index": np.arange(n),
        "code": [a.code for a in archs],
        "flops": gflops,
        "params": [c.mparams for c in counts],
    }
    seg = pd.DataFrame(
        {
            **base,
            "mIoU": 70 + 2 * signal + rng.normal(0, 0.3, n),
            "mAcc": 80 + 2 * signal + rng.normal(0, 0.3, n),
            "aAcc": 95 + 0.3 * signal + rng.normal(0, 0.05, n),
        }
    )
    cls = pd.DataFrame(
        {**base, "top1": 50 + 3 * signal + rng.normal(0, 0.5, n), "top5": 80 + signal}
    )
    ops = sorted({ops_text(rng.integers(0, 5, 6)) for _ in range(n)})
    cells = np.array([parse_ops(o) for o in ops])
    nb201 = pd.DataFrame(
        {
            "record_index": np.arange(len(ops)),
            "ops": ops,
            "Acc": 30
            + 2 * (cells == 4).sum(1)
            - 3 * (cells == 1).sum(1)
            + rng.normal(0, 0.2, len(ops)),
            "Flops": 10 + 5 * (cells == 4).sum(1) + (cells == 3).sum(1),
            "Params": 0.1 + 0.05 * (cells == 4).sum(1) + 0.01 * (cells == 3).sum(1),
        }
    )
    return {"seg": seg, "cls-10c": cls, "nas-bench-201": nb201}


def seg_log(root: Path, arch: Arch, metrics: dict[str, float], setting: str = "seg") -> None:
    """A one-epoch segmentation run of ``arch`` (seg, or seg-4x), an mmsegmentation
    ``*.log.json`` ending at ``metrics``."""
    path = log_path(root, setting, arch, "20250101_000000")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        LogLine(config="runner = dict(type='EpochBasedRunner', max_epochs=1)", seed=0),
        LogLine(mode="train", epoch=1, iter=1, lr=0.01, loss=1.5),
        LogLine.model_validate({"mode": "val", "epoch": 1, "iter": 1, **metrics}),
    ]
    path.write_text(
        "".join(line.model_dump_json(by_alias=True, exclude_none=True) + "\n" for line in lines)
    )


CRASHED_WRITER = """
import os, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("PRAGMA disable_checkpoint_on_shutdown")
con.execute("SET checkpoint_threshold = '1GB'")
con.execute("UPDATE results SET value = -1")
os._exit(0)
"""
"""A script for ``python -c SCRIPT WAREHOUSE``: a read-write session that sets every result
to -1 and dies before a checkpoint, so its changes stay in the write-ahead log."""


def refuse_open(monkeypatch: pytest.MonkeyPatch, refused: Path) -> None:
    """Opening ``refused`` fails as a file without read permission does (tests run as root,
    whom ``chmod 000`` does not stop)."""
    real_open = Path.open

    def guarded_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == refused:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)


def copy_release(release: Path, target: Path) -> Path:
    """A writable copy of a release folder (published files are read-only)."""
    shutil.copytree(release, target, copy_function=shutil.copyfile)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o644 if path.is_file() else 0o755)
    return target
