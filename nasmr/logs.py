"""Regenerate benchmark results from raw training logs: parse, derive, reconcile.

A log drop is ``<setting>/<arch code>/<run>.log.json`` (OpenMMLab JSON lines, see
:mod:`schemas.logs`). :func:`parse_log_drop` turns it into a long ``curves`` table and a
``quarantine`` table; nothing in one run stops the others from landing.

Rules, applied in this order:

* **Layout**: a file outside ``<setting>/<code>/<run>.log.json``, of an unknown setting
  or under a folder that is not a canonical architecture code is quarantined whole.
* **Lines**: malformed or truncated JSON, invalid UTF-8, a JSON value that is not an
  object, an unknown ``mode``, a NaN/inf number, a training/evaluation line without an
  integer ``epoch``, a training line without ``loss``, an evaluation line without one
  of the setting's metrics, or a metric outside [0, 100] quarantines that line (file,
  line number, reason); the rest of the run is kept.
* **Runs**: a run without an evaluation line, or whose last good evaluation is at an
  epoch below the expected one, stopped early and is quarantined whole (line: its
  last line). The expected epoch is ``max_epochs`` from the run's config (meta line)
  when declared, otherwise the furthest epoch any run of the same setting evaluated
  (so a schedule must evaluate at its last epoch, as OpenMMLab configs do).
* **Duplicates**: of several complete runs of one architecture in one setting, the run
  whose name sorts last is kept (mmcv names runs by start time, so: the latest); the
  others are quarantined (line empty: the whole run).

Speed: the bulk is read by DuckDB's columnar JSON reader in one pass (each line is
tagged with its file id by one bytes replace per file, so no per-line Python); only
files where that pass found a problem, or read fewer lines than the file holds, are
re-read line by line, to number the lines and explain each rejection.

Derived results (:func:`derive_results`): per run and metric, the *final* value is
the last evaluation (highest epoch, then iteration) and the *best* value the highest
evaluation (earliest epoch on ties). The benchmark's long ``results`` use the final
value, as the published records do for a fixed schedule.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from nasmr.space import Arch, ArchError
from schemas.logs import LOG_SUFFIX, METRIC_KEYS, METRICS, line_columns, log_setting

RECONCILE_TOLERANCE = 0.005 + 1e-9
"""A log value agrees with a published one within half a unit of the published
2-decimal rounding (plus float slack): 67.085 from a log agrees with 67.08 and 67.09."""

BATCH_BYTES = 32 * 1024 * 1024
"""Log bytes handed to the columnar reader at once (bounds memory; lets reading overlap)."""

CURVE_SERIES: tuple[str, ...] = ("loss", "lr", *METRICS)
"""The ``metric`` values of the curves table, in output order."""

_UNREAD = ("env_info", "seed", "exp_name", "memory", "data_time", "time")
_COLUMNS = {k: t for k, t in line_columns().items() if k not in _UNREAD}
_NUMERIC = [k for k, t in _COLUMNS.items() if t == "DOUBLE"]
_SEG = ("mIoU", "mAcc", "aAcc")

CURVES_COLUMNS = ("arch", "setting", "run", "epoch", "iter", "metric", "value")
QUARANTINE_COLUMNS = ("file", "line", "reason")


@dataclass(frozen=True, eq=False)
class LogParse:
    """A parsed log drop: curves of accepted runs, quarantined lines/runs, one row per run."""

    curves: pd.DataFrame
    quarantine: pd.DataFrame
    runs: pd.DataFrame
    lines: int

    def summary(self) -> str:
        """A few lines for humans: files, lines, accepted runs, quarantine by reason kind."""
        accepted = int((self.runs["status"] == "accepted").sum()) if len(self.runs) else 0
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

    @property
    def need(self) -> int:
        """Bit ``i`` set when the setting requires ``METRICS[i]`` on evaluation lines."""
        metrics = log_setting(self.setting).metrics
        return sum(1 << i for i, m in enumerate(METRICS) if m in metrics)


def parse_log_drop(log_dir: Path) -> LogParse:
    """Parse every ``<setting>/<code>/<run>.log.json`` under ``log_dir`` (or ``log_dir/logs``)."""
    root = Path(log_dir)
    if (root / "logs").is_dir():
        root = root / "logs"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: log folder not found")
    files, layout = _discover(root)
    con = duckdb.connect()
    try:
        con.register("files_df", _files_frame(files))
        con.execute("CREATE TEMP TABLE files AS SELECT * FROM files_df")
        con.execute(f"CREATE TEMP TABLE lines ({_LINES_SCHEMA})")
        physical = pd.DataFrame(
            {"fid": range(len(files)), "physical_lines": _bulk_read(con, files)}
        )
        con.register("physical", physical.astype("int64"))
        con.execute(f"CREATE TEMP TABLE agg AS {_aggregate_sql('true')}")
        con.execute(f"CREATE TEMP TABLE runs AS {_RUNS_SQL}")
        suspect = [files[fid] for (fid,) in con.execute(_SUSPECT_SQL).fetchall()]
        if suspect:
            _exact_read(con, suspect)
            exact = "fid IN (SELECT fid FROM exact_files)"
            con.execute(f"DELETE FROM lines WHERE {exact}")
            con.execute(f"INSERT INTO lines {_annotate_sql('exact_raw')}")
            con.execute(f"DELETE FROM agg WHERE {exact}")
            con.execute(f"INSERT INTO agg {_aggregate_sql('f.' + exact)}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE runs AS {_RUNS_SQL}")
        runs = con.sql(_RUNS_OUT_SQL).df()
        quarantine = _quarantine(con, layout)
        curves = _curves(con, files)
    finally:
        con.close()
    return LogParse(curves=curves, quarantine=quarantine, runs=runs, lines=int(runs["lines"].sum()))


# -- discovery ---------------------------------------------------------------------


def _discover(root: Path) -> tuple[list[_LogFile], list[tuple[str, str]]]:
    """Log files in layout (sorted by path) and ``(file, reason)`` for those out of it."""
    files: list[_LogFile] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(p for p in root.rglob(f"*{LOG_SUFFIX}") if p.is_file()):
        parts = path.relative_to(root).parts
        name = "/".join(parts)
        if len(parts) != 3:
            problems.append((name, f"not in the <setting>/<arch code>/<run>{LOG_SUFFIX} layout"))
            continue
        setting, code, filename = parts
        try:
            log_setting(setting)
        except KeyError as err:
            problems.append((name, f"folder is not a known setting: {err.args[0]}"))
            continue
        try:
            canonical = Arch.from_code(code).code
        except ArchError as err:
            problems.append((name, f"folder is not an architecture code: {err}"))
            continue
        if canonical != code:
            problems.append((name, f"folder is not a canonical architecture code: {canonical}"))
            continue
        run = filename[: -len(LOG_SUFFIX)]
        files.append(_LogFile(len(files), path, name, setting, code, run))
    return files, problems


def _files_frame(files: Sequence[_LogFile]) -> pd.DataFrame:
    """One row per log file: names and the metrics its setting requires (``need``)."""
    return pd.DataFrame(
        {
            "fid": pd.Series([f.fid for f in files], dtype="int64"),
            "file": pd.Series([f.name for f in files], dtype="str"),
            "setting": pd.Series([f.setting for f in files], dtype="str"),
            "arch": pd.Series([f.arch for f in files], dtype="str"),
            "run": pd.Series([f.run for f in files], dtype="str"),
            "need": pd.Series([f.need for f in files], dtype="int64"),
        }
    )


# -- reading -----------------------------------------------------------------------


def _quoted(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


def _batches(files: Sequence[_LogFile]) -> Iterator[list[_LogFile]]:
    batch: list[_LogFile] = []
    size = 0
    for f in files:
        batch.append(f)
        size += f.path.stat().st_size
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _tagged(f: _LogFile, data: bytes) -> bytes:
    """The file's lines, each opening ``{"_f":<fid>,"_n":<need>,`` (file id, metrics needed).

    A line the tag cannot reach (not starting with ``{``) or breaks (``{}``) is not
    counted for its file, which therefore goes to the line-by-line pass; that pass
    reads the original bytes.
    """
    tag = b'{"_f":%d,"_n":%d,' % (f.fid, f.need)
    body = data.replace(b"\n{", b"\n" + tag)
    if body.startswith(b"{"):
        body = tag + body[1:]
    return body if not body or body.endswith(b"\n") else body + b"\n"


def _load(batch: Sequence[_LogFile]) -> tuple[bytes, list[int]]:
    """The tagged bytes of a batch of files and each file's physical line count."""
    parts, physical = [], []
    for f in batch:
        data = f.path.read_bytes()
        physical.append(data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1))
        parts.append(_tagged(f, data))
    return b"".join(parts), physical


