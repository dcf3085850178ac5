"""The warehouse: one Parquet file per table plus a DuckDB file with the tables and wide views.

:func:`write_warehouse` builds everything in a staging folder beside the target
and swaps it into place, so a crash never leaves a half-written warehouse;
:func:`connect` opens it for queries; :func:`ingest` runs the whole ingestion.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nasmr import clock, paths
from nasmr.build_lock import remove_unfinished
from nasmr.checksums import content_hash
from nasmr.complexity import Complexity, ComplexityMethod
from nasmr.ingest import (
    SearchListLoad,
    SettingLoad,
    build_tables,
    complexity_table,
    load_architectures,
    load_setting,
    published_complexity,
    recompute_complexity,
    settle_complexity,
)
from nasmr.paths import WAREHOUSE_NAME
from nasmr.rawdrop import MISSING, UNREADABLE, file_version, trainval_path
from nasmr.table_docs import (
    COLUMN_DOCS,
    RESULTS_VIEW_COLUMN_DOCS,
    RESULTS_VIEW_DOC,
    TABLE_DOCS,
    UNEVALUATED_DOC,
    metric_doc,
)
from schemas.settings import MR_SETTINGS, NB201, PREDICTOR_SETTINGS, SETTINGS, get_setting

PARQUET_DIR = "parquet"
PROC_LOCKS = Path("/proc/locks")
"""Linux's table of file locks, where DuckDB's write lock on a database file shows."""


class WarehouseError(Exception):
    """The warehouse cannot be rebuilt where asked; the message says why and what to do."""


@dataclass(frozen=True, eq=False)
class IngestResult:
    """What :func:`ingest` or :func:`assemble` built: the tables and the warehouse file."""

    tables: dict[str, pd.DataFrame]
    warehouse: Path

    @property
    def report(self) -> pd.DataFrame:
        """Per setting file: status, records read, valid and quarantined."""
        return self.tables["ingest_report"]

    @property
    def failed(self) -> list[str]:
        """Settings whose file exists but could not be read."""
        report = self.report
        return report.loc[report["status"] == "failed", "setting"].tolist()

    @property
    def unevaluated(self) -> list[str]:
        """Search-list codes without results in any setting."""
        archs = self.tables["architectures"]
        return archs.loc[~archs["evaluated"], "code"].tolist()


def results_view(setting: str) -> str:
    """Name of the wide view of one MR setting (``seg-4x`` -> ``results_seg_4x``)."""
    return "results_" + setting.replace("-", "_")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a table as Parquet; identical frames give identical bytes."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")


def write_warehouse(
    tables: Mapping[str, pd.DataFrame], out_dir: Path, db_name: str = WAREHOUSE_NAME
) -> Path:
    """Write ``out_dir/parquet/<table>.parquet`` and ``out_dir/<db_name>``; return the DuckDB path.

    Both are built in a staging folder inside ``out_dir``, then moved into place
    with ``os.replace`` (Parquet folder first, then the DuckDB file). A failure
    before the moves leaves the previous warehouse untouched. A published release
    (``out_dir`` or a folder above it) is refused. The old file's
    write-ahead log (left by a read-write session that never closed) goes with the
    old file; a process still holding the old file open for writing is an error.
    """
    missing = set(TABLE_DOCS) - set(tables)
    if missing:
        raise ValueError(f"tables missing from the warehouse: {', '.join(sorted(missing))}")
    out_dir = paths.outside_releases(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = paths.unfinished_folder(out_dir, "staging")
    try:
        parquet_dir = staging / PARQUET_DIR
        parquet_dir.mkdir()
        for name in sorted(tables):
            write_parquet(tables[name], parquet_dir / f"{name}.parquet")
        database = staging / db_name
        with duckdb.connect(
            str(database), config={"storage_compatibility_version": STORAGE_FORMAT}
        ) as con:
            for name in sorted(tables):
                file = (parquet_dir / f"{name}.parquet").as_posix()
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet(?)', [file])
                if name in TABLE_DOCS:
                    con.execute(f"COMMENT ON TABLE \"{name}\" IS '{sql_quote(TABLE_DOCS[name])}'")
                for column, doc in COLUMN_DOCS.get(name, {}).items():
                    con.execute(f'COMMENT ON COLUMN "{name}"."{column}" IS \'{sql_quote(doc)}\'')
            for sql in view_statements():
                con.execute(sql)
        target = out_dir / db_name
        holder = writer_pid(target)
        if holder is not None:
            raise WarehouseError(
                f"{target} is open for writing by process {holder}: close that session, then "
                "rebuild (replacing the file under a writer would lose its writes)"
            )
        replace_dir(parquet_dir, out_dir / PARQUET_DIR)
        wal = wal_path(target)
        if wal.exists():
            os.replace(wal, staging / wal.name)
        os.replace(database, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def view_statements() -> list[str]:
    """SQL of the views, each with its descriptions as comments: one wide results view per
    MR setting, and ``unevaluated``."""
    statements = []
    for setting in MR_SETTINGS:
        view, metrics = results_view(setting), get_setting(setting).metrics
        pivots = ",\n  ".join(
            f"max(value) FILTER (WHERE metric = '{m}') AS \"{m}\"" for m in metrics
        )
        statements.append(
            f"CREATE VIEW {view} AS\n"
            f"WITH wide AS (\n  SELECT code,\n  {pivots}\n"
            f"  FROM results WHERE setting = '{setting}' GROUP BY code\n)\n"
            "SELECT wide.*, c.published_macs / 1e9 AS flops, c.published_params / 1e6 AS params\n"
            "FROM wide LEFT JOIN complexity AS c USING (code) ORDER BY code"
        )
        docs = RESULTS_VIEW_COLUMN_DOCS | {m: metric_doc(m) for m in metrics}
        statements += _comments(view, RESULTS_VIEW_DOC, docs)
    statements.append(
        "CREATE VIEW unevaluated AS SELECT code, search_index FROM architectures "
        "WHERE NOT evaluated ORDER BY search_index"
    )
    columns = {c: COLUMN_DOCS["architectures"][c] for c in ("code", "search_index")}
    statements += _comments("unevaluated", UNEVALUATED_DOC, columns)
    return statements


def _comments(view: str, doc: str, columns: dict[str, str]) -> list[str]:
    """COMMENT statements giving a view and its columns their descriptions."""
    return [f"COMMENT ON VIEW {view} IS '{sql_quote(doc)}'"] + [
        f"COMMENT ON COLUMN {view}.\"{column}\" IS '{sql_quote(text)}'"
        for column, text in columns.items()
    ]


DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""

STORAGE_FORMAT = "v1.0.0"
"""DuckDB storage version of the warehouse file: every DuckDB since 1.0 reads it, where the
2.x default would shut out 1.x readers (and the DuckDB 1.x that pyproject.toml allows)."""

BUILT_IN_NAMES = frozenset({"memory", "system", "temp", "main", "information_schema", "pg_catalog"})
"""Catalog and schema names every DuckDB connection has: no name for an attached file."""


def connect(path: Path | None = None, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (default ``nasmr.paths.warehouse_file()``) for queries.

    A read-only connection attaches the file to a fresh in-memory database, named
    as the file is: ``duckdb.connect(path)`` reuses any database of that path still
    open in the process, so after a rebuild replaced the file, a notebook that kept
    an old connection would go on reading the old data.
    """
    path = Path(path) if path is not None else paths.warehouse_file()
    if path.is_dir():
        raise FileNotFoundError(
            f"{path} is a folder: pass the DuckDB file, e.g. {path / WAREHOUSE_NAME}"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"no warehouse at {path}: run `nasmr ingest` (or `nasmr build`) first, "
            "or point --warehouse / NASMR_WAREHOUSE at one"
        )
    with path.open("rb") as file:
        if file.read(12)[8:] != DUCKDB_MAGIC:  # DuckDB would say 'Cannot launch in-memory ...'
            raise FileNotFoundError(f"{path} is not a DuckDB file (as {WAREHOUSE_NAME} is)")
    con = _attach_read_only(path) if read_only else duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")  # it prints to stdout, into piped output
    return con


