"""Regenerate benchmark results from raw training logs: parse, derive, reconcile.

A log drop is ``<setting>/<arch code>/<run>.log.json`` (OpenMMLab JSON lines, see
:mod:`schemas.logs`). :func:`parse_log_drop` turns it into a long ``curves`` table and a
``quarantine`` table; nothing in one run stops the others from landing.

Rules, applied in this order:

* **Layout**: a file outside ``<setting>/<code>/<run>.log.json``, of an unknown setting
  or under a folder that is not a canonical architecture code is quarantined whole, as
  is a file that cannot be read (no permission, deleted since it was listed); other
  ``*.json`` files (mmengine's ``<time>.json``) and ``*.log.json`` entries that are no
  regular file are named as not read; a folder below the drop that cannot be listed is
  named (``<folder>/``), and a drop whose ``logs/`` cannot be listed raises. Files and
  folders are named relative to the drop (``logs/<setting>/...`` where it has ``logs/``).
* **Lines**: malformed or truncated JSON, invalid UTF-8, a JSON value that is not an
  object, an unknown ``mode``, a number key (loss, lr, a metric) holding no JSON number
  (``true``, ``"55.5"``), a NaN/inf number (a metric's only on an evaluation line), an
  ``epoch``, ``iter`` or ``step`` that is not a 64-bit JSON integer (``2.6``, ``"2"``)
  at or above its bound in :class:`~schemas.logs.LogLine` (epoch 1, iter and step 0), a
  training/evaluation line without an ``epoch``, a training line without ``loss``, an
  evaluation line without one of the setting's metrics, or a metric outside [0, 100] on
  an evaluation line quarantines that line (file, line number, reason); the rest of the
  run is kept.
* **Resumed runs**: mmcv starts a new log file on each launch of a run, resumed ones
  included. A file whose first training line is past epoch 1 continues the file before
  it (its setting and architecture, name order, files without a good training or
  evaluation line skipped), even across a gap of lost epochs; a file that logged no
  training line (a log interval longer than an epoch) continues it when its first
  evaluation comes after that file's last one. The files are one run, named by its first
  file (``runs.resumes`` names the file a file continues). What a later file of the run
  logs again supersedes the earlier files' lines: training lines from its first training
  epoch on, evaluations from its first line on (mmcv may evaluate the checkpoint it
  resumes from). Superseded lines are quarantined as such (file, no line number, their
  count). Runs whose ``epoch`` restarts at 1 on resume (mmcv's ``IterBasedRunner``) or
  whose training lines log ``step`` instead are not joined: their launches stay separate
  runs, as the rules below treat them.
* **Runs**: an empty file is quarantined as such; a run without an evaluation line, or
  whose last good evaluation is at an epoch below the expected one, stopped early and is
  quarantined whole (line: its last line); so is a run evaluated past the expected epoch
  (a mistyped epoch, or another schedule). The expected epoch is ``max_epochs``
  (``total_epochs`` in older mmcv configs) from the config (meta line) of the run's
  latest launch that declares one, otherwise the usual last epoch of the setting: the
  last evaluated epoch of most architectures' latest runs, the furthest of equally common
  ones (so a schedule must evaluate at its last epoch, as OpenMMLab configs do; one
  mistyped epoch does not make every other run look stopped early, nor do a few crashed
  reruns). A resumed run's earlier files are quarantined with it, naming its last file.
* **Duplicates**: of several complete runs of one architecture in one setting, the run
  whose name sorts last is kept (mmcv names runs by start time, so: the latest); the
  others are quarantined (line empty: the whole run).

Speed: the files are listed while DuckDB starts up. DuckDB then pulls them through a
record batch reader, about 2 MB of files per batch read into one buffer in which numpy
finds the newlines, so each line becomes a row of an Arrow string column (file id and
line number alongside) without per-line Python. One query parses the lines with
``json_transform`` and annotates them, its threads parsing some batches while the next
is read, into an Arrow table that the aggregation, run and curve queries scan without
a copy. Python looks at single lines only where it must: lines that do not open with
``{`` (blank? an object after spaces?), files that are not valid UTF-8 and lines DuckDB
could not parse (a UDF words the reason as Python's JSON decoder does). The curve query
returns lines in file and line order, so numpy only checks the order (and sorts only a
drop with a file logged out of order) before spreading them to the long table.

Derived results (:func:`derive_results`): per run and metric, the *final* value is
the last evaluation (highest epoch, then iteration) and the *best* value the highest
evaluation (earliest epoch on ties). The benchmark's long ``results`` use the final
value, as the published records do for a fixed schedule.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from nasmr import paths
from nasmr.build_lock import remove_unfinished
from nasmr.ingest import SettingLoad
from nasmr.rawdrop import TRAINVAL
from nasmr.space import Arch, ArchError
from nasmr.warehouse import sql_identifier, write_parquet
from schemas.logs import (
    DIGITS_SETTINGS,
    LOG_SUFFIX,
    METRIC_KEYS,
    METRICS,
    LogLine,
    line_columns,
    log_setting,
)
from schemas.settings import SETTINGS, half_unit, published_decimals

BATCH_BYTES = 2 * 1024 * 1024
"""Log bytes read into one buffer, one Arrow record batch: DuckDB's threads parse batches
in parallel while the next is read, and only a few are in memory at once."""

CURVE_SERIES: tuple[str, ...] = ("loss", "lr", *METRICS)
"""The ``metric`` values of the curves table, in output order."""

_UNREAD = ("env_info", "seed", "exp_name", "memory", "data_time", "time")
_COLUMNS = {k: t for k, t in line_columns().items() if k not in _UNREAD}
_NUMERIC = [k for k, t in _COLUMNS.items() if t == "DOUBLE"]
_INTEGERS = {
    k: next(m.ge for m in LogLine.model_fields[k].metadata if hasattr(m, "ge"))
    for k, t in _COLUMNS.items()
    if t == "BIGINT"
}
"""The integer keys read (epoch, iter, step) and their lower bound in :class:`LogLine`.

