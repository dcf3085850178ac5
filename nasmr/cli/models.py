"""The predictor and search commands: ``nasmr predictor train``, ``nasmr predict`` and
``nasmr search`` (NCP)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nasmr import paths
from nasmr.cli.options import (
    from_release,
    release_option,
    seeds_option,
    warehouse_option,
    warehouse_origin,
    workers_option,
)
from nasmr.ncp_defaults import DEFAULT_LR, DEFAULT_STARTS, DEFAULT_STEPS
from schemas.nb201 import NB201_LEGEND, ops_text
from schemas.predictor import COMPLEXITY_METRICS, MULTITASK, SAVED_MODELS, saved_name
from schemas.settings import (
    MR_SETTINGS,
    NB201,
    NCP_SETTINGS,
    PREDICTOR_SETTINGS,
    check_predictor_settings,
    get_setting,
    published_decimals,
)

if TYPE_CHECKING:
    import pandas as pd

    from nasmr.predictor import Predictor
    from nasmr.space import Arch


class _Finite(click.FloatRange):
    """A float range that also refuses NaN and infinities, which ``FloatRange`` lets through."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _default_predictors() -> Path:
    return paths.out_dir() / "predictors"


predictors_option = click.option(
    "--predictors",
    "predictor_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_predictors,
    show_default="NASMR_OUT/predictors or warehouse/build/predictors",
    help="The folder of trained predictors (<name>.safetensors + <name>.json).",
)


def _load(predictor_dir: Path, name: str, release: str | None) -> Predictor:
    """A saved predictor, or a usage error that says how to make one (``release``: the
    ``--release`` it was looked for in)."""
    from nasmr.predictor import PredictorError, load_predictor

    card = predictor_dir / f"{name}.json"
    if not card.is_file():
        advice = (
            "a release published without models has none: name another --release, or a "
            "build's --predictors instead"
            if release is not None
            else _released(name) + "run `nasmr build` or `nasmr predictor train` first"
        )
        raise click.ClickException(
            f"no predictor {name!r} in {predictor_dir} ({card.name} not found): {advice}"
        )
    try:
        return load_predictor(card)
    except (PredictorError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err


def _released(name: str) -> str:
    """Advice to use the latest published release's predictor ``name``, if it has one."""
    from nasmr.release import ReleaseError, resolve_release

    try:
        folder = resolve_release("latest") / "predictors"
    except (ReleaseError, OSError):  # none published, or the releases folder is unreadable
        return ""
    if not (folder / f"{name}.json").is_file():
        return ""
    return f"use the latest release's ({folder}) with --release latest, or "


def _release_files(release: str) -> tuple[Path, Path]:
    """The predictors folder and warehouse file of ``--release REF``."""
    folder = from_release(release, {"predictor_dir": "--predictors", "warehouse": "--warehouse"})
    return folder / "predictors", folder / paths.WAREHOUSE_NAME


def _warehouse_frames(warehouse: Path, settings: list[str]) -> dict[str, pd.DataFrame]:
    """The warehouse's results of ``settings`` (those it holds), or a usage error."""
    import duckdb

    from nasmr.warehouse import setting_frames

    try:
        frames = setting_frames(warehouse, settings)
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err
    except duckdb.Error as err:  # locked by a writer, or not a nasmr warehouse
        raise click.ClickException(f"{warehouse}: cannot read the warehouse: {err}") from err
    return frames


@click.group()
def predictor() -> None:
    """Performance predictors of the benchmark settings."""


@predictor.command()
@warehouse_option("The warehouse whose results the predictors learn.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_predictors,
    show_default="NASMR_OUT/predictors or warehouse/build/predictors",
    help="Where the predictors, report.csv and report.md go.",
)
@seeds_option
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Override every configuration's epoch budget (quick runs).",
)
@click.option(
    "--settings",
    "only",
    default=None,
    help="Comma-separated settings to train (default: every available one).",
)
@workers_option("Training processes (one torch thread each; same results).")
def train(
    warehouse: Path,
    out_dir: Path,
    seeds: int,
    epochs: int | None,
    only: str | None,
    workers: int | None,
) -> None:
    """Train default, baseline and multi-task predictors; print the report."""
    from nasmr.build_lock import BuildFolderBusy, lock_of_enclosing_build
    from nasmr.predictor import train_all
    from nasmr.warehouse import NO_PREDICTOR, unpredicted_settings, warehouse_version

    wanted = _split_names(only) if only else list(PREDICTOR_SETTINGS)
    frames = _warehouse_frames(warehouse, wanted)
    for setting in [] if only else unpredicted_settings(warehouse):  # 3ddet, given results
        click.echo(f"skipped {setting}: {NO_PREDICTOR.format(warehouse=warehouse)}", err=True)
    for setting in wanted:
        if setting not in frames:
            click.echo(f"skipped {setting}: no results in {warehouse}", err=True)
    if not frames:
        raise click.ClickException(f"{warehouse} holds no results of {', '.join(wanted)}")

    def progress(done: int, total: int, label: str) -> None:
        click.echo(f"[{done}/{total}] {label}", err=True)

    try:
        with lock_of_enclosing_build(out_dir, "nasmr predictor train"):
            report = train_all(
                frames,
                out_dir,
                seeds=tuple(range(seeds)),
                data_version=warehouse_version(warehouse),
                epochs=epochs,
                progress=progress,
                workers=workers,
            )
    except (paths.ReleaseFolderError, BuildFolderBusy) as err:
        raise click.ClickException(str(err)) from err
    click.echo((out_dir / "report.md").read_text(), nl=False)
    click.echo(f"{len(report)} report rows; predictors in {out_dir}", err=True)


