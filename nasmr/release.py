"""Versioned, immutable data releases: publish, list, verify and diff them.

A release is a folder ``releases/<version>/`` made from a warehouse build dir.
It keeps the build's layout, so a release folder is also a valid warehouse:

* ``parquet/<table>.parquet`` and ``nasmr.duckdb``: the build's tables and its
  self-contained DuckDB file (tables and wide views), copied byte for byte;
* ``predictors/``, ``ncp/``, ``reports/``: copied when the build has them, and only
  when every model output that records its data version (predictor cards, the
  predictor report, NCP search cards, the search report) records the build's own, so no
  model trained, or search run, on other data ships;
* ``manifest.json`` (:class:`schemas.release.ReleaseManifest`), ``README.md`` (a
  datasheet), ``CHANGELOG.md`` (this release's entry, then every earlier one),
  ``datapackage.json`` (a Frictionless Data Package) and ``croissant.json`` (Croissant
  1.0 metadata, which ``mlcroissant`` validates and reads records through);
* ``nasmr-<version>.tar.gz``: every file above, one deterministic archive;
* ``SHA256SUMS``: sha256sum lines for every file of the folder. The copy inside
  the archive is the same minus the archive's own line.

Versions are semantic: a schema change is major, added or removed records (or rows of
any table) minor, corrected values (in any column but the build's times, e.g. the
search-list order or the input files' checksums) or changed model outputs (predictors,
NCP results, reports) patch.
A release is written in a temporary folder inside the releases dir and renamed into
place, so an interrupted publish leaves no partial release, and an existing version
is never overwritten. Its files and folders are read-only, and the writers of build
outputs refuse a release folder (:func:`nasmr.paths.outside_releases`).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nasmr import __version__, clock, paths
from nasmr.checksums import content_hash, sha256_file
from nasmr.quality import broken_rules
from nasmr.rawdrop import trainval_path
from nasmr.table_docs import COLUMN_DOCS, TABLE_DOCS
from nasmr.warehouse import (
    PARQUET_DIR,
    STORAGE_FORMAT,
    WAREHOUSE_NAME,
    connect,
    sql_identifier,
    storage_format,
    wal_path,
    warehouse_version,
    writer_pid,
)
from schemas.release import (
    FLOPS_CONVENTION,
    SCHEMA_VERSION,
    CodeVersion,
    FileDigest,
    ReleaseManifest,
    TableInfo,
    Version,
)
from schemas.settings import NB201, SETTINGS

MANIFEST = paths.RELEASE_MANIFEST
SUMS = paths.RELEASE_SUMS
DATASHEET = "README.md"
CHANGELOG = "CHANGELOG.md"
DATAPACKAGE = "datapackage.json"
CROISSANT = "croissant.json"
EXTRA_DIRS = ("predictors", "ncp", "reports")
MODEL_CHANGES_SHOWN = 20
"""Model-output changes a changelog lists by name; the rest are counted."""
PREDICTOR_REPORT = "predictors/report.csv"
DATA_VERSION_LINE = re.compile(r"^Data version `([^`]+)`", re.MULTILINE)
"""How a markdown model output records its data version (``predictors/report.md``)."""
RECORD_KEY = ("setting", "code", "metric")
LATEST = "latest"
COMPLEXITY = "complexity"
ORIGINAL_REPOSITORY = "https://github.com/dingmyu/NCP"
BIBTEX = """@inproceedings{ding2022learning,
  author = {Ding, Mingyu and Huo, Yuqi and Lu, Haoyu and Yang, Linjie and Wang, Zhe and
            Lu, Zhiwu and Wang, Jingdong and Luo, Ping},
  title = {Learning Versatile Neural Architectures by Propagating Network Codes},
  booktitle = {International Conference on Learning Representations},
  year = {2022}
}"""
"""Citation of the original benchmark (from the authors' repository)."""
TITLE = "NAS-Bench-MR, curated (nasmr)"
DESCRIPTION = (
    "Validated tables of NAS-Bench-MR (Ding et al., ICLR 2022): 2507 multi-resolution networks "
    "evaluated on segmentation, classification and video settings, with exact FLOPs/params. "
    "See README.md (datasheet) and manifest.json."
)
LICENCE = "BSD-2-Clause"
"""SPDX identifier of the licence of the original NAS-Bench-MR repository (its LICENSE)."""

LICENCE_TERMS = "BSD 2-Clause License for academic use; for commercial use, contact the author"
"""The licence as the original repository's README states it: BSD-2-Clause covers academic
use only."""

LICENCE_URL = f"{ORIGINAL_REPOSITORY}/blob/HEAD/LICENSE"
"""Where the original licence text is published (the default branch's)."""

LICENCE_NOTICE = """\
Copyright (c) 2021, Mingyu Ding
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""
"""The original repository's notice, which its clause 2 asks redistributions to reproduce
(the datasheet does)."""


PRIMARY_KEYS: dict[str, list[str]] = {
    "architectures": ["code"],
    "results": list(RECORD_KEY),
    "complexity": ["code"],
    "sources": ["path"],
    "ingest_report": ["source_file"],
    "nb201_results": ["ops"],
}
"""Columns that identify a row of each keyed table (the Data Package declares them)."""

MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "json": "application/json",
    "md": "text/markdown",
    "png": "image/png",
}
"""Media types of the release's file formats (others, like DuckDB's and safetensors', have
no registered one)."""

FOREIGN_KEYS: dict[str, list[dict[str, Any]]] = {
    name: [{"fields": ["code"], "reference": {"resource": "architectures", "fields": ["code"]}}]
    for name in ("results", "complexity")
}
"""References between tables (the Data Package declares them; every build holds them)."""

TIME_COLUMNS: dict[str, tuple[str, ...]] = {"sources": ("ingested_at",)}
"""Columns that say when a build ran, not what it holds: a diff does not compare them."""


class ReleaseError(Exception):
    """A release cannot be published, found or read; the message says which and why."""


# -- finding releases ----------------------------------------------------------------------


def archive_name(version: str) -> str:
    """File name of a release's archive."""
    return f"nasmr-{version}.tar.gz"


def load_manifest(release_dir: Path) -> ReleaseManifest:
    """The manifest of the release in ``release_dir``."""
    path = Path(release_dir) / MANIFEST
    if not path.is_file():
        raise ReleaseError(f"{release_dir}: not a release (no {MANIFEST})")
    try:
        return ReleaseManifest.model_validate_json(path.read_text())
    except ValueError as err:
        raise ReleaseError(f"{path}: invalid manifest ({err})") from err


def published_versions(releases_dir: Path | None = None) -> list[Version]:
    """Versions of the release folders (named as a version, holding a manifest), lowest
    first; temporary ``.publishing-*`` folders are no version. No manifest is read, so one
    unreadable manifest does not hide the other releases."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    if not root.is_dir():
        return []
    return sorted(
        Version.parse(child.name)
        for child in root.iterdir()
        if _is_version(child.name) and (child / MANIFEST).is_file()
    )


def list_releases(releases_dir: Path | None = None) -> list[ReleaseManifest]:
    """Manifests of the published releases, lowest version first; an unreadable one raises
    :class:`ReleaseError` naming its file."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    return [load_manifest(root / str(version)) for version in published_versions(root)]


