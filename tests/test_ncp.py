"""NCP search: budgets, validity, determinism, batching, truth lookup; evaluation; the CLI."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from nasmr.cli import main
from nasmr.complexity import SMALLEST, analytic_complexity
from nasmr.ncp import Objective, ncp_search
from nasmr.ncp_defaults import DEFAULT_STEPS
from nasmr.predictor import (
    BRANCH_ATTENTION,
    DEFAULT,
    Predictor,
    PredictorError,
    torch_threads,
    train_predictor,
)
from nasmr.search_eval import (
    POPULATION,
    _evolution,
    _pool,
    evaluate_search,
    hypervolume,
    summary,
)
from nasmr.space import Arch, domain, sample
from nasmr.warehouse import ingest
from tests.drops import mr_record, seg_drop, synthetic_frames, write_drop

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return synthetic_frames(n=300, seed=5)


@pytest.fixture(scope="module")
def seg_predictor(frames: dict[str, pd.DataFrame]) -> Predictor:
    with torch_threads(1):  # module fixtures run before the per-test one_thread fixture
        return train_predictor(frames, ["seg"], DEFAULT.with_epochs(30), seed=0)


@pytest.fixture(scope="module")
def multi_predictor(frames: dict[str, pd.DataFrame]) -> Predictor:
    with torch_threads(1):
        return train_predictor(frames, ["seg", "cls-10c"], DEFAULT.with_epochs(10), seed=0)


@pytest.mark.parametrize(
    ("seed", "max_gflops", "max_mparams"),
    [(0, 0.5, None), (1, 1.0, None), (2, None, 1.5), (3, 0.8, 2.0), (4, 0.2, None)],
)
def test_budget_is_never_exceeded(
    seg_predictor: Predictor, seed: int, max_gflops: float | None, max_mparams: float | None
) -> None:
    objective = Objective({"seg": 1.0}, max_gflops=max_gflops, max_mparams=max_mparams)
    result = ncp_search(seg_predictor, objective, sample(12, seed), steps=25)
    feasible = result.final[result.final["status"] == "feasible"]
    assert len(feasible) > 0
    for row in feasible.itertuples():
        count = analytic_complexity(Arch.from_code(row.code))
        assert (row.gflops, row.mparams) == (count.gmac, count.mparams)
        assert max_gflops is None or row.gflops <= max_gflops
        assert max_mparams is None or row.mparams <= max_mparams
    flagged = result.trajectory["feasible"]
    over = (result.trajectory["gflops"] > (max_gflops or np.inf)) | (
        result.trajectory["mparams"] > (max_mparams or np.inf)
    )
    assert (flagged == ~over).all()


def test_search_improves_the_prediction_and_returns_valid_architectures(
    seg_predictor: Predictor,
) -> None:
    starts = sample(8, 9)
    result = ncp_search(seg_predictor, Objective({"seg": 1.0}), starts, steps=30)
    assert len(result.trajectory) == 8 * 31
    assert all(Arch.from_code(c).code == c for c in result.trajectory["code"])
    first = result.trajectory[result.trajectory["step"] == 0].set_index("start")["objective"]
    final = result.final.set_index("start")["objective"]
    assert (final >= first).all() and (final > first).mean() > 0.5
    assert result.queries == result.trajectory["code"].nunique()


def test_search_follows_an_attention_predictor(frames: dict[str, pd.DataFrame]) -> None:
    """Branch tokens are torch functions of the relaxed code, so NCP can ascend through them."""
    predictor = train_predictor(frames, ["seg"], BRANCH_ATTENTION.with_epochs(10), seed=0)
    result = ncp_search(predictor, Objective({"seg": 1.0}), sample(6, 3), steps=15)
    first = result.trajectory[result.trajectory["step"] == 0].set_index("start")["objective"]
    final = result.final.set_index("start")["objective"]
    assert (final >= first).all() and (final > first).any()
    z = predictor.encode(sample(4, 7)).requires_grad_(True)
    through_tokens = predictor.double().net.members[0].attention(z).sum()
    (gradient,) = torch.autograd.grad(through_tokens, z)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_unreachable_budget_reports_infeasible_starts(seg_predictor: Predictor) -> None:
    """The space's smallest architecture is within this budget, but 5 steps do not reach it."""
    objective = Objective({"seg": 1.0}, max_gflops=SMALLEST.gmac)
    result = ncp_search(seg_predictor, objective, [a.code for a in sample(3, 0)], steps=5)
    assert (result.final["status"] == "infeasible").all()
    assert result.final["code"].isna().all() and result.final["gflops"].isna().all()
    assert result.final["start_code"].tolist() == [a.code for a in sample(3, 0)]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (
            {"max_gflops": 0.01},
            "max_gflops 0.01: no architecture of the space fits, the smallest costs "
            "0.010842562 GMac",
        ),
        ({"max_mparams": 0.02}, "max_mparams 0.02: no .* smallest costs 0.021322 M"),
    ],
)
def test_a_budget_below_the_smallest_architecture_is_refused(budget: dict, message: str) -> None:
    """It used to search and report every start infeasible, as if more steps could help."""
    with pytest.raises(ValueError, match=message):
        Objective({"seg": 1.0}, **budget)