def _split_names(text: str) -> list[str]:
    """The comma-separated settings of ``text``, each one that can have predictors."""
    try:
        return check_predictor_settings(_names(text))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--settings") from err


def _names(text: str) -> list[str]:
    """The comma-separated names of ``text``, blanks dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


@click.command()
@click.argument("code")
@click.option(
    "--setting",
    type=click.Choice(PREDICTOR_SETTINGS),
    required=True,
    help=f"Whose predictor to use. nas-bench-201 takes ops like 0|3|2|3|2|2 ({NB201_LEGEND}) "
    "or NAS-Bench-201's arch string |avg_pool_3x3~0|+|...|.",
)
@click.option(
    "--model",
    "kind",
    type=click.Choice(SAVED_MODELS),
    default="default",
    show_default=True,
    help="Which saved predictor: the setting's default, the authors' configuration "
    "(baseline), or the one trained on all MR settings (multitask).",
)
@predictors_option
@warehouse_option(
    "Where the measured metrics of an evaluated architecture come from (the default may be "
    "missing)."
)
@release_option
def predict(
    code: str, setting: str, kind: str, predictor_dir: Path, warehouse: Path, release: str | None
) -> None:
    """Print the predicted metrics of the architecture CODE, its measured ones when the
    benchmark evaluated it, and its exact FLOPs/params."""
    from nasmr.predictor import split_labels, torch_threads
    from nasmr.space import Arch, ArchError
    from nasmr.warehouse import warehouse_version
    from schemas.nb201 import parse_ops

    if kind == MULTITASK and setting not in MR_SETTINGS:
        raise click.BadParameter(
            f"{setting} has no multi-task predictor (it covers the MR settings)",
            param_hint="--model",
        )
    if release is not None:
        predictor_dir, warehouse = _release_files(release)
    model = _load(predictor_dir, saved_name(setting, kind), release)
    if setting not in model.card.settings:  # a multi-task model trained on fewer settings
        raise click.ClickException(
            f"predictor {model.card.name!r} has no outputs of {setting}; it predicts settings "
            f"{list(model.card.settings)}"
        )
    nb201 = model.card.space == "nas-bench-201"
    try:
        item: Arch | str = code if nb201 else Arch.from_code(code)
        ops = parse_ops(code) if nb201 else []
    except (ArchError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="CODE") from err
    key = item.code if isinstance(item, Arch) else ops_text(ops)
    measured = _measured(warehouse, setting, key)
    part = f"{split_labels([key], model.card.split.seed)[0]} split"  # train: it learned this
    if measured is not None and model.card.data_version != warehouse_version(warehouse):
        part = "the predictor learned other data"  # its split says nothing of these values
    with torch_threads(1):
        row = model.predict([item]).iloc[0]
    decimals = published_decimals(setting)
    for output in model.card.outputs:  # costs are exact below, not learned
        if output.setting == setting and output.metric not in COMPLEXITY_METRICS:
            line = f"{output.column:<22} {row[output.column]:<12.4f} predicted"
            if measured is not None:
                line += f"   {measured[output.metric]:.{decimals}f} measured ({part})"
            click.echo(line)
    if isinstance(item, Arch):  # predict's cost columns are the exact counts
        click.echo(f"{'flops':<22} {row['flops']:<12.9f} exact (GMac)")
        click.echo(f"{'params':<22} {row['params']:<12.6f} exact (M)")
    else:
        network = "of the drop's CIFAR-100 network"
        for metric, unit in (("Flops", "MFLOPs"), ("Params", "M")):
            column = f"{setting}.{metric}"
            click.echo(f"{column:<22} {row[column]:<12.6f} exact ({unit} {network})")


def _measured(warehouse: Path, setting: str, key: str) -> pd.Series | None:
    """The warehouse's results of the architecture ``key`` (an MR code, or a nas-bench-201
    cell's ``ops``) in ``setting``; None, said on stderr, when it has none."""
    frame = _truth(warehouse, [setting]).get(setting)
    if frame is None:
        return None
    rows = frame[frame["ops" if setting == NB201 else "code"] == key]
    if rows.empty:
        click.echo(f"not measured: {key} has no results of {setting} in {warehouse}", err=True)
        return None
    return rows.iloc[0]


