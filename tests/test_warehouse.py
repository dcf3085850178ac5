"""The warehouse: Parquet + DuckDB contents, deterministic bytes, atomic rebuilds, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import scipy.stats
from click.testing import CliRunner

from nasmr.build_lock import LOCK_NAME
from nasmr.checksums import sha256_file
from nasmr.cli import main
from nasmr.rawdrop import load_pickle, trainval_path
from nasmr.space import sample
from nasmr.table_docs import (
    COLUMN_DOCS,
    RESULTS_VIEW_COLUMN_DOCS,
    RESULTS_VIEW_DOC,
    TABLE_DOCS,
    UNEVALUATED_DOC,
)
from nasmr.warehouse import (
    PARQUET_DIR,
    PROC_LOCKS,
    STORAGE_FORMAT,
    IngestResult,
    WarehouseError,
    connect,
    ingest,
    results_view,
    storage_format,
    wal_path,
    write_warehouse,
)
from schemas.settings import MR_SETTINGS, get_setting
from tests.drops import (
    CRASHED_WRITER,
    EVALUATED,
    UNEVALUATED,
    WHEN,
    clean_files,
    exact,
    mr_record,
    small_drop,
    write_drop,
)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_drop(tmp_path_factory.mktemp("drop"), clean_files())


@pytest.fixture(scope="module")
def built(drop: Path, tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    return ingest(drop, tmp_path_factory.mktemp("out"), ingested_at=WHEN)


def _digests(out_dir: Path) -> dict[str, str]:
    files = [p for p in sorted(out_dir.rglob("*")) if p.is_file() and p.name != LOCK_NAME]
    return {p.name: sha256_file(p) for p in files}


LIVE_WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
"""
"""A read-write session that stays open until its standard input closes."""


def _opens_read_write(database: Path) -> bool:
    """Whether another process can open ``database`` for writing (no one holds its lock)."""
    code = "import sys, duckdb; duckdb.connect(sys.argv[1]).close()"
    return subprocess.run([sys.executable, "-c", code, str(database)]).returncode == 0


def test_parquet_round_trips_every_table(built: IngestResult) -> None:
    parquet = built.warehouse.parent / PARQUET_DIR
    assert sorted(p.stem for p in parquet.iterdir()) == sorted(TABLE_DOCS)
    for name, frame in built.tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(parquet / f"{name}.parquet"), frame, obj=name)


