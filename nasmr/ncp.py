"""Network Coding Propagation (NCP): gradient ascent on a predictor in embedding space.

Every start is a row of one batch tensor ``z`` of normalised embeddings (each position
in [0, 1]). A step moves ``z`` along the gradient of the objective

    J(z) = sum_s w_s * m_s(z) - cost_weight * ln(cost(z)) - BARRIER * [over budget] * ln(cost(z))

where ``m_s`` is the predictor's standardised primary metric of setting ``s``, ``w_s``
its weight divided by the sum of the weights (so 70,30 searches as 0.7,0.3 does), and
``cost`` the exact FLOPs (GMac) or params (M) polynomial evaluated on the relaxed
embedding (``nasmr.features.relaxed_complexity``). Each step is normalised per start
(its largest coordinate moves by ``lr``) over the coordinates free to move: one at 0
whose gradient points below 0, or at 1 pointing above, is held, so that a width already
at its bound cannot shrink every other coordinate's move (budgets of a few times the
smallest architecture's cost were rarely met in 70 steps before). Then ``z`` is clamped
to [0, 1] and rounded to the nearest valid architecture (or projected to the nearest
architecture of a given pool). The rounded architecture is scored with the predictor and its exact
FLOPs/params from ``nasmr.complexity.analytic_complexity``; the best rounded
architecture within the hard budgets is each start's result, and a start that never
meets them is reported as infeasible. A given pool is first cut to its architectures
within the hard budgets, whose exact costs are known: projecting onto one over budget
could only waste the step. Computation is float64 and row-independent, so
a batch of starts gives each start's results as it alone would, but for the last bits:
matrix products over another number of rows may round differently. That changes a
rounded architecture only where a coordinate lands on the halfway point between two
grid values, which two full steps of ``lr`` 0.05 from a channel value do (in 128
starts of 70 steps on the default seg predictor, two trajectories went another way
there, no result).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from nasmr.complexity import SMALLEST, analytic_complexity
from nasmr.features import (
    archs_from_normalised,
    denormalise,
    embedding_tensor,
    normalise,
    relaxed_complexity,
    snap_normalised,
)
from nasmr.ncp_defaults import DEFAULT_LR, DEFAULT_STEPS
from nasmr.predictor import Predictor, PredictorError, load_predictor, predictor_name
from nasmr.space import Arch, as_arch
from schemas.settings import NCP_SETTINGS, get_setting

BARRIER = 10.0
"""Weight of the log-cost push while a start is over a hard budget."""


@dataclass(frozen=True, slots=True)
class Objective:
    """What NCP maximises: weighted primary metrics minus a cost, under hard budgets.

    ``weights`` maps MR settings to weights (>= 0, not all 0) of their standardised primary
    metric, relative to each other (the search divides them by their sum); ``cost_weight``
    (lambda, >= 0) multiplies the natural log of ``cost`` (GMac or M params), in standardised
    metric units. Weights and bounds are real numbers (not bools, not None).
    """

    weights: Mapping[str, float]
    cost: str = "flops"
    cost_weight: float = 0.0
    max_gflops: float | None = None
    max_mparams: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping):
            raise TypeError(f"objective weights map settings to weights, got {self.weights!r}")
        if not self.weights:
            raise ValueError("objective needs at least one setting weight")
        not_mr = [s for s in self.weights if s not in NCP_SETTINGS]
        if not_mr:
            raise ValueError(f"objective settings {not_mr}: NCP searches {', '.join(NCP_SETTINGS)}")
        numbers = {f"weight of {s}": w for s, w in self.weights.items()}
        numbers |= {"cost_weight": self.cost_weight}
        optional = {"max_gflops": self.max_gflops, "max_mparams": self.max_mparams}
        numbers |= {name: value for name, value in optional.items() if value is not None}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"objective {name} must be a finite number, got {value!r}")
        negative = {s: w for s, w in self.weights.items() if w < 0}
        if negative:
            message = f"objective weights must be >= 0 (a negative one minimises), got {negative}"
            raise ValueError(message)
        if self.cost_weight < 0:
            raise ValueError(
                f"objective cost_weight must be >= 0 (a penalty; a negative one rewards cost), "
                f"got {self.cost_weight}"
            )
        if not any(self.weights.values()):
            raise ValueError("objective weights are all 0: no metric to maximise")
        if self.cost not in ("flops", "params"):
            raise ValueError(f"objective cost {self.cost!r}: expected 'flops' or 'params'")
        bounds = (
            ("max_gflops", self.max_gflops, SMALLEST.gmac, "GMac"),
            ("max_mparams", self.max_mparams, SMALLEST.mparams, "M"),
        )
        for name, bound, least, unit in bounds:
            if bound is None:
                continue
            if bound <= 0:
                raise ValueError(f"objective {name} must be positive, got {bound}")
            if bound < least:
                raise ValueError(
                    f"objective {name} {bound}: no architecture of the space fits, the "
                    f"smallest costs {least} {unit} (every count 1, every width 8)"
                )


@dataclass(frozen=True)
class SearchResult:
    """Every rounded step of every start, and each start's best feasible architecture."""

    trajectory: pd.DataFrame
    final: pd.DataFrame
    queries: int
    """Distinct architectures the predictor scored (rounded or projected steps)."""