def resolve_release(ref: str | Path, releases_dir: Path | None = None) -> Path:
    """The folder of a release given ``'latest'``, a version, or a path to a release folder."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    if (Path(ref) / MANIFEST).is_file() and not _is_version(str(ref)):
        return Path(ref)
    published = [str(version) for version in published_versions(root)]
    choices = f"published in {root}: {', '.join(published) or 'none'}"
    if str(ref) == LATEST:
        if not published:
            raise ReleaseError(f"no release published yet ({choices})")
        return root / published[-1]
    if not _is_version(str(ref)):
        if Path(ref).is_file():
            where = Path(ref).parent
            raise ReleaseError(
                f"{ref} is a file: open the folder holding it (a build or release), {where}"
            )
        raise ReleaseError(f"{ref}: neither 'latest', a version nor a release folder ({choices})")
    if str(ref) not in published:
        raise ReleaseError(f"release {ref} not found ({choices})")
    return root / str(ref)


def _is_version(text: str) -> bool:
    try:
        Version.parse(text)
    except ValueError:
        return False
    return True


# -- comparing builds and releases -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingChanges:
    """Values added, removed and changed in one setting, keyed by (code, setting, metric)."""

    setting: str
    added: int
    removed: int
    changed: int


@dataclass(frozen=True, slots=True)
class TableChanges:
    """Rows of one table added, removed and changed beyond its records, and in which columns."""

    table: str
    added: int
    removed: int
    changed: int
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReleaseDiff:
    """What changed between two versions of the data: schema, records, tables, model outputs.

    Records are the long results (``results``), the nas-bench-201 cells (setting
    ``nas-bench-201``, keyed by their ``ops``) and the published and recomputed
    complexity (setting ``complexity``). Tables are every other column of every
    table (see :func:`_table_changes`): a reordered search list or drop file, or an
    input file with other bytes, changes the data without changing a record. Model
    outputs are the files of ``EXTRA_DIRS`` (predictors, NCP results, reports):
    retrained predictors alone make a patch release.
    """

    schema_changes: tuple[str, ...]
    settings: tuple[SettingChanges, ...]
    model_changes: tuple[str, ...] = ()
    """``added|removed|changed <path>`` for each file of the model outputs that differs."""
    tables: tuple[TableChanges, ...] = ()

    @property
    def level(self) -> str:
        """The semantic-version level the changes need: 'major', 'minor' or 'patch'."""
        if self.schema_changes:
            return "major"
        if any(c.added or c.removed for c in (*self.settings, *self.tables)):
            return "minor"
        return "patch"

    @property
    def unchanged(self) -> bool:
        """No schema change, no record or row added, removed or changed, no model output
        changed."""
        return (
            not self.schema_changes
            and not self.model_changes
            and not any(c.added or c.removed or c.changed for c in (*self.settings, *self.tables))
        )

    def to_markdown(self) -> str:
        """The changes as markdown: the schema changes, one table row per setting, the other
        tables' changes, then the model outputs."""
        lines = ["Schema changes:" if self.schema_changes else "Schema: unchanged."]
        lines += [f"- {change}" for change in self.schema_changes]
        lines += ["", "Counted in values, one per architecture and metric:"]
        lines += ["", "| setting | added | removed | changed |", "|---|---:|---:|---:|"]
        lines += [f"| {s.setting} | {s.added} | {s.removed} | {s.changed} |" for s in self.settings]
        if self.tables:
            lines += ["", "Other columns and tables:", ""]
            lines += ["| table | added | removed | changed | changed columns |"]
            lines += ["|---|---:|---:|---:|---|"]
            lines += [
                f"| {t.table} | {t.added} | {t.removed} | {t.changed} | {', '.join(t.columns)} |"
                for t in self.tables
            ]
        shown = self.model_changes[:MODEL_CHANGES_SHOWN]
        lines += ["", f"Model outputs: {len(self.model_changes) or 'no'} file(s) differ."]
        lines += [f"- {change}" for change in shown]
        if len(self.model_changes) > len(shown):
            lines.append(f"- ... and {len(self.model_changes) - len(shown)} more")
        return "\n".join(lines)


def _table_schemas(source: Path) -> dict[str, dict[str, str]]:
    """Column name -> Arrow type name of every Parquet table of a build or release."""
    return {
        path.stem: {field.name: str(field.type) for field in pq.read_schema(path)}
        for path in sorted((Path(source) / PARQUET_DIR).glob("*.parquet"))
    }


def _schema_version(source: Path) -> int:
    """A release's recorded schema version; a build has the current code's."""
    source = Path(source)
    return load_manifest(source).schema_version if (source / MANIFEST).is_file() else SCHEMA_VERSION


def _schema_changes(old: Path | None, new: Path) -> list[str]:
    """Differences between two sources' schema versions and table layouts, one line each.

    From nothing (``old`` None) every table is added.
    """
    changes = []
    if old is not None and _schema_version(old) != _schema_version(new):
        changes.append(f"schema version {_schema_version(old)} -> {_schema_version(new)}")
    before = _table_schemas(old) if old is not None else {}
    after = _table_schemas(new)
    changes += [f"table {t} removed" for t in sorted(before.keys() - after.keys())]
    changes += [f"table {t} added" for t in sorted(after.keys() - before.keys())]
    for table in sorted(before.keys() & after.keys()):
        cols_before, cols_after = before[table], after[table]
        changes += [f"column {table}.{c} removed" for c in cols_before if c not in cols_after]
        changes += [f"column {table}.{c} added" for c in cols_after if c not in cols_before]
        changes += [
            f"column {table}.{c} type {cols_before[c]} -> {cols_after[c]}"
            for c in cols_before
            if c in cols_after and cols_before[c] != cols_after[c]
        ]
    return changes


def _read_table(source: Path, table: str) -> pd.DataFrame:
    path = Path(source) / PARQUET_DIR / f"{table}.parquet"
    if not path.is_file():
        raise ReleaseError(f"{source}: table {table} is missing ({path})")
    return pd.read_parquet(path)


def _record_values(table: str, columns: Iterable[str]) -> list[str]:
    """The columns of ``table`` that :func:`_records` compares as record values."""
    if table == "results":
        return ["value"]
    if table == "nb201_results":
        return list(SETTINGS[NB201].metrics)
    if table == COMPLEXITY:
        return [c for c in columns if c.startswith(("published_", "recomputed_"))]
    return []


def _tables(source: Path | None) -> dict[str, pd.DataFrame]:
    """Every warehouse table a build or release holds (none for ``None``), each read once."""
    if source is None:
        return {}
    paths = {table: Path(source) / PARQUET_DIR / f"{table}.parquet" for table in TABLE_DOCS}
    return {table: pd.read_parquet(path) for table, path in paths.items() if path.is_file()}