def test_duckdb_holds_tables_views_and_comments(built: IngestResult) -> None:
    with connect(built.warehouse) as con:
        for name, frame in built.tables.items():
            assert con.sql(f"SELECT count(*) FROM {name}").fetchall() == [(len(frame),)]
        comments = dict(con.sql("SELECT table_name, comment FROM duckdb_tables()").fetchall())
        assert comments == TABLE_DOCS
        columns = con.sql(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE table_name IN (SELECT table_name FROM duckdb_tables())"
        ).fetchall()
        documented = {(t, c): doc for t, cols in COLUMN_DOCS.items() for c, doc in cols.items()}
        assert {(t, c): doc for t, c, doc in columns} == documented
        seg = con.sql(f"SELECT * FROM {results_view('seg')}").df()
        assert list(seg.columns) == ["code", "mIoU", "mAcc", "aAcc", "flops", "params"]
        assert sorted(seg["code"]) == sorted(a.code for a in EVALUATED)
        row = seg.set_index("code").loc[EVALUATED[2].code]
        assert (row["mIoU"], row["mAcc"], row["aAcc"]) == (62.0, 72.0, 90.2)
        assert (row["flops"], row["params"]) == exact(EVALUATED[2])
        cls = con.sql(f"SELECT * FROM {results_view('cls-10c')}").df()
        assert list(cls.columns) == ["code", "top1", "top5", "flops", "params"]
        for setting in MR_SETTINGS:
            con.sql(f"SELECT * FROM {results_view(setting)}").fetchall()
        assert con.sql("SELECT count(*) FROM results_3ddet").fetchall() == [(0,)]
        assert con.sql("SELECT code FROM unevaluated").fetchall() == [(UNEVALUATED.code,)]
        # a SQL user finds the unit of a view's flops beside it, as for the tables' columns
        views = dict(
            con.sql("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()
        )
        assert views == {results_view(s): RESULTS_VIEW_DOC for s in MR_SETTINGS} | {
            "unevaluated": UNEVALUATED_DOC
        }
        described = con.sql(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE table_name IN (SELECT view_name FROM duckdb_views() WHERE NOT internal)"
        ).fetchall()
        view_columns = sum(len(get_setting(s).metrics) + 3 for s in MR_SETTINGS) + 2
        assert all(doc for _, _, doc in described) and len(described) == view_columns
        assert ("results_seg", "flops", RESULTS_VIEW_COLUMN_DOCS["flops"]) in described
        with pytest.raises(duckdb.Error):
            con.sql("DELETE FROM results")


@pytest.mark.skipif(
    int(duckdb.__version__.split(".")[0]) < 2, reason="DuckDB 1.x reports no storage format"
)
def test_the_warehouse_file_is_in_the_storage_format_of_duckdb_1(built: IngestResult) -> None:
    """DuckDB 2 writes files DuckDB 1.x cannot open unless told its storage format; releases
    ship the file to readers of either (and pyproject.toml allows duckdb 1.x). This checks
    the format the file declares; no DuckDB 1.x is installed to open it."""
    assert storage_format(built.warehouse) == STORAGE_FORMAT == "v1.0.0"


def test_identical_builds_give_identical_parquet(
    built: IngestResult, drop: Path, tmp_path: Path
) -> None:
    again = ingest(drop, tmp_path, ingested_at=WHEN)
    first, second = built.warehouse.parent / PARQUET_DIR, again.warehouse.parent / PARQUET_DIR
    assert _digests(first) == _digests(second)
    # where the drop lies is no part of the data: the reasons of its missing and broken
    # files (published in ingest_report and the datasheet) name them inside the drop
    elsewhere = shutil.copytree(drop, tmp_path / "elsewhere" / "drop")
    moved = ingest(elsewhere, tmp_path / "moved", ingested_at=WHEN)
    assert _digests(moved.warehouse.parent / PARQUET_DIR) == _digests(first)
    later = ingest(drop, tmp_path / "later", ingested_at=WHEN.replace(year=2025))
    changed = {
        name
        for name, digest in _digests(later.warehouse.parent / PARQUET_DIR).items()
        if digest != _digests(first)[name]
    }
    assert changed == {"sources.parquet"}


def test_failed_rebuild_leaves_the_previous_warehouse(
    built: IngestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "wh"
    write_warehouse(built.tables, out)
    before = _digests(out)
    changed = {**built.tables, "results": built.tables["results"].iloc[:0]}
    monkeypatch.setattr(
        "nasmr.warehouse.view_statements", lambda: ["CREATE VIEW broken AS SELECT * FROM nowhere"]
    )
    with pytest.raises(duckdb.CatalogException, match="nowhere"):
        write_warehouse(changed, out)
    assert _digests(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["nasmr.duckdb", PARQUET_DIR]

    monkeypatch.undo()
    write_warehouse(changed, out)
    assert sorted(p.name for p in out.iterdir()) == ["nasmr.duckdb", PARQUET_DIR]
    with connect(out / "nasmr.duckdb") as con:
        assert con.sql("SELECT count(*) FROM results").fetchall() == [(0,)]
    assert pd.read_parquet(out / PARQUET_DIR / "results.parquet").empty


def test_rebuild_drops_the_write_ahead_log_of_the_file_it_replaces(
    built: IngestResult, tmp_path: Path
) -> None:
    out = tmp_path / "wh"
    database = write_warehouse(built.tables, out)
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(database)], check=True)
    assert wal_path(database).is_file()
    write_warehouse(built.tables, out)
    with connect(database) as con:
        assert con.sql("SELECT count(*) FROM results WHERE value = -1").fetchall() == [(0,)]
    assert sorted(p.name for p in out.iterdir()) == ["nasmr.duckdb", PARQUET_DIR]


def test_a_connection_kept_open_does_not_hide_a_rebuild(
    built: IngestResult, tmp_path: Path
) -> None:
    """A notebook that keeps a connection (or a ``Benchmark``) open, then rebuilds and
    connects again, must read the new warehouse, not DuckDB's cached database of that path."""
    out = tmp_path / "wh"
    database = write_warehouse(built.tables, out)
    count = "SELECT count(*) FROM results"
    with connect(database) as old:
        before = old.sql(count).fetchall()
        write_warehouse({**built.tables, "results": built.tables["results"].iloc[:0]}, out)
        with connect(database) as new:
            assert new.sql(count).fetchall() == [(0,)]
            assert new.sql("SELECT current_database()").fetchall() == [("nasmr",)]
        assert old.sql(count).fetchall() == before != [(0,)]


@pytest.mark.parametrize(
    ("file", "catalog"),
    [
        (".nasmr.duckdb", "nasmr"),
        ("v1.2.duckdb", "v1"),
        ("memory.duckdb", "memory_db"),
        ("main.duckdb", "main_db"),
        ("information_schema.duckdb", "information_schema_db"),
    ],
)
def test_read_only_connections_open_any_file_name(
    built: IngestResult, tmp_path: Path, file: str, catalog: str
) -> None:
    """A hidden file (``NASMR_WAREHOUSE=~/.nasmr.duckdb``) or one named like a built-in
    catalog opens read-only, named as ``duckdb.connect`` names it where it can."""
    database = write_warehouse(built.tables, tmp_path / "wh")
    renamed = database.rename(tmp_path / file)
    with connect(renamed) as con:
        assert con.sql("SELECT current_database()").fetchall() == [(catalog,)]
        rows = len(built.tables["results"])
        assert con.sql("SELECT count(*) FROM results").fetchall() == [(rows,)]


def test_a_file_that_is_no_duckdb_database_is_named_as_such(tmp_path: Path) -> None:
    """DuckDB itself says 'Cannot launch in-memory database in read-only mode!'."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"manifest\.json is not a DuckDB file"):
        connect(manifest)


@pytest.mark.skipif(not PROC_LOCKS.is_file(), reason="writers are found in Linux's /proc/locks")
def test_rebuild_under_a_live_writer_is_refused(
    built: IngestResult, drop: Path, tmp_path: Path
) -> None:
    out = tmp_path / "wh"
    database = write_warehouse(built.tables, out)
    before = _digests(out)
    writer = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "open\n"
        with pytest.raises(WarehouseError, match=rf"open for writing by process {writer.pid}"):
            write_warehouse(built.tables, out)
        args = ["ingest", "--raw", str(drop), "--warehouse", str(database)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and f"by process {writer.pid}: close" in result.output
        assert _digests(out) == before
    finally:
        writer.communicate("")

    with duckdb.connect(str(database)):
        with pytest.raises(WarehouseError, match=f"by process {os.getpid()}"):
            write_warehouse(built.tables, out)
        assert not _opens_read_write(database)
    write_warehouse(built.tables, out)
    assert _opens_read_write(database)


def test_write_warehouse_requires_every_table(built: IngestResult, tmp_path: Path) -> None:
    tables = {k: v for k, v in built.tables.items() if k != "sources"}
    with pytest.raises(ValueError, match="tables missing from the warehouse: sources"):
        write_warehouse(tables, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_connect_without_warehouse_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run `nasmr ingest`"):
        connect(tmp_path / "nasmr.duckdb")


def test_connect_to_a_folder_asks_for_the_file_in_it(built: IngestResult) -> None:
    folder = built.warehouse.parent
    with pytest.raises(
        FileNotFoundError, match=f"{folder} is a folder: .*{built.warehouse}"
    ) as err:
        connect(folder)
    assert "nasmr ingest" not in str(err.value)


def test_connections_draw_no_progress_bar(built: IngestResult) -> None:
    """DuckDB draws a progress bar on stdout for queries over 2 s; piped CSV or JSON from
    ``nasmr sql`` (and a notebook's output) must not carry it."""
    with connect(built.warehouse) as con:
        setting = con.execute("SELECT current_setting('enable_progress_bar')").fetchall()
    assert setting == [(False,)]


# -- CLI -----------------------------------------------------------------------------------


def test_cli_ingest_reports_and_succeeds_with_missing_files(drop: Path, tmp_path: Path) -> None:
    db = tmp_path / "mine.duckdb"
    result = CliRunner().invoke(main, ["ingest", "--raw", str(drop), "--warehouse", str(db)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line}
    assert lines["seg"] == ["ok", "5", "5", "0"]
    assert lines["nas-bench-201"] == ["ok", "2", "2", "0"]
    assert lines["3ddet"] == ["missing", "0", "0", "0"]
    assert "search-list codes without results: 1" in result.output
    assert db.is_file() and (tmp_path / PARQUET_DIR / "results.parquet").is_file()


def test_cli_ingest_names_folders_that_are_no_setting(tmp_path: Path) -> None:
    """A drop made by ``nasmr logs export`` (data/digits-cls) or a misspelt folder is not read,
    and ingest says so instead of reporting every setting missing without a word."""
    files = {**clean_files(), "digits-cls": pickle.dumps([]), "sge": pickle.dumps([])}
    drop = small_drop(tmp_path / "drop", files)
    db = tmp_path / "out" / "nasmr.duckdb"
    result = CliRunner().invoke(main, ["ingest", "--raw", str(drop), "--warehouse", str(db)])
    assert result.exit_code == 0, result.output
    assert "ignored: data/digits-cls/ is no setting of the benchmark (seg, seg-4x," in (
        result.output
    )
    assert "ignored: data/sge/ is no setting" in result.output


def test_cli_ingest_fails_when_a_present_file_does_not_load(tmp_path: Path) -> None:
    drop = small_drop(tmp_path / "drop", {**clean_files(), "video": pickle.dumps("no list")})
    db = tmp_path / "out" / "nasmr.duckdb"
    result = CliRunner().invoke(main, ["ingest", "--raw", str(drop), "--warehouse", str(db)])
    assert result.exit_code == 1
    assert "expected a list of records, found str" in result.output
    assert "Error: could not load: video" in result.output
    assert "`nasmr ingest` for a warehouse it made" in result.output  # counts_reconcile's fix
    assert db.is_file()


def test_cli_ingest_fails_when_the_warehouse_breaks_a_rule(tmp_path: Path) -> None:
    """Every file loads, but one published FLOPs value is not the architecture's: ingest says
    which rule is broken and exits 1, as the pipeline's blocking check and publishing would."""
    archs = sample(3, seed=12)
    records = [mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs]
    records[1]["flops"] += 0.001
    drop = write_drop(tmp_path / "drop", {"video": pickle.dumps(records)}, [a.code for a in archs])
    db = tmp_path / "out" / "nasmr.duckdb"
    result = CliRunner().invoke(main, ["ingest", "--raw", str(drop), "--warehouse", str(db)])
    assert result.exit_code == 1, result.output
    assert "data-quality rule published_complexity_reproduced broken by 1 row(s)" in result.output
    assert archs[1].code in result.output
    assert "rules broken: published_complexity_reproduced (publishing refuses it)" in (
        result.output
    )


def test_cli_sql_formats(built: IngestResult) -> None:
    query = "SELECT setting, status, read FROM ingest_report WHERE setting IN ('seg', '3ddet')"
    args = ["sql", "--warehouse", str(built.warehouse), query + " ORDER BY setting"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert table.output.split() == [
        "setting",
        "status",
        "read",
        "3ddet",
        "missing",
        "0",
        "seg",
        "ok",
        "5",
    ]
    as_csv = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert as_csv.output == "setting,status,read\n3ddet,missing,0\nseg,ok,5\n"
    as_json = CliRunner().invoke(main, [*args, "--format", "json"])
    assert json.loads(as_json.output) == [
        {"setting": "3ddet", "status": "missing", "read": 0},
        {"setting": "seg", "status": "ok", "read": 5},
    ]
    # for machines: every digit of a double (nas-bench-201's Acc has 17), and valid JSON
    exact = "SELECT 25.766666615804038 :: DOUBLE AS acc, 'NaN' :: DOUBLE AS nan, "
    exact += "[1.5, 'inf' :: DOUBLE] AS xs, {'a': 'NaN' :: DOUBLE} AS s, "
    exact += "DATE '2020-01-02' AS d, 170141183460469231731687303715884105727 :: HUGEINT AS h, "
    exact += "12 :: DECIMAL(10, 0) AS whole, 1.25 :: DECIMAL(5, 2) AS part"
    as_json = CliRunner().invoke(
        main, ["sql", "--warehouse", str(built.warehouse), "--format", "json", exact]
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output, parse_constant=pytest.fail) == [
        {
            "acc": 25.766666615804038,
            "nan": None,
            "xs": [1.5, None],
            "s": {"a": None},
            "d": "2020-01-02",  # a date, where pandas made it midnight of a datetime
            "h": 2**127 - 1,  # every digit, where pandas made it a float
            "whole": 12,
            "part": 1.25,
        }
    ]
    none = [
        "sql",
        "--warehouse",
        str(built.warehouse),
        query.replace("'seg'", "'nope'") + " AND read > 0",
    ]
    empty = CliRunner().invoke(main, none)
    assert empty.exit_code == 0, empty.output
    assert empty.output == "setting  status  read\n(0 rows)\n"


def test_cli_sql_prints_sums_of_integers_as_integers(built: IngestResult) -> None:
    """DuckDB's sum of a BIGINT is a HUGEINT, which pandas receives as a float: the total
    MACs printed as 123.0. Whole numbers a float holds exactly print as integers again."""
    query = "SELECT sum(published_macs) AS macs, 12 :: DECIMAL(10, 0) AS whole, "
    query += "NULL :: HUGEINT AS nothing, 9007199254740993 :: HUGEINT AS past FROM complexity"
    args = ["sql", "--warehouse", str(built.warehouse), query]
    with connect(built.warehouse) as con:
        (macs,) = con.execute("SELECT sum(published_macs) FROM complexity").fetchone()
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    # 2^53 + 1 reaches pandas as 2^53: shown as the float it became, not as a wrong integer
    assert table.output.split()[4:7] == [str(macs), "12", "NULL"]
    assert "9007199254740992" not in table.output
    as_csv = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert as_csv.output.splitlines()[1].startswith(f"{macs},12,,")


def test_cli_sql_table_shows_stored_floats_unrounded(built: IngestResult) -> None:
    """GMac values carry 9 decimals (exact MACs): a table must not round them to pandas' 6.
    Each column keeps the decimals its values need, so 74.6 beside 77.17 prints as 74.60."""
    rows = "(13.727426866, 28.290994, 74.6), (0.040917842, 0.08265, 77.17)"
    query = (
        'SELECT flops::DOUBLE AS flops, params::DOUBLE AS params, "mIoU"::DOUBLE AS "mIoU" '
        f'FROM (VALUES {rows}) AS t(flops, params, "mIoU")'
    )
    table = CliRunner().invoke(main, ["sql", "--warehouse", str(built.warehouse), query])
    assert table.exit_code == 0, table.output
    assert table.output == (
        "       flops    params  mIoU\n13.727426866 28.290994 74.60\n 0.040917842  0.082650 77.17\n"
    )


def test_cli_sql_table_spells_every_null_null(built: IngestResult) -> None:
    """A NULL prints as NULL in every column type; pandas printed NaN, None, <NA> or NaT.
    The other values keep their column's formatting (a time stamp its milliseconds)."""
    query = (
        "SET TimeZone = 'UTC'; "
        "SELECT NULL::DOUBLE AS x, NULL::INT AS n, NULL::VARCHAR AS s, NULL::DATE AS d, "
        "NULL::INT[] AS l, NULL AS v, NULL::TIMESTAMPTZ AS t UNION ALL "
        "SELECT 1.5, 3, 'a', DATE '2020-01-02', [4], NULL, TIMESTAMPTZ '2020-01-02 03:04:05.5+00'"
    )
    table = CliRunner().invoke(main, ["sql", "--warehouse", str(built.warehouse), query])
    assert table.exit_code == 0, table.output
    assert [line.split() for line in table.output.splitlines()] == [
        ["x", "n", "s", "d", "l", "v", "t"],
        ["NULL"] * 7,
        ["1.5", "3", "a", "2020-01-02", "[4]", "NULL", "2020-01-02", "03:04:05.500+00:00"],
    ]


def test_cli_sql_table_spells_nulls_inside_lists_and_structs_null(built: IngestResult) -> None:
    """pandas printed a NULL in a list as ``--`` and in a struct as ``None``."""
    query = (
        "SELECT [1, NULL] AS l, ['x', NULL] AS s, {'a': NULL, 'b': 'x'} AS st, "
        "[[1.5, NULL]] AS n, {'q': [2, NULL]} AS sl, [1, 2] AS full, ['x', 'y'] AS words"
    )
    table = CliRunner().invoke(main, ["sql", "--warehouse", str(built.warehouse), query])
    assert table.exit_code == 0, table.output
    header, row = table.output.splitlines()
    assert header.split() == ["l", "s", "st", "n", "sl", "full", "words"]
    cells = "[1, NULL]  [x, NULL]  {'a': NULL, 'b': 'x'}  [[1.5, NULL]]  {'q': [2, NULL]}  [1, 2]"
    assert row.split() == (cells + "  [x, y]").split()


def test_cli_sql_csv_writes_lists_and_structs_whole_as_json(built: IngestResult) -> None:
    """pandas wrote NumPy's text ([1 2 --]) and cut a list of 2,507 values with '...'."""
    query = (
        "SELECT [1, NULL] AS l, ['x', 'y'] AS words, {'k': NULL, 'j': [1.5]} AS st, "
        "range(2000) AS long, [[1.5, NULL], [3]] AS nested, 7 AS n, '\\x00\\xFF'::BLOB AS b"
    )
    args = ["sql", "--warehouse", str(built.warehouse), "--format", "csv", query]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.output))
    assert json.loads(row["l"]) == [1, None]
    assert json.loads(row["words"]) == ["x", "y"]
    assert json.loads(row["st"]) == {"k": None, "j": [1.5]}
    assert json.loads(row["long"]) == list(range(2000))
    assert json.loads(row["nested"]) == [[1.5, None], [3.0]]  # inner lists were NumPy text
    assert row["n"] == "7"
    assert row["b"] == "00ff"  # as JSON writes it; pandas wrote bytearray(b'\x00\xff')


def test_cli_sql_json_refuses_repeated_column_names(built: IngestResult) -> None:
    """A join of two settings' top1 kept only the second value under one key, silently."""
    query = "SELECT 1 AS top1, 2 AS top1, 3 AS flops, 4 AS flops, 5 AS code"
    args = ["sql", "--warehouse", str(built.warehouse), "--format", "json", query]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "column name(s) 'flops', 'top1' repeat" in result.output
    assert "AS cls_top1" in result.output
    table = CliRunner().invoke(main, [*args[:3], query])
    assert table.output.split()[:5] == ["top1", "top1_1", "flops", "flops_1", "code"]


def test_cli_sql_reads_the_build_folder_its_help_names(
    built: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --warehouse, NASMR_OUT picks the file (a release folder, say), as --help says."""
    monkeypatch.delenv("NASMR_WAREHOUSE", raising=False)
    monkeypatch.setenv("NASMR_OUT", str(built.warehouse.parent))
    result = CliRunner().invoke(
        main, ["sql", "--format", "csv", "SELECT count(*) AS n FROM sources"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("n\n")
    helped = CliRunner().invoke(main, ["sql", "--help"])
    assert "NASMR_OUT/nasmr.duckdb" in " ".join(helped.output.split())


def test_cli_sql_errors(built: IngestResult, tmp_path: Path) -> None:
    bad = CliRunner().invoke(
        main, ["sql", "--warehouse", str(built.warehouse), "SELECT nope FROM results"]
    )
    assert bad.exit_code == 1
    assert "SQL error" in bad.output and "nope" in bad.output
    missing = CliRunner().invoke(
        main, ["sql", "--warehouse", str(tmp_path / "x.duckdb"), "SELECT 1"]
    )
    assert missing.exit_code == 1
    assert "run `nasmr ingest`" in missing.output
    nothing = CliRunner().invoke(main, ["sql", "--warehouse", str(built.warehouse), "/* off */"])
    assert nothing.exit_code == 1
    assert "Error: no SQL statement in '/* off */'" in nothing.output


# -- the real drop ---------------------------------------------------------------------------


def test_real_drop_warehouse(raw_dir: Path, tmp_path: Path) -> None:
    result = ingest(raw_dir, tmp_path, ingested_at=WHEN)
    assert result.failed == []
    assert len(result.unevaluated) == 4
    with connect(result.warehouse) as con:
        report = dict(
            con.sql("SELECT setting, valid FROM ingest_report WHERE status = 'ok'").fetchall()
        )
        assert report == {None: 2511, "nas-bench-201": 15625} | {
            s: 2507 for s in MR_SETTINGS if s != "3ddet"
        }
        assert con.sql("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
        counts = con.sql("SELECT count(*) FILTER (WHERE match), count(*) FROM complexity")
        assert counts.fetchall() == [(2507, 2511)]
        seg = con.sql(f"SELECT code, flops, params FROM {results_view('seg')}").df()
    records = pd.DataFrame(load_pickle(trainval_path(raw_dir, "seg")))
    assert len(seg) == 2507
    assert sorted(seg["flops"]) == sorted(records["flops"])
    assert sorted(seg["params"]) == sorted(records["params"])


def test_readme_best_seg_table_is_what_its_query_prints(build: Path) -> None:
    """The README's first example, with its column-wise decimals (``74.60``), as printed:
    the query of its ``nasmr sql '...'`` line, and the shipped file holding that query."""
    repo = Path(__file__).resolve().parents[1]
    args = ["sql", "--warehouse", str(build / "nasmr.duckdb")]
    readme = (repo / "README.md").read_text()
    command, shown = readme.split("LIMIT 10'\n```\n\n```\n")
    query = command.rsplit("nasmr sql '", 1)[1] + "LIMIT 10"
    printed = CliRunner().invoke(main, [*args, query])
    assert printed.exit_code == 0, printed.output
    assert printed.output == shown.split("```")[0]
    shipped = repo / "warehouse" / "sql" / "best_seg_under_1gflops.sql"
    assert CliRunner().invoke(main, [*args, "--file", str(shipped)]).output == printed.output


def test_readme_kendall_table_is_what_kendall_sql_prints(build: Path) -> None:
    """The shipped query orders by the exact tau, so the README's table is its stable output."""
    repo = Path(__file__).resolve().parents[1]
    args = ["sql", "--warehouse", str(build / "nasmr.duckdb"), "--file"]
    printed = CliRunner().invoke(main, [*args, str(repo / "warehouse" / "sql" / "kendall.sql")])
    assert printed.exit_code == 0, printed.output
    readme = (repo / "README.md").read_text()
    shown = readme.split("nasmr sql --file warehouse/sql/kendall.sql\n```\n\n```\n")[1]
    assert printed.output == shown.split("```")[0]
    with connect(build / "nasmr.duckdb") as con:
        primary = con.sql(
            "SELECT setting, code, value FROM results WHERE metric IN ('mIoU', 'top1')"
        ).df()
    wide = primary.pivot(index="code", columns="setting", values="value")
    rows = [line.split() for line in printed.output.splitlines()[1:]]
    exact = [scipy.stats.kendalltau(wide[s1], wide[s2]).statistic for s1, s2, _ in rows]
    assert exact == sorted(exact, reverse=True)