def test_smallest_is_the_space_minimum() -> None:
    """Lowering any one position never raises either count, so the all-lowest corner is the
    minimum of both (the premise of refusing budgets below it)."""
    for arch in sample(60, 5):
        count, embedding = analytic_complexity(arch), list(arch.embedding)
        for p, value in enumerate(embedding):
            values = domain(p)
            if value == values[0]:
                continue
            lower = [*embedding[:p], values[values.index(value) - 1], *embedding[p + 1 :]]
            less = analytic_complexity(Arch.from_embedding(lower))
            assert less.macs <= count.macs and less.params <= count.params
    assert Objective({"seg": 1.0}, max_gflops=SMALLEST.gmac, max_mparams=SMALLEST.mparams)


def test_one_code_string_is_not_a_list_of_starts(seg_predictor: Predictor) -> None:
    """Read as a list, a code was its characters: ArchError "value '9'" named no problem."""
    code = sample(1, 0)[0].code
    for one in (code, Arch.from_code(code)):  # an Arch failed as "not iterable"
        with pytest.raises(TypeError, match=r"NCP starts is a list .* not one of them"):
            ncp_search(seg_predictor, Objective({"seg": 1.0}), one, steps=1)
        with pytest.raises(TypeError, match=r"NCP pool is a list .* not one of them"):
            ncp_search(seg_predictor, Objective({"seg": 1.0}), [code], steps=1, pool=one)
        with pytest.raises(TypeError, match=r"predict takes a list of architectures or codes: \["):
            seg_predictor.predict(one)
    with pytest.raises(TypeError, match="objective weights map settings to weights"):
        Objective(["seg"])  # type: ignore[arg-type]


def test_deterministic_and_batched_equals_single(seg_predictor: Predictor) -> None:
    objective = Objective({"seg": 1.0}, cost_weight=0.2, max_gflops=1.5)
    starts = sample(5, 21)
    batched = ncp_search(seg_predictor, objective, starts, steps=20)
    again = ncp_search(seg_predictor, objective, starts, steps=20)
    pd.testing.assert_frame_equal(batched.trajectory, again.trajectory)
    pd.testing.assert_frame_equal(batched.final, again.final)
    for i, start in enumerate(starts):
        alone = ncp_search(seg_predictor, objective, [start], steps=20)
        rows = batched.trajectory[batched.trajectory["start"] == i].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            rows.drop(columns="start"), alone.trajectory.drop(columns="start")
        )
        assert batched.final.loc[i, "code"] == alone.final.loc[0, "code"]