def _records(tables: dict[str, pd.DataFrame], source: Path | None) -> pd.DataFrame:
    """Every record value of a build or release's ``tables``, long: setting, code, metric,
    value (none without a source)."""
    columns = [*RECORD_KEY, "value"]
    if source is None:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in RECORD_KEY} | {"value": []})
    missing = [t for t in ("results", "nb201_results", COMPLEXITY) if t not in tables]
    if missing:
        raise ReleaseError(f"{source}: table {missing[0]} is missing from {PARQUET_DIR}/")
    results = tables["results"][columns]
    nb201 = (
        tables["nb201_results"]
        .rename(columns={"ops": "code"})
        .melt(id_vars="code", value_vars=_record_values("nb201_results", []), var_name="metric")
        .assign(setting=NB201)
    )
    complexity = tables[COMPLEXITY]
    counts = _record_values(COMPLEXITY, complexity.columns)
    complexity = complexity.melt(id_vars="code", value_vars=counts, var_name="metric").assign(
        setting=COMPLEXITY
    )
    frames = [results, nb201[columns], complexity[columns]]
    return pd.concat([f.astype({"value": "float64"}) for f in frames if len(f)], ignore_index=True)


def _diff(old: Path | None, new: Path) -> ReleaseDiff:
    """Schema, record, table and model-output changes from ``old`` (None: nothing) to ``new``."""
    schema = _schema_changes(old, new)
    before, after = _tables(old), _tables(new)
    merged = _records(before, old).merge(
        _records(after, new),
        on=list(RECORD_KEY),
        how="outer",
        suffixes=("_old", "_new"),
        indicator=True,
    )
    same = (merged["value_old"] == merged["value_new"]) | (
        merged["value_old"].isna() & merged["value_new"].isna()
    )
    flags = pd.DataFrame(
        {
            "setting": merged["setting"],
            "added": merged["_merge"] == "right_only",
            "removed": merged["_merge"] == "left_only",
            "changed": (merged["_merge"] == "both") & ~same,
        }
    )
    order = {name: i for i, name in enumerate([*SETTINGS, COMPLEXITY])}
    counts = flags.groupby("setting").sum()
    settings = tuple(
        SettingChanges(str(name), int(row.added), int(row.removed), int(row.changed))
        for name, row in sorted(counts.iterrows(), key=lambda item: order.get(item[0], 99))
    )
    tables = _table_changes(before, after) if old is not None else ()
    return ReleaseDiff(tuple(schema), settings, _model_changes(old, new), tables)


def _differs(before: pd.Series, after: pd.Series) -> pd.Series:
    """Row-wise inequality of two aligned columns, a missing value equal to a missing one."""
    unequal = before.ne(after).fillna(True).astype(bool)  # a missing value vs a value
    return unequal & ~(before.isna() & after.isna())


def _table_changes(
    old: dict[str, pd.DataFrame], new: dict[str, pd.DataFrame]
) -> tuple[TableChanges, ...]:
    """Rows of each table present in both that were added, removed or changed, in the
    columns that both have, but the records' values (counted per setting) and times.

    Keyed tables (``PRIMARY_KEYS``) match rows by key; the record tables (results,
    nb201_results, complexity) only by key, since their added and removed rows are the
    records'. A table without a key (quarantine) compares as a collection of rows.
    """
    found = []
    for table in [t for t in TABLE_DOCS if t in old and t in new]:  # else a schema change
        before, after = old[table], new[table]
        key = PRIMARY_KEYS.get(table, [])
        skipped = {*key, *TIME_COLUMNS.get(table, ()), *_record_values(table, before.columns)}
        columns = [c for c in before.columns if c in after.columns and c not in skipped]
        if not key:  # rows are their values: match equal rows, duplicates one for one
            key = [*columns, "occurrence"]
            before, after = (
                f[columns].assign(occurrence=f.groupby(columns, dropna=False).cumcount())
                for f in (before, after)
            )
            columns = []
        merged = before[key + columns].merge(
            after[key + columns], on=key, how="outer", suffixes=("_old", "_new"), indicator=True
        )
        both = merged[merged["_merge"] == "both"]
        differ = pd.DataFrame(
            {c: _differs(both[f"{c}_old"], both[f"{c}_new"]) for c in columns}, index=both.index
        )
        records = bool(_record_values(table, before.columns))
        counts = TableChanges(
            table,
            0 if records else int((merged["_merge"] == "right_only").sum()),
            0 if records else int((merged["_merge"] == "left_only").sum()),
            int(differ.any(axis=1).sum()),
            tuple(c for c in columns if differ[c].any()),
        )
        if counts.added or counts.removed or counts.changed:
            found.append(counts)
    return tuple(found)


def _model_files(root: Path) -> list[str]:
    """Every file of the model outputs (``EXTRA_DIRS``) in ``root``, relative to it."""
    return [
        f"{name}/{rel}"
        for name in EXTRA_DIRS
        if (root / name).is_dir()
        for rel in _relative_files(root / name)
    ]


def _model_digests(root: Path | None) -> dict[str, str]:
    """Relative path -> sha256 of every file of the model outputs (``EXTRA_DIRS``) in ``root``."""
    if root is None:
        return {}
    return {rel: sha256_file(root / rel) for rel in _model_files(root)}


def _model_changes(old: Path | None, new: Path) -> tuple[str, ...]:
    """``added|removed|changed <path>`` for each model-output file that differs, sorted by path."""
    before, after = _model_digests(old), _model_digests(new)
    changes = []
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            changes.append(f"added {path}")
        elif path not in after:
            changes.append(f"removed {path}")
        elif before[path] != after[path]:
            changes.append(f"changed {path}")
    return tuple(changes)


def diff_releases(
    old: str | Path, new: str | Path, releases_dir: Path | None = None
) -> ReleaseDiff:
    """Changes from release ``old`` to release ``new`` (each a version, 'latest' or a folder).

    Both must verify: a diff would report a tampered or damaged file as a change.
    """
    folders = [resolve_release(ref, releases_dir) for ref in (old, new)]
    for folder in folders:
        _require_verified(folder, "a diff with it would report its damage as changes")
    return _diff(*folders)


def _require_verified(release: Path, why: str) -> None:
    """Raise unless ``release`` matches its checksums; ``why`` says what a failure breaks."""
    check = verify_release(release)
    if not check.ok:
        raise ReleaseError(
            f"release {release.name} fails verification, so {why}; restore it (`nasmr "
            f"release verify` lists the files):\n{check.summary()}"
        )


def propose_version(
    new_build: Path, previous_release: str | Path | None, releases_dir: Path | None = None
) -> tuple[str, ReleaseDiff]:
    """The version a build should be published as, and its diff against the previous release.

    Later releases bump the previous version at the diff's level (major, minor or
    patch); the first (``previous_release`` None) adds every table, a major bump
    from 0.0.0 to 1.0.0.
    """
    if previous_release is None:
        diff = _diff(None, Path(new_build))
        return str(Version(0, 0, 0).bump(diff.level)), diff
    previous = resolve_release(previous_release, releases_dir)
    diff = _diff(previous, Path(new_build))
    return str(Version.parse(load_manifest(previous).version).bump(diff.level)), diff


