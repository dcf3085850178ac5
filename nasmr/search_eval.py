"""Ground-truth evaluation of NCP: search where the benchmark knows every answer.

Restricted mode: the search space is the pool of evaluated architectures that the
predictor never saw, i.e. the test part of the predictor's own split (its card
records the split seed; the split depends only on seed and code). NCP steps are
projected to the nearest pool architecture. Three searchers get the same number
of predictor queries (distinct architectures scored, counted on NCP's run):

* ``ncp``: NCP from ``starts`` pool architectures, the best predicted result;
* ``random``: that many pool architectures drawn at random, the best predicted;
* ``evolution``: regularised evolution (Real et al. 2019, ageing population, tournament
  selection) whose mutation moves to one of the parent's nearest allowed pool
  architectures not yet scored, so that every cycle is one query.

Single objective: under a FLOPs budget (quantiles of the pool's FLOPs) each searcher
returns one architecture; the report gives its true metric and its regret against
the best pool architecture within the budget. Multi-objective: each searcher
scalarises metric - lambda * ln(GMac) over a sweep of lambdas; the union of its
picks is scored by the hypervolume of (ln GMac, true metric) relative to the true
Pareto front of the pool (reference point: the pool's largest ln GMac and lowest
metric). Means and std are over ``repeats`` seeded repetitions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from nasmr.features import embedding_tensor, normalise
from nasmr.ncp import Objective, ncp_search
from nasmr.ncp_defaults import DEFAULT_STARTS, DEFAULT_STEPS
from nasmr.pareto import pareto_front
from nasmr.predictor import (
    Predictor,
    Progress,
    load_predictor,
    predictor_name,
    split_labels,
    torch_threads,
)
from nasmr.space import Arch
from schemas.settings import MR_SETTINGS, get_setting

BUDGET_QUANTILES = (0.25, 0.5, 1.0)
"""FLOPs budgets as quantiles of the pool's FLOPs (1.0: unconstrained)."""

LAMBDAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
"""Cost weights of the multi-objective sweep (standardised metric per e-fold of GMac)."""

METHODS = ("ncp", "random", "evolution")
TIE_TOLERANCE = 1e-9
"""Means closer than this are a tie when counting which method leads (float noise)."""
NEIGHBOURS = 8
POPULATION = 16
TOURNAMENT = 4


@dataclass(frozen=True)
class SearchReport:
    """Budgeted single-objective results and multi-objective hypervolumes."""

    budgets: pd.DataFrame
    pareto: pd.DataFrame


@dataclass(frozen=True)
class _Pool:
    """Test architectures of one setting with true metric, exact GMac and predicted score."""

    archs: list[Arch]
    codes: np.ndarray
    metric: np.ndarray
    gflops: np.ndarray
    predicted: np.ndarray
    neighbours: np.ndarray
    """Every other pool architecture of each one, nearest first."""


def _pool(predictor: Predictor, frame: pd.DataFrame, setting: str) -> _Pool:
    """The architectures of ``frame`` in the test part of the predictor's split."""
    metric = get_setting(setting).primary_metric
    frame = frame.sort_values("code").reset_index(drop=True)
    test = frame[split_labels(frame["code"].tolist(), predictor.card.split.seed) == "test"]
    archs = [Arch.from_code(c) for c in test["code"]]
    z = normalise(embedding_tensor(archs, torch.float64))
    model = predictor.double()
    column = predictor.columns.index(f"{setting}.{metric}")
    with torch.no_grad():
        predicted = model.forward(z)[:, column].numpy()
    distance = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    np.fill_diagonal(distance, np.inf)
    return _Pool(
        archs,
        test["code"].to_numpy(),
        test[metric].to_numpy(float),
        test["flops"].to_numpy(float),
        predicted,
        np.argsort(distance, axis=1, kind="stable")[:, :-1],
    )


def _random_search(score: np.ndarray, allowed: np.ndarray, queries: int, rng: random.Random) -> int:
    """Index of the best-scored of ``queries`` random allowed pool architectures."""
    chosen = rng.sample(list(allowed), min(queries, len(allowed)))
    return max(chosen, key=lambda i: (score[i], -i))


