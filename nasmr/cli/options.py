"""Options shared by the commands: the folders, each defaulting to ``nasmr.paths``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import click
from click.core import ParameterSource
from click.decorators import FC

from nasmr import paths
from nasmr.complexity import ComplexityMethod
from schemas.predictor import REPORT_SEEDS

raw_option = click.option(
    "--raw",
    "raw_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=paths.raw_dir,
    show_default="NASMR_RAW or ../shared/nasbench-mr",
    help="The raw NAS-Bench-MR drop (the folder holding data/).",
)


def existing_drop(raw_dir: Path) -> Path:
    """``raw_dir`` when it holds a drop; else an error (exit 1) naming the drop it likely meant
    (a reader of the drop would say only that the file it wanted is not there)."""
    from nasmr.rawdrop import NotInDropError, require_drop

    try:
        return require_drop(raw_dir)
    except NotInDropError as err:
        raise click.ClickException(str(err)) from err


build_option = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=paths.out_dir,
    show_default="NASMR_OUT or warehouse/build",
    help="The build folder: parquet/, nasmr.duckdb, predictors/, ncp/, reports/.",
)

releases_option = click.option(
    "--releases",
    "releases_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=paths.releases_dir,
    show_default="NASMR_RELEASES or releases/",
    help="The folder holding the published releases.",
)


def warehouse_option(help_text: str) -> Callable[[FC], FC]:
    """``--warehouse FILE``, the DuckDB file (``NASMR_WAREHOUSE``)."""
    return click.option(
        "--warehouse",
        type=click.Path(dir_okay=False, path_type=Path),
        default=paths.warehouse_file,
        show_default="NASMR_WAREHOUSE, NASMR_OUT/nasmr.duckdb or warehouse/build/nasmr.duckdb",
        help=help_text,
    )


release_option = click.option(
    "--release",
    default=None,
    metavar="REF",
    help="Read a published release instead of the build folder: 'latest', a version "
    "(in NASMR_RELEASES or releases/) or a release folder.",
)


def from_release(release: str, replaced: dict[str, str]) -> Path:
    """The folder ``--release REF`` names, checked against its checksums; a usage error if it
    names none, or if an option it replaces (parameter name -> flag) was given too."""
    from nasmr.release import ReleaseError, require_verified, resolve_release

    ctx = click.get_current_context()
    both = [
        flag
        for name, flag in replaced.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if both:
        raise click.UsageError(f"give --release or {' and '.join(both)}, not both")
    try:
        root = resolve_release(release)
    except ReleaseError as err:
        raise click.BadParameter(str(err), param_hint="--release") from err
    try:
        require_verified(root)
    except ReleaseError as err:
        raise click.ClickException(str(err)) from err
    return root


def warehouse_origin(ctx: click.Context) -> str | None:
    """What named the ``--warehouse`` file (the option or ``NASMR_WAREHOUSE``), None for the
    build folder's default: a file the user named must exist, a default one may be missing."""
    if ctx.get_parameter_source("warehouse") is ParameterSource.COMMANDLINE:
        return "--warehouse"
    return "NASMR_WAREHOUSE" if os.environ.get("NASMR_WAREHOUSE") else None


def workers_option(help_text: str) -> Callable[[FC], FC]:
    """``--workers N``, processes of a parallel step (default: the CPU count)."""
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        show_default="the CPU count",
        help=help_text,
    )


seeds_option = click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=REPORT_SEEDS,
    show_default=True,
    help="Predictor split seeds 0..N-1 of the report; the models saved are seed 0's.",
)


def complexity_option(flag: str, default: ComplexityMethod) -> Callable[[FC], FC]:
    """``flag`` (``--method`` or ``--complexity``): count FLOPs/params by formula or by module."""
    return click.option(
        flag,
        "complexity_method",
        type=click.Choice(get_args(ComplexityMethod)),
        default=default,
        show_default=True,
        help="analytic: the closed form (microseconds); module: build the PyTorch supernet "
        "and count it with thop-0.0.31 rules (slow, the reference).",
    )
