"""``nasmr build``: run a job of the Dagster pipeline in-process on the local instance."""

from __future__ import annotations

from pathlib import Path

import click

from nasmr import paths


@click.command()
@click.option(
    "--raw",
    "raw_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Raw drop folder [default: $NASMR_RAW or ../shared/nasbench-mr].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Build folder [default: $NASMR_OUT or warehouse/build].",
)
@click.option(
    "--job",
    "job_name",
    type=click.Choice(["build", "ingest", "refresh"]),
    default="build",
    show_default=True,
    help="Which job to run.",
)
@click.option("--partition", default=None, help="Run one setting only (e.g. seg).")
@click.option(
    "--complexity",
    "complexity_method",
    type=click.Choice(["module", "analytic"]),
    default="module",
    show_default=True,
    help="Recount FLOPs/params by building every supernet, or by the closed form.",
)
@click.option(
    "--seeds",
    "predictor_seeds",
    type=int,
    default=5,
    show_default=True,
    help="Predictor seeds (train/val/test splits).",
)
@click.option("--quiet", is_flag=True, help="Only warnings and the summary.")
def build(
    raw_dir: Path | None,
    out_dir: Path | None,
    releases_dir: Path | None,
    log_dir: Path | None,
    job_name: str,
    partition: str | None,
    complexity_method: str,
    predictor_seeds: int,
    quiet: bool,
) -> None:
    """Build the benchmark: the main Dagster job, in-process, recorded in .dagster/."""
    from pipelines.resources import BuildOptions
    from pipelines.run import run_job

    options = BuildOptions(complexity_method=complexity_method, predictor_seeds=predictor_seeds)
    outcome = run_job(
        job_name,
        raw_dir=raw_dir,
        out_dir=out_dir,
        releases_dir=releases_dir,
        log_dir=log_dir,
        partition=partition,
        options=options,
        log_level="WARNING" if quiet else "INFO",
    )
    out = out_dir or paths.out_dir()
    click.echo(
        f"\nrun {outcome.run_id} ({job_name}): {'succeeded' if outcome.success else 'FAILED'}"
    )
    click.echo(f"checks: {len(outcome.passed_checks)} passed, {len(outcome.failed_checks)} failed")
    for failure in outcome.failures:
        click.echo(f"  failed step {failure}", err=True)
    for check, rows in outcome.failed_checks.items():
        click.echo(f"  failed check {check}; offending rows:\n{rows}", err=True)
    click.echo(f"outputs: {out} (warehouse: {out / 'nasmr.duckdb'})")
    click.echo(f"run history: DAGSTER_HOME={paths.dagster_home()} dagster dev -m pipelines")
    if not outcome.success or outcome.failed_checks:
        raise SystemExit(1)