def _truth(warehouse: Path, settings: list[str], needed_by: str = "") -> dict[str, pd.DataFrame]:
    """The warehouse's results of ``settings``, for showing true metrics. A file the user
    named (or that ``needed_by`` needs) must exist and be readable; the build folder's
    default may be missing or unreadable (a writer holds it), and a setting it has no
    results of is left out, each said on stderr."""
    origin = warehouse_origin(click.get_current_context())
    required = origin is not None or bool(needed_by)
    if not warehouse.is_file():
        if required:
            message = f"no warehouse file {warehouse}{needed_by}"
            raise click.BadParameter(message, param_hint=origin or "--warehouse")
        click.echo(
            f"true metrics not shown: no warehouse at {warehouse} (the default; "
            "name one with --warehouse or NASMR_WAREHOUSE)",
            err=True,
        )
        return {}
    try:
        truth = _warehouse_frames(warehouse, settings)
    except click.ClickException as err:
        if required:
            raise
        click.echo(f"true metrics not shown: {err.message}", err=True)  # the default's
        return {}
    for name in settings:
        if name not in truth:  # else its '-' would read as 'not evaluated'
            message = f"true {name} metrics not shown: {warehouse} holds no results of {name}"
            click.echo(message, err=True)
    return truth


@click.command()
@click.option(
    "--setting",
    type=click.Choice(NCP_SETTINGS),
    default=None,
    help="Maximise this setting's primary metric (its own predictor).",
)
@click.option(
    "--settings",
    "several",
    default=None,
    help="Comma-separated MR settings, weighted by --weights (multi-task predictor).",
)
@click.option(
    "--weights",
    default=None,
    help="Comma-separated weights of --settings (>= 0, not all 0), relative: divided by "
    "their sum, so 70,30 searches as 0.7,0.3 does.",
)
@click.option(
    "--max-gflops",
    type=_Finite(min=0, min_open=True),
    default=None,
    help="Hard FLOPs budget (GMac); never exceeded by a reported result.",
)
@click.option(
    "--max-mparams",
    type=_Finite(min=0, min_open=True),
    default=None,
    help="Hard params budget (M).",
)
@click.option(
    "--cost",
    type=click.Choice(["flops", "params"]),
    default="flops",
    show_default=True,
    help="What --cost-weight penalises (the objective subtracts lambda * log cost).",
)
@click.option(
    "--cost-weight",
    type=_Finite(min=0),
    default=0.0,
    show_default=True,
    help="lambda: penalty per e-fold of the cost, in standardised metric units.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=0),
    default=DEFAULT_STEPS,
    show_default=True,
    help="Gradient steps per start (0: evaluate the starts only, each as its nearest "
    "searched architecture with --evaluated-only).",
)
@click.option(
    "--starts",
    type=click.IntRange(min=1),
    default=DEFAULT_STARTS,
    show_default=True,
    help="Random starting architectures, searched as one batch.",
)
@click.option(
    "--lr",
    type=_Finite(min=0, min_open=True),
    default=DEFAULT_LR,
    show_default=True,
    help="Largest move of a normalised embedding position per step.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the starts."
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every start's trajectory here (.csv, or .parquet; missing folders are made).",
)
@click.option(
    "--evaluated-only",
    is_flag=True,
    help="Search only the warehouse's architectures with results in every searched setting, "
    "so every result has a true metric (projecting each step to the nearest of them).",
)
@predictors_option
@warehouse_option(
    "Where true metrics of evaluated architectures come from (the default may be missing, "
    "unless --evaluated-only)."
)
@release_option
def search(
    setting: str | None,
    several: str | None,
    weights: str | None,
    max_gflops: float | None,
    max_mparams: float | None,
    cost: str,
    cost_weight: float,
    steps: int,
    starts: int,
    lr: float,
    seed: int,
    out_file: Path | None,
    evaluated_only: bool,
    predictor_dir: Path,
    warehouse: Path,
    release: str | None,
) -> None:
    """Search architectures with NCP and print each start's best feasible result."""
    from nasmr.complexity import SMALLEST
    from nasmr.ncp import Objective, ncp_search
    from nasmr.predictor import predictor_name, torch_threads
    from nasmr.space import sample

    if out_file is not None and out_file.suffix not in (".csv", ".parquet"):
        raise click.BadParameter(
            f"{out_file}: expected a .csv or .parquet file", param_hint="--out"
        )
    if out_file is not None:
        try:
            paths.outside_releases(out_file.parent, "write the trajectories elsewhere (--out)")
        except paths.ReleaseFolderError as err:
            raise click.BadParameter(str(err), param_hint="--out") from err
    objective_weights = _objective_weights(setting, several, weights)
    if release is not None:
        predictor_dir, warehouse = _release_files(release)
    try:  # before loading anything: a budget no architecture meets is refused here
        objective = Objective(objective_weights, cost, cost_weight, max_gflops, max_mparams)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    needed_by = " (--evaluated-only searches its architectures)" if evaluated_only else ""
    truth = _truth(warehouse, list(objective_weights), needed_by)
    model = _load(predictor_dir, predictor_name(list(objective_weights)), release)
    pool = _evaluated(truth, list(objective_weights), warehouse) if evaluated_only else None
    if out_file is not None:  # before the search, so that its results are not lost
        try:
            out_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            message = f"cannot create the folder {out_file.parent}: {err.strerror or err}"
            raise click.BadParameter(message, param_hint="--out") from err
    try:
        with torch_threads(1):
            result = ncp_search(
                model, objective, sample(starts, seed), steps, lr, truth=truth, pool=pool
            )
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    _print_final(result.final, list(objective_weights))
    feasible = result.final[result.final["status"] == "feasible"]
    if len(feasible):
        top = feasible.loc[feasible["objective"].idxmax()]
        click.echo(
            f"best: start {top['start']}, objective {top['objective']:.4f}: {top['code']}", err=True
        )
    _warn_beyond_measured(result.final, truth, evaluated_only)
    if out_file is not None:
        try:
            if out_file.suffix == ".parquet":
                result.trajectory.to_parquet(out_file, index=False)
            else:
                result.trajectory.to_csv(out_file, index=False)
        except OSError as err:
            message = f"trajectories not written to {out_file}: {err.strerror or err}"
            raise click.ClickException(message) from err
        click.echo(f"trajectories ({len(result.trajectory)} rows) written to {out_file}", err=True)
    infeasible = int((result.final["status"] == "infeasible").sum())
    smallest = []  # the costs of the budgets given
    if max_gflops is not None:
        smallest.append(f"{SMALLEST.gmac} GMac (for FLOPs, within about 10% of it)")
    if max_mparams is not None:
        smallest.append(f"{SMALLEST.mparams} M params")
    hint = (
        "more --steps or a looser budget may reach it (tight budgets take more steps; a "
        f"budget close to the smallest architecture's {' and '.join(smallest)} may not be "
        "met at all)"
    )
    if infeasible == len(result.final):  # nothing found is a failure for scripts, too
        raise click.ClickException(f"no start met the budget: {hint}")
    if infeasible:
        click.echo(f"{infeasible} start(s) never met the budget: {hint}", err=True)


