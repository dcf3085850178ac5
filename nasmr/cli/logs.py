"""``nasmr train`` and ``nasmr mini`` (real CPU training logs); ``nasmr logs ...``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nasmr import paths
from nasmr.cli.options import existing_drop, raw_option
from nasmr.train_config import TRAIN_SPLIT, VAL_SPLIT, TrainConfig
from schemas.logs import DIGITS_SETTINGS

if TYPE_CHECKING:
    from nasmr.logs import LogParse

DIGITS = tuple(DIGITS_SETTINGS)
_OUT_DIR = click.Path(file_okay=False, path_type=Path)


def _schedule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``train`` and ``mini``; unset ones keep ``TrainConfig``'s defaults,
    which the help states, and an invalid value is refused with its error."""
    default = TrainConfig()
    options = [
        click.option(
            "--epochs", type=click.IntRange(min=1), help=f"Epochs (default {default.epochs})."
        ),
        click.option(
            "--seed",
            type=int,
            help=f"Seed of sampling, init and shuffling (default {default.seed}).",
        ),
        click.option(
            "--image-size",
            type=int,
            help=f"Side of the upsampled digits, a multiple of 32 ({default.image_size}).",
        ),
        click.option(
            "--train-images",
            type=click.IntRange(min=1),
            help=f"Training images per epoch, of {TRAIN_SPLIT} ({default.train_images}).",
        ),
        click.option(
            "--val-images",
            type=click.IntRange(min=1),
            help=f"Validation images, of {VAL_SPLIT} ({default.val_images}).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config(**options: int | None) -> TrainConfig:
    """The schedule the options describe; an invalid combination is a usage error."""
    try:
        return TrainConfig(**{k: v for k, v in options.items() if v is not None})
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def _run_name(run: str | None) -> str | None:
    """The ``--run`` name, refused as a usage error if it would leave the log layout."""
    from nasmr.training import check_run_name

    try:
        return None if run is None else check_run_name(run)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


@click.command()
@click.argument("code")
@click.option("--setting", type=click.Choice(DIGITS), required=True)
@click.option("--out", type=_OUT_DIR, required=True, help="Log drop root (logs/ goes inside).")
@click.option(
    "--run",
    default=None,
    callback=lambda _ctx, _param, run: _run_name(run),
    help="Run name, a file name (default: the start time, as mmcv).",
)
@_schedule_options
def train(
    code: str,
    setting: str,
    out: Path,
    run: str | None,
    epochs: int | None,
    seed: int | None,
    image_size: int | None,
    train_images: int | None,
    val_images: int | None,
) -> None:
    """Train architecture CODE on CPU on scikit-learn's digits; write an OpenMMLab log."""
    from nasmr.space import Arch, ArchError
    from nasmr.training import train as run_training

    try:
        arch = Arch.from_code(code)
    except ArchError as err:
        raise click.BadParameter(str(err), param_hint="CODE") from err
    config = _config(
        epochs=epochs,
        seed=seed,
        image_size=image_size,
        train_images=train_images,
        val_images=val_images,
    )
    try:
        click.echo(run_training(arch, setting, out, config, run))
    except (FileExistsError, paths.ReleaseFolderError) as err:  # an existing log, a release
        raise click.ClickException(str(err)) from err


@click.command()
@click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--out", type=_OUT_DIR, required=True, help="Log drop root (logs/ goes inside).")
@_schedule_options
def mini(
    n: int,
    out: Path,
    epochs: int | None,
    seed: int | None,
    image_size: int | None,
    train_images: int | None,
    val_images: int | None,
) -> None:
    """Train N sampled architectures on both digits settings: a complete raw-log drop."""
    from nasmr.training import mini as run_mini

    config = _config(
        epochs=epochs,
        seed=seed,
        image_size=image_size,
        train_images=train_images,
        val_images=val_images,
    )
    try:
        for path in run_mini(n, out, config):
            click.echo(path)
    except paths.ReleaseFolderError as err:  # raised before the first log is written
        raise click.ClickException(str(err)) from err


def _outside_releases(out: Path) -> None:
    """Refuse an output folder in a published release before parsing anything."""
    try:
        paths.outside_releases(out)
    except paths.ReleaseFolderError as err:
        raise click.ClickException(str(err)) from err


@click.group()
def logs() -> None:
    """Regenerate results from raw training logs (<setting>/<code>/<run>.log.json)."""


def _parse(log_dir: Path) -> LogParse:
    """``parse_log_drop``, with a log folder that cannot be listed or holds no log file as a
    one-line error."""
    from nasmr.logs import EmptyLogDrop, parse_log_drop

    try:
        return parse_log_drop(log_dir)
    except EmptyLogDrop as err:  # a mistyped folder: write nothing
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"{log_dir}: cannot read the log drop: {err}") from err


@logs.command()
@click.argument("log_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=_OUT_DIR,
    default=lambda: paths.out_dir() / "logs",
    show_default="NASMR_OUT/logs",
    help="Gets curves, derived, results, runs and quarantine .parquet, in place of all an "
    "earlier parse or logs job left there.",
)
def parse(log_dir: Path, out: Path) -> None:
    """Parse LOG_DIR into curves, derived results and quarantine tables (Parquet)."""
    from nasmr.build_lock import BuildFolderBusy, lock_of_enclosing_build
    from nasmr.logs import (
        LogOutputOverlap,
        refuse_to_clear_the_drop,
        refuse_to_replace_other_files,
        replace_log_tables,
    )

    _outside_releases(out)
    try:
        refuse_to_clear_the_drop(out, log_dir / "logs")
        refuse_to_replace_other_files(out)  # before the parse, which may take minutes
        parsed = _parse(log_dir)
        with lock_of_enclosing_build(out, "nasmr logs parse"):
            replace_log_tables(parsed, out)
    except (LogOutputOverlap, BuildFolderBusy) as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(f"tables not written to {out}: {err.strerror or err}") from err
    click.echo(parsed.summary())
    click.echo(f"tables: {out}")


@logs.command()
@click.argument("log_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=_OUT_DIR, required=True, help="<setting>/trainval.pkl go here.")
def export(log_dir: Path, out: Path) -> None:
    """Write the final results of LOG_DIR as <setting>/trainval.pkl in the published format."""
    from nasmr.export import ExportError, export_results
    from nasmr.logs import log_tables

    _outside_releases(out)
    parsed = _parse(log_dir)
    click.echo(parsed.summary())
    try:
        written = export_results(log_tables(parsed)["results"], out)
    except ExportError as err:
        raise click.ClickException(str(err)) from err
    for setting, path in written.items():
        click.echo(f"{setting}: {path}")


@logs.command("reconcile")
@click.argument("log_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@raw_option
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Disagreeing values to list.",
)
def reconcile_logs(log_dir: Path, raw_dir: Path, limit: int) -> None:
    """Compare the final results of LOG_DIR with the drop's published records.

    Exits 1 when a log value and its published value differ by more than the published
    rounding (the logs job's check, without Dagster or a build folder).
    """
    from nasmr.ingest import load_setting
    from nasmr.logs import (
        UnreconciledLogs,
        derive_results,
        disagreements,
        published_records,
        reconcile,
    )

    existing_drop(raw_dir)
    parsed = _parse(log_dir)
    click.echo(parsed.summary())
    derived = derive_results(parsed.curves)
    try:
        published = published_records(derived, lambda setting: load_setting(raw_dir, setting))
    except UnreconciledLogs as err:
        raise click.ClickException(f"{err} (drop: {raw_dir})") from err
    table = reconcile(derived, published)
    compared, differ = disagreements(table)
    for setting, values in table.groupby("setting", sort=True):
        both = values["published_value"].notna()
        click.echo(
            f"{setting}: {len(values)} values, {int(both.sum())} with a published value, "
            f"{int(values.loc[both, 'agree'].sum())} agree"
        )
    if differ.empty:
        return
    shown = differ.head(limit)[["setting", "code", "metric", "log_value", "published_value"]]
    if len(shown):
        click.echo(shown.to_string(index=False))
    more = f" ({len(differ) - len(shown)} not listed)" if len(differ) > len(shown) else ""
    raise click.ClickException(
        f"{len(differ)} of {len(compared)} log values differ from the published ones{more}"
    )