They are read as JSON and checked before the cast: DuckDB would round ``2.6`` and accept
``"2"`` on its way into a BIGINT."""

_AUTO_SCALED = tuple(dict.fromkeys(mk.metric for mk in METRIC_KEYS if mk.scale == "auto"))
"""The metrics whose scale a run's values decide (mmsegmentation's): all of a run's values
<= 1 are fractions, scaled to percentages together."""

_JSON_NUMBERS = "('DOUBLE', 'BIGINT', 'UBIGINT', 'NULL')"
"""What ``json_type`` calls a JSON number, or null (an SQL list)."""

CURVES_COLUMNS = ("arch", "setting", "run", "epoch", "iter", "metric", "value")

RUNS_DTYPES: dict[str, str] = {
    "file": "str",
    "setting": "str",
    "arch": "str",
    "run": "str",
    "resumes": "str",
    "lines": "int64",
    "bad_lines": "int64",
    "evaluations": "int64",
    "last_epoch": "Int64",
    "expected_epochs": "Int64",
    "status": "str",
}
"""The ``runs`` table's columns and dtypes, whatever the drop holds: an all-null column
(``resumes`` where no file resumes another) or an empty table keeps its Parquet type."""

QUARANTINE_DTYPES: dict[str, str] = {"file": "str", "line": "Int64", "reason": "str"}
"""The ``quarantine`` table's columns and dtypes, as :data:`RUNS_DTYPES` for ``runs``."""


@dataclass(frozen=True, eq=False)
class LogParse:
    """A parsed log drop: curves of accepted runs, quarantined lines/runs, one row per run file."""

    curves: pd.DataFrame
    quarantine: pd.DataFrame
    runs: pd.DataFrame
    lines: int

    def summary(self) -> str:
        """A few lines for humans: files, lines, accepted runs, quarantine by reason kind."""
        starts = self.runs[self.runs["resumes"].isna()]
        accepted = int((starts["status"] == "accepted").sum())
        kinds = self.quarantine["reason"].str.split(":", n=1).str[0]
        out = [
            f"{len(self.runs)} run files, {self.lines} lines, {accepted} runs accepted, "
            f"{len(self.curves)} curve points, {len(self.quarantine)} quarantined"
        ]
        out += [f"  {n:6d}  {kind}" for kind, n in kinds.value_counts().sort_index().items()]
        return "\n".join(out)


@dataclass(frozen=True, slots=True)
class _LogFile:
    fid: int
    path: Path
    name: str
    setting: str
    arch: str
    run: str
    need: int
    """Bit ``i`` set when the setting requires ``METRICS[i]`` on evaluation lines."""


class EmptyLogDrop(ValueError):
    """A log folder holds no log file at all: most likely the wrong folder was named."""


def parse_log_drop(log_dir: Path) -> LogParse:
    """Parse every ``<setting>/<code>/<run>.log.json`` under ``log_dir/logs`` when that folder
    exists (logs beside it are quarantined as outside the layout), else under ``log_dir``.

    Files are named relative to ``log_dir`` (``logs/digits-cls/<code>/<run>.log.json``),
    so a name never stands for two files. A folder without any log file raises
    :class:`EmptyLogDrop`, so that no caller replaces earlier tables with empty ones."""
    root = Path(log_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: log folder not found")
    with ThreadPoolExecutor(max_workers=1) as pool:
        found = pool.submit(_discover, root)  # the files are listed while DuckDB starts up
        con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # it prints to stdout, into piped output
    try:
        files, layout = found.result()
        if not files and not layout:
            raise EmptyLogDrop(
                f"no log file under {root} (expected <setting>/<code>/<run>.log.json)"
            )
        con.register("files", _files_table(files))
        unreadable: dict[int, str] = {}
        con.register("lines", _read(con, files, unreadable))
        con.register(
            "unreadable",
            pa.table(
                {
                    "fid": pa.array(list(unreadable), pa.int64()),
                    "reason": list(unreadable.values()),
                },
                schema=pa.schema([("fid", pa.int64()), ("reason", pa.string())]),
            ),
        )
        con.execute(f"CREATE TEMP TABLE agg AS {_AGGREGATE_SQL}")
        con.execute(f"CREATE TEMP TABLE chains AS {_CHAINS_SQL}")
        con.execute(f"CREATE TEMP TABLE cut AS {_CUT_SQL}")
        con.execute(f"CREATE TEMP TABLE runs AS {_RUNS_SQL}")
        runs = _typed(con.sql(_RUNS_OUT_SQL).df(), RUNS_DTYPES)
        quarantine = _quarantine(con, layout)
        curves = _curves(con, files)
    finally:
        con.close()
    return LogParse(curves=curves, quarantine=quarantine, runs=runs, lines=int(runs["lines"].sum()))


# -- discovery ---------------------------------------------------------------------


def _discover(drop: Path) -> tuple[list[_LogFile], list[tuple[str, str]]]:
    """Log files in layout (sorted by path) and ``(file, reason)`` for those out of it, all
    named relative to ``drop``: files of ``drop/logs`` (when the drop has that folder) with
    that prefix, so that a log beside it is not named as one inside."""
    files: list[_LogFile] = []
    problems: list[tuple[str, str]] = []  # (file or folder/, reason)
    root, prefix = drop / "logs", "logs/"
    if root.is_dir():
        beside, unlisted, _ = _log_paths(drop, skip="logs")
        problems += [
            (folder, f"unreadable folder outside the drop's logs/ folder: {reason}")
            for folder, reason in unlisted
        ]
        problems += [("/".join(parts), "outside the drop's logs/ folder") for parts in beside]
    else:
        root, prefix = drop, ""
    found, unlisted, unread = _log_paths(root)
    problems += [(prefix + folder, f"unreadable folder: {reason}") for folder, reason in unlisted]
    problems += [(prefix + file, reason) for file, reason in unread]
    for parts in found:
        name = prefix + "/".join(parts)
        if len(parts) != 3:
            problems.append((name, f"not in the <setting>/<arch code>/<run>{LOG_SUFFIX} layout"))
            continue
        setting, code, filename = parts
        try:
            metrics = log_setting(setting).metrics
        except KeyError as err:
            problems.append((name, f"folder is not a known setting: {err.args[0]}"))
            continue
        try:
            Arch.from_code(code)
        except ArchError as err:
            problems.append((name, f"folder is not an architecture code: {err}"))
            continue
        need = sum(1 << i for i, m in enumerate(METRICS) if m in metrics)
        run = filename[: -len(LOG_SUFFIX)]
        files.append(_LogFile(len(files), root.joinpath(*parts), name, setting, code, run, need))
    return files, problems


def _log_paths(
    root: Path, skip: str | None = None
) -> tuple[list[tuple[str, ...]], list[tuple[str, str]], list[tuple[str, str]]]:
    """The parts below ``root`` of every ``*.log.json`` file, in path order (not entering
    ``root``'s folder ``skip``); ``(folder/, OS reason)`` for the folders below ``root``
    that could not be listed (``root`` itself raises); and ``(file, reason)`` for the JSON
    files that are not read: other ``*.json`` files (mmengine names its logs
    ``<time>.json``) and ``*.log.json`` entries that are no regular file (a broken link).

    As with ``Path.rglob``, folders behind symlinks are not entered; ``os.scandir`` does it
    in a quarter of the time.
    """
    found: list[tuple[str, ...]] = []
    unlisted: list[tuple[str, str]] = []
    unread: list[tuple[str, str]] = []
    folders: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while folders:
        folder, parts = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not parts and entry.name == skip:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, (*parts, entry.name)))
                    elif entry.name.endswith(LOG_SUFFIX) and entry.is_file():
                        found.append((*parts, entry.name))
                    elif entry.name.endswith(".json"):  # LOG_SUFFIX ends so too
                        named = entry.name.endswith(LOG_SUFFIX)
                        reason = _NOT_A_REGULAR_FILE if named else _NOT_A_LOG_NAME
                        unread.append(("/".join((*parts, entry.name)), reason))
        except OSError as err:
            if not parts:
                raise  # the root itself: nothing to parse, and the error names it
            unlisted.append(("/".join(parts) + "/", _os_reason(err)))
    return sorted(found), sorted(unlisted), sorted(unread)