# -- verifying -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of re-checking a release folder against its ``SHA256SUMS``."""

    release: Path
    checked: int
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]
    unlisted: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every listed file exists with its recorded checksum, and no file is unlisted."""
        return not (self.mismatched or self.missing or self.unlisted)

    def summary(self) -> str:
        """One line per problem, or one line saying the release is intact."""
        if self.ok:
            return f"{self.release}: OK ({self.checked} files match {SUMS})"
        lines = [f"{self.release}: FAILED"]
        lines += [f"  checksum mismatch: {p}" for p in self.mismatched]
        lines += [f"  missing file: {p}" for p in self.missing]
        lines += [f"  file not in {SUMS}: {p}" for p in self.unlisted]
        return "\n".join(lines)


def _read_sums(path: Path) -> dict[str, str]:
    """Relative path -> sha256 from a sha256sum-format file."""
    if not path.is_file():
        raise ReleaseError(f"{path.parent}: not a release ({SUMS} is missing)")
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ReleaseError(f"{path}: line {number} is not '<sha256>  <path>': {line!r}")
        sums[name] = digest
    return sums


def _relative_files(root: Path) -> list[str]:
    """Every file under ``root`` as a sorted POSIX path relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def verify_release(ref: str | Path, releases_dir: Path | None = None) -> VerifyReport:
    """Re-check every checksum of a release, that no listed file is gone and none was added."""
    root = resolve_release(ref, releases_dir)
    sums = _read_sums(root / SUMS)
    present = set(_relative_files(root))
    missing = sorted(name for name in sums if name not in present)
    mismatched = sorted(
        name for name in sums if name in present and sha256_file(root / name) != sums[name]
    )
    unlisted = sorted(present - set(sums) - {SUMS})
    return VerifyReport(root, len(sums), tuple(mismatched), tuple(missing), tuple(unlisted))


# -- publishing ----------------------------------------------------------------------------


def check_publishable(
    build_dir: Path, releases_dir: Path, raw_dir: Path | None = None
) -> Version | None:
    """Refuse what no release may come from; return the latest release's version, if any.

    Refused: an incomplete build, broken data-quality rules, model outputs of other data,
    with ``raw_dir`` a build whose inputs changed since it was made, and a latest release
    that fails verification (the version and changelog are a diff against it).
    """
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    _check_build(build_dir)
    _check_rules(build_dir)
    _check_model_outputs(build_dir, releases_dir, raw_dir)
    if raw_dir is not None:
        _check_sources(build_dir, Path(raw_dir))
    published = published_versions(releases_dir)
    previous = published[-1] if published else None
    if previous is not None:
        why = "the diff a new release starts from cannot be trusted"
        _require_verified(releases_dir / str(previous), why)
    return previous


def publish_release(
    build_dir: Path,
    releases_dir: Path,
    version: str | None = None,
    raw_dir: Path | None = None,
    created_at: datetime | None = None,
) -> Path:
    """Publish a build as ``releases_dir/<version>/`` and return that folder.

    ``version`` defaults to :func:`propose_version` against the latest release. A
    given version must not exist and must be at least that proposal, so versions
    only grow; with no release yet any version is accepted (a first release may be
    0.1.0). With ``raw_dir`` the build's recorded input checksums are re-checked
    against the drop (a stale build is refused). The latest release must verify, since
    the version and changelog are a diff against it. Without a version, a build that has
    no results of a setting the latest release has is refused: a file gone from the
    drop is more likely an accident than a setting withdrawn on purpose.
    """
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    previous = check_publishable(build_dir, releases_dir, raw_dir)
    published = published_versions(releases_dir)
    if version is None and previous is not None:  # before the diff: a quick refusal
        _check_settings_kept(build_dir, releases_dir / str(previous))
    proposed, diff = propose_version(build_dir, _ref(previous), releases_dir)
    if version is None and previous is not None and diff.unchanged:
        raise ReleaseError(
            f"{build_dir}: no data or model output changed since release {previous}, so "
            "there is nothing to publish; give a version to publish it anyway"
        )
    if version is None:
        version = proposed
    elif Version.parse(version) in published:
        raise ReleaseError(
            f"release {version} already exists in {releases_dir}; releases are immutable, "
            "publish a new version"
        )
    elif previous is not None and Version.parse(version) < Version.parse(proposed):
        raise ReleaseError(
            f"version {version} is too low: the latest release is {previous}, and the changes "
            f"since it need a {diff.level} bump (at least {proposed}); publish {proposed} or "
            "higher, or leave out --version"
        )
    target = releases_dir / version
    if target.exists():
        raise ReleaseError(f"{target} already exists; releases are immutable")
    releases_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".publishing-{version}-", dir=releases_dir))
    try:
        previous_dir = releases_dir / str(previous) if previous is not None else None
        _write_release(staging, build_dir, version, previous_dir, diff, created_at)
        os.rename(staging, target)
    except OSError as err:
        _discard(staging)
        if target.exists():
            raise ReleaseError(f"{target} appeared while publishing; not overwritten") from err
        raise
    except BaseException:
        _discard(staging)
        raise
    return target


def _discard(folder: Path) -> None:
    """Delete an unfinished release, read-only folders included (best effort: the error that
    stopped the publish is the one to report)."""
    with contextlib.suppress(OSError):
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _ref(version: Version | None) -> str | None:
    return None if version is None else str(version)


def _check_build(build_dir: Path) -> None:
    """A build must hold every warehouse table as Parquet and a checkpointed DuckDB file that
    no process is writing."""
    missing = [t for t in TABLE_DOCS if not (build_dir / PARQUET_DIR / f"{t}.parquet").is_file()]
    if missing:
        raise ReleaseError(
            f"{build_dir}: not a complete build, missing tables in {PARQUET_DIR}/: "
            + ", ".join(missing)
        )
    for table, docs in COLUMN_DOCS.items():
        columns = pq.read_schema(build_dir / PARQUET_DIR / f"{table}.parquet").names
        if columns != list(docs):
            raise ReleaseError(
                f"{build_dir}: {PARQUET_DIR}/{table}.parquet has columns {columns}, this nasmr "
                f"writes {list(docs)}: the build was made by another version; rebuild it "
                "(`nasmr build`, or `nasmr ingest` for the data alone)"
            )
    database = build_dir / WAREHOUSE_NAME
    if not database.is_file():
        raise ReleaseError(f"{build_dir}: not a complete build, {WAREHOUSE_NAME} is missing")
    holder = writer_pid(database)
    if holder is not None:
        raise ReleaseError(f"{database}: open for writing by process {holder}; close it first")
    if wal_path(database).exists():
        raise ReleaseError(
            f"{database}: has the write-ahead log of a read-write session that did not close, "
            "with changes that are not in parquet/; rebuild the warehouse (`nasmr ingest "
            f"--warehouse {database}`) before publishing"
        )
    written_as = storage_format(database)
    if written_as not in (None, STORAGE_FORMAT):
        raise ReleaseError(
            f"{database}: DuckDB storage format {written_as}, which DuckDB 1.x cannot open; "
            f"releases ship {STORAGE_FORMAT}: rebuild the warehouse (`nasmr ingest --warehouse "
            f"{database}`, or `nasmr build`) before publishing"
        )