THIS_DATABASE = "NOT internal AND schema_name = 'main' AND database_name = current_database()"
"""SQL filter of DuckDB's catalog functions: the warehouse's own tables, not another schema's."""


def stored_descriptions(path: Path) -> dict[str, str]:
    """The descriptions a warehouse file carries as comments, by ``table`` or ``table.column``
    (views and their columns included)."""
    with connect(path) as con:
        rows = con.execute(
            f"SELECT table_name, comment FROM duckdb_tables() WHERE {THIS_DATABASE} "
            "AND comment IS NOT NULL UNION ALL "
            f"SELECT view_name, comment FROM duckdb_views() WHERE {THIS_DATABASE} "
            "AND comment IS NOT NULL UNION ALL "
            "SELECT table_name || '.' || column_name, comment FROM duckdb_columns() "
            f"WHERE {THIS_DATABASE} AND comment IS NOT NULL"
        ).fetchall()
    return dict(rows)


def _attach_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A new in-memory database with ``path`` attached read-only and in use.

    The catalog is named as ``duckdb.connect`` names a file: the first non-empty part of
    the file name between dots (``nasmr.duckdb`` and ``.nasmr.duckdb``: ``nasmr``).
    """
    con = duckdb.connect()
    name = next((part for part in path.name.split(".") if part), "warehouse")
    if name.lower() in BUILT_IN_NAMES:  # taken, or shadowing the tables by a schema's name
        name += "_db"
    con.execute(f"ATTACH '{sql_quote(str(path))}' AS {sql_identifier(name)} (READ_ONLY)")
    con.execute(f"USE {sql_identifier(name)}")
    return con


def storage_format(path: Path) -> str | None:
    """The DuckDB storage format a database file was written in (``v1.0.0``), or None where
    this DuckDB does not report it (before 2.0, which cannot open later formats anyway)."""
    with connect(path) as con:
        (tags,) = con.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()  # type: ignore[misc]
    written = (tags or {}).get("storage_version")
    return written.removesuffix("+") if written else None


def sql_identifier(name: str) -> str:
    """``name`` quoted as an SQL identifier (names may hold ``"``, ``-`` and ``/``)."""
    return '"' + name.replace('"', '""') + '"'


def query_result(
    con: duckdb.DuckDBPyConnection,
    query: str,
    parameters: Sequence[object] | Mapping[str, object] = (),
) -> duckdb.DuckDBPyConnection:
    """``query`` run, its last statement's result ready to fetch.

    ``parameters`` fill ``?`` (a sequence) or ``$name`` (a mapping). DuckDB returns no
    result at all for a query without statements (empty, or only comments); that is
    refused with a ``ValueError`` rather than printed as nothing.
    """
    if isinstance(parameters, str | bytes):  # list() would make one parameter per character
        raise TypeError(f"SQL parameters are a list or a dict, not {type(parameters).__name__}")
    values = dict(parameters) if isinstance(parameters, Mapping) else list(parameters)
    result = con.execute(query, values)
    if result is None:
        raise ValueError(f"no SQL statement in {query!r}")
    return result


def query_frame(
    con: duckdb.DuckDBPyConnection,
    query: str,
    parameters: Sequence[object] | Mapping[str, object] = (),
) -> pd.DataFrame:
    """The result of ``query`` (of its last statement) as a DataFrame (see :func:`query_result`)."""
    return query_result(con, query, parameters).df()


def ingest(
    raw_dir: Path,
    out_dir: Path,
    method: ComplexityMethod = "analytic",
    ingested_at: datetime | None = None,
    db_name: str = WAREHOUSE_NAME,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Validate the whole drop, recompute complexity and (re)build the warehouse in ``out_dir``.

    ``workers`` and ``progress(done, total)`` are passed to the module complexity method.
    A published release as ``out_dir`` is refused before any work.
    """
    paths.outside_releases(out_dir)
    search_list = load_architectures(raw_dir)
    loads = [load_setting(raw_dir, setting) for setting in SETTINGS]
    codes = search_list.architectures["code"].tolist()
    recomputed = recompute_complexity(codes, method, workers, progress)
    return assemble(search_list, loads, recomputed, method, out_dir, ingested_at, db_name)


def assemble(
    search_list: SearchListLoad,
    loads: Sequence[SettingLoad],
    recomputed: Mapping[str, Complexity],
    method: str,
    out_dir: Path,
    ingested_at: datetime | None = None,
    db_name: str = WAREHOUSE_NAME,
) -> IngestResult:
    """Build the tables from loaded inputs and recomputed counts; write the warehouse.

    A record whose flops or params other settings contradict and the recomputed count
    does not confirm is quarantined (:func:`~nasmr.ingest.settle_complexity`).
    """
    loads = settle_complexity(loads, recomputed)
    complexity = complexity_table(published_complexity(loads), recomputed, method)
    tables = build_tables(search_list, loads, complexity, ingested_at or clock.now())
    return IngestResult(tables, write_warehouse(tables, out_dir, db_name))


def compare_inputs(build_dir: Path, raw_dir: Path) -> pd.DataFrame:
    """Every input file the build in ``build_dir`` recorded (its ``sources`` table) and every
    setting's file in the drop, with ``problem``: None where the drop still holds what the
    build was made from; else gone, changed, or a file the build never ingested. Columns
    ``path`` (in the drop) and ``problem``."""
    recorded = pd.read_parquet(build_dir / PARQUET_DIR / "sources.parquet")
    rows: list[tuple[str, str | None]] = []
    for path, sha256 in zip(recorded["path"], recorded["sha256"], strict=True):
        version = file_version(raw_dir / path)
        if version == MISSING:
            rows.append((path, "no longer exists"))
        elif version == UNREADABLE:
            rows.append((path, "can no longer be read"))
        elif version != sha256:
            rows.append((path, "changed since it was ingested"))
        else:
            rows.append((path, None))
    known = set(recorded["path"])
    for setting in SETTINGS:
        path = trainval_path(raw_dir, setting).relative_to(raw_dir).as_posix()
        if path not in known and file_version(raw_dir / path) not in (MISSING, UNREADABLE):
            problem = (
                f"is in the drop but not in the build (its {setting} results were not ingested)"
            )
            rows.append((path, problem))
    return pd.DataFrame(rows, columns=["path", "problem"])


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A new, empty folder for a writer of all of ``target``, put in its place when the block
    ends: nothing of an earlier run survives beside the new outputs, and a writer that fails
    or is killed leaves the last complete ones (its unfinished folder goes once its process
    has ended, at the next such writer or exclusive lock)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_unfinished(target.parent)
    new = paths.unfinished_folder(target.parent, f"{target.name}-new")
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    replace_dir(new, target)


def replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is renamed aside first, then deleted."""
    old = None
    if target.exists():
        old = paths.unfinished_folder(target.parent, f"{target.name}-old")
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


def wal_path(database: Path) -> Path:
    """The write-ahead log DuckDB keeps beside ``database`` while a writer has changes."""
    return database.with_name(database.name + ".wal")


def writer_pid(database: Path) -> int | None:
    """The process holding DuckDB's write lock on ``database``; None when none does (or
    the platform has no ``/proc/locks``). Reads the lock table rather than opening the file:
    closing any descriptor of a file drops this process's own locks on it."""
    try:
        stat = database.stat()
        table = PROC_LOCKS.read_text()
    except FileNotFoundError:
        return None
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        # "1: POSIX  ADVISORY  WRITE 4214 fe:00:2156684 0 EOF"; a waiter's line has "->"
        fields = [f for f in line.split() if f != "->"]
        if len(fields) >= 6 and fields[3] == "WRITE" and fields[5] == inode:
            return int(fields[4])
    return None


def sql_quote(text: str) -> str:
    """``text`` for inside a single-quoted SQL string literal (quotes doubled)."""
    return text.replace("'", "''")


def _model_inputs() -> dict[str, str]:
    """The query of each setting's rows as models read them (:func:`setting_frames`)."""
    queries = {setting: f"SELECT * FROM {results_view(setting)}" for setting in MR_SETTINGS}
    queries[NB201] = 'SELECT ops, "Acc", "Flops", "Params" FROM nb201_results ORDER BY record_index'
    return queries


def warehouse_version(path: Path | None = None) -> str:
    """The warehouse's data version: :func:`~nasmr.checksums.content_hash` of its input
    files and of what models read (each setting's rows, as :func:`setting_frames` reads
    them, as the sha256 of their sorted text), so that a re-ingest of the same inputs giving
    models other rows (another nasmr's rules) gives another version, and models made before
    it count as stale; other columns (how complexity was counted) leave it as it is."""
    with connect(path) as con:
        entries = con.execute("SELECT path, sha256 FROM sources").fetchall()
        for setting, query in _model_inputs().items():
            (digest,) = con.execute(
                "SELECT sha256(coalesce(string_agg(t::VARCHAR, chr(10) "
                f"ORDER BY t::VARCHAR), '')) FROM ({query}) t"
            ).fetchone()
            entries.append((f"model input:{setting}", digest))
    return content_hash(entries)


def setting_frames(
    path: Path | None = None, settings: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Each setting's results (of ``settings``; None: all) as one wide frame, for predictors:
    MR settings as ``code, <metrics>, flops, params``; nas-bench-201 as ``ops, Acc, Flops,
    Params`` (settings without results are left out)."""
    queries = {s: q for s, q in _model_inputs().items() if settings is None or s in settings}
    with connect(path) as con:
        frames = {setting: con.execute(query).df() for setting, query in queries.items()}
    return {setting: frame for setting, frame in frames.items() if len(frame)}


NO_PREDICTOR = (
    "its results are in {warehouse}, but it is no predictor setting (schemas/settings.py "
    "marks it published=False; set published=True there to train it)"
)
"""Why predictor training leaves out a setting of :func:`unpredicted_settings`."""


def unpredicted_settings(path: Path | None = None) -> list[str]:
    """Settings with results in the warehouse at ``path`` that no predictor is trained for
    (3ddet, once a drop holds its results): training leaves them out and says so, with
    :data:`NO_PREDICTOR`. Only their results are read."""
    return list(setting_frames(path, [s for s in SETTINGS if s not in PREDICTOR_SETTINGS]))
