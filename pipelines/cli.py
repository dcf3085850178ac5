"""The ``nasmr`` command with ``nasmr build``, which runs a Dagster job in-process.

The domain library's commands (``nasmr.cli``) do not import Dagster; this module adds the
one that does, and the ``nasmr`` console script points here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nasmr import paths
from nasmr.cli import main
from nasmr.cli.options import (
    build_option,
    complexity_option,
    raw_option,
    releases_option,
    seeds_option,
    workers_option,
)
from nasmr.complexity import ComplexityMethod


@click.command()
@raw_option
@build_option
@releases_option
@click.option(
    "--logs",
    "log_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=paths.log_dir,
    show_default="NASMR_LOGS or the raw drop",
    help="The raw-log drop (the folder holding logs/), read by the logs job.",
)
@click.option(
    "--job",
    "job_name",
    type=click.Choice(["build", "ingest", "reingest", "refresh", "logs"]),
    default="build",
    show_default=True,
    help="build: everything; ingest: validation to warehouse; reingest: the settings' files "
    "(one with --partition) to warehouse, without recounting complexity; refresh: models and "
    "release; logs: from logs.",
)
@click.option(
    "--partition",
    default=None,
    help="Run one setting only (e.g. seg); build, ingest and reingest jobs only.",
)
@complexity_option("--complexity", default="module")
@seeds_option
@workers_option("Processes for complexity counting and predictor training.")
@click.option("--quiet", is_flag=True, help="Only warnings and the summary.")
def build(
    raw_dir: Path,
    out_dir: Path,
    releases_dir: Path,
    log_dir: Path,
    job_name: str,
    partition: str | None,
    complexity_method: ComplexityMethod,
    seeds: int,
    workers: int | None,
    quiet: bool,
) -> None:
    """Build the benchmark: a Dagster job run in-process and recorded in .dagster/."""
    from nasmr.build_lock import BuildFolderBusy
    from nasmr.logs import LogOutputOverlap
    from nasmr.rawdrop import RawDropError
    from pipelines.resources import BuildOptions
    from pipelines.run import PartitionError, run_job

    try:
        outcome = run_job(
            job_name,
            raw_dir=raw_dir,
            out_dir=out_dir,
            releases_dir=releases_dir,
            log_dir=log_dir,
            partition=partition,
            options=BuildOptions(
                complexity_method=complexity_method, predictor_seeds=seeds, workers=workers
            ),
            log_level="WARNING" if quiet else "INFO",
        )
    except PartitionError as error:
        raise click.BadParameter(str(error), param_hint="--partition") from error
    except (paths.ReleaseFolderError, BuildFolderBusy, LogOutputOverlap, RawDropError) as error:
        raise click.ClickException(str(error)) from error
    status = "succeeded" if outcome.success else "FAILED"
    if outcome.success and outcome.failed_checks:  # a non-blocking check failed: exit 1 too
        status = "steps succeeded, CHECKS FAILED"
    click.echo(f"\nrun {outcome.run_id} ({job_name}): {status}")
    click.echo(f"checks: {len(outcome.passed_checks)} passed, {len(outcome.failed_checks)} failed")
    for failure in outcome.failures:
        click.echo(f"  failed step {failure}", err=True)
    for check, rows in outcome.failed_checks.items():
        click.echo(f"  failed check {check}; offending rows:\n{rows}", err=True)
    if job_name == "logs":  # it writes no warehouse and no release
        click.echo(f"outputs: {out_dir / 'logs'}")
    else:
        warehouse = out_dir / paths.WAREHOUSE_NAME
        click.echo(f"outputs: {out_dir} (warehouse: {warehouse}; releases: {releases_dir})")
    if outcome.release is not None:
        click.echo(f"release: {outcome.release}")
    click.echo(f"run history: DAGSTER_HOME={paths.dagster_home()} nasmr ui")
    if not outcome.success or outcome.failed_checks:
        raise SystemExit(1)


main.add_command(build)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def ui(dagster_args: tuple[str, ...]) -> None:
    """Serve Dagster's UI on the local instance (DAGSTER_HOME, default .dagster/), after
    preparing it as nasmr build does: its settings written, runs of killed builds failed
    (else they would hold the warehouse writer's pool against the UI's runs). Arguments
    go to `dagster dev` (e.g. --port 3001)."""
    from pipelines.run import local_instance

    local_instance()  # sets DAGSTER_HOME for dagster dev
    command = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions"]
    os.execv(sys.executable, [*command, *dagster_args])


main.add_command(ui)

__all__ = ["main"]