_NOT_A_REGULAR_FILE = "not a regular file (a broken link?): not read"
_NOT_A_LOG_NAME = (
    f"not named <run>{LOG_SUFFIX}: not read (mmengine's <time>.json log is read once renamed "
    f"<time>{LOG_SUFFIX})"
)


def _os_reason(err: OSError) -> str:
    """An OS error without the path it names (quarantine rows name the file themselves)."""
    return err.strerror or type(err).__name__


def _files_table(files: Sequence[_LogFile]) -> pa.Table:
    """One row per log file: its names."""
    return pa.table(
        {
            "fid": pa.array([f.fid for f in files], pa.int64()),
            "file": pa.array([f.name for f in files], pa.string()),
            "setting": pa.array([f.setting for f in files], pa.string()),
            "arch": pa.array([f.arch for f in files], pa.string()),
            "run": pa.array([f.run for f in files], pa.string()),
        }
    )


# -- reading -----------------------------------------------------------------------


_RAW_SCHEMA = pa.schema(
    [
        ("fid", pa.int64()),
        ("need", pa.int64()),
        ("line", pa.int64()),
        ("pre", pa.string()),
        ("cut", pa.bool_()),
        ("brace", pa.bool_()),
        ("text", pa.large_string()),
    ]
)
"""A line as DuckDB gets it: file, metrics needed, line number, why it is unreadable, whether
it is the cut-short last line of a file without a final newline, whether it opens with ``{``
(after spaces), and its text (newline included)."""


def _read(
    con: duckdb.DuckDBPyConnection, files: Sequence[_LogFile], unreadable: dict[int, str]
) -> pa.Table:
    """The annotated lines of ``files`` (see :func:`_annotate_sql`), as an Arrow table; a file
    that cannot be read (gone since it was listed, no permission) is put in ``unreadable``
    (file id -> reason) and read as empty.

    DuckDB pulls the files batch by batch from a record batch reader, so its threads
    parse some batches while another is read. Arrow output costs it less than a table
    of its own, and it scans Arrow again without a copy.
    """
    failed: list[Exception] = []

    def batches() -> Iterator[pa.RecordBatch]:
        """The lines of ``files``, one record batch per group of files."""
        try:
            yield from (_load(batch, unreadable) for batch in _batches(files))
        except Exception as err:  # raised again as itself, not as DuckDB's wrapping of it
            failed.append(err)
            raise

    con.create_function("json_problem", _json_problem, ["VARCHAR", "BOOLEAN"], "VARCHAR")
    con.register("raw", pa.RecordBatchReader.from_batches(_RAW_SCHEMA, batches()))
    try:
        return con.sql(_ANNOTATED_SQL).to_arrow_table()
    except duckdb.Error:
        if failed:
            raise failed[0] from None
        raise
    finally:
        con.unregister("raw")


def _batches(files: Sequence[_LogFile]) -> Iterator[list[tuple[_LogFile, int]]]:
    """The files with their sizes, in groups of about :data:`BATCH_BYTES`."""
    batch: list[tuple[_LogFile, int]] = []
    size = 0
    for f in files:
        try:
            batch.append((f, f.path.stat().st_size))
        except OSError:
            batch.append((f, 0))  # gone or unreadable: _load finds out and records why
        size += batch[-1][1]
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _load(batch: Sequence[tuple[_LogFile, int]], unreadable: dict[int, str]) -> pa.RecordBatch:
    """A batch of files read into one buffer and split into lines (numpy finds the newlines)."""
    buf = bytearray(sum(size for _, size in batch) + len(batch))  # room for a final newline each
    view = memoryview(buf)
    starts = [0]
    cut: list[int] = []  # files that lack a final newline (one is added)
    for i, (f, size) in enumerate(batch):
        try:
            with f.path.open("rb") as fh:
                end = starts[-1] + fh.readinto(view[starts[-1] : starts[-1] + size])
        except OSError as err:
            unreadable[f.fid] = f"unreadable: {_os_reason(err)}"
            end = starts[-1]
        if end > starts[-1] and buf[end - 1] != ord("\n"):
            buf[end] = ord("\n")
            end += 1
            cut.append(i)
        starts.append(end)
    data = np.frombuffer(buf, dtype=np.uint8, count=starts[-1])
    offsets = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1))
    first = np.searchsorted(offsets, starts)  # each file's first line (files end at line ends)
    counts = np.diff(first)
    pre = _utf8_problems(view, offsets, first)  # before Arrow sees the text
    last_line = np.zeros(len(offsets) - 1, dtype=bool)
    last_line[first[1:][cut] - 1] = True
    brace, blank = _openings(view, offsets, data)
    lines = pa.record_batch(
        {
            "fid": np.repeat(np.array([f.fid for f, _ in batch], dtype=np.int64), counts),
            "need": np.repeat(np.array([f.need for f, _ in batch], dtype=np.int64), counts),
            "line": np.arange(len(offsets) - 1) - np.repeat(first[:-1], counts) + 1,
            "pre": pre,
            "cut": last_line,
            "brace": brace,
            "text": pa.LargeStringArray.from_buffers(
                len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(view[: starts[-1]])
            ),
        },
        schema=_RAW_SCHEMA,
    )
    return lines.filter(pa.array(~blank)) if blank.any() else lines


