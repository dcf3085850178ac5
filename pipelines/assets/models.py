"""Downstream of the warehouse: performance predictors and NCP searches (the refresh job)."""

import json
from dataclasses import asdict

import dagster as dg
import pandas as pd

from nasmr import ncp
from nasmr.predictor import train_all
from nasmr.search_eval import evaluate_search
from nasmr.space import sample
from nasmr.warehouse import (
    NO_PREDICTOR,
    setting_frames,
    unpredicted_settings,
    warehouse_version,
    write_parquet,
)
from pipelines.assets.warehouse import WRITER_POOL, warehouse
from pipelines.metadata import plots, preview, timed
from pipelines.resources import BuildDir, BuildOptions
from schemas.settings import PREDICTOR_SETTINGS, get_setting

MODELS_GROUP = "models"


def chosen_frames(build_dir: BuildDir, options: BuildOptions) -> dict[str, pd.DataFrame]:
    """The warehouse's per-setting frames, limited to ``options.predictor_settings`` (None:
    every setting that can have a predictor, so not 3ddet, whose card a predictor could not
    write, even once a drop holds its results)."""
    return setting_frames(build_dir.warehouse(), options.predictor_settings or PREDICTOR_SETTINGS)


@dg.asset(group_name=MODELS_GROUP, deps=[warehouse], kinds={"pytorch"}, pool=WRITER_POOL)
def predictors(
    context: dg.AssetExecutionContext, build_dir: BuildDir, options: BuildOptions
) -> dg.MaterializeResult:
    """Per-setting and multi-task predictors, default and the authors' baseline, trained and
    tested under one protocol over ``options.predictor_seeds`` splits."""
    frames = chosen_frames(build_dir, options)
    for setting in unpredicted_settings(build_dir.warehouse()):
        why = NO_PREDICTOR.format(warehouse=build_dir.warehouse())
        context.log.warning(f"predictors: none for {setting}: {why}")

    def progress(done: int, total: int, what: str) -> None:
        context.log.info(f"predictors: {done}/{total} trained ({what})")

    metadata: dict[str, object] = {}
    with build_dir.replacing("predictors") as out, timed(metadata):
        report = train_all(
            frames,
            out,
            seeds=range(options.predictor_seeds),
            data_version=warehouse_version(build_dir.warehouse()),
            epochs=options.predictor_epochs,
            progress=progress,
            workers=options.workers,
        )
        table = (out / "report.md").read_text()
        saved = len(list(out.glob("*.safetensors")))
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "path": dg.MetadataValue.path(str(build_dir.root() / "predictors")),
            "report": dg.MetadataValue.md(table),
            "saved_models": saved,  # split seed 0's, one per setting and kind
            "report_rows": len(report),
        }
    )


NCP_SEARCHES: dict[str, ncp.Objective] = {
    "seg_1gflops": ncp.Objective({"seg": 1.0}, max_gflops=1.0),
    "seg_video_1gflops": ncp.Objective({"seg": 0.5, "video": 0.5}, max_gflops=1.0),
}
"""Searches the pipeline refreshes: name -> objective (run if a predictor covers it)."""


@dg.asset(group_name=MODELS_GROUP, deps=[predictors], kinds={"pytorch", "json"}, pool=WRITER_POOL)
def ncp_results(
    context: dg.AssetExecutionContext, build_dir: BuildDir, options: BuildOptions
) -> dg.MaterializeResult:
    """NCP from random starts for each search of ``NCP_SEARCHES`` that the trained predictors
    cover (the others are logged and skipped): every start's trajectory and its best
    architecture within the budget, with true metrics where evaluated, and ``<name>.json``
    saying what made them (data version, predictor, objective, starts, steps, seed)."""
    truth = setting_frames(build_dir.warehouse())
    data_version = warehouse_version(build_dir.warehouse())
    metadata: dict[str, object] = {}
    with build_dir.replacing("ncp") as out, timed(metadata):
        found, skipped = ncp.search_predictors(NCP_SEARCHES, build_dir.root() / "predictors")
        for name, reason in skipped.items():
            context.log.warning(f"ncp {name}: skipped, {reason}")
        for name, predictor in found.items():
            result = ncp.ncp_search(
                predictor,
                NCP_SEARCHES[name],
                sample(options.ncp_starts, options.seed),
                steps=options.ncp_steps,
                truth=truth,
            )
            write_parquet(result.trajectory, out / f"{name}_trajectory.parquet")
            write_parquet(result.final, out / f"{name}_final.parquet")
            made = {
                "data_version": data_version,  # publishing refuses results of other data
                "predictor": predictor.card.name,
                "objective": asdict(NCP_SEARCHES[name]),
                "starts": options.ncp_starts,
                "steps": options.ncp_steps,
                "seed": options.seed,
            }
            (out / f"{name}.json").write_text(json.dumps(made, indent=2) + "\n")
            metadata[name] = preview(result.final)
            context.log.info(f"ncp {name}: {len(result.final)} starts, {result.queries} queries")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "path": dg.MetadataValue.path(str(build_dir.root() / "ncp")),
            "skipped": dg.MetadataValue.json(skipped),
        }
    )


@dg.asset(group_name=MODELS_GROUP, deps=[predictors], kinds={"pytorch", "csv"}, pool=WRITER_POOL)
def search_evaluation(
    context: dg.AssetExecutionContext, build_dir: BuildDir, options: BuildOptions
) -> dg.MaterializeResult:
    """NCP vs random search and regularised evolution against the benchmark's ground truth:
    regret under FLOPs budgets, Pareto fronts, hypervolumes and plots (skipped, like
    ``ncp_results``, when the predictors cover no MR setting)."""
    frames = chosen_frames(build_dir, options)
    if not any(get_setting(s).is_mr for s in frames):
        reason = "no MR setting among the predictors' settings"
        context.log.warning(f"search evaluation: skipped, {reason}")
        with build_dir.replacing("reports"):  # emptied: no earlier report may be released
            return dg.MaterializeResult(metadata={"skipped": reason})
    metadata: dict[str, object] = {}

    def progress(done: int, total: int, setting: str) -> None:
        context.log.info(f"search evaluation: {done}/{total} settings ({setting})")

    with build_dir.replacing("reports") as out, timed(metadata):
        evaluate_search(
            frames,
            build_dir.root() / "predictors",
            out,
            seed=options.seed,
            starts=options.ncp_starts,
            steps=options.ncp_steps,
            progress=progress,
            data_version=warehouse_version(build_dir.warehouse()),
        )
        report = (out / "search_report.md").read_text()
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "path": dg.MetadataValue.path(str(build_dir.root() / "reports")),
            "report": dg.MetadataValue.md(report),
            **plots(build_dir.root() / "reports"),
        }
    )