def _bulk_read(con: duckdb.DuckDBPyConnection, files: Sequence[_LogFile]) -> list[int]:
    """Append the tagged lines of ``files`` to ``lines``; returns each file's physical lines.

    One thread reads and tags the next batch while DuckDB parses the current one.
    """
    columns = {"_f": "BIGINT", "_n": "BIGINT", **_COLUMNS}
    source = (
        "(SELECT _f AS fid, _n AS need, NULL::BIGINT AS line, NULL::VARCHAR AS pre, "
        "* EXCLUDE (_f, _n) FROM batch_json WHERE _f IS NOT NULL)"
    )
    physical: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        loads = (pool.submit(_load, batch) for batch in _batches(files))  # submitted lazily
        ahead = next(loads, None)
        while ahead is not None:
            data, counts = ahead.result()
            ahead = next(loads, None)  # the next batch loads while this one is parsed
            physical += counts
            reader = con.read_json(  # keep the relation alive: it owns the in-memory buffer
                io.BytesIO(data), format="newline_delimited", columns=columns, ignore_errors=True
            )
            reader.create_view("batch_json", replace=True)
            con.execute(f"INSERT INTO lines {_annotate_sql(source)}")
            del reader
    return physical


def _exact_read(con: duckdb.DuckDBPyConnection, files: Sequence[_LogFile]) -> None:
    """Create ``exact_raw``: the numbered lines of ``files``; ``pre`` says why one is not JSON."""
    con.register("exact_files_df", pd.DataFrame({"fid": [f.fid for f in files]}, dtype="int64"))
    con.execute("CREATE OR REPLACE TEMP TABLE exact_files AS SELECT * FROM exact_files_df")
    fids, numbers, texts, pres, open_ends = [], [], [], [], []
    for f in files:
        data = f.path.read_bytes()
        chunks = data.split(b"\n")
        for number, chunk in enumerate(chunks, start=1):
            if not chunk.strip():
                continue
            fids.append(f.fid)
            numbers.append(number)
            open_ends.append(number == len(chunks))  # the file ended without a newline
            try:
                texts.append(chunk.decode("utf-8"))
                pres.append(None)
            except UnicodeDecodeError as err:
                texts.append("")
                pres.append(f"not valid UTF-8: byte {err.start + 1} of the line")
    con.register(
        "exact_text",
        pa.table(
            {
                "fid": pa.array(fids, pa.int64()),
                "line": pa.array(numbers, pa.int64()),
                "text": pa.array(texts, pa.string()),
                "pre": pa.array(pres, pa.string()),
                "open_end": pa.array(open_ends, pa.bool_()),
            }
        ),
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE exact_lines AS SELECT *, "
        "pre IS NULL AND json_valid(text) AS valid FROM exact_text"
    )
    con.unregister("exact_text")
    bad = con.execute(
        "SELECT fid, line, text, open_end FROM exact_lines WHERE pre IS NULL AND NOT valid"
    ).fetchall()
    reasons = pd.DataFrame(
        [(fid, line, _json_problem(text, open_end)) for fid, line, text, open_end in bad],
        columns=["fid", "line", "reason"],
    ).astype({"fid": "int64", "line": "int64", "reason": "str"})
    con.register("json_reasons", reasons)
    struct = json.dumps(_COLUMNS).replace("'", "''")
    names = ", ".join(f"s.{_quoted(k)}" for k in _COLUMNS)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE exact_raw AS
        SELECT fid, need, line, pre, {names} FROM (
            SELECT e.fid, e.line,
                coalesce(e.pre, j.reason, CASE WHEN NOT starts_with(ltrim(e.text), '{{')
                                               THEN 'not a JSON object' END) AS pre,
                CASE WHEN e.valid AND starts_with(ltrim(e.text), '{{')
                     THEN json_transform(e.text, '{struct}') END AS s
            FROM exact_lines e LEFT JOIN json_reasons j USING (fid, line)
        ) JOIN files USING (fid)
        """
    )
    con.unregister("json_reasons")


def _json_problem(text: str, open_end: bool) -> str:
    """Why a line is not JSON, in the words of Python's decoder; says so if the file was cut."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        detail = f"{err.msg} at column {err.colno}"
    else:
        detail = "rejected by DuckDB's JSON reader"
    if open_end:
        return f"truncated last line: no newline at the end of the file; {detail}"
    return f"malformed JSON: {detail}"


