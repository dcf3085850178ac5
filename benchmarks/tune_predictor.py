"""Tune a predictor configuration with Optuna on validation Kendall tau, then test it once.

Each trial trains one configuration (a single member, for speed) on split seeds
0..--seeds-1 and scores the mean validation Kendall tau of the setting's primary
metric, read from the predictor card's ``val_metrics``: the test split plays no part
in the choice. The study varies a base recipe (``--recipe``): the setting's default,
or ``attention`` (``nasmr.predictor.BRANCH_ATTENTION``, MR only), whose epoch
selection rule it keeps; a new study's first trial is the base itself, as the
yardstick. For MR settings the space includes branch-token attention. After the
trials, the best configuration is retrained with the base's number of members and
its test tau printed next to the base's, which is the one look at the test split.
The study lives in an Optuna journal file, so a run can be resumed or extended, and a
second process on the other core can share it (same --storage, another --sampler-seed).

    .venv/bin/python benchmarks/tune_predictor.py --setting seg --trials 30 \
        [--recipe attention] [--storage FILE]

``--storage`` defaults to ``<build>/tuning/<setting>-<recipe>.journal`` (``NASMR_OUT``,
git-ignored).
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nasmr import paths
from nasmr.ingest import load_setting
from nasmr.predictor import (
    BRANCH_ATTENTION,
    ModelConfig,
    default_config,
    torch_threads,
    train_predictor,
)
from schemas.settings import get_setting

TUNED = (
    "attention",
    "rank_weight",
    "trunk",
    "head",
    "dropout",
    "weight_decay",
    "smooth_l1_beta",
    "epochs",
    "batch_size",
    "lr",
    "grouping",
)
"""The ``ModelConfig`` fields :func:`suggest` draws; a new study's first trial is its base."""

RECIPES = ("default", "attention")
"""Base recipes a study can vary (``--recipe``)."""


