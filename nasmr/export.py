"""Write results as a ``trainval.pkl`` in the published record format.

A record holds the setting's metrics, ``flops`` (GMac), ``params`` (M),
``input_channel``, ``inverted_residual_setting``, ``last_channel`` and ``embedding``,
keys in the published order. The file is a pickle (protocol 3) of plain lists, dicts,
floats and ints, so the authors' tools and :func:`nasmr.rawdrop.load_pickle` both read
it. A nas-bench-201 record is its cell's one-hot ``embedding`` (a float32 NumPy array)
with ``Acc``, ``Flops`` and ``Params``, pickled (protocol 4) as the drop's file is. Every
record is checked against the drop's record contract (:mod:`schemas.records`) before
anything is written: ingest accepts what export writes.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from nasmr import paths
from nasmr.complexity import analytic_complexity
from nasmr.rawdrop import TRAINVAL
from nasmr.space import Arch, ArchError
from schemas.logs import DIGITS_SETTINGS
from schemas.nb201 import NB201_OPS, parse_ops
from schemas.records import RECORD_MODELS, Nb201Record, Record, describe_errors
from schemas.settings import Setting, get_setting

PICKLE_PROTOCOL = 3
NB201_PICKLE_PROTOCOL = 4
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
"""The function NumPy pickles an array's construction with (module spelled by version)."""


class ExportError(ValueError):
    """Records cannot be written; the message names the file, record and field."""


def _mr_setting(name: str) -> Setting:
    """The setting of MR records called ``name``: one of the benchmark's (3ddet too, which no
    log carries) or a digits setting of ``nasmr mini``; nas-bench-201 holds cells, which
    :func:`write_nb201_trainval` writes."""
    spec = DIGITS_SETTINGS.get(name) or get_setting(name)
    if not spec.is_mr:
        raise KeyError(f"setting {name!r} holds {spec.space} cells, not MR records")
    return spec


def records_frame(results: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The wide frame ``write_trainval`` takes, from long results (code, setting, metric, value).

    One row per code of ``setting``, one column per metric, plus ``flops`` and ``params``
    computed exactly by :func:`nasmr.complexity.analytic_complexity`. Rows are in the
    published order when the results carry ``record_index`` (a warehouse's do), else by code.
    """
    rows = results[results["setting"] == setting]
    wide = rows.pivot(index="code", columns="metric", values="value")
    if "record_index" in rows.columns:
        order = rows.groupby("code")["record_index"].first()
        wide = wide.loc[order.sort_values(kind="stable").index]
    else:
        wide = wide.sort_index()
    wide = wide.reindex(columns=list(_mr_setting(setting).metrics))
    complexity = [analytic_complexity(Arch.from_code(code)) for code in wide.index]
    wide["flops"] = [c.gmac for c in complexity]
    wide["params"] = [c.mparams for c in complexity]
    return wide.reset_index().rename_axis(columns=None)


def write_trainval(records: pd.DataFrame, setting: str, path: Path) -> Path:
    """Write ``records`` (``code``, the setting's metrics, ``flops``, ``params``) to ``path``.

    Rows are written in frame order; other columns are ignored. Raises
    :class:`ExportError` naming the record and field of the first invalid value.
    """
    path = Path(path)
    try:
        spec = _mr_setting(setting)
    except KeyError as err:
        raise ExportError(f"{path}: {err.args[0]}") from None
    needed = ["code", *spec.metrics, "flops", "params"]
    missing = [c for c in needed if c not in records.columns]
    if missing:
        raise ExportError(f"{path}: records lack column(s) {', '.join(missing)}")
    model = RECORD_MODELS[spec.task]
    out = [
        _record(row, spec.metrics, model, path, i)
        for i, row in enumerate(records[needed].itertuples(index=False))
    ]
    return _write_whole(path, pickle.dumps(out, protocol=PICKLE_PROTOCOL))


def _write_whole(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a ``.partial`` file, so no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def _record(
    row: tuple[Any, ...], metrics: tuple[str, ...], model: type[Record], path: Path, index: int
) -> dict[str, Any]:
    """One published-format record of a frame row, validated; errors name record and field."""
    code, *values = row
    try:
        arch = Arch.from_code(code)
    except ArchError as err:
        raise ExportError(f"{path}: record {index}: code: {err}") from None
    record: dict[str, Any] = {
        name: float(value)
        for name, value in zip([*metrics, "flops", "params"], values, strict=True)
    }
    record |= {
        "input_channel": arch.input_channel,
        "inverted_residual_setting": arch.setting,
        "last_channel": arch.last_channel,
        "embedding": arch.embedding,
    }
    try:
        model.model_validate(record)
    except ValidationError as err:
        field, reason = describe_errors(err)[0]
        raise ExportError(f"{path}: record {index} ({code}): {field}: {reason}") from None
    return record


def export_results(results: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """``<out_dir>/<setting>/trainval.pkl`` for every setting in long ``results``.

    Empty ``results`` are refused: a run that writes no file must not pass for an export.
    """
    paths.outside_releases(out_dir)
    if results.empty:
        raise ExportError(
            f"{out_dir}: nothing to export: no accepted run has an evaluation "
            "(the log parse's quarantine says why)"
        )
    return {
        setting: write_trainval(
            records_frame(results, setting), setting, Path(out_dir) / setting / TRAINVAL
        )
        for setting in sorted(results["setting"].unique())
    }


class _NumPy1Pickler(pickle._Pickler):
    """Pickles arrays naming ``numpy.core.multiarray._reconstruct``, as NumPy 1 (and the
    drop's nas-bench-201 file) does, where NumPy 2 writes ``numpy._core``: the same bytes."""

    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is not _RECONSTRUCT:
            super().save_global(obj, name)
            return
        self.save("numpy.core.multiarray")
        self.save("_reconstruct")
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def write_nb201_trainval(cells: pd.DataFrame, path: Path) -> Path:
    """Write nas-bench-201 ``cells`` (``ops``, ``Acc``, ``Flops``, ``Params``), rows in frame
    order, to ``path`` in the drop's record format; errors name the record and field."""
    path = Path(path)
    one_hot = np.eye(len(NB201_OPS), dtype=np.float32)
    out = []
    for index, (ops, acc, flops, params) in enumerate(
        cells[["ops", "Acc", "Flops", "Params"]].itertuples(index=False)
    ):
        try:
            embedding = one_hot[parse_ops(ops)].ravel()
        except ValueError as err:
            raise ExportError(f"{path}: record {index}: ops: {err}") from None
        record = {"embedding": embedding, "Acc": acc, "Flops": flops, "Params": params}
        record = {k: v if k == "embedding" else float(v) for k, v in record.items()}
        try:
            Nb201Record.model_validate(record)
        except ValidationError as err:
            field, reason = describe_errors(err)[0]
            raise ExportError(f"{path}: record {index} ({ops}): {field}: {reason}") from None
        out.append(record)
    buffer = io.BytesIO()
    _NumPy1Pickler(buffer, protocol=NB201_PICKLE_PROTOCOL).dump(out)
    return _write_whole(path, buffer.getvalue())
