"""Ingestion: the raw drop becomes validated tables; every rejected record lands in quarantine.

The steps are separate so a pipeline can run one setting per partition:
:func:`load_architectures` (the search list), :func:`load_setting` (one
``trainval.pkl``), :func:`settle_complexity` (where settings publish different
FLOPs or params for an architecture, the records that are not the exact count
are quarantined), :func:`published_complexity` + :func:`complexity_table`
(published vs recomputed FLOPs and params) and :func:`build_tables`, which
assembles the warehouse tables. Same inputs, same tables: rows are sorted and the
only time-dependent value, ``ingested_at``, is a parameter.

nas-bench-201 cells are stored as ``ops``, the op index (0..4, as in the drop) of
each of the 6 edges joined by ``|`` (edges in NAS-Bench-201 order: 1<-0, 2<-0,
2<-1, 3<-0, 3<-1, 3<-2), and as ``arch_str`` in NAS-Bench-201's notation, with
the op names inferred from the data (see ``schemas.nb201.NB201_OPS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import ValidationError

from nasmr.checksums import sha256_bytes
from nasmr.complexity import (
    Complexity,
    ComplexityMethod,
    analytic_complexity,
    module_complexity_many,
    nb201_cost_matches,
)
from nasmr.rawdrop import (
    NotInDropError,
    RawDropError,
    parse_pickle,
    parse_search_list,
    read_raw,
    search_list_path,
    trainval_path,
)
from nasmr.space import EMBEDDING_COLUMNS, Arch, ArchError
from schemas.nb201 import ops_text
from schemas.records import (
    MRRecord,
    Nb201Record,
    Record,
    describe_errors,
    record_model,
)
from schemas.settings import MR_SETTINGS, NB201, SETTINGS, get_setting

Status = Literal["ok", "missing", "failed"]

QUARANTINE_SCHEMA: dict[str, str] = {
    "setting": "str",
    "source_file": "str",
    "record_index": "int64",
    "field": "str",
    "reason": "str",
}
"""Columns of a quarantine table; ``setting`` is null for rows of the search list."""


@dataclass(frozen=True, slots=True)
class Source:
    """A raw file: path relative to the drop's folder (POSIX), size and sha256."""

    path: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: str, data: bytes) -> Source:
        """Identify the file at ``path`` by the size and hash of ``data``, the bytes then parsed."""
        return cls(path, len(data), sha256_bytes(data))


@dataclass(frozen=True, eq=False)
class SettingLoad:
    """One setting's ``trainval.pkl``, validated: valid rows, quarantined rows and a status."""

    setting: str
    status: Status
    reason: str | None
    source: Source | None
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    read: int

    @property
    def source_file(self) -> str:
        """The results file of this setting, relative to the drop's folder."""
        return trainval_path(Path(), self.setting).as_posix()


@dataclass(frozen=True, eq=False)
class SearchListLoad:
    """The search list, validated: one row per architecture, invalid or repeated codes apart."""

    source: Source
    architectures: pd.DataFrame
    quarantine: pd.DataFrame
    read: int


def valid_schema(setting: str) -> dict[str, str]:
    """Columns and dtypes of a setting's valid rows."""
    spec = get_setting(setting)
    metrics = dict.fromkeys(spec.metrics, "float64")
    if spec.is_mr:
        return {
            "record_index": "int64",
            "code": "str",
            **metrics,
            "flops": "float64",
            "params": "float64",
        }
    return {
        "record_index": "int64",
        "ops": "str",
        "arch_str": "str",
        **metrics,
        "cost_matches_cell": "bool",
    }


def unknown_settings(raw_dir: Path) -> list[str]:
    """Folders of the drop holding a ``trainval.pkl`` that is no setting of the benchmark
    (``data/digits-cls`` of a ``nasmr logs export``, a typo): ingest ignores them, and says so."""
    found = Path(raw_dir).glob(trainval_path(Path(), "*").as_posix())
    return sorted(path.parent.name for path in found if path.parent.name not in SETTINGS)