def _evolution(
    score: np.ndarray, allowed: np.ndarray, neighbours: np.ndarray, queries: int, rng: random.Random
) -> int:
    """Regularised evolution over allowed pool architectures; index of the best-scored seen."""
    ok = set(allowed.tolist())
    budget = min(queries, len(ok))
    population: list[int] = rng.sample(allowed.tolist(), min(POPULATION, budget))
    seen = set(population)
    while len(seen) < budget:
        contenders = rng.sample(population, min(TOURNAMENT, len(population)))
        parent = max(contenders, key=score.__getitem__)
        unseen = (j for j in neighbours[parent].tolist() if j in ok and j not in seen)
        child = rng.choice(list(islice(unseen, NEIGHBOURS)))
        seen.add(child)
        population.append(child)
        population.pop(0)
    return max(seen, key=lambda i: (score[i], -i))


def _ncp(
    predictor: Predictor,
    pool: _Pool,
    allowed: np.ndarray,
    objective: Objective,
    starts: int,
    steps: int,
    rng: random.Random,
) -> tuple[int, int]:
    """NCP projected onto the allowed pool: (index of the best predicted result, queries)."""
    index = {c: i for i, c in enumerate(pool.codes)}
    candidates = [pool.archs[i] for i in allowed]
    first = [pool.archs[i] for i in rng.sample(list(allowed), min(starts, len(allowed)))]
    result = ncp_search(predictor, objective, first, steps=steps, pool=candidates)
    final = result.final[result.final["status"] == "feasible"]
    best = final.sort_values(["objective", "start"], ascending=[False, True]).iloc[0]
    return index[best["code"]], result.queries