@dataclass(frozen=True, slots=True)
class _Exact:
    code: str
    gflops: float
    mparams: float


class _Exacts:
    """Architecture and exact complexity of rounded embeddings, cached by architecture."""

    def __init__(self) -> None:
        self._cache: dict[Arch, _Exact] = {}

    def of(self, arch: Arch) -> _Exact:
        """The exact complexity of one architecture."""
        if arch not in self._cache:
            count = analytic_complexity(arch)
            self._cache[arch] = _Exact(arch.code, count.gmac, count.mparams)
        return self._cache[arch]

    def __call__(self, z: Tensor) -> list[_Exact]:
        return [self.of(arch) for arch in archs_from_normalised(z)]


def _metric_columns(predictor: Predictor, objective: Objective) -> tuple[list[int], list[int]]:
    """Indices of the objective's primary metrics and of every metric of its settings."""
    columns = predictor.columns
    primary, shown = [], []
    for setting in objective.weights:
        column = f"{setting}.{get_setting(setting).primary_metric}"
        if column not in columns:
            raise PredictorError(
                f"predictor {predictor.card.name!r} has no output {column!r}; "
                f"it predicts settings {list(predictor.card.settings)}"
            )
        primary.append(columns.index(column))
        shown += [j for j, o in enumerate(predictor.card.outputs) if o.setting == setting]
    return primary, shown


def _budgets(objective: Objective) -> list[tuple[int, float]]:
    """(cost index, bound) of each hard budget: 0 is GMac, 1 is M params."""
    out = []
    if objective.max_gflops is not None:
        out.append((0, objective.max_gflops))
    if objective.max_mparams is not None:
        out.append((1, objective.max_mparams))
    return out


def _relaxed_costs(z: Tensor) -> Tensor:
    """(GMac, M params) of relaxed normalised embeddings, ``(n, 2)``."""
    macs, params = relaxed_complexity(denormalise(z))
    return torch.stack([macs.sum(dim=1) / 1e9, params.sum(dim=1) / 1e6], dim=1)