def load_setting(raw_dir: Path, setting: str) -> SettingLoad:
    """Read and validate one setting's results; a missing or unreadable file is a status.

    Reasons name the file relative to the drop, so the tables (and a release) do not
    depend on where the drop was read from. A file that cannot be read (no permission, a
    directory in its place) has no source; one read has, hashed from the bytes parsed.
    """
    raw_dir = Path(raw_dir)
    path = trainval_path(raw_dir, setting)
    name = _relative(raw_dir, path)
    schema = valid_schema(setting)
    empty = _frame([], schema), _frame([], QUARANTINE_SCHEMA)
    try:
        data = read_raw(path, name)
    except NotInDropError:
        return SettingLoad(setting, "missing", f"{name} is not in the drop", None, *empty, read=0)
    except RawDropError as err:
        return SettingLoad(setting, "failed", str(err), None, *empty, read=0)
    source = Source.of(name, data)
    try:
        records = parse_pickle(data, name)
    except RawDropError as err:
        return SettingLoad(setting, "failed", str(err), source, *empty, read=0)
    if not records:
        reason = f"{source.path}: the list holds no records"
        return SettingLoad(setting, "failed", reason, source, *empty, read=0)

    model = record_model(setting)
    rows: list[dict[str, object]] = []
    quarantine: list[dict[str, object]] = []
    first_seen: dict[str, int] = {}
    listed: dict[int, int] = {}  # id of each record dict -> where it was first listed
    for index, raw in enumerate(records):
        if isinstance(raw, dict) and listed.setdefault(id(raw), index) != index:
            reason = f"the same object as record {listed[id(raw)]} (listed again by reference)"
            quarantine.append(_quarantine_row(setting, source.path, index, [("record", reason)]))
            continue
        try:
            record = model.model_validate(raw)
        except ValidationError as err:
            quarantine.append(_quarantine_row(setting, source.path, index, describe_errors(err)))
            continue
        key, row = _key_and_row(record)
        if key in first_seen:
            reason = f"duplicate architecture {key} (first at record {first_seen[key]})"
            quarantine.append(_quarantine_row(setting, source.path, index, [("embedding", reason)]))
            continue
        first_seen[key] = index
        rows.append({"record_index": index, **row})
    return SettingLoad(
        setting,
        "ok",
        None,
        source,
        _frame(rows, schema),
        _frame(quarantine, QUARANTINE_SCHEMA),
        read=len(records),
    )


def _key_and_row(record: Record) -> tuple[str, dict[str, object]]:
    """A valid record's architecture key and its row (without ``record_index``)."""
    if isinstance(record, MRRecord):
        code = record.arch.code
        return code, {
            "code": code,
            **record.metrics(),
            "flops": record.flops,
            "params": record.params,
        }
    if isinstance(record, Nb201Record):
        ops = ops_text(record.ops)
        matches = nb201_cost_matches(record.ops, record.Flops, record.Params)
        return ops, {
            "ops": ops,
            "arch_str": record.arch_str,
            **record.metrics(),
            "cost_matches_cell": matches,
        }
    raise TypeError(f"no row layout for {type(record).__name__}")