# -- line and run rules ------------------------------------------------------------


def _metric_sql() -> dict[str, str]:
    """Each benchmark metric as a percentage (``auto`` keys still raw), first known key wins."""
    keys: dict[str, list[str]] = {m: [] for m in METRICS}
    for mk in METRIC_KEYS:
        expr = _quoted(mk.key)
        keys[mk.metric].append(f"round(100 * {expr}, 10)" if mk.scale == "fraction" else expr)
    return {m: f"coalesce({', '.join(exprs)})" for m, exprs in keys.items()}


_LINES_SCHEMA = (
    "fid BIGINT, line BIGINT, kind VARCHAR, epoch BIGINT, iter BIGINT, "
    "lr DOUBLE, loss DOUBLE, config VARCHAR, "
    + ", ".join(f"{_quoted(m)} DOUBLE" for m in METRICS)
    + ", problem VARCHAR"
)


def _annotate_sql(source: str) -> str:
    """SELECT over ``source`` (raw line columns + fid, need, line, pre) in ``lines`` form.

    Adds the line's ``kind`` (train/val/meta; mode-less lines are inferred), the
    benchmark metrics (``auto`` keys still raw) and ``problem`` (NULL for a good line).
    """
    metric_keys = " OR ".join(f"r.{_quoted(mk.key)} IS NOT NULL" for mk in METRIC_KEYS)
    metrics = ", ".join(f"{expr} AS {_quoted(m)}" for m, expr in _metric_sql().items())
    nonfinite = " ".join(
        f"WHEN NOT isfinite(r.{_quoted(k)}) THEN '\"{k}\" is ' || r.{_quoted(k)}" for k in _NUMERIC
    )
    missing = ", ".join(
        f"CASE WHEN need & {1 << i} <> 0 AND {_quoted(m)} IS NULL THEN '{m}' END"
        for i, m in enumerate(METRICS)
    )
    out_of_range = " ".join(
        f"WHEN NOT {_quoted(m)} BETWEEN 0 AND 100 THEN "
        f"'metric outside [0, 100]: {m} = ' || {_quoted(m)} || ' (as a percentage)'"
        for m in METRICS
    )
    return f"""
        WITH n AS (
            SELECT r.fid, r.need, r.line, r.pre,
                CASE WHEN r.mode IS NOT NULL THEN r.mode
                     WHEN {metric_keys} THEN 'val'
                     WHEN r.loss IS NOT NULL THEN 'train'
                     ELSE 'meta' END AS kind,
                coalesce(r.epoch, r.step) AS epoch, r.iter, r.lr, r.loss, r.config,
                {metrics},
                CASE {nonfinite} END AS nonfinite
            FROM {source} r
        )
        SELECT fid, line, kind, epoch, iter, lr, loss, config,
            {", ".join(_quoted(m) for m in METRICS)},
            CASE
                WHEN pre IS NOT NULL THEN pre
                WHEN kind NOT IN ('train', 'val', 'meta') THEN 'unknown mode: ' || to_json(kind)
                WHEN nonfinite IS NOT NULL THEN 'not a finite number: ' || nonfinite
                WHEN kind = 'meta' THEN NULL
                WHEN epoch IS NULL THEN 'missing or non-integer "epoch"'
                WHEN epoch < 1 THEN 'epoch below 1: ' || epoch
                WHEN kind = 'train' AND loss IS NULL THEN 'training line without a numeric "loss"'
                WHEN kind = 'val' AND concat_ws(', ', {missing}) <> ''
                    THEN 'evaluation line without a metric: ' || concat_ws(', ', {missing})
                {out_of_range}
            END AS problem
        FROM n
    """