def base_recipe(setting: str, recipe: str = "default") -> ModelConfig:
    """The configuration a study of ``setting`` starts from and keeps the selection rule of."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {RECIPES}")
    if recipe == "attention" and not get_setting(setting).is_mr:
        raise ValueError(f"the attention recipe is for MR settings, not {setting!r}")
    return BRANCH_ATTENTION if recipe == "attention" else default_config([setting])


def suggest(trial: optuna.trial.BaseTrial, base: ModelConfig, mr: bool) -> ModelConfig:
    """``base`` with the network, regulariser, loss and optimiser drawn from the search space.

    The space holds ``base`` itself, so a study can start from the setting's default.
    Branch-token attention (0: none) is drawn only for MR settings (``mr``).
    """
    widths = sorted({0, 32, 64, 96, base.attention} if mr else {base.attention})
    rank_weight = trial.suggest_categorical("rank_weight", sorted({0.0, 0.2, base.rank_weight}))
    return replace(
        base,
        members=1,
        attention=trial.suggest_categorical("attention", widths),
        trunk=trial.suggest_categorical("trunk", [128, 256, 512]),
        head=trial.suggest_categorical("head", [64, 128, 256]),
        dropout=trial.suggest_float("dropout", 0.0, 0.6),
        weight_decay=trial.suggest_float("weight_decay", 1e-7, 1e-2, log=True),
        smooth_l1_beta=trial.suggest_float("smooth_l1_beta", 0.05, 2.0, log=True),
        epochs=trial.suggest_int("epochs", 60, 240, step=10),
        batch_size=trial.suggest_categorical("batch_size", [128, 256, 512]),
        lr=trial.suggest_float("lr", 1e-3, 3e-2, log=True),
        grouping=trial.suggest_categorical("grouping", ["authors", "by-setting"]),
        rank_weight=rank_weight,
        rank_pairs=2048 if rank_weight else 0,
    )


def mean_tau(
    frames: Mapping[str, pd.DataFrame],
    setting: str,
    config: ModelConfig,
    seeds: Sequence[int],
    split: Literal["val", "test"],
) -> float:
    """Mean Kendall tau of the primary metric on ``split`` over the split seeds."""
    column = f"{setting}.{get_setting(setting).primary_metric}"
    taus = []
    for seed in seeds:
        with torch_threads(1):
            card = train_predictor(frames, [setting], config, seed=seed).card
        scores = card.val_metrics if split == "val" else card.test_metrics
        taus.append({m.column: m.kendall for m in scores}[column])
    return statistics.mean(taus)


def tune(
    frames: Mapping[str, pd.DataFrame],
    setting: str,
    trials: int,
    seeds: Sequence[int],
    storage: Path,
    sampler_seed: int = 0,
    timeout: float | None = None,
    recipe: str = "default",
) -> optuna.Study:
    """Run (or continue) the study of ``setting`` stored in ``storage``; maximise validation tau.

    The sampler is seeded by ``sampler_seed`` and the number of trials already stored, so a
    resumed run draws new configurations instead of replaying the first run's draws.
    """
    base = base_recipe(setting, recipe)
    study = optuna.create_study(
        study_name=f"{setting}-{recipe}-predictor",
        direction="maximize",
        storage=JournalStorage(JournalFileBackend(str(storage))),
        load_if_exists=True,
    )
    study.sampler = optuna.samplers.TPESampler(
        seed=sampler_seed * 1_000_000 + len(study.trials), n_startup_trials=10
    )
    if not study.trials:
        study.enqueue_trial({name: getattr(base, name) for name in TUNED})
    study.optimize(
        lambda trial: mean_tau(
            frames, setting, suggest(trial, base, get_setting(setting).is_mr), seeds, "val"
        ),
        n_trials=trials,
        timeout=timeout,
    )
    return study


def best_config(study: optuna.Study, setting: str, recipe: str = "default") -> ModelConfig:
    """The best trial's configuration with the base recipe's ensemble size."""
    base = base_recipe(setting, recipe)
    trial = optuna.trial.FixedTrial(study.best_trial.params)
    config = suggest(trial, base, get_setting(setting).is_mr)
    return replace(config, members=base.members)


def main() -> None:
    """Tune on validation, then print the test tau of the best configuration and of the base."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=paths.raw_dir())
    parser.add_argument("--setting", default="seg")
    parser.add_argument("--trials", type=int, default=30, help="trials this process adds")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the trials")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--recipe", choices=RECIPES, default="default", help="base recipe")
    parser.add_argument(
        "--storage",
        type=Path,
        default=None,
        help="default: <build>/tuning/<setting>-<recipe>.journal",
    )
    args = parser.parse_args()
    try:
        base = base_recipe(args.setting, args.recipe)
    except ValueError as error:
        parser.error(str(error))
    name = f"{args.setting}-{args.recipe}.journal"
    storage = args.storage or paths.out_dir() / "tuning" / name
    storage.parent.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch 1 thread")

    load = load_setting(args.raw, args.setting)
    if load.status != "ok":
        parser.error(f"{args.setting} in {args.raw}: {load.status} ({load.reason})")
    frames = {args.setting: load.valid}
    seeds = range(args.seeds)
    study = tune(
        frames,
        args.setting,
        args.trials,
        seeds,
        storage,
        args.sampler_seed,
        args.timeout,
        args.recipe,
    )
    done = [t for t in study.trials if t.value is not None]
    print(f"{len(done)} trials in {storage}; best validation tau first:")
    for t in sorted(done, key=lambda t: -t.value)[:5]:
        print(f"  #{t.number:<4} val tau {t.value:.4f}  {t.params}")
    print(f"test tau over {args.seeds} seeds, {base.members} member(s):")
    for label, config in (
        (f"best trial #{study.best_trial.number}", best_config(study, args.setting, args.recipe)),
        (args.recipe, base),
    ):
        print(f"  {label}: {mean_tau(frames, args.setting, config, seeds, 'test'):.4f}")


if __name__ == "__main__":
    main()