def load_architectures(raw_dir: Path) -> SearchListLoad:
    """Decode the search list into one row per architecture (code, line, embedding, size).

    ``search_index`` (and a quarantined code's ``record_index``) is the code's 0-based line.
    """
    raw_dir = Path(raw_dir)
    path = search_list_path(raw_dir)
    data = read_raw(path, str(path))
    lines = parse_search_list(data, str(path))
    source = Source.of(_relative(raw_dir, path), data)
    schema = {
        "code": "str",
        "search_index": "int64",
        **dict.fromkeys(EMBEDDING_COLUMNS, "int64"),
        "n_modules": "int64",
        "n_blocks": "int64",
    }
    rows: list[dict[str, object]] = []
    quarantine: list[dict[str, object]] = []
    first_seen: dict[str, int] = {}
    for index, text, problem in lines:
        if problem is not None:
            quarantine.append(_quarantine_row(None, source.path, index, [("code", problem)]))
            continue
        try:
            arch = Arch.from_code(text)
        except ArchError as err:
            quarantine.append(_quarantine_row(None, source.path, index, [("code", str(err))]))
            continue
        if arch.code in first_seen:
            first = first_seen[arch.code]
            reason = f"duplicate architecture {arch.code} (first at search_index {first})"
            quarantine.append(_quarantine_row(None, source.path, index, [("code", reason)]))
            continue
        first_seen[arch.code] = index
        rows.append(
            {
                "code": arch.code,
                "search_index": index,
                **dict(zip(EMBEDDING_COLUMNS, arch.embedding, strict=True)),
                "n_modules": arch.n_modules,
                "n_blocks": arch.n_blocks,
            }
        )
    return SearchListLoad(
        source, _frame(rows, schema), _frame(quarantine, QUARANTINE_SCHEMA), read=len(lines)
    )


def settle_complexity(
    loads: Sequence[SettingLoad], exact: Mapping[str, Complexity]
) -> list[SettingLoad]:
    """``loads`` with the records quarantined that lose a dispute over published complexity.

    Where MR settings publish different flops or params for one architecture, each of
    its records that is not the ``exact`` count (:func:`recompute_complexity`) moves to
    quarantine naming its value and the exact one; other records and settings carry on.
    Architectures without an exact count (outside the search list) are left as they are.
    """
    stated: dict[str, set[Complexity]] = {}
    for load in filter(_publishes_complexity, loads):
        for row in load.valid.itertuples(index=False):
            stated.setdefault(row.code, set()).add(Complexity.from_published(row.flops, row.params))
    disputed = {code for code, counts in stated.items() if len(counts) > 1 and code in exact}
    return [
        _settled(load, disputed, exact) if _publishes_complexity(load) else load for load in loads
    ]


def _publishes_complexity(load: SettingLoad) -> bool:
    """Whether ``load`` holds records with published flops and params (a loaded MR setting)."""
    return load.status == "ok" and get_setting(load.setting).is_mr


def _settled(load: SettingLoad, disputed: set[str], exact: Mapping[str, Complexity]) -> SettingLoad:
    """``load`` with its records of ``disputed`` architectures that are not exact quarantined."""
    keep: list[bool] = []
    moved: list[dict[str, object]] = []
    for row in load.valid.itertuples(index=False):
        errors = []
        if row.code in disputed:
            errors = _complexity_errors(row.flops, row.params, exact[row.code])
        keep.append(not errors)
        if errors:
            index = int(row.record_index)
            moved.append(_quarantine_row(load.setting, load.source_file, index, errors))
    if not moved:
        return load
    quarantine = pd.concat([load.quarantine, _frame(moved, QUARANTINE_SCHEMA)], ignore_index=True)
    return replace(load, valid=load.valid[keep].reset_index(drop=True), quarantine=quarantine)


def _complexity_errors(flops: float, params: float, exact: Complexity) -> list[tuple[str, str]]:
    """``(field, reason)`` for each of a record's flops and params that is not the exact count."""
    stated = Complexity.from_published(flops, params)
    compared = [
        ("flops", flops, stated.macs, exact.macs, exact.gmac, "GMac"),
        ("params", params, stated.params, exact.params, exact.mparams, "M"),
    ]
    return [
        (
            field,
            f"settings disagree on this architecture's {field}: this record's {value!r} "
            f"is not the exact count {count!r} {unit}",
        )
        for field, value, mine, theirs, count, unit in compared
        if mine != theirs
    ]


def published_complexity(loads: Sequence[SettingLoad]) -> pd.DataFrame:
    """``code, flops, params`` as published, from the first loaded MR setting with the code.

    Run :func:`settle_complexity` first, so that the settings agree on every architecture
    of the search list.
    """
    frames = [
        load.valid[["code", "flops", "params"]] for load in filter(_publishes_complexity, loads)
    ]
    columns = {"code": "str", "flops": "float64", "params": "float64"}
    if not frames:
        return _frame([], columns)
    every = pd.concat(frames, ignore_index=True)
    first = every.drop_duplicates("code").sort_values("code", ignore_index=True)
    return first[list(columns)].astype(columns)