def _aggregate_sql(where: str) -> str:
    """Per-file aggregates of the ``lines`` of the files selected by ``where`` (on ``f``)."""
    return rf"""
        SELECT f.fid, f.file, f.setting, f.arch, f.run, p.physical_lines,
            count(l.fid) AS lines,
            count(l.problem) AS bad_lines,
            count(*) FILTER (l.problem IS NULL AND l.kind = 'val') AS evaluations,
            max(l.epoch) FILTER (l.problem IS NULL AND l.kind = 'val') AS last_epoch,
            max(l.line) AS last_line,
            max(TRY_CAST(nullif(regexp_extract(l.config, 'max_epochs\s*=\s*(\d+)', 1), '')
                AS BIGINT)) FILTER (l.problem IS NULL AND l.kind = 'meta') AS declared_epochs,
            max(greatest(l.mIoU, l.mAcc, l.aAcc))
                FILTER (l.problem IS NULL AND l.kind = 'val') AS seg_max
        FROM files f JOIN physical p USING (fid) LEFT JOIN lines l USING (fid)
        WHERE {where}
        GROUP BY ALL
    """


_RUNS_SQL = """
    WITH expect AS (
        SELECT *, coalesce(declared_epochs, max(last_epoch) OVER (PARTITION BY setting))
            AS expected_epochs
        FROM agg
    ), judged AS (
        SELECT *, CASE
            WHEN evaluations = 0 THEN 'stopped early: no evaluation line'
            WHEN last_epoch < expected_epochs THEN
                'stopped early: last evaluation at epoch ' || last_epoch || ' of '
                || expected_epochs || CASE WHEN declared_epochs IS NULL
                        THEN ' (the furthest any run of ' || setting || ' evaluated)'
                        ELSE ' (max_epochs of its config)' END
            END AS run_problem
        FROM expect
    )
    SELECT *,
        CASE WHEN run_problem IS NULL THEN
            first_value(run) OVER (PARTITION BY setting, arch, run_problem IS NULL
                                   ORDER BY run DESC)
        END AS kept_run
    FROM judged
"""
"""One row per run file from ``agg``: the expected epoch, a run-level problem, the kept run."""