def _check_rules(build_dir: Path) -> None:
    """A build must keep every data-quality rule, also when it was not made by Dagster."""
    with connect(build_dir / WAREHOUSE_NAME) as con:
        broken = broken_rules(con)
    if broken:
        found = "; ".join(
            f"{name}: {len(rows)} offending row(s), first {rows.iloc[0].to_dict()}"
            for name, rows in broken.items()
        )
        raise ReleaseError(f"{build_dir / WAREHOUSE_NAME}: breaks data-quality rules: {found}")


def _settings_present(root: Path) -> tuple[str, ...]:
    """The settings whose results file a build or release loaded (``ingest_report``)."""
    report = _read_table(root, "ingest_report").dropna(subset=["setting"])
    return tuple(report.loc[report["status"] == "ok", "setting"])


def _check_settings_kept(build_dir: Path, previous: Path) -> None:
    """The build has results of every setting the ``previous`` release has."""
    kept = set(_settings_present(build_dir))
    lost = [s for s in load_manifest(previous).settings_present if s not in kept]
    if lost:
        raise ReleaseError(
            f"{build_dir}: no results of {', '.join(lost)}, which release {previous.name} "
            "has (its file missing from the drop, or unreadable: see the build's "
            "ingest_report); mend the drop and rebuild, or give a version to publish a "
            "release without them"
        )


def _sources(root: Path) -> tuple[FileDigest, ...]:
    """The input files a build or release was made from (its ``sources`` table)."""
    return tuple(
        FileDigest(path=row.path, bytes=row.bytes, sha256=row.sha256)
        for row in _read_table(root, "sources").itertuples(index=False)
    )


def _recorded_data_versions(root: Path) -> dict[str, str]:
    """Relative path -> data version of each model output that records one: JSON with a
    ``data_version`` (predictor cards) or markdown with a ``DATA_VERSION_LINE`` (reports)."""
    found = {}
    for rel in _model_files(root):
        path = root / rel
        version = None
        if path.suffix == ".json":
            try:
                data = json.loads(path.read_bytes())
            except ValueError:
                continue
            version = data.get("data_version") if isinstance(data, dict) else None
        elif path.suffix == ".md":
            match = DATA_VERSION_LINE.search(path.read_text(errors="replace"))
            version = match.group(1) if match else None
        if isinstance(version, str):
            found[rel] = version
    return found


def _check_model_outputs(build_dir: Path, releases_dir: Path, raw_dir: Path | None) -> None:
    """Model outputs recording a data version (predictor cards and report, NCP search
    cards, the search report) must record the build's: a predictor trained, or a search
    run, before the drop changed must not ship with the new data."""
    current = warehouse_version(build_dir / WAREHOUSE_NAME)  # what stamped the cards
    stale: dict[str, list[str]] = {}
    for rel, version in _recorded_data_versions(build_dir).items():
        if version != current:
            stale.setdefault(version, []).append(rel)
    if stale:
        listing = "\n".join(
            f"  made from data version {version}: {', '.join(files)}"
            for version, files in sorted(stale.items())
        )
        raw = f" --raw {raw_dir}" if raw_dir is not None else ""
        refresh = f"nasmr build --job refresh{raw} --out {build_dir} --releases {releases_dir}"
        raise ReleaseError(
            f"{build_dir}: model outputs made from other data than the build's "
            f"(data version {current}):\n{listing}\n"
            f"Retrain them on this build: `{refresh}` "
            "(predictors, NCP, reports, then the release); or move "
            f"{', '.join(f'{name}/' for name in EXTRA_DIRS)} out of the build to publish its "
            "data alone."
        )


def _check_sources(build_dir: Path, raw_dir: Path) -> None:
    """Every input file recorded in the build's ``sources`` table still has its checksum, and
    the drop has no input the build lacks (a setting's file missing when it was built)."""
    recorded = _read_table(build_dir, "sources")
    known = set(recorded["path"])
    for row in recorded.itertuples(index=False):
        path = raw_dir / row.path
        if not path.is_file():
            raise ReleaseError(f"stale build {build_dir}: input {path} no longer exists")
        if sha256_file(path) != row.sha256:
            raise ReleaseError(
                f"stale build {build_dir}: input {path} changed since it was ingested"
            )
    for setting in SETTINGS:
        path = trainval_path(raw_dir, setting)
        if path.is_file() and path.relative_to(raw_dir).as_posix() not in known:
            raise ReleaseError(
                f"stale build {build_dir}: input {path} is in the drop but not in the build "
                f"(its {setting} results were not ingested)"
            )


def _write_release(
    root: Path,
    build_dir: Path,
    version: str,
    previous: Path | None,
    diff: ReleaseDiff,
    created_at: datetime | None,
) -> None:
    """Write every file of a release into the (empty) folder ``root``."""
    (root / PARQUET_DIR).mkdir()
    for path in sorted((build_dir / PARQUET_DIR).glob("*.parquet")):
        shutil.copyfile(path, root / PARQUET_DIR / path.name)
    shutil.copyfile(build_dir / WAREHOUSE_NAME, root / WAREHOUSE_NAME)
    extras = tuple(name for name in EXTRA_DIRS if (build_dir / name).is_dir())
    for name in extras:
        shutil.copytree(build_dir / name, root / name, copy_function=shutil.copyfile)
    views = _check_database(root, build_dir)
    manifest = _manifest(root, version, previous, created_at, views, extras)
    (root / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    (root / CHANGELOG).write_text(_changelog(manifest, diff, previous))
    (root / DATASHEET).write_text(_datasheet(root, manifest))
    (root / DATAPACKAGE).write_text(json.dumps(_datapackage(root, manifest), indent=2) + "\n")
    (root / CROISSANT).write_text(json.dumps(_croissant(root, manifest), indent=2) + "\n")
    _write_sums(root, _relative_files(root))
    archive = root / archive_name(version)
    write_archive(root, archive, prefix=version)  # unpacked into a releases folder, a release
    _write_sums(root, _relative_files(root))
    for path in root.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o555)
    root.chmod(0o555)