def test_true_metrics_attached_for_evaluated_architectures(
    seg_predictor: Predictor, frames: dict[str, pd.DataFrame]
) -> None:
    seg = frames["seg"]
    starts = [Arch.from_code(c) for c in seg["code"].iloc[:3]] + sample(1, 99)
    result = ncp_search(seg_predictor, Objective({"seg": 1.0}), starts, steps=0, truth=frames)
    final = result.final
    assert final["evaluated"].tolist() == [True, True, True, False]
    truth = seg.set_index("code").loc[final["code"].iloc[:3]]
    assert final["true.seg.mIoU"].iloc[:3].tolist() == truth["mIoU"].tolist()
    assert np.isnan(final["true.seg.mIoU"].iloc[3])


def test_pool_projection_stays_in_the_pool(
    seg_predictor: Predictor, frames: dict[str, pd.DataFrame]
) -> None:
    pool = [Arch.from_code(c) for c in frames["seg"]["code"].iloc[:80]]
    result = ncp_search(seg_predictor, Objective({"seg": 1.0}), pool[:4], steps=15, pool=pool)
    assert set(result.trajectory["code"]) <= {a.code for a in pool}
    with pytest.raises(ValueError, match="NCP pool is empty"):
        ncp_search(seg_predictor, Objective({"seg": 1.0}), pool[:4], steps=1, pool=[])


def test_pool_projection_keeps_to_the_pools_architectures_within_the_budget(
    seg_predictor: Predictor, frames: dict[str, pd.DataFrame]
) -> None:
    """Pool members' exact costs are known: a start whose nearest pool member is over budget
    must not stay there, infeasible, while members within it exist."""
    pool = [Arch.from_code(c) for c in frames["seg"]["code"].iloc[:80]]
    gmac = {a.code: analytic_complexity(a).gmac for a in pool}
    budget = float(np.quantile(list(gmac.values()), 0.1))
    over = [a for a in pool if gmac[a.code] > budget][:6]
    objective = Objective({"seg": 1.0}, max_gflops=budget)
    result = ncp_search(seg_predictor, objective, over, steps=3, pool=pool)
    assert (result.final["status"] == "feasible").all()
    assert all(gmac[code] <= budget for code in result.trajectory["code"])
    smallest = min(gmac.values())
    with pytest.raises(ValueError, match=r"no architecture of the NCP pool is within max_gflops"):
        ncp_search(
            seg_predictor, Objective({"seg": 1.0}, max_gflops=smallest / 2), over, 1, pool=pool
        )


def test_weighted_settings_need_a_predictor_that_has_them(
    multi_predictor: Predictor, seg_predictor: Predictor
) -> None:
    objective = Objective({"seg": 0.5, "cls-10c": 0.5}, max_gflops=1.0)
    result = ncp_search(multi_predictor, objective, sample(4, 2), steps=10)
    assert {"seg.mIoU", "cls-10c.top1"} <= set(result.final.columns)
    with pytest.raises(PredictorError, match=r"cls-10c\.top1.*\['seg'\]"):
        ncp_search(seg_predictor, objective, sample(1, 0), steps=1)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"seg": 0.0, "video": 0.0}, "all 0: no metric to maximise"),
        ({"seg": 1.0, "video": -1.0}, r"must be >= 0 .*\{'video': -1\.0\}"),
    ],
    ids=["all-zero", "negative"],
)
def test_objective_refuses_weights_that_maximise_nothing(
    weights: dict[str, float], message: str
) -> None:
    """All 0 returned each random start as its 'best'; a negative weight, the worst as best."""
    with pytest.raises(ValueError, match=message):
        Objective(weights)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"weights": {"seg": 1.0}, "cost_weight": None}, "cost_weight must be a finite number"),
        ({"weights": {"seg": 1.0}, "cost_weight": -1.0}, "cost_weight must be >= 0"),
        ({"weights": {"seg": True}}, "weight of seg must be a finite number, got True"),
        ({"weights": {"seg": "1"}}, "weight of seg must be a finite number, got '1'"),
        ({"weights": {"seg": 1.0}, "max_gflops": True}, "max_gflops must be a finite number"),
        ({"weights": {"sge": 1.0}}, r"objective settings \['sge'\]: NCP searches seg, seg-4x"),
        ({"weights": {"nas-bench-201": 1.0}}, r"settings \['nas-bench-201'\]"),
        ({"weights": {"3ddet": 1.0}}, r"settings \['3ddet'\]: NCP searches seg, .*video-p$"),
    ],
)
def test_objective_names_a_bad_argument_when_made(arguments: dict, message: str) -> None:
    """Each used to pass and fail mid-search (TypeError, KeyError) or maximise cost."""
    with pytest.raises(ValueError, match=message):
        Objective(**arguments)