_SUSPECT_SQL = """
    SELECT fid FROM runs
    WHERE bad_lines > 0 OR run_problem IS NOT NULL OR lines <> physical_lines
    ORDER BY fid
"""

_RUNS_OUT_SQL = """
    SELECT file, setting, arch, run, lines, bad_lines, evaluations, last_epoch,
        expected_epochs, CASE WHEN run = kept_run THEN 'accepted' ELSE 'quarantined' END AS status
    FROM runs ORDER BY fid
"""


def _quarantine(con: duckdb.DuckDBPyConnection, layout: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Layout problems, then per file its bad lines and its run-level problem."""
    rows = con.execute(
        """
        SELECT file, line, reason FROM (
            SELECT fid, line, problem AS reason, 0 AS k FROM lines WHERE problem IS NOT NULL
            UNION ALL
            SELECT fid, last_line, run_problem, 1 FROM runs WHERE run_problem IS NOT NULL
            UNION ALL
            SELECT fid, NULL, 'duplicate run: ' || kept_run || '.log.json is kept for this '
                || 'architecture and setting (the run name that sorts last)', 1
            FROM runs WHERE run_problem IS NULL AND run <> kept_run
        ) q JOIN files USING (fid)
        ORDER BY fid, k, line
        """
    ).df()
    layout_rows = pd.DataFrame(
        {"file": [f for f, _ in layout], "line": pd.NA, "reason": [r for _, r in layout]}
    )
    out = pd.concat([layout_rows, rows], ignore_index=True) if len(layout_rows) else rows
    return out.astype({"file": "str", "line": "Int64", "reason": "str"})[list(QUARANTINE_COLUMNS)]


def _curves(con: duckdb.DuckDBPyConnection, files: Sequence[_LogFile]) -> pd.DataFrame:
    """The accepted runs' good lines, one row per (line, series), segmentation fractions scaled.

    Rows follow the files (sorted by path), then epoch, iteration and training before
    evaluation (then the order read), then :data:`CURVE_SERIES`; ``arch``, ``setting``,
    ``run`` and ``metric`` are categoricals (a full drop has tens of millions of points).
    """
    seg = {m: f"CASE WHEN r.seg_max <= 1 THEN round(100 * l.{m}, 10) ELSE l.{m} END" for m in _SEG}
    series = [
        "CASE WHEN l.kind = 'train' THEN l.loss END",
        "CASE WHEN l.kind = 'train' THEN l.lr END",
        *(seg.get(m, f"l.{_quoted(m)}") for m in METRICS),
    ]
    wide = con.sql(
        f"SELECT l.fid, l.epoch, l.iter, {', '.join(f'{e} AS s{k}' for k, e in enumerate(series))} "
        "FROM lines l JOIN runs r USING (fid) "
        "WHERE r.run = r.kept_run AND l.problem IS NULL AND l.kind IN ('train', 'val') "
        "ORDER BY l.fid, l.epoch, l.iter NULLS FIRST, l.kind = 'val', l.rowid"
    ).to_arrow_table()
    # good lines hold no NaN, so NaN here is a series the line does not have
    values = np.column_stack(
        [wide[f"s{k}"].to_numpy(zero_copy_only=False) for k in range(len(series))]
    ).ravel()
    keep = ~np.isnan(values)
    row = np.repeat(np.arange(wide.num_rows), len(series))[keep]
    fid = wide["fid"].to_numpy()[row]
    iters = wide["iter"].fill_null(0).to_numpy()[row]
    no_iter = wide["iter"].is_null().to_numpy(zero_copy_only=False)[row]
    out = {
        col: _categorical([getattr(f, col) for f in files], fid)
        for col in ("arch", "setting", "run")
    }
    out["epoch"] = wide["epoch"].to_numpy()[row]
    out["iter"] = pd.arrays.IntegerArray(iters, no_iter)
    out["metric"] = pd.Categorical.from_codes(
        np.tile(np.arange(len(series)), wide.num_rows)[keep], categories=CURVE_SERIES
    )
    out["value"] = values[keep]
    return pd.DataFrame(out, columns=list(CURVES_COLUMNS))


def _categorical(per_file: Sequence[str], fid: np.ndarray) -> pd.Categorical:
    """A categorical with one entry per curve row, from one value per file and the row's file id."""
    categories, codes = np.unique(np.asarray(per_file, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(codes[fid], categories=pd.Index(categories, dtype="str"))


# -- results -----------------------------------------------------------------------

DERIVED_COLUMNS = (
    "code",
    "setting",
    "run",
    "metric",
    "evaluations",
    "final_epoch",
    "final_value",
    "best_epoch",
    "best_value",
)
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
    """Final and best evaluation of each (run, metric) in ``curves`` (:data:`DERIVED_COLUMNS`).

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


def reconcile(
    derived: pd.DataFrame,
    published: Mapping[str, pd.DataFrame],
    tolerance: float = RECONCILE_TOLERANCE,
) -> pd.DataFrame:
    """Compare final log values with published ones (``log_reconciliation`` table).

    ``published`` maps a setting to its valid records (``code`` + metric columns, as
    :func:`nasmr.ingest.load_setting` gives them). ``agree`` holds when
    ``|log - published| <= tolerance``; a log value without a published one never agrees.
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
    out["agree"] = out["diff"].abs().le(tolerance)
    return out[list(RECONCILIATION_COLUMNS)].reset_index(drop=True)