def _check_database(root: Path, build_dir: Path) -> tuple[str, ...]:
    """The DuckDB file copied into ``root`` must hold exactly the Parquet tables, row for row
    and value for value (a build's file edited after it was written is refused), and no
    file reader.

    Returns the names of its views.
    """
    parquet = {p.stem: p for p in (root / PARQUET_DIR).glob("*.parquet")}
    with duckdb.connect(str(root / WAREHOUSE_NAME), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal")
        names = sorted(name for (name,) in tables.fetchall())
        if names != sorted(parquet):
            raise ReleaseError(
                f"{WAREHOUSE_NAME} disagrees with {PARQUET_DIR}/: DuckDB tables {names}, "
                f"Parquet tables {sorted(parquet)}"
            )
        differ = []
        for name in names:
            table, path = sql_identifier(name), [parquet[name].as_posix()]
            only = [
                con.execute(f"SELECT count(*) FROM ({query})", path).fetchone()[0]  # type: ignore[index]
                for query in (
                    f"FROM {table} EXCEPT ALL FROM read_parquet(?)",
                    f"FROM read_parquet(?) EXCEPT ALL FROM {table}",
                )
            ]
            if any(only):
                differ.append(
                    f"{name}: {only[0]} row(s) only in {WAREHOUSE_NAME}, {only[1]} only in "
                    f"{PARQUET_DIR}/{name}.parquet"
                )
        views = con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
        ).fetchall()
    if differ:
        raise ReleaseError(
            f"{build_dir / WAREHOUSE_NAME} disagrees with {PARQUET_DIR}/ beside it, edited "
            f"since the build wrote them? ({'; '.join(differ)}); rebuild the warehouse: "
            f"`nasmr ingest --warehouse {build_dir / WAREHOUSE_NAME}`"
        )
    for name, sql in views:
        if any(reader in sql.lower() for reader in ("read_parquet", "read_csv", "read_json")):
            raise ReleaseError(f"{WAREHOUSE_NAME}: view {name} reads files, not self-contained")
    return tuple(name for name, _ in views)