def test_weights_are_relative(multi_predictor: Predictor) -> None:
    """Percentages (70,30) used to outweigh the fixed budget barrier and leave every start
    over budget, where 0.7,0.3 met it; 1e308 each used to overflow."""

    def search(weights: dict[str, float]) -> pd.DataFrame:
        objective = Objective(weights, max_gflops=0.3)
        return ncp_search(multi_predictor, objective, sample(6, 4), steps=30).final

    fractions = search({"seg": 0.7, "cls-10c": 0.3})
    assert (fractions["status"] == "feasible").all()
    for scaled in ({"seg": 70.0, "cls-10c": 30.0}, {"seg": 7e307, "cls-10c": 3e307}):
        found = search(scaled)
        assert found["code"].tolist() == fractions["code"].tolist()
        assert found["objective"].to_numpy() == pytest.approx(fractions["objective"].to_numpy())


def test_a_cost_weight_so_large_the_objective_overflows_is_named(
    seg_predictor: Predictor,
) -> None:
    """It used to make every objective -inf and report every start infeasible, even with
    no budget."""
    objective = Objective({"seg": 1.0}, cost_weight=1e308)
    with pytest.raises(ValueError, match=r"NCP objective overflowed .*use a smaller cost_weight"):
        ncp_search(seg_predictor, objective, sample(16, 0), steps=0)


@pytest.mark.parametrize("budget", [{"max_gflops": 0.02}, {"max_mparams": 0.03}])
def test_tight_budgets_are_met_in_the_default_steps(
    seg_predictor: Predictor, budget: dict[str, float]
) -> None:
    """Twice the smallest architecture's cost or less: the step used to be scaled by the
    gradient of widths already at 8, which cannot shrink, so no start got under it."""
    objective = Objective({"seg": 1.0}, **budget)
    result = ncp_search(seg_predictor, objective, sample(8, 0), steps=DEFAULT_STEPS)
    assert (result.final["status"] == "feasible").all()


def test_hypervolume_of_known_points() -> None:
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    # (3, 2) is dominated by (2, 3); staircase from ref (4, 0): 1*1 + 2*3
    assert hypervolume(x, y, (4.0, 0.0)) == pytest.approx(1 * 1 + 2 * 3)
    assert hypervolume(x, y, (0.5, 0.0)) == 0.0


class _Scored(np.ndarray):
    """Scores that record which pool architectures were read, i.e. queried."""

    read: ClassVar[set[int]] = set()

    def __getitem__(self, key: object) -> object:
        _Scored.read.add(int(key))
        return super().__getitem__(key)


@pytest.mark.parametrize("quantile", [0.5, 1.0])
def test_evolution_makes_exactly_the_queries_it_is_given(
    seg_predictor: Predictor, frames: dict[str, pd.DataFrame], quantile: float
) -> None:
    """Its population must not get stuck among scored neighbours and stop short of NCP's count."""
    pool = _pool(seg_predictor, frames["seg"], "seg")
    allowed = np.flatnonzero(pool.gflops <= np.quantile(pool.gflops, quantile))
    queries = len(allowed) - 2
    assert queries > POPULATION  # else the first population is every query and nothing evolves
    for seed in range(5):
        _Scored.read = set()
        found = _evolution(
            pool.predicted.view(_Scored), allowed, pool.neighbours, queries, random.Random(seed)
        )
        assert len(_Scored.read) == queries and found in _Scored.read
        assert _Scored.read <= set(allowed.tolist())