def _warn_beyond_measured(
    final: pd.DataFrame, truth: dict[str, pd.DataFrame], evaluated_only: bool
) -> None:
    """Say on stderr when a predicted primary metric is above every measured one: the
    predictor extrapolates there, and the true value is likely lower."""
    for setting, frame in truth.items():
        primary = get_setting(setting).primary_metric
        column = f"{setting}.{primary}"
        if column not in final or final[column].isna().all():
            continue
        best = float(frame[primary].max())
        predicted = float(final[column].max())
        if predicted > best:
            digits = published_decimals(setting)
            check = ", so check results against measured ones (--evaluated-only)"
            click.echo(
                f"{column}: predicted up to {predicted:.{digits}f}, above the best measured "
                f"({best:.{digits}f}); the predictor extrapolates there"
                + ("" if evaluated_only else check),
                err=True,
            )


def _evaluated(truth: dict[str, pd.DataFrame], settings: list[str], warehouse: Path) -> list[Arch]:
    """The architectures with results in every one of ``settings``, or an error naming why none."""
    from nasmr.space import Arch

    missing = [s for s in settings if s not in truth]
    if missing:
        raise click.ClickException(f"{warehouse} holds no results of {', '.join(missing)}")
    codes = set.intersection(*(set(truth[s]["code"]) for s in settings))
    if not codes:
        raise click.ClickException(
            f"no architecture in {warehouse} has results in all of {', '.join(settings)}"
        )
    return [Arch.from_code(code) for code in sorted(codes)]