def hypervolume(x: np.ndarray, y: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points (minimise x, maximise y) and bounded by ``ref``."""
    inside = (x <= ref[0]) & (y >= ref[1])
    x, y = x[inside], y[inside]
    if not len(x):
        return 0.0
    front = pareto_front(x, y)
    xs, ys = x[front], y[front]
    edges = np.append(xs[1:], ref[0])
    return float(np.sum((edges - xs) * (ys - ref[1])))


def _budget_rows(
    predictor: Predictor,
    pool: _Pool,
    setting: str,
    seed: int,
    repeats: int,
    starts: int,
    steps: int,
) -> list[dict[str, object]]:
    """One row per (FLOPs budget, repeat, method): the architecture each method picks within
    the budget with the same number of predictor queries as NCP, its true metric and regret."""
    rows = []
    for q in BUDGET_QUANTILES:
        budget = float(np.quantile(pool.gflops, q))
        allowed = np.flatnonzero(pool.gflops <= budget)
        best = float(pool.metric[allowed].max())
        objective = Objective({setting: 1.0}, max_gflops=budget)
        for r in range(repeats):
            rng = random.Random(seed * 1000 + r)
            found, queries = _ncp(predictor, pool, allowed, objective, starts, steps, rng)
            picks = {
                "ncp": found,
                "random": _random_search(pool.predicted, allowed, queries, rng),
                "evolution": _evolution(pool.predicted, allowed, pool.neighbours, queries, rng),
            }
            for method, i in picks.items():
                rows.append(
                    {
                        "setting": setting,
                        "budget_quantile": q,
                        "budget_gflops": budget,
                        "method": method,
                        "repeat": r,
                        "queries": queries,
                        "code": pool.codes[i],
                        "gflops": float(pool.gflops[i]),
                        "true_metric": float(pool.metric[i]),
                        "best_in_budget": best,
                        "regret": best - float(pool.metric[i]),
                    }
                )
    return rows


def _pareto_rows(
    predictor: Predictor,
    pool: _Pool,
    setting: str,
    seed: int,
    repeats: int,
    starts: int,
    steps: int,
) -> tuple[list[dict[str, object]], dict[str, np.ndarray]]:
    """One row per (repeat, method): the hypervolume (log GMac against the true metric) of
    the picks of a sweep over the cost weight ``LAMBDAS``, against the pool's true front;
    and repeat 0's picks of each method, for the plot."""
    log_flops = np.log(pool.gflops)
    ref = (float(log_flops.max()), float(pool.metric.min()))
    true_hv = hypervolume(log_flops, pool.metric, ref)
    everything = np.arange(len(pool.codes))
    rows, picks_of_first = [], {}
    for r in range(repeats):
        rng = random.Random(seed * 1000 + 500 + r)
        picks: dict[str, list[int]] = {m: [] for m in METHODS}
        queries = 0
        for lam in LAMBDAS:
            objective = Objective({setting: 1.0}, cost_weight=lam)
            found, used = _ncp(predictor, pool, everything, objective, starts, steps, rng)
            picks["ncp"].append(found)
            queries += used
            score = pool.predicted - lam * log_flops
            picks["evolution"].append(_evolution(score, everything, pool.neighbours, used, rng))
        sample = rng.sample(list(everything), min(queries, len(everything)))
        for lam in LAMBDAS:
            score = pool.predicted - lam * log_flops
            picks["random"].append(max(sample, key=lambda i, s=score: (s[i], -i)))
        for method, chosen in picks.items():
            idx = np.array(sorted(set(chosen)))
            hv = hypervolume(log_flops[idx], pool.metric[idx], ref)
            rows.append(
                {
                    "setting": setting,
                    "method": method,
                    "repeat": r,
                    "queries": queries,
                    "points": len(idx),
                    "hypervolume": hv,
                    "true_hypervolume": true_hv,
                    "hypervolume_ratio": hv / true_hv if true_hv else float("nan"),
                }
            )
        if r == 0:
            picks_of_first = {m: np.array(sorted(set(v))) for m, v in picks.items()}
    return rows, picks_of_first


def _plot(pool: _Pool, setting: str, picks: dict[str, np.ndarray], path: Path) -> None:
    """Pool, its true Pareto front and each searcher's picks, metric against GMac.

    Picks are hollow markers of distinct shapes, so architectures that several searchers
    found stay visible.
    """
    metric = get_setting(setting).primary_metric
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    ax.scatter(pool.gflops, pool.metric, s=6, c="0.8", label="pool (test architectures)")
    front = pareto_front(np.log(pool.gflops), pool.metric)
    ax.step(pool.gflops[front], pool.metric[front], where="post", c="k", lw=1, label="true front")
    styles = {"ncp": ("tab:red", "o"), "random": ("tab:blue", "s"), "evolution": ("tab:green", "^")}
    for method, idx in picks.items():
        colour, marker = styles[method]
        ax.scatter(
            pool.gflops[idx],
            pool.metric[idx],
            s=60,
            facecolors="none",
            edgecolors=colour,
            linewidths=1.4,
            marker=marker,
            label=method,
        )
    ax.set_xscale("log")
    ax.set_xlabel("GMac (exact)")
    ax.set_ylabel(f"true {metric} (%)")
    ax.set_title(f"{setting}: picks of the lambda sweep (repeat 0)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _markdown(budgets: pd.DataFrame, pareto: pd.DataFrame, data_version: str) -> str:
    """``search_report.md``: the budget and Pareto tables as means over repeats, and the
    summary of which method leads."""
    lines = [
        "# NCP ground-truth evaluation",
        "",
        f"Data version `{data_version}`. Restricted mode: search among the evaluated "
        "architectures of each predictor's test split; same number of predictor queries for "
        "every method. Mean ± std over repeats.",
        "",
        "## Under a FLOPs budget",
        "",
        "| setting | budget (GMac) | method | true metric | best in budget | regret | queries |",
        "|---|---|---|---|---|---|---|",
    ]
    grouped = budgets.groupby(["setting", "budget_gflops", "method"], sort=False)
    for (setting, budget, method), g in grouped:
        lines.append(
            f"| {setting} | {budget:.3f} | {method} | {g.true_metric.mean():.2f} ± "
            f"{g.true_metric.std(ddof=0):.2f} | {g.best_in_budget.iloc[0]:.2f} | "
            f"{g.regret.mean():.2f} ± {g.regret.std(ddof=0):.2f} | {g.queries.mean():.0f} |"
        )
    lines += [
        "",
        "## Pareto front (metric vs ln GMac)",
        "",
        "| setting | method | hypervolume / true | points |",
        "|---|---|---|---|",
    ]
    for (setting, method), g in pareto.groupby(["setting", "method"], sort=False):
        lines.append(
            f"| {setting} | {method} | {g.hypervolume_ratio.mean():.4f} ± "
            f"{g.hypervolume_ratio.std(ddof=0):.4f} | {g.points.mean():.1f} |"
        )
    table = summary(budgets, pareto)
    regret, volume = _cell_means(budgets, pareto)
    lines += [
        "",
        "## Summary",
        "",
        f"| method | mean regret | lowest mean regret, of {len(regret)} setting x budget cells "
        f"| mean hypervolume / true | highest hypervolume, of {len(volume)} settings |",
        "|---|---|---|---|---|",
        *(
            f"| {row.Index} | {row.mean_regret:.2f} | {row.lowest_regret_cells} | "
            f"{row.hypervolume_ratio:.3f} | {row.highest_hypervolume_settings} |"
            for row in table.itertuples()
        ),
        "",
        "Ties count for each tied method. Head to head, NCP's mean regret against each "
        "baseline's (lower / equal / higher, in cells) and its hypervolume (higher / equal / "
        "lower, in settings):",
        "",
        *(
            f"- {other}: regret {_tally(regret[other] - regret['ncp'])}; "
            f"hypervolume {_tally(volume['ncp'] - volume[other])}"
            for other in METHODS[1:]
        ),
    ]
    return "\n".join(lines) + "\n"


def _cell_means(budgets: pd.DataFrame, pareto: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean regret per (setting, budget) and mean hypervolume ratio per setting, by method."""
    regret = budgets.groupby(["setting", "budget_quantile", "method"]).regret.mean().unstack()
    volume = pareto.groupby(["setting", "method"]).hypervolume_ratio.mean().unstack()
    return regret[list(METHODS)], volume[list(METHODS)]


def _tally(margin: pd.Series) -> str:
    """'a / b / c': how many margins are positive, a tie, and negative."""
    tie = margin.abs() <= TIE_TOLERANCE
    return f"{(margin > TIE_TOLERANCE).sum()} / {tie.sum()} / {(margin < -TIE_TOLERANCE).sum()}"


def summary(budgets: pd.DataFrame, pareto: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean regret, cells led, mean hypervolume ratio, settings led (ties: each).

    A method leads a (setting, budget) cell with the lowest mean regret, a setting with the
    highest mean hypervolume ratio.
    """
    regret, volume = _cell_means(budgets, pareto)
    return pd.DataFrame(
        {
            "mean_regret": budgets.groupby("method").regret.mean(),
            "lowest_regret_cells": _leads(-regret),
            "hypervolume_ratio": pareto.groupby("method").hypervolume_ratio.mean(),
            "highest_hypervolume_settings": _leads(volume),
        }
    ).reindex(list(METHODS))


def _leads(score: pd.DataFrame) -> pd.Series:
    """Per method (column), the rows where its score is the highest, ties included."""
    return (score.rsub(score.max(axis=1), axis=0) <= TIE_TOLERANCE).sum()


def evaluate_search(
    frames: Mapping[str, pd.DataFrame],
    predictor_dir: Path,
    out_dir: Path,
    seed: int = 0,
    repeats: int = 3,
    starts: int = DEFAULT_STARTS,
    steps: int = DEFAULT_STEPS,
    progress: Progress | None = None,
    *,
    data_version: str,
) -> SearchReport:
    """Evaluate NCP against random search and evolution on every MR setting with a predictor.

    Reads ``<predictor_dir>/<setting>.json`` predictors; writes ``search_budgets.csv``,
    ``search_pareto.csv``, ``search_report.md`` (which records ``data_version``, the
    version of ``frames``, as predictor cards do) and ``pareto_<setting>.png`` to
    ``out_dir``. ``progress`` is called after each setting with (done, total, setting).
    """
    predictor_dir, out_dir = Path(predictor_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in MR_SETTINGS if s in frames and len(frames[s])]
    chosen = [s for s in chosen if (predictor_dir / f"{predictor_name([s])}.json").is_file()]
    if not chosen:
        raise FileNotFoundError(
            f"{predictor_dir}: no predictor of an MR setting in frames; train predictors first"
        )
    budget_rows, pareto_rows = [], []
    for done, setting in enumerate(chosen, start=1):
        predictor = load_predictor(predictor_dir / f"{predictor_name([setting])}.json")
        with torch_threads(1):
            pool = _pool(predictor, frames[setting], setting)
            budget_rows += _budget_rows(predictor, pool, setting, seed, repeats, starts, steps)
            rows, picks = _pareto_rows(predictor, pool, setting, seed, repeats, starts, steps)
        pareto_rows += rows
        _plot(pool, setting, picks, out_dir / f"pareto_{setting}.png")
        if progress is not None:
            progress(done, len(chosen), setting)
    budgets, pareto = pd.DataFrame(budget_rows), pd.DataFrame(pareto_rows)
    budgets.to_csv(out_dir / "search_budgets.csv", index=False)
    pareto.to_csv(out_dir / "search_pareto.csv", index=False)
    (out_dir / "search_report.md").write_text(_markdown(budgets, pareto, data_version))
    return SearchReport(budgets, pareto)