def test_evaluate_search_writes_report_and_plots(
    frames: dict[str, pd.DataFrame], seg_predictor: Predictor, tmp_path: Path
) -> None:
    seg_predictor.save(tmp_path / "predictors")
    report = evaluate_search(
        frames,
        tmp_path / "predictors",
        tmp_path / "eval",
        repeats=1,
        starts=4,
        steps=5,
        data_version="v1",
    )
    budgets, pareto = report.budgets, report.pareto
    assert set(budgets["method"]) == {"ncp", "random", "evolution"}
    assert (budgets["regret"] >= 0).all() and (budgets["gflops"] <= budgets["budget_gflops"]).all()
    assert ((pareto["hypervolume_ratio"] >= 0) & (pareto["hypervolume_ratio"] <= 1)).all()
    test_codes = set(budgets["code"])
    assert test_codes <= set(frames["seg"]["code"])
    for name in ("search_budgets.csv", "search_pareto.csv", "search_report.md", "pareto_seg.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    text = (tmp_path / "eval" / "search_report.md").read_text()
    assert "Data version `v1`." in text and "## Summary" in text


def test_search_summary_counts_leads_with_ties_for_each() -> None:
    """Means equal but for float noise are a tie; each tied method is counted as leading."""
    regrets = {  # (setting, quantile): per-method regrets of two repeats
        ("seg", 0.25): {"ncp": (0.0, 0.0), "random": (1.0, 2.0), "evolution": (0.5, 0.5)},
        ("seg", 1.0): {"ncp": (0.15, 0.15), "random": (0.1, 0.2), "evolution": (3.0, 3.0)},
        ("video", 0.25): {"ncp": (1.0, 1.0), "random": (0.2, 0.4), "evolution": (2.0, 2.0)},
    }
    budgets = pd.DataFrame(
        {"setting": s, "budget_quantile": q, "method": m, "repeat": r, "regret": v}
        for (s, q), by_method in regrets.items()
        for m, values in by_method.items()
        for r, v in enumerate(values)
    )
    volumes = {
        "seg": {"ncp": 0.9, "random": 0.8, "evolution": 0.9},
        "video": {"ncp": 0.5, "random": 0.6, "evolution": 0.7},
    }
    pareto = pd.DataFrame(
        {"setting": s, "method": m, "repeat": 0, "hypervolume_ratio": v}
        for s, by_method in volumes.items()
        for m, v in by_method.items()
    )
    assert (0.1 + 0.2) / 2 != 0.15  # float noise: the seg 1.0 cell is still a tie
    table = summary(budgets, pareto)
    assert list(table.index) == ["ncp", "random", "evolution"]
    assert table["lowest_regret_cells"].to_dict() == {"ncp": 2, "random": 2, "evolution": 0}
    assert table["highest_hypervolume_settings"].to_dict() == {
        "ncp": 1,
        "random": 0,
        "evolution": 2,
    }
    assert table.loc["ncp", "mean_regret"] == pytest.approx((0 + 0.15 + 1) / 3)
    assert table.loc["evolution", "hypervolume_ratio"] == pytest.approx(0.8)


def test_cli_search_prints_finals_and_writes_trajectories(
    seg_predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the default warehouse the search runs and says once why no true metric shows."""
    monkeypatch.setenv("NASMR_OUT", str(tmp_path))
    monkeypatch.delenv("NASMR_WAREHOUSE", raising=False)
    seg_predictor.save(tmp_path)
    out = tmp_path / "traj.csv"
    result = CliRunner().invoke(
        main,
        [
            "search",
            "--setting",
            "seg",
            "--max-gflops",
            "1.0",
            "--steps",
            "20",
            "--starts",
            "3",
            "--seed",
            "1",
            "--predictors",
            str(tmp_path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    note = f"true metrics not shown: no warehouse at {tmp_path / 'nasmr.duckdb'} (the default"
    assert result.stderr.count(note) == 1
    lines = [line for line in result.output.splitlines() if line.split("\t")[0].isdigit()]
    assert len(lines) == 3
    feasible = [line.split("\t")[-1] for line in lines if "\tfeasible\t" in line]
    assert feasible  # the printed GMac has 3 decimals; the budget holds on the exact count
    assert all(analytic_complexity(Arch.from_code(code)).gmac <= 1.0 for code in feasible)
    assert len(pd.read_csv(out)) == 3 * 21
    [best] = [line for line in result.stderr.splitlines() if line.startswith("best: start ")]
    assert best.split(": ")[-1] in feasible  # a summary on stderr: stdout stays one table


def test_cli_search_refuses_an_out_file_it_would_not_write_as_named(
    seg_predictor: Predictor, tmp_path: Path
) -> None:
    """--out x.json must not get CSV text under a JSON name; nothing is searched or written."""
    seg_predictor.save(tmp_path)
    out = tmp_path / "traj.json"
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "1", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "expected a .csv or .parquet file" in result.output
    assert not out.exists()


def test_cli_search_names_an_out_folder_it_cannot_create(
    seg_predictor: Predictor, tmp_path: Path
) -> None:
    """It used to search, then fail with a traceback and lose the search's results."""
    seg_predictor.save(tmp_path)
    (tmp_path / "taken.csv").write_text("a file, not a folder\n")
    out = tmp_path / "taken.csv" / "traj.csv"
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "1", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"cannot create the folder {out.parent}" in result.output
    assert "infeasible" not in result.output and "feasible" not in result.output


def test_cli_search_prints_its_results_before_a_failed_write(
    seg_predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trajectory file that cannot be written (a full disk) fails the command naming it,
    after the results are printed, instead of a traceback that lost them."""
    seg_predictor.save(tmp_path)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    out = tmp_path / "traj.csv"
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "2", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stdout.count("\tfeasible\t") == 2
    assert f"trajectories not written to {out}: No space left on device" in result.output


def test_cli_search_refuses_to_write_into_a_release(
    seg_predictor: Predictor, tmp_path: Path
) -> None:
    """Releases are immutable: a trajectory file in one fails its verification."""
    seg_predictor.save(tmp_path)
    release = tmp_path / "releases" / "1.0.0"
    release.mkdir(parents=True)
    for marker in ("manifest.json", "SHA256SUMS"):
        (release / marker).write_text("{}")
    out = release / "sub" / "traj.csv"
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "1", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "lies inside the published release" in result.output
    assert "write the trajectories elsewhere (--out)" in result.output
    assert not (release / "sub").exists()


def test_cli_search_fails_when_no_start_meets_the_budget(
    seg_predictor: Predictor, tmp_path: Path
) -> None:
    """Scripts see the failure in the exit code; the table still shows every start."""
    seg_predictor.save(tmp_path)
    budget = ["--max-gflops", str(SMALLEST.gmac)]
    args = ["search", "--setting", "seg", "--steps", "2", "--starts", "2", *budget]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "no start met the budget: more --steps or a looser budget" in result.output
    assert f"smallest architecture's {SMALLEST.gmac} GMac (for FLOPs" in result.output
    assert "M params" not in result.output
    assert result.stdout.count("\tinfeasible\t") == 2
    params = ["--max-mparams", str(SMALLEST.mparams)]  # the hint spoke of FLOPs here too
    only_params = CliRunner().invoke(main, [*args[:-2], *params, "--predictors", str(tmp_path)])
    assert only_params.exit_code == 1, only_params.output
    assert f"smallest architecture's {SMALLEST.mparams} M params may" in only_params.output
    assert "GMac" not in only_params.output.split("no start met the budget")[1]
    empty = tmp_path / "none"  # refused before any predictor is looked for
    below = CliRunner().invoke(main, [*args[:-1], "0.01", "--predictors", str(empty)])
    assert below.exit_code == 1 and "no architecture of the space fits" in below.output


def test_cli_search_rejects_bad_objectives(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["search", "--setting", "seg", "--settings", "seg,video"])
    assert both.exit_code != 0 and "exactly one of --setting or --settings" in both.output
    weights = runner.invoke(main, ["search", "--settings", "seg,video", "--weights", "1"])
    assert weights.exit_code != 0 and "1 weight(s) for 2 setting(s)" in weights.output
    missing = runner.invoke(
        main, ["search", "--settings", "seg,video", "--predictors", str(tmp_path)]
    )
    assert missing.exit_code != 0 and "multitask" in missing.output
    twice = runner.invoke(main, ["search", "--settings", "seg,video,seg", "--weights", "1,1,0"])
    assert twice.exit_code == 2 and "seg named more than once" in twice.output
    mr = "NCP searches the MR settings seg, seg-4x, cls-10c, cls-10-1000, cls-50-100, "
    for named, bad in (("seg,vidoe", "vidoe"), ("nas-bench-201", "nas-bench-201")):
        wrong = runner.invoke(main, ["search", "--settings", named])
        assert wrong.exit_code == 2
        assert f"{bad}: {mr}cls-50-1000, video, video-p\n" in wrong.output.replace("\n ", " ")
    for bad in ("nan,1", "inf,1", "-1,1"):
        wrong = runner.invoke(main, ["search", "--settings", "seg,video", "--weights", bad])
        assert wrong.exit_code == 2 and "each weight is a finite number >= 0" in wrong.output


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--cost-weight", "nan"], "Invalid value for '--cost-weight': 'nan' is not a finite"),
        (["--max-gflops", "nan"], "Invalid value for '--max-gflops': 'nan' is not a finite"),
        (["--max-mparams", "inf"], "Invalid value for '--max-mparams': 'inf' is not a finite"),
        (["--lr", "inf"], "Invalid value for '--lr': 'inf' is not a finite number"),
        (["--cost-weight", "-5"], "Invalid value for '--cost-weight': -5.0 is not in the range"),
    ],
    ids=["cost-weight", "budget", "params", "lr", "negative-cost-weight"],
)
def test_cli_search_rejects_non_finite_numbers(
    seg_predictor: Predictor, tmp_path: Path, option: list[str], message: str
) -> None:
    """A NaN must not turn into a garbage architecture or a silently infeasible search."""
    seg_predictor.save(tmp_path)
    args = ["search", "--setting", "seg", "--steps", "2", "--starts", "2", *option]
    result = CliRunner().invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("named_by", ["--warehouse", "NASMR_WAREHOUSE"])
def test_cli_search_refuses_a_named_warehouse_that_does_not_exist(
    seg_predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    """A typo in the warehouse path must not silently drop every true metric."""
    seg_predictor.save(tmp_path)
    typo = tmp_path / "typo.duckdb"
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "1"]
    args += ["--predictors", str(tmp_path)]
    if named_by == "--warehouse":
        args += ["--warehouse", str(typo)]
    else:
        monkeypatch.setenv("NASMR_WAREHOUSE", str(typo))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {named_by}: no warehouse file {typo}" in result.output
    assert "start\tstatus" not in result.output


def test_cli_search_evaluated_only_reports_scored_results_within_budget(
    seg_predictor: Predictor,
    frames: dict[str, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--evaluated-only searches the warehouse's architectures: each result has a true metric."""
    seg_predictor.save(tmp_path)
    evaluated = frames["seg"].head(150)
    warehouse = ingest(seg_drop(tmp_path / "drop", evaluated), tmp_path / "build").warehouse
    args = ["search", "--setting", "seg", "--max-gflops", "3.0", "--steps", "20", "--starts", "6"]
    args += ["--evaluated-only", "--predictors", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    rows = [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]
    feasible = [row for row in rows if row["status"] == "feasible"]
    assert len(feasible) == len(rows) == 6  # projected onto the pool within the budget
    truth = evaluated.set_index("code")["mIoU"]
    for row in feasible:
        assert row["true:seg.mIoU"] == f"{truth[row['code']]:.2f}"
        assert analytic_complexity(Arch.from_code(row["code"])).gmac <= 3.0
    monkeypatch.setenv("NASMR_OUT", str(tmp_path / "nowhere"))
    monkeypatch.delenv("NASMR_WAREHOUSE", raising=False)
    missing = CliRunner().invoke(main, args)
    assert missing.exit_code == 2, missing.output
    assert f"no warehouse file {tmp_path / 'nowhere' / 'nasmr.duckdb'} (--evaluated-only" in (
        missing.output
    )


def test_cli_search_prints_true_metrics_as_published(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """HMDB51 results are published to 3 decimals: 25.979 printed as 25.98 is not the
    warehouse's value."""
    video = frames["cls-10c"].head(60).assign(top1=lambda f: (f["top1"] * 1000).round() / 1000)
    with torch_threads(1):
        predictor = train_predictor({"video": video}, ["video"], DEFAULT.with_epochs(3))
    predictor.save(tmp_path / "predictors")
    records = [
        mr_record(Arch.from_code(r.code), r.flops, r.params, top1=r.top1, top5=r.top5)
        for r in video.itertuples()
    ]
    drop = write_drop(tmp_path / "drop", {"video": pickle.dumps(records)}, list(video["code"]))
    warehouse = ingest(drop, tmp_path / "build").warehouse
    args = ["search", "--setting", "video", "--steps", "2", "--starts", "4", "--evaluated-only"]
    args += ["--predictors", str(tmp_path / "predictors"), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    rows = [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]
    truth = video.set_index("code")["top1"]
    assert [row["true:video.top1"] for row in rows] == [f"{truth[r['code']]:.3f}" for r in rows]


def test_cli_search_says_which_setting_the_warehouse_has_no_truth_for(
    multi_predictor: Predictor, frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """A '-' under true:cls-10c.top1 must not pass for 'not evaluated' when nothing could be."""
    multi_predictor.save(tmp_path)
    warehouse = ingest(seg_drop(tmp_path / "drop", frames["seg"]), tmp_path / "build").warehouse
    args = ["search", "--settings", "seg,cls-10c", "--steps", "1", "--starts", "2"]
    args += ["--predictors", str(tmp_path), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    note = f"true cls-10c metrics not shown: {warehouse} holds no results of cls-10c"
    assert result.stderr.count(note) == 1 and "true seg" not in result.stderr


@pytest.mark.parametrize("shift", [-30.0, 10.0])
def test_cli_search_warns_when_predictions_pass_every_measured_value(
    seg_predictor: Predictor, frames: dict[str, pd.DataFrame], tmp_path: Path, shift: float
) -> None:
    """A prediction above the best measured value extrapolates: a reader must be told."""
    seg_predictor.save(tmp_path / "predictors")
    measured = frames["seg"].assign(mIoU=frames["seg"]["mIoU"] + shift)
    warehouse = ingest(seg_drop(tmp_path / "drop", measured), tmp_path / "build").warehouse
    args = ["search", "--setting", "seg", "--steps", "3", "--starts", "4"]
    args += ["--predictors", str(tmp_path / "predictors"), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    note = f"above the best measured ({measured['mIoU'].max():.2f}); the predictor extrapolates"
    assert (note in result.stderr) == (shift < 0), result.stderr


def test_cli_search_names_an_unreadable_warehouse(seg_predictor: Predictor, tmp_path: Path) -> None:
    seg_predictor.save(tmp_path)
    warehouse = tmp_path / "not-duckdb.duckdb"
    warehouse.write_text("code,mIoU\n")
    args = ["search", "--setting", "seg", "--steps", "1", "--starts", "1"]
    args += ["--predictors", str(tmp_path), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert f"{warehouse} is not a DuckDB file" in result.output