def _objective_weights(
    setting: str | None, several: str | None, weights: str | None
) -> dict[str, float]:
    """Setting -> weight from --setting, or --settings with --weights (equal if omitted)."""
    if (setting is None) == (several is None):
        raise click.UsageError("give exactly one of --setting or --settings")
    if setting is not None:
        if weights is not None:
            raise click.UsageError("--weights goes with --settings")
        return {setting: 1.0}
    names = _names(several or "")
    not_mr = [n for n in names if n not in NCP_SETTINGS]
    if not names or not_mr:
        named = f"{', '.join(not_mr)}: " if not_mr else "no setting named; "
        raise click.BadParameter(
            f"{named}NCP searches the MR settings {', '.join(NCP_SETTINGS)}",
            param_hint="--settings",
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # one weight each: a repeat would silently keep only its last weight
        raise click.BadParameter(
            f"{', '.join(repeated)} named more than once", param_hint="--settings"
        )
    if weights is None:
        return dict.fromkeys(names, 1.0 / len(names))
    try:
        values = [float(w) for w in weights.split(",")]
    except ValueError as err:
        message = f"{weights!r} is not a list of numbers"
        raise click.BadParameter(message, param_hint="--weights") from err
    if not all(math.isfinite(v) and v >= 0 for v in values):
        message = f"{weights!r}: each weight is a finite number >= 0 (a negative one minimises)"
        raise click.BadParameter(message, param_hint="--weights")
    if len(values) != len(names):
        raise click.BadParameter(
            f"{len(values)} weight(s) for {len(names)} setting(s)", param_hint="--weights"
        )
    return dict(zip(names, values, strict=True))


def _print_final(final: pd.DataFrame, settings: list[str]) -> None:
    """One line per start: status, exact cost, predicted and true primary metrics (these as
    published), code."""
    primaries = [f"{s}.{get_setting(s).primary_metric}" for s in settings]
    decimals = [published_decimals(s) for s in settings]
    header = ["start", "status", "GMac", "Mparams"]
    header += [f"pred:{p}" for p in primaries] + [f"true:{p}" for p in primaries] + ["code"]
    click.echo("\t".join(header))
    for values in final.to_dict("records"):
        cells = [str(values["start"]), str(values["status"])]
        cells += [_fmt(values["gflops"], 3), _fmt(values["mparams"], 3)]
        cells += [_fmt(values.get(p)) for p in primaries]
        cells += [
            _fmt(values.get(f"true.{p}"), d) for p, d in zip(primaries, decimals, strict=True)
        ]
        cells.append(values["code"] if isinstance(values["code"], str) else "-")
        click.echo("\t".join(cells))


def _fmt(value: object, digits: int = 2) -> str:
    """A number with ``digits`` decimals; '-' for a missing value."""
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"