def recompute_complexity(
    codes: Sequence[str],
    method: ComplexityMethod = "analytic",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Complexity]:
    """Exact MACs and params of each architecture, by formula or by counting the built module.

    ``workers`` and ``progress(done, total)`` apply to the (slow) module method.
    """
    archs = [Arch.from_code(code) for code in codes]
    if method == "analytic":
        counts = [analytic_complexity(arch) for arch in archs]
    elif method == "module":
        counts = module_complexity_many(archs, workers=workers, progress=progress)
    else:
        raise ValueError(f"unknown complexity method {method!r}; expected 'analytic' or 'module'")
    return dict(zip(codes, counts, strict=True))


def complexity_table(
    published: pd.DataFrame, recomputed: Mapping[str, Complexity], method: str
) -> pd.DataFrame:
    """Published vs recomputed MACs and params per code; ``match`` is null when a side is absent."""
    stated = {
        row.code: Complexity.from_published(row.flops, row.params)
        for row in published.itertuples(index=False)
    }
    rows = []
    for code in sorted(set(stated) | set(recomputed)):
        mine, theirs = recomputed.get(code), stated.get(code)
        rows.append(
            {
                "code": code,
                "published_macs": theirs.macs if theirs else None,
                "published_params": theirs.params if theirs else None,
                "recomputed_macs": mine.macs if mine else None,
                "recomputed_params": mine.params if mine else None,
                "method": method,
                "match": (mine == theirs) if mine and theirs else None,
            }
        )
    schema = {
        "code": "str",
        "published_macs": "Int64",
        "published_params": "Int64",
        "recomputed_macs": "Int64",
        "recomputed_params": "Int64",
        "method": "str",
        "match": "boolean",
    }
    return _frame(rows, schema)


def build_tables(
    search_list: SearchListLoad,
    loads: Sequence[SettingLoad],
    complexity: pd.DataFrame,
    ingested_at: datetime,
) -> dict[str, pd.DataFrame]:
    """Assemble the warehouse tables; results of codes outside the search list go to quarantine.

    ``complexity`` is kept for the search list's codes only, so every table joins on
    ``architectures.code``.
    """
    if ingested_at.tzinfo is None:
        raise ValueError(f"ingested_at must carry a time zone, got {ingested_at.isoformat()}")
    names = [load.setting for load in loads]
    if len(set(names)) != len(names):
        raise ValueError(f"each setting may be loaded once, got {names}")
    known = set(search_list.architectures["code"])
    order = {name: i for i, name in enumerate(SETTINGS)}
    loads = sorted(loads, key=lambda load: order[load.setting])

    results, quarantines, report, valid_frames = [], [search_list.quarantine], [], {}
    report.append(
        {
            "setting": None,
            "source_file": search_list.source.path,
            "status": "ok",
            "read": search_list.read,
            "valid": len(search_list.architectures),
            "quarantined": len(search_list.quarantine),
            "reason": None,
        }
    )
    for load in loads:
        valid, quarantine = load.valid, load.quarantine
        if get_setting(load.setting).is_mr and len(valid):
            valid, quarantine = _keep_known_codes(load, known)
            metrics = list(get_setting(load.setting).metrics)
            results.append(
                valid.melt(
                    id_vars=["code", "record_index"], value_vars=metrics, var_name="metric"
                ).assign(setting=load.setting)
            )
        valid_frames[load.setting] = valid
        quarantines.append(quarantine)
        report.append(
            {
                "setting": load.setting,
                "source_file": load.source_file,
                "status": load.status,
                "read": load.read,
                "valid": len(valid),
                "quarantined": len(quarantine),
                "reason": load.reason,
            }
        )

    evaluated = set().union(
        *(set(valid_frames[s]["code"]) for s in MR_SETTINGS if s in valid_frames)
    )
    architectures = search_list.architectures.assign(
        evaluated=search_list.architectures["code"].isin(evaluated)
    ).sort_values("search_index", ignore_index=True)
    results_frame = (
        pd.concat(results, ignore_index=True)[list(RESULTS_SCHEMA)]
        if results
        else _frame([], RESULTS_SCHEMA)
    )
    nb201 = valid_frames.get(NB201, _frame([], valid_schema(NB201)))
    sources = [search_list.source, *(load.source for load in loads if load.source)]
    return {
        "architectures": architectures,
        "results": _sorted(results_frame.astype(RESULTS_SCHEMA), ["setting", "code", "metric"]),
        "complexity": _sorted(complexity[complexity["code"].isin(known)], ["code"]),
        "sources": _sorted(_sources_frame(sources, loads, ingested_at), ["path"]),
        "quarantine": _sorted(
            pd.concat(quarantines, ignore_index=True).astype(QUARANTINE_SCHEMA),
            ["source_file", "record_index", "field"],
        ),
        "ingest_report": _frame(report, REPORT_SCHEMA),
        "nb201_results": _sorted(nb201, ["record_index"]),
    }


