"""The warehouse: Parquet tables and one DuckDB file, built once per run by one writer."""

import dagster as dg

from nasmr.ingest import SettingLoad
from nasmr.quality import RULES, Rule, evaluate
from nasmr.warehouse import assemble, compare_inputs, connect, warehouse_version
from pipelines.assets.complexity import complexity, load_recomputed
from pipelines.assets.ingest import (
    architectures,
    load_search_list,
    load_validated,
    validated_records,
)
from pipelines.metadata import check_result, preview, timed
from pipelines.partitions import settings_partitions
from pipelines.resources import BuildDir, RawDrop

WRITER_POOL = "duckdb_writer"
"""Dagster concurrency pool (limit 1, held per run) of the steps that write the build folder:
the warehouse, and the models and release made from it. A refresh holds it too, so a run
launched from the UI cannot rebuild the warehouse under a refresh's training."""


@dg.asset(
    group_name="warehouse",
    deps=[architectures, validated_records, complexity],
    kinds={"duckdb", "parquet"},
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
    match = tables["complexity"]["match"]  # null where nothing was published to compare
    return dg.MaterializeResult(
        # what models read: a rebuild from the same records leaves predictors current
        data_version=dg.DataVersion(warehouse_version(path)),
        metadata={
            **metadata,
            "path": dg.MetadataValue.path(str(path)),
            "row_counts": dg.MetadataValue.json(counts),
            "quarantined": int(report["quarantined"].sum()),
            "complexity_compared": int(match.notna().sum()),
            "complexity_reproduced": int(match.sum()),
            "ingest_report": preview(report, rows=len(report)),
        },
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


def _rule_check(rule: Rule) -> dg.AssetChecksDefinition:
    """A blocking check of the warehouse that fails on the rows breaking ``rule``."""

    @dg.asset_check(asset=warehouse, name=rule.name, description=rule.description, blocking=True)
    def check(build_dir: BuildDir) -> dg.AssetCheckResult:
        with connect(build_dir.warehouse()) as con:
            rows, checked = evaluate(con, rule)
        fix = {"fix": rule.fix} if rule.fix and len(rows) else {}
        return check_result(rows, checked=checked, **fix)

    return check


rule_checks = [_rule_check(rule) for rule in RULES]


@dg.asset_check(
    asset=warehouse,
    description="The warehouse was made from the drop as it is now: no input file gone, "
    "changed or new since (a refresh would train for minutes on stale data, then refuse "
    "to publish).",
    blocking=True,
)
def inputs_match_the_drop(build_dir: BuildDir, raw_drop: RawDrop) -> dg.AssetCheckResult:
    """The drop files that differ from the warehouse's ``sources``, and what to run."""
    build_dir.warehouse()  # a missing build is named as such, not as a missing table file
    compared = compare_inputs(build_dir.root(), raw_drop.root())
    stale = compared.dropna(subset=["problem"])
    fix = (
        "run the build job (`nasmr build`), or the reingest job for each changed setting (what "
        "raw_drop_sensor launches)"
    )
    return check_result(stale, checked=len(compared), **({"fix": fix} if len(stale) else {}))
