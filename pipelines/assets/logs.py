"""Results regenerated from raw training logs, reconciled with the published records."""

from pathlib import Path

import dagster as dg
import pandas as pd

from nasmr.export import export_results
from nasmr.ingest import SettingLoad
from nasmr.logs import (
    EXPORT_FOLDER,
    RECONCILIATION_TABLE,
    LogParse,
    UnreconciledLogs,
    disagreements,
    parse_log_drop,
    published_records,
    reconcile,
    refuse_to_clear_the_drop,
    write_log_tables,
)
from nasmr.warehouse import write_parquet
from pipelines import staging
from pipelines.assets.ingest import load_validated, validated_records
from pipelines.metadata import check_result, preview, table_metadata, timed
from pipelines.resources import BuildDir, LogDrop

LOGS_GROUP = "logs"


def _logs_dir(build_dir: BuildDir) -> Path:
    """Where the log-derived tables of a build go."""
    return build_dir.root() / "logs"


@dg.asset(group_name=LOGS_GROUP, kinds={"parquet"})
def log_curves(
    context: dg.AssetExecutionContext, log_drop: LogDrop, build_dir: BuildDir
) -> dg.MaterializeResult:
    """Every training and evaluation line of the log drop as a long curves table; bad lines
    and runs quarantined with file, line and reason."""
    refuse_to_clear_the_drop(_logs_dir(build_dir), log_drop.root() / "logs")
    metadata: dict[str, object] = {}
    with timed(metadata):
        parsed = parse_log_drop(log_drop.root())
        staging.save(parsed, build_dir.staging("logs"))
    context.log.info(parsed.summary())
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **table_metadata(parsed.curves),
            "lines": parsed.lines,
            "run files": len(parsed.runs),
            "quarantined": len(parsed.quarantine),
            "quarantine": preview(parsed.quarantine, rows=20),
        }
    )


@dg.asset(group_name=LOGS_GROUP, deps=[log_curves], kinds={"parquet"})
def log_results(
    context: dg.AssetExecutionContext, log_drop: LogDrop, build_dir: BuildDir
) -> dg.MaterializeResult:
    """Final- and best-epoch results per run, the long results table regenerated from logs
    alone, and its export as trainval.pkl files in the published record format."""
    parsed = staging.load(LogParse, build_dir.staging("logs"))
    refuse_to_clear_the_drop(_logs_dir(build_dir), log_drop.root() / "logs")
    out = _logs_dir(build_dir)
    with build_dir.replacing("logs") as new:
        tables = write_log_tables(parsed, new)
        written = export_results(tables["results"], new / EXPORT_FOLDER)
    exported = {s: str(out / p.relative_to(new)) for s, p in written.items()}
    context.log.info(f"exported {', '.join(exported.values())}")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(tables["derived"]),
            "path": dg.MetadataValue.path(str(out)),
            "exported": dg.MetadataValue.json(exported),
        }
    )


@dg.asset(group_name=LOGS_GROUP, deps=[log_results, validated_records], kinds={"parquet"})
def log_reconciliation(build_dir: BuildDir) -> dg.MaterializeResult:
    """Log-derived vs published values wherever both exist (settings of the benchmark).

    Logs of a setting whose published records are not staged, or did not load (file
    missing or unreadable), fail the run: skipping them would pass the check unchecked.
    """
    derived = pd.read_parquet(_logs_dir(build_dir) / "derived.parquet")
    again = f"(`nasmr build --job ingest --out {build_dir.root()}`)"

    def staged(setting: str) -> SettingLoad | None:
        """The setting's validated records in this build; None if it never validated them."""
        try:
            return load_validated(build_dir, setting)
        except FileNotFoundError:
            return None

    try:
        published = published_records(derived, staged)
    except UnreconciledLogs as err:
        problems = []
        if err.absent:
            problems.append(
                f"{build_dir.staging('records')}: no validated records of "
                f"{', '.join(err.absent)} to reconcile their logs with: validate the drop "
                f"into this build folder first {again}"
            )
        if err.unusable:
            problems.append(
                f"the drop's records of {'; '.join(err.unusable)} did not load into this "
                f"build: mend the drop and validate it again {again}"
            )
        raise ValueError("; ".join(problems)) from None
    table = reconcile(derived, published)
    write_parquet(table, _logs_dir(build_dir) / f"{RECONCILIATION_TABLE}.parquet")
    compared, _ = disagreements(table)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table),
            "compared": len(compared),
            "agree": int(compared["agree"].sum()),
        }
    )


@dg.asset_check(asset=log_reconciliation, description="Logs agree with published values.")
def logs_agree_with_published(build_dir: BuildDir) -> dg.AssetCheckResult:
    """Every log value that has a published counterpart is within the reconcile tolerance."""
    table = pd.read_parquet(_logs_dir(build_dir) / f"{RECONCILIATION_TABLE}.parquet")
    compared, differ = disagreements(table)
    return check_result(differ, checked=len(compared))