def _keep_known_codes(load: SettingLoad, known: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An MR setting's valid records of search-list codes, and its quarantine with the
    records of other codes added (a result must join ``architectures``)."""
    valid = load.valid
    unknown = ~valid["code"].isin(known)
    moved = [
        _quarantine_row(
            load.setting,
            load.source_file,
            int(row.record_index),
            [("embedding", f"architecture {row.code} is not in the search list")],
        )
        for row in valid[unknown].itertuples(index=False)
    ]
    quarantine = pd.concat([load.quarantine, _frame(moved, QUARANTINE_SCHEMA)], ignore_index=True)
    return valid[~unknown], quarantine


RESULTS_SCHEMA: dict[str, str] = {
    "code": "str",
    "setting": "str",
    "metric": "str",
    "value": "float64",
    "record_index": "int64",
}
"""Columns of the ``results`` table: one row per architecture, setting and metric."""

REPORT_SCHEMA: dict[str, str] = {
    "setting": "str",
    "source_file": "str",
    "status": "str",
    "read": "int64",
    "valid": "int64",
    "quarantined": "int64",
    "reason": "str",
}
"""Columns of the ingest report: one row for the search list, then one per setting."""


def _sources_frame(
    sources: Sequence[Source], loads: Sequence[SettingLoad], ingested_at: datetime
) -> pd.DataFrame:
    """The ``sources`` table: each input file's kind, setting, size and sha256."""
    setting_of = {load.source.path: load.setting for load in loads if load.source}
    rows = [
        {
            "kind": "trainval" if source.path in setting_of else "search_list",
            "setting": setting_of.get(source.path),
            "path": source.path,
            "bytes": source.bytes,
            "sha256": source.sha256,
            "ingested_at": ingested_at,
        }
        for source in sources
    ]
    schema = {
        "kind": "str",
        "setting": "str",
        "path": "str",
        "bytes": "int64",
        "sha256": "str",
        "ingested_at": "datetime64[us, UTC]",
    }
    return _frame(rows, schema)


def _quarantine_row(
    setting: str | None, source_file: str, index: int, errors: Sequence[tuple[str, str]]
) -> dict[str, object]:
    """One quarantine row per rejected record; several errors read ``field: reason; ...``."""
    fields = list(dict.fromkeys(field for field, _ in errors))
    reasons = (
        [reason for _, reason in errors] if len(errors) == 1 else [f"{f}: {r}" for f, r in errors]
    )
    return {
        "setting": setting,
        "source_file": source_file,
        "record_index": index,
        "field": ", ".join(fields),
        "reason": "; ".join(reasons),
    }


def _frame(rows: Sequence[Mapping[str, object]], schema: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(schema)).astype(dict(schema))


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, kind="stable", ignore_index=True)


def _relative(raw_dir: Path, path: Path) -> str:
    return Path(path).relative_to(raw_dir).as_posix()