def _code_version() -> CodeVersion:
    """The package version, plus the git commit and dirtiness when run from a checkout of nasmr
    (not from an installed copy inside some other repository)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(paths.REPO_ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
                env=env,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    top = git("rev-parse", "--show-toplevel")
    checkout = top is not None and Path(top).resolve() == paths.REPO_ROOT.resolve()
    commit = git("rev-parse", "HEAD") if checkout else None
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return CodeVersion(
        package=__version__,
        git_commit=commit or None,
        git_dirty=None if status is None else bool(status),
    )


def _predictor_metrics(root: Path) -> tuple[dict[str, str | bool | int | float | None], ...]:
    """The rows of ``predictors/report.csv``, when the build trained predictors."""
    path = root / PREDICTOR_REPORT
    if not path.is_file():
        return ()
    frame = pd.read_csv(path)
    return tuple(
        {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    )


def _manifest(
    root: Path,
    version: str,
    previous: Path | None,
    created_at: datetime | None,
    views: tuple[str, ...],
    extras: tuple[str, ...],
) -> ReleaseManifest:
    sources = _sources(root)
    report = _read_table(root, "ingest_report").dropna(subset=["setting"])
    present = _settings_present(root)
    architectures = _read_table(root, "architectures")
    unevaluated = architectures.loc[~architectures["evaluated"]].sort_values("search_index")
    tables = {
        name: TableInfo(rows=pq.read_metadata(path).num_rows, columns=columns)
        for name, columns in _table_schemas(root).items()
        for path in [root / PARQUET_DIR / f"{name}.parquet"]
    }
    when = (created_at or clock.now()).astimezone(UTC).replace(microsecond=0)
    return ReleaseManifest(
        version=version,
        previous_version=load_manifest(previous).version if previous is not None else None,
        created_at=when,
        schema_version=SCHEMA_VERSION,
        code_version=_code_version(),
        content_hash=content_hash(sources),
        sources=sources,
        settings_present=present,
        settings_missing=tuple(s for s in report["setting"] if s not in present),
        unevaluated_codes=tuple(unevaluated["code"]),
        tables=tables,
        views=views,
        flops_convention=FLOPS_CONVENTION,
        predictor_metrics=_predictor_metrics(root),
        extras=extras,
    )


def _changelog(manifest: ReleaseManifest, diff: ReleaseDiff, previous: Path | None) -> str:
    """This release's entry followed by the previous release's changelog entries."""
    since = (
        f"Changes since {manifest.previous_version} ({diff.level} release)."
        if manifest.previous_version
        else "First release: every record is new."
    )
    entry = f"## {manifest.version} ({manifest.created_at.date().isoformat()})\n\n{since}\n\n"
    entry += diff.to_markdown() + "\n"
    earlier = ""
    if previous is not None and (previous / CHANGELOG).is_file():
        earlier = (previous / CHANGELOG).read_text().partition("\n## ")[2]
        earlier = "\n## " + earlier if earlier else ""
    return f"# Changelog\n\n{entry}{earlier}"


def _write_sums(root: Path, names: Iterable[str]) -> None:
    """Write ``SHA256SUMS`` (sha256sum format) for ``names``, relative to ``root``."""
    lines = [f"{sha256_file(root / n)}  {n}\n" for n in names if n != SUMS]
    (root / SUMS).write_text("".join(lines))


def write_archive(source: Path, target: Path, prefix: str) -> None:
    """Pack every file under ``source`` into a gzip tarball, byte-identical for identical files.

    Entries are sorted, stored under ``prefix/``, with mtime 0, uid/gid 0, no
    owner names and mode 0644; the gzip header carries no name and no time.
    """
    names = [n for n in _relative_files(source) if (source / n) != target]
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = (source / name).stat().st_size
            info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
            info.uname = info.gname = ""
            with (source / name).open("rb") as handle:
                tar.addfile(info, handle)


# -- metadata documents --------------------------------------------------------------------

_FRICTIONLESS_TYPES = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_floating, "number"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
    (pa.types.is_timestamp, "datetime"),
    (pa.types.is_date, "date"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "array"),
)


def _field_type(arrow_type: pa.DataType) -> str:
    """The Table Schema type of an Arrow type ('any' when there is no closer one)."""
    return next((name for test, name in _FRICTIONLESS_TYPES if test(arrow_type)), "any")


def _timestamp(manifest: ReleaseManifest) -> str:
    """The release's creation time in ISO 8601 with ``Z`` (the metadata documents' spelling)."""
    return manifest.created_at.isoformat().replace("+00:00", "Z")


def _resource_name(path: str) -> str:
    """A Data Package resource name (lowercase, ``[-a-z0-9._/]``) for a release file."""
    return "".join(c if c.isalnum() or c in "-._/" else "-" for c in path.lower())


def _datapackage(root: Path, manifest: ReleaseManifest) -> dict[str, Any]:
    """A Frictionless Data Package: one tabular resource per Parquet table, files for the rest.

    Resources say what they are both ways: ``profile`` for version 1 readers
    (datapackage-py, R's frictionless), ``type`` for version 2 ones. Tables carry no
    ``bytes``: frictionless reads them through pyarrow and reports any declared size as
    wrong (``SHA256SUMS`` and ``hash`` keep the integrity check).
    """
    resources: list[dict[str, Any]] = []
    for name in sorted(manifest.tables):
        rel = f"{PARQUET_DIR}/{name}.parquet"
        schema = pq.read_schema(root / rel)
        resources.append(
            {
                "name": name,
                "type": "table",
                "profile": "tabular-data-resource",
                "path": rel,
                "format": "parquet",
                "mediatype": MEDIA_TYPES["parquet"],
                "description": TABLE_DOCS.get(name, ""),
                "hash": f"sha256:{sha256_file(root / rel)}",
                "schema": {
                    "fields": [
                        {
                            "name": f.name,
                            "type": _field_type(f.type),
                            "description": COLUMN_DOCS.get(name, {}).get(f.name, ""),
                        }
                        for f in schema
                    ]
                }
                | ({"primaryKey": PRIMARY_KEYS[name]} if name in PRIMARY_KEYS else {})
                | ({"foreignKeys": FOREIGN_KEYS[name]} if name in FOREIGN_KEYS else {}),
            }
        )
    others = [WAREHOUSE_NAME] + [
        n for n in _relative_files(root) if n.split("/")[0] in manifest.extras
    ]
    for rel in others:
        suffix = Path(rel).suffix.lstrip(".")
        described = {"mediatype": MEDIA_TYPES[suffix]} if suffix in MEDIA_TYPES else {}
        resources.append(  # "file": frictionless checks its bytes, and reads no JSON as a
            {  # descriptor of its own (an NCP result's "steps" as a pipeline's)
                "name": _resource_name(rel),
                "type": "file",
                "path": rel,
                **described,
                "bytes": (root / rel).stat().st_size,
                "hash": f"sha256:{sha256_file(root / rel)}",
            }
        )
    return {
        "profile": "data-package",
        "name": "nasmr",
        "title": TITLE,
        "description": DESCRIPTION,
        "version": manifest.version,
        "created": _timestamp(manifest),
        "homepage": ORIGINAL_REPOSITORY,
        "licenses": [{"name": LICENCE, "path": LICENCE_URL, "title": LICENCE_TERMS}],
        "sources": [
            {"title": "NAS-Bench-MR (Ding et al., ICLR 2022)", "path": ORIGINAL_REPOSITORY}
        ],
        "resources": resources,
    }


CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
"""The standard JSON-LD context of Croissant 1.0 (the one ``mlcroissant`` expects)."""
CROISSANT_1_0 = "http://mlcommons.org/croissant/1.0"
CROISSANT_PARQUET = "application/x-parquet"
"""The Parquet media type Croissant readers recognise (the Data Package gives IANA's)."""
DUCKDB_FORMAT = "https://duckdb.org/docs/stable/internals/storage"
"""DuckDB's file format has no media type; Croissant then names it by a URL."""
_CROISSANT_TYPES = {
    "boolean": "sc:Boolean",
    "integer": "sc:Integer",
    "number": "sc:Float",
    "string": "sc:Text",
    "datetime": "sc:DateTime",
    "date": "sc:Date",
}
"""Croissant 1.0 data type of each Table Schema type (1.0 has none for arrays)."""


def _croissant_type(table: str, field: pa.Field) -> str:
    """The Croissant data type of a Parquet column; a type 1.0 cannot say is refused."""
    kind = _field_type(field.type)
    if kind not in _CROISSANT_TYPES:
        raise ReleaseError(
            f"column {table}.{field.name}: Arrow type {field.type} has no Croissant 1.0 dataType"
        )
    return _CROISSANT_TYPES[kind]


def _file_object(root: Path, rel: str, encoding: str) -> dict[str, Any]:
    """A Croissant ``cr:FileObject`` for a release file: path, size, format and sha256."""
    return {
        "@type": "cr:FileObject",
        "@id": rel,
        "name": rel,
        "contentUrl": rel,
        "contentSize": f"{(root / rel).stat().st_size} B",
        "encodingFormat": encoding,
        "sha256": sha256_file(root / rel),
    }


def _record_set(root: Path, table: str) -> dict[str, Any]:
    """A Croissant ``cr:RecordSet`` for a table: a field per column, read from its Parquet file."""
    rel = f"{PARQUET_DIR}/{table}.parquet"
    fields = [
        {
            "@type": "cr:Field",
            "@id": f"{table}/{field.name}",
            "name": field.name,
            "description": COLUMN_DOCS.get(table, {}).get(field.name, ""),
            "dataType": _croissant_type(table, field),
            "source": {"fileObject": {"@id": rel}, "extract": {"column": field.name}},
        }
        for field in pq.read_schema(root / rel)
    ]
    keys = [{"@id": f"{table}/{column}"} for column in PRIMARY_KEYS.get(table, [])]
    return {
        "@type": "cr:RecordSet",
        "@id": table,
        "name": table,
        "description": TABLE_DOCS.get(table, ""),
        "field": fields,
    } | ({"key": keys} if keys else {})


def _croissant(root: Path, manifest: ReleaseManifest) -> dict[str, Any]:
    """Croissant 1.0 metadata: the Parquet tables and DuckDB file, one record set per table.

    The archive is not listed: it holds this file, so this file cannot hold its checksum.
    """
    tables = sorted(manifest.tables)
    files = [_file_object(root, f"{PARQUET_DIR}/{t}.parquet", CROISSANT_PARQUET) for t in tables]
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_1_0,
        "name": TITLE,
        "description": DESCRIPTION,
        "version": manifest.version,
        "datePublished": _timestamp(manifest),
        "url": ORIGINAL_REPOSITORY,
        "license": [
            {
                "@type": "sc:CreativeWork",
                "name": LICENCE,
                "url": LICENCE_URL,
                "description": LICENCE_TERMS,
            }
        ],
        "creator": {
            "@type": "sc:Organization",
            "name": "the nasmr project",
            "description": "Made this release from the NAS-Bench-MR data of Ding et al.; "
            "it is not an official release of the original authors.",
        },
        "citeAs": f"{BIBTEX}\n\n{_release_bibtex(manifest, sha256_file(root / MANIFEST))}",
        "distribution": [*files, _file_object(root, WAREHOUSE_NAME, DUCKDB_FORMAT)],
        "recordSet": [_record_set(root, t) for t in tables],
    }


def _markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a GitHub markdown table (no index)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _release_bibtex(manifest: ReleaseManifest, manifest_sha256: str) -> str:
    """A BibTeX entry for this release, so a paper can name the exact data it used."""
    commit = manifest.code_version.git_commit or "unknown"
    return f"""@misc{{nasmr_release_{manifest.version.replace(".", "_")},
  author = {{{{The nasmr project}}}},
  title = {{{{NAS-Bench-MR, curated: release {manifest.version}}}}},
  year = {{{manifest.created_at.year}}},
  version = {{{manifest.version}}},
  howpublished = {{nasmr {manifest.code_version.package} (git commit {commit}), from the
                  NAS-Bench-MR data of Ding et al. (ICLR 2022), {ORIGINAL_REPOSITORY}}},
  note = {{{MANIFEST} sha256 {manifest_sha256};
          input content hash {manifest.content_hash}}}
}}"""


def _datasheet(root: Path, manifest: ReleaseManifest) -> str:
    """The release's README.md: a datasheet (Gebru et al.'s seven sections) from its tables."""
    report = _read_table(root, "ingest_report").dropna(subset=["setting"])
    report["task"] = [SETTINGS[s].task.value for s in report["setting"]]
    report["data"] = [SETTINGS[s].description for s in report["setting"]]
    report["metrics"] = [", ".join(SETTINGS[s].metrics) for s in report["setting"]]
    columns = ["setting", "task", "data", "metrics", "status", "read", "valid", "quarantined"]
    settings = report[columns]
    complexity = _read_table(root, COMPLEXITY)
    compared = complexity["match"].notna()
    matched = int(complexity.loc[compared, "match"].astype(bool).sum())
    methods = ", ".join(sorted(complexity["method"].dropna().unique())) or "none"
    quarantined = manifest.tables["quarantine"].rows
    tables = pd.DataFrame(
        {
            "table": list(manifest.tables),
            "rows": [t.rows for t in manifest.tables.values()],
            "content": [TABLE_DOCS.get(name, "") for name in manifest.tables],
        }
    )
    missing = "\n".join(
        f"- `{row.setting}` has no results: its file `{row.source_file}` is "
        + ("not in the raw drop." if row.status == "missing" else f"unreadable ({row.reason}).")
        for row in report.itertuples(index=False)
        if row.status != "ok"
    )
    unevaluated = "\n".join(f"  - `{code}`" for code in manifest.unevaluated_codes)
    nb201 = _read_table(root, "nb201_results")
    nb201_costs = (
        "- NAS-Bench-201 `Flops` and `Params` are the costs of the cell on NAS-Bench-201's "
        "CIFAR-100 network, not on the ImageNet16-120 network that `Acc` measures; "
        f"{int((~nb201['cost_matches_cell']).sum())} cells carry another cell's costs "
        "(`cost_matches_cell` false). Both are as published.\n"
        if len(nb201)
        else ""
    )
    predictors = (
        _markdown_table(pd.DataFrame(list(manifest.predictor_metrics)).round(3))
        if manifest.predictor_metrics
        else "No predictors were trained for this build."
    )
    extras = ", ".join(f"`{name}/`" for name in manifest.extras) or "none"
    return f"""# NAS-Bench-MR, curated: release {manifest.version}

Created {manifest.created_at.isoformat()} by nasmr {manifest.code_version.package}
(git commit {manifest.code_version.git_commit or "unknown"}). Previous release:
{manifest.previous_version or "none"}. Input content hash: `{manifest.content_hash}`.

Check this folder with `sha256sum -c {SUMS}` or `nasmr release verify <folder>`.
Query it with `nasmr.api.Benchmark.open("<folder or version>")`, with DuckDB
(`{WAREHOUSE_NAME}`, read-only; storage format {STORAGE_FORMAT}, so DuckDB 1.0 or later)
or with any Parquet reader (`{PARQUET_DIR}/`).

## Motivation

NAS-Bench-MR (Ding et al., ICLR 2022) evaluates one set of multi-resolution
networks on several vision tasks so that neural architecture search can be
studied across tasks. Its authors published the results as Python pickles
without schema, checksums or documentation. This release turns that drop into
validated, typed and versioned tables with exact FLOPs and parameter counts, so
that results are reproducible and citable by version. It was made by the nasmr
project; it is not an official release of the original authors.

## Composition

Each instance is one architecture of the NAS-Bench-MR space (a stem, four
multi-resolution stages and a head; 27 integers, see `architectures`), with its
metric values per setting; plus the {manifest.tables["nb201_results"].rows} NAS-Bench-201
cells shipped in the same drop.

{_markdown_table(settings)}

Tables (Parquet in `{PARQUET_DIR}/`, the same tables in `{WAREHOUSE_NAME}` with the
views {", ".join(f"`{v}`" for v in manifest.views)}):

{_markdown_table(tables)}

Known gaps:

{missing or "- none: every setting of the design has results."}
- {len(manifest.unevaluated_codes)} search-list architectures have no result in any setting:
{unevaluated}
- {quarantined} records failed validation and are listed in `quarantine`, not in the results.
{nb201_costs}
## Collection process

The original authors trained every architecture with their forks of OpenMMLab's
mmclassification and mmsegmentation (and OpenPCDet for 3D detection) and
published the final metrics; the training logs are not part of the drop. This
release was ingested from these files of the drop (paths relative to it):

{_markdown_table(pd.DataFrame([s.model_dump() for s in manifest.sources]))}

## Preprocessing, cleaning, labelling

Every record was validated (types, finite values, ranges, and agreement of the
embedding with the network setting); rejected records go to `quarantine` with
the field and the reason. Architectures are keyed by their 31-int code string.
Results are stored long (`code, setting, metric, value`). FLOPs and parameters
were recomputed ({methods}) and compared with the published values:
{matched} of {int(compared.sum())} architectures match exactly. Convention:
{manifest.flops_convention}

## Uses

Intended: benchmarking architecture search and performance predictors on
NAS-Bench-MR, transfer across its tasks, and cost-aware search against the
exact FLOPs. Not suited to: latency or energy claims (none were measured),
comparisons with FLOPs counted under another convention, or 3D-detection
claims (no results). Predictor test metrics in this release (over the split seeds, to
three decimals; unrounded in `{MANIFEST}`'s `predictor_metrics`):

{predictors}

## Distribution

This folder and its archive `{archive_name(manifest.version)}` hold: `{PARQUET_DIR}/`,
`{WAREHOUSE_NAME}`, `{MANIFEST}`, `{DATAPACKAGE}` (Frictionless Data Package),
`{CROISSANT}` (Croissant 1.0), `{CHANGELOG}`, this datasheet and `{SUMS}`; optional
build outputs: {extras}.

Licence: the original NAS-Bench-MR data and code are distributed by their authors
at {ORIGINAL_REPOSITORY}, whose README states: {LICENCE_TERMS}. The
same terms govern this derived release. The licence ({LICENCE}, {LICENCE_URL}) asks
redistributions to reproduce its notice:

```
{LICENCE_NOTICE}
```

If you use this data, cite the original benchmark:

```bibtex
{BIBTEX}
```

and this release, identified by its version and the sha256 of its `{MANIFEST}`, which
records every input file's sha256 and the nasmr code that made it (the archive's own
sha256, which a file inside the archive cannot hold, is its line in `{SUMS}`):

```bibtex
{_release_bibtex(manifest, sha256_file(root / MANIFEST))}
```

## Maintenance

Releases are immutable and semantically versioned: a schema change is a major
release, added or removed records a minor one, corrected values or changed model
outputs a patch. Corrections are published as new versions; `{CHANGELOG}` lists what
changed per setting, and which model-output files, since each previous release.
"""
