"""What changed between two versions of the data, and the semantic version that change needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nasmr.checksums import sha256_file
from nasmr.release.store import (
    COMPLEXITY,
    MANIFEST,
    PRIMARY_KEYS,
    RECORD_KEY,
    ReleaseError,
    load_manifest,
    model_files,
    require_verified,
    resolve_release,
    table_schemas,
)
from nasmr.table_docs import TABLE_DOCS
from nasmr.warehouse import PARQUET_DIR, WAREHOUSE_NAME, stored_descriptions
from schemas.release import SCHEMA_VERSION, Version
from schemas.settings import NB201, SETTINGS

MODEL_CHANGES_SHOWN = 20
"""Model-output changes a changelog lists by name; the rest are counted."""

SETTING_ORDER = {name: i for i, name in enumerate([*SETTINGS, COMPLEXITY])}
"""Where each setting's records come in a diff: the benchmark's order, then complexity."""

TIME_COLUMNS: dict[str, tuple[str, ...]] = {"sources": ("ingested_at",)}
"""Columns that say when a build ran, not what it holds: a diff does not compare them."""


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
    """What changed between two versions of the data: schema, records, tables, model outputs
    and descriptions.

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
    descriptions: tuple[str, ...] = ()
    """``table`` or ``table.column`` for each description (DuckDB comment) that changed."""

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
        """No schema change, no record or row added, removed or changed, no model output or
        description changed."""
        return (
            not self.schema_changes
            and not self.model_changes
            and not self.descriptions
            and not any(c.added or c.removed or c.changed for c in (*self.settings, *self.tables))
        )

    def to_markdown(self) -> str:
        """The changes as markdown: the schema changes, one table row per setting, the other
        tables' changes, the descriptions, then the model outputs."""
        lines = ["Schema changes:" if self.schema_changes else "Schema: unchanged."]
        lines += [f"- {change}" for change in self.schema_changes]
        lines += [
            "",
            "Counted in values, one per architecture and metric (complexity: the published and "
            "recomputed multiply-accumulates and parameters of every search-list architecture, "
            "the published ones empty for the unevaluated):",
        ]
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
        if self.descriptions:
            lines += ["", "Descriptions changed: " + ", ".join(self.descriptions) + "."]
        shown = self.model_changes[:MODEL_CHANGES_SHOWN]
        lines += ["", f"Model outputs: {len(self.model_changes) or 'no'} file(s) differ."]
        lines += [f"- {change}" for change in shown]
        if len(self.model_changes) > len(shown):
            lines.append(f"- ... and {len(self.model_changes) - len(shown)} more")
        return "\n".join(lines)


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
    before = table_schemas(old) if old is not None else {}
    after = table_schemas(new)
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


def _record_flags(
    before: dict[str, pd.DataFrame], old: Path | None, after: dict[str, pd.DataFrame], new: Path
) -> pd.DataFrame:
    """Every record of either side: its key, ``value_old``, ``value_new`` and whether it was
    ``added``, ``removed`` or ``changed``."""
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
    return merged[[*RECORD_KEY, "value_old", "value_new"]].assign(
        added=merged["_merge"] == "right_only",
        removed=merged["_merge"] == "left_only",
        changed=(merged["_merge"] == "both") & ~same,
    )


def _diff(old: Path | None, new: Path) -> ReleaseDiff:
    """Schema, record, table and model-output changes from ``old`` (None: nothing) to ``new``."""
    schema = _schema_changes(old, new)
    before, after = _tables(old), _tables(new)
    flags = _record_flags(before, old, after, new)[["setting", "added", "removed", "changed"]]
    counts = flags.groupby("setting").sum()
    settings = tuple(
        SettingChanges(str(name), int(row.added), int(row.removed), int(row.changed))
        for name, row in sorted(counts.iterrows(), key=lambda item: SETTING_ORDER.get(item[0], 99))
    )
    tables = _table_changes(before, after) if old is not None else ()
    descriptions = _description_changes(old, new) if old is not None else ()
    return ReleaseDiff(tuple(schema), settings, _model_changes(old, new), tables, descriptions)


def _description_changes(old: Path, new: Path) -> tuple[str, ...]:
    """Tables and columns whose description (the warehouse's comment) differs, added or gone."""
    before = stored_descriptions(old / WAREHOUSE_NAME)
    after = stored_descriptions(new / WAREHOUSE_NAME)
    return tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))


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


def _model_digests(root: Path | None) -> dict[str, str]:
    """Relative path -> sha256 of every file of the model outputs (``EXTRA_DIRS``) in ``root``."""
    if root is None:
        return {}
    return {rel: sha256_file(root / rel) for rel in model_files(root)}


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
    return _diff(*_verified_pair(old, new, releases_dir))


def _verified_pair(
    old: str | Path, new: str | Path, releases_dir: Path | None
) -> tuple[Path, Path]:
    """The folders of releases ``old`` and ``new``, once each matches its checksums."""
    folders = [resolve_release(ref, releases_dir) for ref in (old, new)]
    for folder in folders:
        require_verified(folder, "a diff with it would report its damage as changes")
    return folders[0], folders[1]


def record_changes(
    old: str | Path, new: str | Path, releases_dir: Path | None = None
) -> pd.DataFrame:
    """Each record value added, removed or changed from release ``old`` to release ``new``
    (what :func:`diff_releases` counts per setting): ``change, setting, code, metric, old,
    new``, in setting order, then by code and metric. Both releases must verify."""
    before, after = _verified_pair(old, new, releases_dir)
    flags = _record_flags(_tables(before), before, _tables(after), after)
    kinds = ["added", "removed", "changed"]
    flags = flags[flags[kinds].any(axis=1)]
    found = pd.DataFrame(
        {
            "change": flags[kinds].idxmax(axis=1),
            "setting": flags["setting"],
            "code": flags["code"],
            "metric": flags["metric"],
            "old": flags["value_old"],
            "new": flags["value_new"],
            "rank": flags["setting"].map(lambda s: SETTING_ORDER.get(s, 99)),
        }
    )
    found = found.sort_values(["rank", "setting", "code", "metric"], kind="stable")
    return found.drop(columns="rank").reset_index(drop=True)


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