def ncp_search(
    predictor: Predictor,
    objective: Objective,
    starts: Sequence[Arch | str],
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    truth: Mapping[str, pd.DataFrame] | None = None,
    pool: Sequence[Arch | str] | None = None,
) -> SearchResult:
    """Run NCP from every start at once; see the module docstring for the method.

    Starts and pool members are architectures or their code strings. ``truth`` maps
    settings to frames (``code`` + metrics) of evaluated architectures; their metrics are
    attached to final architectures found there. With ``pool``, each step projects to the
    nearest pool architecture within the hard budgets instead of the nearest valid one (an
    error if none is within them).
    """
    if predictor.card.space != "nasbench-mr":
        name = predictor.card.name
        raise PredictorError(f"NCP searches the MR space; predictor {name!r} is not an MR model")
    for name, items in (("starts", starts), ("pool", pool)):
        if isinstance(items, str | Arch):  # a string's characters would be read as codes
            raise TypeError(f"NCP {name} is a list of architectures or codes, not one of them")
    if not starts:
        raise ValueError("NCP needs at least one start")
    if pool is not None and not pool:
        raise ValueError("NCP pool is empty: no architecture to project onto")
    if steps < 0 or not lr > 0 or not math.isfinite(lr):
        raise ValueError(
            f"steps must be >= 0 and lr a finite number > 0, got steps={steps} lr={lr}"
        )
    starts = [as_arch(s) for s in starts]
    pool = None if pool is None else [as_arch(a) for a in pool]
    primary, shown = _metric_columns(predictor, objective)
    model = predictor.double()
    weights = torch.tensor([objective.weights[s] for s in objective.weights], dtype=torch.float64)
    weights = weights / weights.max()  # first, so that huge weights do not sum to inf
    weights = weights / weights.sum()
    cost_index = 0 if objective.cost == "flops" else 1
    budgets = _budgets(objective)
    exacts = _Exacts()  # the pool's costs, counted once for the cut, serve the steps too
    if pool is not None:
        costs = [(e.gflops, e.mparams) for e in map(exacts.of, pool)]
        pool = [a for a, c in zip(pool, costs, strict=True) if all(c[i] <= b for i, b in budgets)]
        if not pool:
            limits = ", ".join(f"{('max_gflops', 'max_mparams')[i]}={b:g}" for i, b in budgets)
            raise ValueError(f"no architecture of the NCP pool is within {limits}")
    project = _projector(pool)

    z = normalise(embedding_tensor(starts, torch.float64))
    n = len(starts)
    best_objective = np.full(n, -np.inf)
    best_row: list[dict[str, object] | None] = [None] * n
    rows: list[dict[str, object]] = []
    names = [predictor.columns[j] for j in shown]
    visited: set[str] = set()
    for step in range(steps + 1):
        rounded = project(z)
        found = exacts(rounded)
        with torch.no_grad():
            standardised = model.forward(rounded)
            units = model.to_units(standardised)[:, shown].numpy()
        exact_costs = np.array([[e.gflops, e.mparams] for e in found])
        value = (standardised[:, primary] @ weights).numpy()
        with np.errstate(over="ignore", invalid="ignore"):  # named below instead
            value = value - objective.cost_weight * np.log(exact_costs[:, cost_index])
        if not np.isfinite(value).all():
            raise ValueError(_overflow(objective, "objective"))
        feasible = np.ones(n, dtype=bool)
        for index, bound in budgets:
            feasible &= exact_costs[:, index] <= bound
        for i, exact in enumerate(found):
            visited.add(exact.code)
            row: dict[str, object] = {
                "step": step,
                "start": i,
                "code": exact.code,
                "objective": float(value[i]),
                **dict(zip(names, units[i].tolist(), strict=True)),
                "gflops": exact.gflops,
                "mparams": exact.mparams,
                "feasible": bool(feasible[i]),
            }
            rows.append(row)
            if feasible[i] and value[i] > best_objective[i]:
                best_objective[i], best_row[i] = value[i], row
        if step < steps:
            z = _step(model, z, exact_costs, weights, primary, objective, cost_index, budgets, lr)

    trajectory = pd.DataFrame(rows)
    final = _final(starts, best_row, names)
    if truth is not None:
        final = attach_truth(final, truth, list(objective.weights))
    return SearchResult(trajectory, final, queries=len(visited))


def _projector(pool: Sequence[Arch] | None) -> Callable[[Tensor], Tensor]:
    """Rounding to the nearest valid architecture, or to the nearest one of ``pool``."""
    if pool is None:
        return snap_normalised
    candidates = normalise(embedding_tensor(pool, torch.float64))

    def nearest(z: Tensor) -> Tensor:
        distance = torch.cdist(z, candidates, compute_mode="donot_use_mm_for_euclid_dist")
        return candidates[distance.argmin(dim=1)]

    return nearest