def _utf8_problems(view: memoryview, offsets: np.ndarray, first: np.ndarray) -> pa.Array:
    """Per line, why it is not valid UTF-8 (else NULL); such a line is overwritten with ``?``.

    Files are decoded whole; only a file that fails is decoded line by line.
    """
    problems: dict[int, str] = {}
    for i in range(len(first) - 1):
        try:
            str(view[offsets[first[i]] : offsets[first[i + 1]]], "utf-8")
        except UnicodeDecodeError:
            for row in range(first[i], first[i + 1]):
                line = view[offsets[row] : offsets[row + 1] - 1]
                try:
                    str(line, "utf-8")
                except UnicodeDecodeError as err:
                    problems[row] = f"not valid UTF-8: byte {err.start + 1} of the line"
                    line[:] = b"?" * len(line)  # readable text for DuckDB; ``pre`` rules the line
    if not problems:
        return pa.nulls(len(offsets) - 1, pa.string())
    return pa.array([problems.get(row) for row in range(len(offsets) - 1)], pa.string())


def _openings(
    view: memoryview, offsets: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per line, whether it opens with ``{`` after spaces or tabs, and whether it is only
    whitespace.

    Lines of a log open with ``{``: only the others are looked at one by one.
    """
    brace = data[offsets[:-1]] == ord("{")
    blank = np.zeros(len(offsets) - 1, dtype=bool)
    for row in np.flatnonzero(~brace):
        line = bytes(view[offsets[row] : offsets[row + 1]])
        brace[row] = line.lstrip(b" \t").startswith(b"{")
        blank[row] = not line.strip()
    return brace, blank


def _json_problem(text: str, cut: bool) -> str:
    """Why a line (newline included) is not JSON, in the words of Python's decoder.

    DuckDB calls it for the lines it could not parse; ``cut`` says the file ended
    without a newline, which usually explains a broken last line.
    """
    try:
        json.loads(text[:-1])
    except json.JSONDecodeError as err:
        detail = f"{err.msg.removesuffix(' at')} at column {err.colno}"  # 'starting at'...
    except RecursionError:  # an exception here would end DuckDB's query, and every run
        detail = "nested deeper than Python's JSON decoder follows"
    else:
        detail = "rejected by DuckDB's JSON reader"
    if cut:
        return f"truncated last line: no newline at the end of the file; {detail}"
    return f"malformed JSON: {detail}"


def _parsed_sql() -> str:
    """``raw`` with every read key as a column; ``pre`` also says why a line is not an object,
    or which number is not one.

    ``TRY(json_transform(...))`` is NULL for a line ``json_valid`` rejects and for the
    valid ``null``, so only a NULL of a line that opens with ``{`` or fails ``json_valid``
    is a line that is not JSON. DuckDB casts ``true`` to 1.0 and ``"55.5"`` to 55.5 on its
    way into a DOUBLE, and makes ``"x"`` a silent NULL: a line where a number key holds a
    string, bool, list or object (a cheap pattern finds it, or the line has a ``\\u``
    escape, which can spell a key) is explained key by key.
    """
    read = {k: "JSON" if k in _INTEGERS else t for k, t in _COLUMNS.items()}
    struct = json.dumps(read).replace("'", "''")
    names = ", ".join(f"s.{sql_identifier(k)}" for k in _COLUMNS)
    keys = "|".join(re.escape(k) for k in _NUMERIC)
    suspect = f'"(?:{keys})"\\s*:\\s*["tf\\[{{]'.replace("'", "''")  # a string, bool, list...
    not_numbers = " ".join(
        f"WHEN json_type(json_extract(text, '$.\"{k}\"')) NOT IN {_JSON_NUMBERS} "
        f"THEN 'not a number: \"{k}\" is ' || json_extract(text, '$.\"{k}\"')"
        for k in _NUMERIC
    )
    return f"""(
        SELECT fid, need, line, CASE
                WHEN pre IS NOT NULL THEN pre
                WHEN s IS NULL AND (brace OR NOT json_valid(text)) THEN json_problem(text, cut)
                WHEN NOT brace THEN 'not a JSON object'
                WHEN regexp_matches(text, '{suspect}') OR contains(text, '\\u')
                    THEN CASE {not_numbers} END
            END AS pre, {names}
        FROM (SELECT *, TRY(json_transform(text, '{struct}')) AS s FROM raw)
    )"""


# -- line and run rules ------------------------------------------------------------


def _metric_sql() -> dict[str, str]:
    """Each benchmark metric as a percentage (``auto`` keys still raw), first known key wins."""
    keys: dict[str, list[str]] = {m: [] for m in METRICS}
    for mk in METRIC_KEYS:
        expr = sql_identifier(mk.key)
        keys[mk.metric].append(f"round(100 * {expr}, 10)" if mk.scale == "fraction" else expr)
    return {m: f"coalesce({', '.join(exprs)})" for m, exprs in keys.items()}


def _annotate_sql(source: str) -> str:
    """SELECT over ``source`` (raw line columns + fid, need, line, pre) in ``lines`` form.

    Adds the line's ``kind`` (train/val/meta; mode-less lines are inferred), the
    benchmark metrics (``auto`` keys still raw) and ``problem`` (NULL for a good line).
    The :data:`_INTEGERS` keys come as JSON and leave as BIGINT, NULL unless a JSON integer.
    """
    integer = {
        k: f"CASE WHEN json_type(r.{k}) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST(r.{k} AS BIGINT) END"
        for k in _INTEGERS
    }
    bad_integer = " ".join(
        f"WHEN NOT coalesce({integer[k]} >= {low}, r.{k} IS NULL) "
        f"THEN 'not an integer in [{low}, {2**63 - 1}]: \"{k}\" is ' || r.{k}"
        for k, low in _INTEGERS.items()
    )
    metric_keys = " OR ".join(f"r.{sql_identifier(mk.key)} IS NOT NULL" for mk in METRIC_KEYS)
    metrics = ", ".join(f"{expr} AS {sql_identifier(m)}" for m, expr in _metric_sql().items())
    metric_names = {mk.key for mk in METRIC_KEYS}
    nonfinite, nonfinite_metric = (
        " ".join(
            f"WHEN NOT isfinite(r.{sql_identifier(k)}) THEN '\"{k}\" is ' || r.{sql_identifier(k)}"
            for k in _NUMERIC
            if (k in metric_names) == of_metrics
        )
        for of_metrics in (False, True)
    )
    missing = ", ".join(
        f"CASE WHEN need & {1 << i} <> 0 AND {sql_identifier(m)} IS NULL THEN '{m}' END"
        for i, m in enumerate(METRICS)
    )
    out_of_range = " ".join(
        f"WHEN kind = 'val' AND NOT {sql_identifier(m)} BETWEEN 0 AND 100 THEN "
        f"'metric outside [0, 100]: {m} = ' || {sql_identifier(m)} || ' (as a percentage)'"
        for m in METRICS
    )
    return f"""
        WITH n AS (
            SELECT r.fid, r.need, r.line, r.pre,
                CASE WHEN r.mode IS NOT NULL THEN r.mode
                     WHEN r.loss IS NOT NULL THEN 'train'
                     WHEN {metric_keys} THEN 'val'
                     ELSE 'meta' END AS kind,
                coalesce({integer["epoch"]}, {integer["step"]}) AS epoch,
                r.epoch IS NULL AND r.step IS NOT NULL AS by_step,
                {integer["iter"]} AS iter, r.lr, r.loss, r.config,
                {metrics},
                CASE {nonfinite} END AS nonfinite,
                CASE {nonfinite_metric} END AS nonfinite_metric,
                CASE {bad_integer} END AS bad_integer
            FROM {source} r
        )
        SELECT fid, line, kind, epoch, by_step, iter, lr, loss, config,
            {", ".join(sql_identifier(m) for m in METRICS)},
            CASE
                WHEN pre IS NOT NULL THEN pre
                WHEN kind NOT IN ('train', 'val', 'meta') THEN 'unknown mode: ' || to_json(kind)
                WHEN nonfinite IS NOT NULL THEN 'not a finite number: ' || nonfinite
                WHEN kind = 'val' AND nonfinite_metric IS NOT NULL
                    THEN 'not a finite number: ' || nonfinite_metric
                WHEN kind = 'meta' THEN NULL
                WHEN bad_integer IS NOT NULL THEN bad_integer
                WHEN epoch IS NULL THEN 'missing or non-integer "epoch"'
                WHEN epoch < 1 THEN 'epoch below 1: ' || epoch
                WHEN kind = 'train' AND loss IS NULL THEN 'training line without a numeric "loss"'
                WHEN kind = 'val' AND concat_ws(', ', {missing}) <> ''
                    THEN 'evaluation line without a metric: ' || concat_ws(', ', {missing})
                {out_of_range}
            END AS problem
        FROM n
    """


_ANNOTATED_SQL = _annotate_sql(_parsed_sql())
"""The lines of ``raw`` annotated: the ``lines`` columns."""


_AGGREGATE_SQL = rf"""
    WITH per_file AS (
        SELECT fid,
            count(*) AS lines,
            count(problem) AS bad_lines,
            count(*) FILTER (problem IS NULL AND kind = 'val') AS evaluations,
            max(epoch) FILTER (problem IS NULL AND kind = 'val') AS last_epoch,
            min(epoch) FILTER (problem IS NULL AND kind = 'train') AS first_training,
            min(epoch) FILTER (problem IS NULL AND kind = 'val') AS first_evaluation,
            bool_or(by_step) FILTER (problem IS NULL AND kind = 'train') AS by_step,
            max(line) AS last_line,
            max(TRY_CAST(nullif(regexp_extract(config, '\b(?:max|total)_epochs\s*=\s*(\d+)', 1), '')
                AS BIGINT)) FILTER (problem IS NULL AND kind = 'meta') AS declared_epochs,
            max(greatest({", ".join(map(sql_identifier, _AUTO_SCALED))}))
                FILTER (problem IS NULL AND kind = 'val') AS seg_max
        FROM lines
        GROUP BY fid
    )
    SELECT f.fid, f.file, f.setting, f.arch, f.run, coalesce(p.lines, 0) AS lines,
        coalesce(p.bad_lines, 0) AS bad_lines, coalesce(p.evaluations, 0) AS evaluations,
        p.last_epoch, p.first_training, p.first_evaluation, p.by_step, p.last_line,
        p.declared_epochs, p.seg_max
    FROM files f LEFT JOIN per_file p USING (fid)
"""
"""Per-file aggregates of ``lines``, one row per file (also for a file without lines)."""

_CHAINS_SQL = """
    WITH starts AS (
        SELECT *, least(first_training, first_evaluation) AS first_line
        FROM agg
        WHERE coalesce(first_training, first_evaluation) IS NOT NULL
            AND NOT coalesce(by_step, false)
    ), linked AS (
        SELECT fid, setting, arch, run, first_training, first_line,
            CASE WHEN CASE WHEN first_training IS NULL
                           THEN first_evaluation > lag(last_epoch) OVER w
                           ELSE first_training > 1 END
                THEN lag(run) OVER w END AS resumes
        FROM starts
        WINDOW w AS (PARTITION BY setting, arch ORDER BY run)
    ), numbered AS (
        SELECT *, sum(CASE WHEN resumes IS NULL THEN 1 ELSE 0 END) OVER (
            PARTITION BY setting, arch ORDER BY run ROWS UNBOUNDED PRECEDING) AS chain
        FROM linked
    ), spans AS (
        SELECT fid, resumes, min(first_training) OVER later AS cut_training,
            min({'epoch': first_line, 'run': run}) OVER later AS cut,
            first_value(run) OVER c AS run_start, last_value(run) OVER c AS run_end
        FROM numbered
        WINDOW later AS (PARTITION BY setting, arch, chain ORDER BY run
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING),
            c AS (PARTITION BY setting, arch, chain ORDER BY run
                  ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    )
    SELECT a.fid, s.resumes, s.cut.epoch AS cut_epoch, s.cut_training, s.cut.run AS resumed_by,
        coalesce(s.run_start, a.run) AS run_start, coalesce(s.run_end, a.run) AS run_end
    FROM agg a LEFT JOIN spans s USING (fid)
"""
"""Per file, the run it belongs to. A file whose first training line is past epoch 1 (with no
training line: whose first evaluation comes after the last of the file before it) resumes
the file before it (of its setting and architecture, by name, among files with good lines):
mmcv starts a new log file on each launch. Each file of a run is cut where the files after
it start: its training lines at their earliest training epoch, its evaluations at their
earliest line (mmcv may evaluate the checkpoint it resumes from). Training logged by
``step`` (no epoch) is not joined: every launch's first step is past 1."""


def _superseded(cut_epoch: str, cut_training: str) -> str:
    """SQL: whether a good training or evaluation line is superseded by a later launch of its
    run, given its file's cuts (NULL, hence not superseded, where the file has none)."""
    return (
        f"coalesce(epoch >= CASE kind WHEN 'val' THEN {cut_epoch} ELSE {cut_training} END, false)"
    )


_CUT_SQL = f"""
    SELECT fid,
        count(*) FILTER (kind = 'val' AND NOT superseded) AS evaluations,
        max(epoch) FILTER (kind = 'val' AND NOT superseded) AS last_epoch,
        count(*) FILTER (superseded) AS superseded
    FROM (
        SELECT l.*, {_superseded("c.cut_epoch", "c.cut_training")} AS superseded
        FROM lines l JOIN chains c USING (fid)
        WHERE c.cut_epoch IS NOT NULL AND l.problem IS NULL AND l.kind IN ('train', 'val')
    )
    GROUP BY fid
"""
"""The evaluations of files a later launch cuts, recounted without the lines it supersedes."""

_RUNS_SQL = """
    WITH files_cut AS (
        SELECT a.* REPLACE (coalesce(k.evaluations, a.evaluations) AS evaluations,
                            CASE WHEN k.fid IS NULL THEN a.last_epoch ELSE k.last_epoch END
                                AS last_epoch),
            c.resumes, c.cut_epoch, c.cut_training, c.resumed_by, c.run_start, c.run_end,
            coalesce(k.superseded, 0) AS superseded, u.unreadable
        FROM agg a JOIN chains c USING (fid) LEFT JOIN cut k USING (fid)
            LEFT JOIN (SELECT fid, reason AS unreadable FROM unreadable) u USING (fid)
    ), spans AS (
        SELECT *,
            sum(evaluations) OVER r AS run_evaluations,
            sum(lines) OVER r AS run_lines,
            max(seg_max) OVER r AS run_seg_max,
            max(last_epoch) OVER r AS run_last_epoch,
            last_value(declared_epochs IGNORE NULLS) OVER (r ORDER BY run
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS run_declared
        FROM files_cut
        WINDOW r AS (PARTITION BY setting, arch, run_start)
    ), ends AS (  -- one vote per architecture: its latest run with an evaluation
        SELECT setting, arg_max(run_last_epoch, run_start) AS epoch
        FROM spans WHERE run = run_start AND run_last_epoch IS NOT NULL
        GROUP BY setting, arch
    ), usual AS (
        SELECT setting, arg_max(epoch, {'runs': runs, 'epoch': epoch}) AS usual_epoch
        FROM (SELECT setting, epoch, count(*) AS runs FROM ends GROUP BY ALL)
        GROUP BY setting
    ), expect AS (
        SELECT s.*, coalesce(s.run_declared, u.usual_epoch) AS expected_epochs
        FROM spans s LEFT JOIN usual u USING (setting)
    ), judged AS (
        SELECT *, CASE
            WHEN unreadable IS NOT NULL THEN unreadable
            WHEN run_lines = 0 THEN 'empty file: no line, or only blank ones'
            WHEN run_evaluations = 0 THEN 'stopped early: no evaluation line'
            WHEN run_last_epoch < expected_epochs THEN
                'stopped early: last evaluation at epoch ' || run_last_epoch || ' of '
                || expected_epochs || CASE WHEN run_declared IS NULL
                        THEN ' (the usual last epoch of ' || setting || ' runs)'
                        ELSE ' (the schedule its config declares)' END
            WHEN run_last_epoch > expected_epochs AND run_declared IS NOT NULL THEN
                'past its schedule: last evaluation at epoch ' || run_last_epoch
                || ', past the ' || expected_epochs || ' epochs its config declares'
            WHEN run_last_epoch > expected_epochs THEN
                'past the usual end: last evaluation at epoch ' || run_last_epoch || ', where '
                || setting || ' runs usually end at ' || expected_epochs
                || ' (a mistyped epoch, or another schedule)'
            END AS run_problem
        FROM expect
    )
    SELECT *,
        CASE WHEN run_problem IS NULL THEN
            first_value(run_start) OVER (PARTITION BY setting, arch, run_problem IS NULL
                                         ORDER BY run_start DESC)
        END AS kept_run
    FROM judged
"""
"""One row per run file from ``agg``, ``chains`` and ``cut``: its run's expected epoch and
run-level problem, and the kept run of its setting and architecture (named by the run's
first file)."""

_RUNS_OUT_SQL = """
    SELECT file, setting, arch, run, resumes, lines, bad_lines, evaluations, last_epoch,
        expected_epochs,
        CASE WHEN run_start = kept_run THEN 'accepted' ELSE 'quarantined' END AS status
    FROM runs ORDER BY fid
"""


def _quarantine(con: duckdb.DuckDBPyConnection, layout: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Layout problems, then per file its bad lines and its run-level problem."""
    rows = con.execute(
        """
        SELECT file, line, reason FROM (
            SELECT fid, line, problem AS reason, 0 AS k FROM lines WHERE problem IS NOT NULL
            UNION ALL
            SELECT fid, NULL, 'superseded: ' || superseded || CASE WHEN superseded = 1
                    THEN ' line' ELSE ' lines' END || ' from epoch ' || cut_epoch || ' on'
                || CASE WHEN cut_training > cut_epoch
                    THEN ' (training lines from epoch ' || cut_training || ')' ELSE '' END
                || ', logged again by ' || resumed_by || '.log.json, which resumes the run', 1
            FROM runs WHERE superseded > 0
            UNION ALL
            SELECT fid, last_line, run_problem, 1 FROM runs
            WHERE run_problem IS NOT NULL AND run = run_end
            UNION ALL
            SELECT fid, NULL, run_problem || '; the run ends in ' || run_end || '.log.json', 1
            FROM runs WHERE run_problem IS NOT NULL AND run <> run_end
            UNION ALL
            SELECT fid, NULL, 'duplicate run: ' || kept_run || '.log.json is kept for this '
                || 'architecture and setting (the run name that sorts last)', 1
            FROM runs WHERE run_problem IS NULL AND run_start <> kept_run
        ) q JOIN files USING (fid)
        ORDER BY fid, k, line, reason
        """
    ).df()
    layout_rows = pd.DataFrame(
        {"file": [f for f, _ in layout], "line": pd.NA, "reason": [r for _, r in layout]}
    )
    out = pd.concat([layout_rows, rows], ignore_index=True) if len(layout_rows) else rows
    return _typed(out, QUARANTINE_DTYPES)


def _typed(frame: pd.DataFrame, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """``frame``'s columns of ``dtypes``, in its order and of its dtypes: a table's Parquet
    schema must not depend on the data (an all-null column would be stored as type null)."""
    return frame.astype(dict(dtypes))[list(dtypes)]


def _curves(con: duckdb.DuckDBPyConnection, files: Sequence[_LogFile]) -> pd.DataFrame:
    """The accepted runs' good lines, one row per (line, series), segmentation fractions scaled.

    Rows follow the files (sorted by path), then epoch, iteration and training before
    evaluation (then line order), then :data:`CURVE_SERIES`; ``arch``, ``setting``,
    ``run`` and ``metric`` are categoricals (a full drop has tens of millions of points).
    """
    seg = {
        m: f"CASE WHEN r.fractions[fid + 1] THEN round(100 * {m}, 10) ELSE {m} END"
        for m in _AUTO_SCALED
    }
    series = [
        "CASE WHEN kind = 'train' THEN loss END",
        "CASE WHEN kind = 'train' THEN lr END",
        *(f"CASE WHEN kind = 'val' THEN {seg.get(m, sql_identifier(m))} END" for m in METRICS),
    ]
    # per-file flags as lists indexed by file id: a join would lose the lines' order
    wide = con.sql(
        "WITH r AS (SELECT list(run_start = kept_run ORDER BY fid) AS kept, "
        "list(run_seg_max <= 1 ORDER BY fid) AS fractions, list(cut_epoch ORDER BY fid) AS cuts, "
        "list(cut_training ORDER BY fid) AS training_cuts FROM runs) "
        "SELECT fid, epoch, iter, kind = 'val' AS val, line, "
        f"{', '.join(f'{e} AS s{k}' for k, e in enumerate(series))} "
        "FROM lines, r "
        "WHERE r.kept[fid + 1] AND problem IS NULL AND kind IN ('train', 'val') "
        f"AND NOT {_superseded('r.cuts[fid + 1]', 'r.training_cuts[fid + 1]')}"
    ).to_arrow_table()
    # good lines hold no NaN, so NaN here is a series the line does not have
    values = np.column_stack(
        [wide[f"s{k}"].to_numpy(zero_copy_only=False) for k in range(len(series))]
    )
    fid, epoch = wide["fid"].to_numpy(), wide["epoch"].to_numpy()
    has_iter = wide["iter"].is_valid().to_numpy(zero_copy_only=False)
    iters = wide["iter"].fill_null(0).to_numpy()
    val = wide["val"].to_numpy(zero_copy_only=False)
    order = _curve_order(fid, epoch, has_iter, iters, val, wide["line"].to_numpy())
    if order is not None:
        fid, epoch, has_iter, iters, values = (
            a[order] for a in (fid, epoch, has_iter, iters, values)
        )
    point = np.flatnonzero(~np.isnan(values))
    row, metric = np.divmod(point, len(series))
    fid = fid[row]
    run_starts = [
        run for (run,) in con.execute("SELECT run_start FROM runs ORDER BY fid").fetchall()
    ]
    out = {col: _categorical([getattr(f, col) for f in files], fid) for col in ("arch", "setting")}
    out["run"] = _categorical(run_starts, fid)
    out["epoch"] = epoch[row]
    out["iter"] = pd.arrays.IntegerArray(iters[row], ~has_iter[row])
    out["metric"] = pd.Categorical.from_codes(metric, categories=CURVE_SERIES)
    out["value"] = values.ravel()[point]
    return pd.DataFrame(out, columns=list(CURVES_COLUMNS), copy=False)


def _curve_order(*keys: np.ndarray) -> np.ndarray | None:
    """The order that sorts rows by ``keys`` (most significant first); None if they are sorted.

    DuckDB returns the lines in file and line order and logs are written in order, so
    checking the order is usually all it takes.
    """
    tied = np.ones(max(len(keys[0]) - 1, 0), dtype=bool)  # consecutive rows equal so far
    for key in keys:
        if (tied & (key[1:] < key[:-1])).any():
            return np.lexsort(keys[::-1])
        tied &= key[1:] == key[:-1]
    return None


def _categorical(per_file: Sequence[str], fid: np.ndarray) -> pd.Categorical:
    """A categorical with one entry per curve row, from one value per file and the row's file id."""
    categories, codes = np.unique(np.asarray(per_file, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(codes[fid], categories=pd.Index(categories, dtype="str"))


# -- results -----------------------------------------------------------------------

RECONCILIATION_COLUMNS = (
    "code",
    "setting",
    "metric",
    "log_value",
    "published_value",
    "diff",
    "agree",
)


def derive_results(curves: pd.DataFrame) -> pd.DataFrame:
    """Final and best evaluation of each (run, metric) in ``curves``, one row each.

    Final: the last evaluation (highest epoch, then iteration). Best: the highest value,
    the earliest epoch on ties.
    """
    keys = ["setting", "arch", "run", "metric"]
    evals = curves.loc[curves["metric"].isin(METRICS), [*keys, "epoch", "iter", "value"]]
    evals = evals.sort_values([*keys, "epoch", "iter"], kind="stable", na_position="first")
    groups = evals.groupby(keys, observed=True, sort=False)
    final = groups.tail(1).reset_index(drop=True)
    best = evals.loc[groups["value"].idxmax()].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "code": final["arch"].astype("str"),
            "setting": final["setting"].astype("str"),
            "run": final["run"].astype("str"),
            "metric": final["metric"].astype("str"),
            "evaluations": groups.size().to_numpy(),
            "final_epoch": final["epoch"].to_numpy(),
            "final_value": final["value"].to_numpy(),
            "best_epoch": best["epoch"].to_numpy(),
            "best_value": best["value"].to_numpy(),
        }
    )
    return out.reset_index(drop=True)


def results_long(derived: pd.DataFrame) -> pd.DataFrame:
    """The warehouse's long ``results`` form (code, setting, metric, value) of the final values."""
    out = derived[["code", "setting", "metric", "final_value"]].rename(
        columns={"final_value": "value"}
    )
    return out.reset_index(drop=True)


class LogOutputOverlap(ValueError):
    """Log tables were to be written where they would replace what they must not: the log
    drop they come from, or files of another kind."""


def refuse_to_clear_the_drop(out: Path, logs: Path) -> None:
    """Stop before replacing what ``out`` holds when it holds the drop's ``logs/`` or lies in it
    (``--out`` the log drop itself): the run would delete its own input."""
    if out.resolve().is_relative_to(logs.resolve()) or logs.resolve().is_relative_to(out.resolve()):
        raise LogOutputOverlap(
            f"writing the log tables replaces the contents of {out}, which overlaps the log "
            f"drop's {logs}: write them elsewhere (--out or NASMR_OUT)"
        )


def refuse_to_replace_other_files(out: Path) -> None:
    """Stop, touching nothing, before :func:`replace_log_tables` when ``out`` holds anything
    but what the logs job and ``nasmr logs parse`` write there: their tables as plain files
    and the job's ``trainval/<setting>/trainval.pkl`` export (``--out`` a folder of other
    files, or a user's own ``trainval/``)."""
    try:
        entries = sorted(out.iterdir()) if out.is_dir() else []
        other = [p.name for p in entries if not _ours(p)]
    except OSError as err:
        raise LogOutputOverlap(f"cannot read {out}: {err.strerror or err}") from err
    if other:
        raise LogOutputOverlap(
            f"writing the log tables replaces what {out} holds, and it holds other files "
            f"({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}): write them to a "
            "new folder or one of log tables"
        )


def _ours(path: Path) -> bool:
    """Whether ``path`` in a log-table folder is one the logs job or a parse wrote: a table
    as a plain file, the export, ``trainval/<setting>/`` folders of one plain
    ``trainval.pkl`` each, or the unfinished folder of a parse."""
    if path.name.startswith(paths.UNFINISHED):
        return _plain_dir(path)
    if path.name in {f"{name}.parquet" for name in (*LOG_TABLES, RECONCILIATION_TABLE)}:
        return _plain_file(path)
    if path.name != EXPORT_FOLDER or not _plain_dir(path):
        return False
    return all(
        folder.name in EXPORT_SETTINGS
        and _plain_dir(folder)
        and [p.name for p in folder.iterdir()] == [TRAINVAL]
        and _plain_file(folder / TRAINVAL)
        for folder in path.iterdir()
    )


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _plain_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def replace_log_tables(parsed: LogParse, out: Path) -> dict[str, pd.DataFrame]:
    """Write the :func:`log_tables` of ``parsed`` into ``out`` in place of all an earlier
    parse or logs job left there, so no table of another drop stays beside them; refused,
    touching nothing, when ``out`` holds other files (:func:`refuse_to_replace_other_files`).

    ``out`` itself stays (it may be the working folder, a mount point or a link): the tables
    are written in a folder inside it; once they all are, the job's reconciliation table and
    export go, and each table is moved into place (an interruption between two moves leaves
    a mix, which the next parse replaces).
    """
    paths.outside_releases(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_unfinished(out)  # a killed parse's tables
    refuse_to_replace_other_files(out)
    staging = paths.unfinished_folder(out, "tables")
    try:
        tables = write_log_tables(parsed, staging)
        (out / f"{RECONCILIATION_TABLE}.parquet").unlink(missing_ok=True)  # of the old tables
        if (out / EXPORT_FOLDER).is_dir():
            shutil.rmtree(out / EXPORT_FOLDER)
        for name in tables:
            os.replace(staging / f"{name}.parquet", out / f"{name}.parquet")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tables


LOG_TABLES = ("curves", "derived", "results", "runs", "quarantine")
"""The tables of a log parse, by the name of their Parquet file (``<name>.parquet``)."""

RECONCILIATION_TABLE = "log_reconciliation"
"""The logs job's table of log values against published ones, written beside the others."""

EXPORT_SETTINGS = frozenset(SETTINGS) | frozenset(DIGITS_SETTINGS)
"""The settings an export may hold a ``trainval.pkl`` of: the benchmark's and the digits'."""

EXPORT_FOLDER = "trainval"
"""The folder beside its tables where the logs job exports ``<setting>/trainval.pkl``."""


def log_tables(parsed: LogParse) -> dict[str, pd.DataFrame]:
    """The :data:`LOG_TABLES` of ``parsed`` by name: its curves, the results derived from
    them (per run, and the long form that is exported) and its runs and quarantine."""
    derived = derive_results(parsed.curves)
    frames = (parsed.curves, derived, results_long(derived), parsed.runs, parsed.quarantine)
    return dict(zip(LOG_TABLES, frames, strict=True))


def write_log_tables(parsed: LogParse, out: Path) -> dict[str, pd.DataFrame]:
    """Write the :func:`log_tables` of ``parsed`` as ``out/<name>.parquet``; return them."""
    paths.outside_releases(out)
    tables = log_tables(parsed)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_parquet(frame, out / f"{name}.parquet")
    return tables


class UnreconciledLogs(ValueError):
    """Logs of benchmark settings whose published records are absent (``absent``: e.g. never
    staged in a build) or did not load (``unusable``: setting, status and reason):
    reconciling without them would leave those logs unchecked."""

    def __init__(self, absent: list[str], unusable: list[str]) -> None:
        self.absent, self.unusable = absent, unusable
        problems = [f"no records of {', '.join(absent)}"] if absent else []
        problems += [f"records that did not load: {'; '.join(unusable)}"] if unusable else []
        super().__init__(f"cannot reconcile the logs: {'; '.join(problems)}")

    def __reduce__(self) -> tuple[type[UnreconciledLogs], tuple[list[str], list[str]]]:
        """Rebuilt from its lists (a process pool pickles exceptions)."""
        return (type(self), (self.absent, self.unusable))


def published_records(
    derived: pd.DataFrame, load: Callable[[str], SettingLoad | None]
) -> dict[str, pd.DataFrame]:
    """The valid published records, by ``load`` (None: it has none of that setting), of each
    benchmark setting ``derived`` holds logs of (the digits settings have none), for
    :func:`reconcile`; :class:`UnreconciledLogs` names every setting without them."""
    published, absent, unusable = {}, [], []
    for setting in sorted(set(derived["setting"]) & set(SETTINGS)):
        loaded = load(setting)
        if loaded is None:
            absent.append(setting)
        elif loaded.status == "ok":
            published[setting] = loaded.valid
        else:
            unusable.append(f"{setting} ({loaded.status}: {loaded.reason})")
    if absent or unusable:
        raise UnreconciledLogs(absent, unusable)
    return published


def reconcile_tolerance(setting: str) -> float:
    """The most a log value may differ from the published one of ``setting`` that rounds it
    (:func:`~schemas.settings.half_unit` of its decimals)."""
    return half_unit(published_decimals(setting))


def reconcile(
    derived: pd.DataFrame,
    published: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Compare final log values with published ones (``log_reconciliation`` table).

    ``published`` maps a setting to its valid records (``code`` + metric columns, as
    :func:`nasmr.ingest.load_setting` gives them). ``agree`` holds when
    ``|log - published|`` is at most the setting's :func:`reconcile_tolerance`; a log
    value without a published one never agrees.
    """
    frames = [
        frame.melt(
            id_vars=["code"],
            value_vars=[m for m in log_setting(setting).metrics if m in frame.columns],
            var_name="metric",
            value_name="published_value",
        ).assign(setting=setting)
        for setting, frame in published.items()
    ]
    columns = ["code", "setting", "metric", "published_value"]
    pub = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    out = (
        derived[["code", "setting", "metric", "final_value"]]
        .rename(columns={"final_value": "log_value"})
        .merge(pub.astype({"published_value": "float64"}), how="left", on=columns[:3])
    )
    out["diff"] = out["log_value"] - out["published_value"]
    out["agree"] = out["diff"].abs().le(out["setting"].map(reconcile_tolerance))
    return out[list(RECONCILIATION_COLUMNS)].reset_index(drop=True)


def disagreements(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a :func:`reconcile` table that have a published value, and those of them
    whose log value differs from it."""
    compared = table.dropna(subset=["published_value"])
    return compared, compared[~compared["agree"].astype(bool)]
