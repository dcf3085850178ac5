"""The warehouse: Parquet tables and one DuckDB file, built once per run by one writer."""

import dagster as dg

from nasmr.ingest import SettingLoad
from nasmr.warehouse import WAREHOUSE_NAME, assemble, connect
from pipelines.assets.complexity import complexity, load_recomputed
from pipelines.assets.ingest import (
    architectures,
    load_search_list,
    load_validated,
    validated_records,
)
from pipelines.metadata import check_result, preview, timed
from pipelines.partitions import settings_partitions
from pipelines.resources import BuildDir

WRITER_POOL = "duckdb_writer"
"""Dagster concurrency pool of the one step that writes the DuckDB file (limit it to 1)."""


@dg.asset(
    group_name="warehouse",
    deps=[architectures, validated_records, complexity],
    pool=WRITER_POOL,
)
def warehouse(context: dg.AssetExecutionContext, build_dir: BuildDir) -> dg.MaterializeResult:
    """All validated settings, the search list and complexity assembled into the warehouse."""
    metadata: dict[str, object] = {}
    with timed(metadata):
        loads = _staged_records(build_dir)
        recomputed = load_recomputed(build_dir)
        built = assemble(
            load_search_list(build_dir),
            loads,
            recomputed.as_dict(),
            recomputed.method,
            build_dir.root(),
        )
    tables, path = built.tables, built.warehouse
    counts = {name: len(frame) for name, frame in sorted(tables.items())}
    context.log.info(f"warehouse written to {path}: {counts}")
    report = built.report
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "path": dg.MetadataValue.path(str(path)),
            "row_counts": dg.MetadataValue.json(counts),
            "quarantined": int(report["quarantined"].sum()),
            "complexity_match_rate": float(tables["complexity"]["match"].dropna().mean()),
            "ingest_report": preview(report, rows=len(report)),
        }
    )


def _staged_records(build_dir: BuildDir) -> list[SettingLoad]:
    """Every setting's validated records as staged in the build folder; settings never
    validated there (a one-partition run on a fresh folder) are named together."""
    loads, missing = [], []
    for setting in settings_partitions.get_partition_keys():
        try:
            loads.append(load_validated(build_dir, setting))
        except FileNotFoundError:
            missing.append(setting)
    if missing:
        raise FileNotFoundError(
            f"{build_dir.staging('records')}: no validated records of {', '.join(missing)}; "
            "the warehouse needs every setting's: run the ingest or build job once without "
            "--partition"
        )
    return loads


def _sql_check(build_dir: BuildDir, offending: str, checked: str) -> dg.AssetCheckResult:
    """A check whose offending rows and checked-row count are two queries on the warehouse."""
    with connect(build_dir.root() / WAREHOUSE_NAME) as con:
        rows = con.execute(offending).df()
        total = con.execute(checked).fetchall()[0][0]
    return check_result(rows, checked=int(total))


@dg.asset_check(asset=warehouse, blocking=True)
def counts_reconcile(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Every file: records read = valid + quarantined, and no present file failed to load."""
    return _sql_check(
        build_dir,
        "SELECT * FROM ingest_report WHERE read <> valid + quarantined OR status = 'failed'",
        "SELECT count(*) FROM ingest_report",
    )


@dg.asset_check(asset=warehouse, blocking=True)
def published_complexity_reproduced(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Recomputed FLOPs and params equal the published ones for every evaluated architecture."""
    return _sql_check(
        build_dir,
        "SELECT * FROM complexity WHERE published_macs IS NOT NULL AND match IS DISTINCT FROM true",
        "SELECT count(*) FROM complexity WHERE published_macs IS NOT NULL",
    )


@dg.asset_check(asset=warehouse, blocking=True)
def no_duplicate_architectures(build_dir: BuildDir) -> dg.AssetCheckResult:
    """One result per (setting, architecture, metric), one row per architecture code."""
    return _sql_check(
        build_dir,
        "SELECT setting, code, metric, count(*) AS n FROM results GROUP BY ALL HAVING n > 1 "
        "UNION ALL SELECT 'architectures', code, NULL, count(*) FROM architectures "
        "GROUP BY code HAVING count(*) > 1",
        "SELECT count(*) FROM results",
    )


@dg.asset_check(asset=warehouse, blocking=True)
def results_reference_known_architectures(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Every result row names an architecture of the search list."""
    return _sql_check(
        build_dir,
        "SELECT DISTINCT r.setting, r.code FROM results r ANTI JOIN architectures a USING (code)",
        "SELECT count(DISTINCT code) FROM results",
    )


@dg.asset_check(asset=warehouse, blocking=True)
def metric_ranges(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Metrics are finite percentages in [0, 100]; published FLOPs and params are positive."""
    return _sql_check(
        build_dir,
        "SELECT setting, code, metric, value FROM results "
        "WHERE NOT isfinite(value) OR value < 0 OR value > 100 "
        "UNION ALL SELECT 'complexity', code, 'published_macs/params', published_macs "
        "FROM complexity WHERE published_macs <= 0 OR published_params <= 0",
        "SELECT count(*) FROM results",
    )
