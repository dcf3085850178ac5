"""The warehouse's data-quality rules, as SQL: each names the rows that break it.

One definition serves every gate: the Dagster asset checks that block a run, the exit
status of ``nasmr ingest`` (which skips Dagster), and
:func:`nasmr.release.publish_release`, which refuses a build that breaks any rule
however it was made.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from nasmr.table_docs import COLUMN_DOCS, TABLE_DOCS
from nasmr.warehouse import THIS_DATABASE, sql_quote
from schemas.settings import NB201


@dataclass(frozen=True)
class Rule:
    """A rule of the warehouse: ``offending`` selects the rows that break it, ``checked``
    counts the rows it looked at, ``fix`` says what to do when some do (when the
    description does not)."""

    name: str
    description: str
    offending: str
    checked: str
    fix: str = ""


def _layout_rule() -> Rule:
    """Every table has exactly the columns, in order, and the descriptions that this nasmr
    writes (``COLUMN_DOCS``, ``TABLE_DOCS``; position 0 is the table's own): a warehouse
    built by another version is named before any model trains on it, or a release ships
    comments its metadata files contradict."""
    expected = ", ".join(
        [f"('{table}', '', 0, '{sql_quote(TABLE_DOCS[table])}')" for table in COLUMN_DOCS]
        + [
            f"('{table}', '{column}', {position}, '{sql_quote(doc)}')"
            for table, columns in COLUMN_DOCS.items()
            for position, (column, doc) in enumerate(columns.items(), start=1)
        ]
    )
    tables = ", ".join(f"'{table}'" for table in COLUMN_DOCS)
    return Rule(
        "tables_have_this_nasmrs_columns",
        "Every table has the columns, in order, and the descriptions that this version of "
        "nasmr writes (after an upgrade, `nasmr build --job reingest --partition seg` "
        "rewrites the warehouse from a Dagster build's staged records; `nasmr ingest "
        "--warehouse FILE` one that `nasmr ingest` made).",
        f"WITH expected(table_name, column_name, position, comment) AS (VALUES {expected}), "
        "found AS (SELECT table_name, column_name, column_index AS position, comment "
        f"FROM duckdb_columns() WHERE {THIS_DATABASE} AND table_name IN ({tables}) "
        "UNION ALL SELECT table_name, '', 0, comment FROM duckdb_tables() "
        f"WHERE {THIS_DATABASE} AND table_name IN ({tables})) "
        "SELECT table_name, position, e.column_name AS expected, f.column_name AS found, "
        "CASE WHEN e.column_name IS DISTINCT FROM f.column_name THEN 'column' "
        "ELSE 'description' END AS differs "
        "FROM expected e FULL JOIN found f USING (table_name, position) "
        "WHERE e.column_name IS DISTINCT FROM f.column_name "
        "OR e.comment IS DISTINCT FROM f.comment ORDER BY table_name, position",
        f"SELECT count(*) FROM (VALUES {expected})",
    )


_RESULT_ROWS = "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM nb201_results)"
"""SQL: the result rows of every setting, the nas-bench-201 cells included."""

RULES: tuple[Rule, ...] = (
    _layout_rule(),
    Rule(
        "counts_reconcile",
        "Every file: records read = valid + quarantined, and no present file failed to load "
        "or lost every record to quarantine (a file of another setting's records, say).",
        "SELECT * FROM ingest_report "
        "WHERE read <> valid + quarantined OR status = 'failed' OR (read > 0 AND valid = 0)",
        "SELECT count(*) FROM ingest_report",
        "read what is wrong with each source_file named in its reason, or, when that is "
        'empty, in its rows of the quarantine table (`nasmr sql "SELECT * FROM quarantine '
        "WHERE source_file = '...'\"`); correct the file, then ingest again: `nasmr build "
        "--job reingest --partition SETTING` (or the raw_drop sensor, when it is on) for a "
        "Dagster build, `nasmr build` when the search list is at fault, `nasmr ingest` for a "
        "warehouse it made",
    ),
    Rule(
        "published_complexity_reproduced",
        "Recomputed FLOPs and params equal the published ones for every evaluated architecture.",
        "SELECT * FROM complexity WHERE published_macs IS NOT NULL AND match IS DISTINCT FROM true",
        "SELECT count(*) FROM complexity WHERE published_macs IS NOT NULL",
    ),
    Rule(
        "no_duplicate_architectures",
        "One result per (setting, architecture, metric), one row per architecture code and "
        "per nas-bench-201 cell.",
        "SELECT setting, code, metric, count(*) AS n FROM results GROUP BY ALL HAVING n > 1 "
        "UNION ALL SELECT 'architectures', code, NULL, count(*) FROM architectures "
        "GROUP BY code HAVING count(*) > 1 "
        f"UNION ALL SELECT '{NB201}', ops, NULL, count(*) FROM nb201_results "
        "GROUP BY ops HAVING count(*) > 1",
        _RESULT_ROWS,
    ),
    Rule(
        "results_reference_known_architectures",
        "Every result row names an architecture of the search list.",
        "SELECT DISTINCT r.setting, r.code FROM results r ANTI JOIN architectures a USING (code)",
        "SELECT count(DISTINCT code) FROM results",
    ),
    Rule(
        "metric_ranges",
        "Metrics are finite percentages in [0, 100] (not NULL); published FLOPs and params are "
        "positive (nas-bench-201's Acc, Flops and Params too).",
        "SELECT setting, code, metric, value FROM results "
        "WHERE NOT coalesce(isfinite(value) AND value BETWEEN 0 AND 100, false) "
        "UNION ALL SELECT 'complexity', code, 'published_macs/params', published_macs "
        "FROM complexity WHERE published_macs <= 0 OR published_params <= 0 "
        f"UNION ALL SELECT '{NB201}', ops, 'Acc', Acc FROM nb201_results "
        "WHERE NOT coalesce(isfinite(Acc) AND Acc BETWEEN 0 AND 100, false) "
        f"UNION ALL SELECT '{NB201}', ops, 'Flops/Params', Flops FROM nb201_results "
        "WHERE NOT coalesce(isfinite(Flops) AND Flops > 0 AND isfinite(Params) AND Params > 0, "
        "false)",
        _RESULT_ROWS,
    ),
)
"""Every rule a warehouse must keep before it is released."""


def evaluate(con: duckdb.DuckDBPyConnection, rule: Rule) -> tuple[pd.DataFrame, int]:
    """The rows that break ``rule`` and the number of rows it checked."""
    return con.execute(rule.offending).df(), int(con.execute(rule.checked).fetchall()[0][0])


def broken_rules(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Name -> offending rows of every rule the warehouse breaks (empty when it keeps all)."""
    found = {rule.name: evaluate(con, rule)[0] for rule in RULES}
    return {name: rows for name, rows in found.items() if len(rows)}