def _step(
    model: Predictor,
    z: Tensor,
    exact_costs: np.ndarray,
    weights: Tensor,
    primary: list[int],
    objective: Objective,
    cost_index: int,
    budgets: list[tuple[int, float]],
    lr: float,
) -> Tensor:
    """One normalised gradient-ascent step of every start, clamped to [0, 1].

    A budget's barrier acts on a start while its relaxed or its rounded cost is over it.
    """
    z = z.detach().requires_grad_(True)
    value = model.forward(z)[:, primary] @ weights
    costs = _relaxed_costs(z)
    value = value - objective.cost_weight * costs[:, cost_index].log()
    for index, bound in budgets:
        rounded_over = torch.from_numpy(exact_costs[:, index] > bound)
        over = (costs[:, index].detach() > bound) | rounded_over
        value = value - BARRIER * over * costs[:, index].log()
    (grad,) = torch.autograd.grad(value.sum(), z)
    if not torch.isfinite(grad).all():
        raise ValueError(_overflow(objective, "gradient"))
    held = ((z <= 0) & (grad < 0)) | ((z >= 1) & (grad > 0))
    grad = grad.masked_fill(held, 0.0)
    scale = grad.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return (z + lr * grad / scale).clamp(0.0, 1.0).detach()


def _overflow(objective: Objective, what: str) -> str:
    """Why a search stopped: its objective or gradient is not finite."""
    return (
        f"NCP {what} overflowed (weights {dict(objective.weights)}, cost_weight "
        f"{objective.cost_weight}): use a smaller cost_weight"
    )


def _final(
    starts: Sequence[Arch], best: list[dict[str, object] | None], names: list[str]
) -> pd.DataFrame:
    """One row per start: its best feasible architecture, or status 'infeasible'."""
    rows = []
    for i, row in enumerate(best):
        base = {"start": i, "start_code": starts[i].code}
        if row is None:
            empty = dict.fromkeys(["step", "code", "objective", *names, "gflops", "mparams"])
            rows.append({**base, "status": "infeasible", **empty})
        else:
            kept = {k: v for k, v in row.items() if k not in ("start", "feasible")}
            rows.append({**base, "status": "feasible", **kept})
    return pd.DataFrame(rows)


def attach_truth(
    final: pd.DataFrame, truth: Mapping[str, pd.DataFrame], settings: Sequence[str]
) -> pd.DataFrame:
    """Add ``true.<setting>.<metric>`` columns and ``evaluated`` for codes found in ``truth``."""
    out = final.copy()
    evaluated = pd.Series(False, index=out.index)
    for setting in settings:
        if setting not in truth:
            continue
        metrics = list(get_setting(setting).metrics)
        frame = truth[setting].set_index("code")[metrics]
        frame.columns = [f"true.{setting}.{m}" for m in metrics]
        out = out.join(frame, on="code")
        evaluated |= out["code"].isin(frame.index)
    out["evaluated"] = evaluated
    return out


def search_predictors(
    searches: Mapping[str, Objective], predictor_dir: Path
) -> tuple[dict[str, Predictor], dict[str, str]]:
    """The saved default predictor (:func:`nasmr.predictor.predictor_name`) of each search's
    settings, and why each search without one that predicts all of them is skipped."""
    found: dict[str, Predictor] = {}
    skipped: dict[str, str] = {}
    for name, objective in searches.items():
        settings = list(objective.weights)
        card = Path(predictor_dir) / f"{predictor_name(settings)}.json"
        if not card.is_file():
            skipped[name] = f"no predictor {card.stem!r} of {settings} in {predictor_dir}"
            continue
        predictor = load_predictor(card)
        missing = [s for s in settings if s not in predictor.card.settings]
        if missing:
            skipped[name] = f"predictor {card.stem!r} does not predict {missing}"
        else:
            found[name] = predictor
    return found, skipped
