"""Predictors: features, splits, training, save/load, the report, and the CLI."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from click.testing import CliRunner

from benchmarks.tune_predictor import TUNED, base_recipe, best_config, mean_tau, tune
from nasmr.cli import main
from nasmr.complexity import analytic_complexity
from nasmr.features import (
    BRANCH_TOKENS,
    MR_FEATURES,
    TOKEN_FIELDS,
    branch_tokens,
    denormalise,
    embedding_tensor,
    mr_features,
    nb201_features,
    normalise,
    relaxed_complexity,
    snap_normalised,
)
from nasmr.ingest import load_setting
from nasmr.predictor import (
    BASELINE,
    BRANCH_ATTENTION,
    DEFAULT,
    DEFAULT_NB201,
    MULTITASK_CONFIG,
    PredictorError,
    _Dropout,
    default_config,
    load_predictor,
    predictor_name,
    scores,
    split_labels,
    train_all,
    train_predictor,
)
from nasmr.space import Arch, sample, snap
from nasmr.warehouse import ingest, setting_frames, unpredicted_settings, warehouse_version
from schemas.nb201 import parse_ops
from schemas.predictor import MULTITASK, PredictorCard
from schemas.records import Nb201Record
from tests.drops import det_drop, seg_drop, synthetic_frames

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return synthetic_frames()


# -- features -----------------------------------------------------------------------------


def test_relaxed_complexity_is_exact_on_valid_architectures() -> None:
    archs = sample(200, 7)
    macs, params = relaxed_complexity(embedding_tensor(archs, torch.float64))
    for arch, m, p in zip(archs, macs.sum(dim=1), params.sum(dim=1), strict=True):
        count = analytic_complexity(arch)
        assert (m.item(), p.item()) == (count.macs, count.params), arch.code


def test_snap_normalised_matches_space_snap() -> None:
    z = torch.rand(500, 27, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    z = z * 1.4 - 0.2
    snapped = snap_normalised(z)
    for row, values in zip(snapped, denormalise(z), strict=True):
        expected = snap(values.tolist())
        assert torch.round(denormalise(row)).long().tolist() == expected.embedding


def test_mr_features_are_finite_and_differentiable_over_the_box() -> None:
    z = torch.rand(64, 27, dtype=torch.float64, requires_grad=True)
    features = mr_features(z)
    assert features.shape == (64, len(MR_FEATURES))
    (grad,) = torch.autograd.grad(features.sum(), z)
    assert torch.isfinite(features).all() and torch.isfinite(grad).all()


def test_nb201_features_one_hot_and_bad_ops_named() -> None:
    x = nb201_features(["0|3|2|3|2|2"])
    assert x.shape == (1, 30) and x.sum() == 6 and x[0, 3 * 5 + 0] == 0 and x[0, 5 + 3] == 1
    assert nb201_features([]).shape == (0, 30)  # as an empty MR batch is (0, 27)
    bad_cells = (
        "0|3|9|3|2|2",
        "0|3|²|3|2|2",
        "0|3|2|3|2",
        "0|3|2|3|2|-1",
        "00|3|2|3|2|2",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|",  # two nodes of three
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    )
    for bad in bad_cells:
        with pytest.raises(ValueError, match=r"expected 6 op indices .* 1 none, 2 skip_connect"):
            parse_ops(bad)


def test_parse_ops_reads_every_cell_in_nas_bench_201_notation() -> None:
    """NAS-Bench-201 users write cells as arch strings; each of the 15,625 reads back."""
    for ops in itertools.product(range(5), repeat=6):
        one_hot = [float(i == op) for op in ops for i in range(5)]
        arch_str = Nb201Record.model_construct(embedding=one_hot).arch_str
        assert parse_ops(arch_str) == list(ops), arch_str
    record_0 = (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
        "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )
    assert parse_ops(record_0) == parse_ops("0|3|2|3|2|2")


# -- split and scores ---------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_per_key() -> None:
    codes = [a.code for a in sample(2000, 1)]
    labels = split_labels(codes, seed=0)
    assert (labels == split_labels(codes, seed=0)).all()
    assert set(labels) == {"train", "val", "test"}
    fractions = [np.mean(labels == p) for p in ("train", "val", "test")]
    assert np.allclose(fractions, (0.7, 0.1, 0.2), atol=0.03)
    # a key's part does not depend on which other keys are present (settings may differ)
    assert (split_labels(codes[::3], seed=0) == labels[::3]).all()
    assert (split_labels(codes, seed=1) != labels).mean() > 0.3


def test_scores_on_known_rankings() -> None:
    truth = np.arange(20, dtype=float)
    perfect = scores(truth, truth * 2)
    assert perfect["kendall"] == pytest.approx(1.0) and perfect["precision_at_10"] == 1.0
    reversed_ = scores(truth, -truth)
    assert reversed_["kendall"] == pytest.approx(-1.0) and reversed_["precision_at_10"] == 0.0
    assert scores(truth, truth + 1.5)["mae"] == pytest.approx(1.5)


def test_precision_at_10_counts_true_ties_at_the_cut_whatever_the_row_order() -> None:
    """Rounded metrics tie at the cut: either tied architecture is a true top 10%."""
    truth = np.array([5.0, 5.0, 1, 1, 1, 1, 1, 1, 1, 0])
    picks_row_1 = np.array([0.0, 9, 0, 0, 0, 0, 0, 0, 0, -1])
    assert scores(truth, picks_row_1)["precision_at_10"] == 1.0
    assert scores(truth, -truth)["precision_at_10"] == 0.0
    # predictions tied at the cut share its place: rows 0 (a hit) and 2 (a miss)
    tied_pred = np.array([3.0, 0, 3, 0, 0, 0, 0, 0, 0, 0])
    assert scores(truth, tied_pred)["precision_at_10"] == 0.5
    # a diverged model's NaN ranks last
    nan_pred = np.array([np.nan, 9, 0, 0, 0, 0, 0, 0, 0, 0])
    assert scores(truth, nan_pred)["precision_at_10"] == 1.0


# -- training, save and load --------------------------------------------------------------


def test_save_load_round_trip_gives_identical_predictions(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    predictor = train_predictor(
        frames, ["seg"], DEFAULT.with_epochs(10), seed=2, data_version="test-v1"
    )
    card_path = predictor.save(tmp_path)
    loaded = load_predictor(card_path)
    archs = sample(50, 11)
    pd.testing.assert_frame_equal(predictor.predict(archs), loaded.predict(archs))
    z = normalise(embedding_tensor(archs))
    assert torch.equal(predictor.forward(z), loaded.forward(z))
    assert list(loaded.predict([archs[0].code]).columns) == [
        "seg.mIoU",
        "seg.mAcc",
        "seg.aAcc",
        "flops",
        "params",
    ]
    exact = [analytic_complexity(a) for a in archs]
    costs = predictor.predict(archs)[["flops", "params"]]
    assert costs.to_numpy().tolist() == [[c.gmac, c.mparams] for c in exact]  # not learned
    generated = predictor.predict(a for a in archs)  # read once, not twice
    pd.testing.assert_frame_equal(generated, predictor.predict(archs))


@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_a_metric_without_a_rank_score_saves_and_loads(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """A constant secondary metric has no Kendall tau (NaN, JSON null); its card must still load."""
    constant = dict(frames)
    constant["seg"] = frames["seg"].assign(aAcc=95.0)
    predictor = train_predictor(constant, ["seg"], DEFAULT.with_epochs(2))
    loaded = load_predictor(predictor.save(tmp_path))
    kendall = {s.column: s.kendall for s in loaded.card.test_metrics}
    assert math.isnan(kendall["seg.aAcc"]) and not math.isnan(kendall["seg.mIoU"])
    assert loaded.card.model_dump_json() == predictor.card.model_dump_json()


def test_loading_a_predictor_leaves_the_global_random_state_alone(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """A seeded script draws the same numbers whether or not it loads a predictor."""
    card = train_predictor(frames, ["seg"], BRANCH_ATTENTION.with_epochs(1)).save(tmp_path)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_predictor(card)
    assert torch.equal(torch.rand(3), expected)


def test_double_is_a_float64_copy(frames: dict[str, pd.DataFrame]) -> None:
    predictor = train_predictor(frames, ["seg"], DEFAULT.with_epochs(1))
    wide = predictor.double()
    assert {p.dtype for p in wide.net.parameters()} == {torch.float64}
    assert {p.dtype for p in predictor.net.parameters()} == {torch.float32}
    archs = sample(20, 3)
    pd.testing.assert_frame_equal(wide.predict(archs), predictor.predict(archs), rtol=1e-5)


def test_card_records_how_the_model_was_made(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    predictor = train_predictor(
        frames, ["seg"], DEFAULT.with_epochs(5), seed=3, data_version="v9", report_seeds=(3, 4)
    )
    card = PredictorCard.model_validate_json(predictor.save(tmp_path).read_text())
    assert card.data_version == "v9" and card.split.seed == 3 and card.report_seeds == (3, 4)
    assert card.split.fractions == (0.7, 0.1, 0.2) and card.split.key == "code"
    assert card.split.n_train + card.split.n_val + card.split.n_test == len(frames["seg"])
    assert card.features == MR_FEATURES and len(card.feature_mean) == len(MR_FEATURES)
    assert card.network.in_features == len(MR_FEATURES)
    assert card.settings == ("seg",) and card.kind == "per-setting" and card.model == "default"
    assert {o.column for o in card.outputs} == {m.column for m in card.test_metrics}
    assert [m.column for m in card.val_metrics] == [m.column for m in card.test_metrics]
    assert card.val_metrics != card.test_metrics
    assert {o.column: o.transform for o in card.outputs}["flops"] == "log"
    assert 0 <= card.training.selected_epoch < 5
    assert all(-1 <= m.kendall <= 1 and 0 <= m.precision_at_10 <= 1 for m in card.test_metrics)


def test_baseline_is_the_authors_layout(frames: dict[str, pd.DataFrame]) -> None:
    predictor = train_predictor(frames, ["seg"], BASELINE.with_epochs(2), seed=0)
    net = predictor.card.network
    assert (net.trunk, net.head, net.members) == (256, 128, 1)
    assert net.groups == (("seg.mIoU",), ("seg.mAcc", "seg.aAcc"), ("flops", "params"))
    assert net.head_dropout == (0.5, 0.5, 0.0) and net.dropout == 0.5
    training = predictor.card.training
    assert (training.batch_size, training.lr, training.weight_decay) == (128, 1e-2, 1e-7)
    assert training.smooth_l1_beta == 1.0
    assert training.selection == "val-loss" and predictor.card.feature_set == "embedding"
    cls = train_predictor(frames, ["cls-10c"], BASELINE.with_epochs(1), seed=0)
    assert cls.card.network.groups == (("cls-10c.top1",), ("cls-10c.top5",), ("flops", "params"))


def test_default_configurations_per_space(frames: dict[str, pd.DataFrame]) -> None:
    assert default_config(["seg"]) is DEFAULT and DEFAULT.members == 2 and not DEFAULT.attention
    assert default_config(["nas-bench-201"]) is DEFAULT_NB201 and DEFAULT_NB201.rank_weight > 0
    multi = default_config(["seg", "video"])
    assert multi is MULTITASK_CONFIG and multi.grouping == "by-setting" and multi.attention
    predictor = train_predictor(frames, ["seg", "cls-10c"], multi.with_epochs(1), seed=0)
    assert predictor.card.network.attention is not None
    assert predictor.card.network.groups == (
        ("seg.mIoU", "seg.mAcc", "seg.aAcc"),
        ("cls-10c.top1", "cls-10c.top5"),
        ("flops", "params"),
    )


def test_network_and_loss_come_from_the_configuration(frames: dict[str, pd.DataFrame]) -> None:
    config = replace(
        DEFAULT.with_epochs(3),
        trunk=32,
        head=16,
        dropout=0.1,
        weight_decay=1e-3,
        smooth_l1_beta=0.1,
    )
    predictor = train_predictor(frames, ["seg"], config, seed=0)
    net, training = predictor.card.network, predictor.card.training
    assert (net.trunk, net.head, net.dropout, net.head_dropout) == (32, 16, 0.1, (0.1, 0.1, 0.0))
    assert (training.weight_decay, training.smooth_l1_beta) == (1e-3, 0.1)
    loss = train_predictor(frames, ["seg"], replace(config, smooth_l1_beta=2.0), seed=0)
    assert not loss.predict(frames["seg"]["code"][:5]).equals(
        predictor.predict(frames["seg"]["code"][:5])
    )


def test_dropout_drops_at_its_rate_keeps_the_mean_and_is_off_in_eval() -> None:
    x = torch.ones(200_000)
    for p in (0.1, 0.5):
        dropout = _Dropout(p).train()
        y = dropout(x)
        assert abs(float((y == 0).float().mean()) - p) < 0.005
        assert abs(float(y.mean()) - 1.0) < 0.01
        assert torch.equal(torch.unique(y), torch.tensor([0.0, 1 / (1 - p)]))
        assert torch.equal(dropout.eval()(x), x)


def test_tuner_selects_on_validation_and_resumes_with_new_draws(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    storage = tmp_path / "study.journal"
    study = tune(frames, "seg", trials=2, seeds=(0,), storage=storage)
    assert len(study.trials) == 2 and storage.is_file()
    assert study.trials[0].params == {name: getattr(DEFAULT, name) for name in TUNED}
    best = best_config(study, "seg")
    assert best.members == DEFAULT.members and best.trunk == study.best_trial.params["trunk"]
    replayed = mean_tau(frames, "seg", replace(best, members=1), (0,), "val")
    assert replayed == pytest.approx(study.best_value)
    resumed = tune(frames, "seg", trials=1, seeds=(0,), storage=storage).trials
    assert len(resumed) == 3 and resumed[2].params != resumed[1].params


def test_tuner_starts_nas_bench_201_from_its_default(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    study = tune(frames, "nas-bench-201", trials=1, seeds=(0,), storage=tmp_path / "nb.journal")
    assert study.trials[0].params == {name: getattr(DEFAULT_NB201, name) for name in TUNED}


def test_tuner_varies_the_attention_recipe_for_mr_settings_only(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    storage = tmp_path / "attention.journal"
    study = tune(frames, "seg", trials=1, seeds=(0,), storage=storage, recipe="attention")
    assert study.trials[0].params == {name: getattr(BRANCH_ATTENTION, name) for name in TUNED}
    assert best_config(study, "seg", "attention") == BRANCH_ATTENTION
    with pytest.raises(ValueError, match="MR settings"):
        base_recipe("nas-bench-201", "attention")
    with pytest.raises(ValueError, match="unknown recipe"):
        base_recipe("seg", "transformer")


def test_branch_tokens_hold_each_stage_branch() -> None:
    arch = sample(1, seed=5)[0]
    z = normalise(embedding_tensor([arch]))
    tokens = branch_tokens(z)[0]
    assert tokens.shape == (BRANCH_TOKENS, TOKEN_FIELDS)
    z4 = z[0, 27 - 1 - 9 : 27 - 1]  # stage 4: repeats, 4 conv counts, 4 channel counts
    last_branch = torch.stack([z4[0], z4[4], z4[8]])
    assert torch.equal(tokens[-2], last_branch)
    assert torch.equal(tokens[0, :2], z[0, :2]) and tokens[-1, 0] == z[0, -1]


def test_attention_is_in_the_card_and_drives_predictions(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    predictor = train_predictor(frames, ["seg"], BRANCH_ATTENTION.with_epochs(3), seed=0)
    spec = predictor.card.network.attention
    assert spec is not None and (spec.width, spec.heads, spec.layers) == (64, 4, 1)
    codes = list(frames["seg"]["code"][:6])
    loaded = load_predictor(predictor.save(tmp_path))
    assert loaded.predict(codes).equals(predictor.predict(codes))
    card = predictor.card.model_dump()
    with pytest.raises(ValueError, match="not a multiple of 4 heads"):
        PredictorCard.model_validate(
            {
                **card,
                "network": {
                    **card["network"],
                    "attention": {**card["network"]["attention"], "width": 30},
                },
            }
        )
    with pytest.raises(ValueError, match="reads MR branch tokens; space is nas-bench-201"):
        PredictorCard.model_validate({**card, "space": "nas-bench-201"})
    mlp = train_predictor(
        frames, ["seg"], replace(BRANCH_ATTENTION.with_epochs(3), attention=0), seed=0
    )
    assert mlp.card.network.attention is None
    assert not mlp.predict(codes).equals(predictor.predict(codes))


@pytest.mark.parametrize("column", ["flops", "params"])
def test_a_missing_complexity_column_names_the_setting(
    frames: dict[str, pd.DataFrame], column: str
) -> None:
    bad = {**frames, "cls-10c": frames["cls-10c"].drop(columns=[column])}
    with pytest.raises(PredictorError, match=rf"'cls-10c' lacks column\(s\) \['{column}'\]"):
        train_predictor(bad, ["seg", "cls-10c"], DEFAULT.with_epochs(1))


def test_predictor_names() -> None:
    assert predictor_name(["seg"]) == "seg"
    assert predictor_name(["seg", "video"]) == MULTITASK


def test_multitask_shares_the_split_of_per_setting_models(
    frames: dict[str, pd.DataFrame],
) -> None:
    multi = train_predictor(frames, ["seg", "cls-10c"], DEFAULT.with_epochs(3), seed=1)
    single = train_predictor(frames, ["cls-10c"], DEFAULT.with_epochs(3), seed=1)
    assert multi.card.name == MULTITASK and multi.card.kind == "multi-task"
    assert multi.card.split == single.card.split
    assert {"seg.mIoU", "cls-10c.top1", "flops"} <= set(multi.columns)


def test_multitask_trains_on_settings_with_other_architectures(
    frames: dict[str, pd.DataFrame],
) -> None:
    """Settings need not share architectures: a batch may hold no results of one of them."""
    cls = frames["cls-10c"]
    labels = split_labels(list(cls["code"]), 0)
    few = cls[(labels != "train") | (np.cumsum(labels == "train") <= 3)]
    predictor = train_predictor(
        {"seg": frames["seg"], "cls-10c": few},
        ["seg", "cls-10c"],
        replace(MULTITASK_CONFIG, epochs=2, batch_size=32),  # some batches hold no cls-10c row
    )
    tau = {m.column: m.kendall for m in predictor.card.test_metrics}["cls-10c.top1"]
    assert math.isfinite(tau)


def test_dotted_names_load_their_own_files(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """``seg.baseline`` beside ``seg`` loads the baseline, whichever of its paths is given."""
    train_predictor(frames, ["seg"], DEFAULT.with_epochs(1)).save(tmp_path)
    baseline = train_predictor(frames, ["seg"], BASELINE.with_epochs(1), name="seg.baseline")
    baseline.save(tmp_path)
    for given in ("seg.baseline.json", "seg.baseline.safetensors", "seg.baseline"):
        loaded = load_predictor(tmp_path / given)
        assert (loaded.card.name, loaded.card.model) == ("seg.baseline", "baseline"), given


def test_a_setting_without_two_validation_values_is_refused(
    frames: dict[str, pd.DataFrame],
) -> None:
    """Epoch selection needs a validation ranking of every primary metric, not a silent NaN."""
    cls = frames["cls-10c"]
    labels = split_labels(cls["code"].tolist(), seed=0)
    one_val = (labels != "val") | (np.cumsum(labels == "val") == 1)
    sparse = dict(frames) | {"cls-10c": cls[one_val]}
    message = r"cls-10c\.top1 has 1 val architectures with 1 distinct values"
    with pytest.raises(PredictorError, match=message):
        train_predictor(sparse, ["seg", "cls-10c"], DEFAULT.with_epochs(1), seed=0)


def test_a_metric_without_training_values_is_named(frames: dict[str, pd.DataFrame]) -> None:
    """Not a predictor whose aAcc is NaN for every architecture, with a card it cannot reload."""
    seg = frames["seg"].copy()
    seg.loc[split_labels(list(seg["code"]), 0) == "train", "aAcc"] = np.nan
    with pytest.raises(PredictorError, match=r"split seed 0: seg\.aAcc has no value in the train"):
        train_predictor({"seg": seg}, ["seg"], DEFAULT.with_epochs(1), seed=0)


def test_nb201_predictor_takes_ops(
    frames: dict[str, pd.DataFrame], build: Path, tmp_path: Path
) -> None:
    """Either notation of a cell gives its prediction, measured accuracy and exact costs."""
    config = BRANCH_ATTENTION.with_epochs(5)
    predictor = train_predictor(frames, ["nas-bench-201"], config, seed=0)
    loaded = load_predictor(predictor.save(tmp_path))
    out = loaded.predict(["0|3|2|3|2|2", "4|4|4|4|4|4"])
    assert list(out.columns) == ["nas-bench-201.Acc", "nas-bench-201.Flops", "nas-bench-201.Params"]
    assert out.iloc[1, 1:].tolist() == [220.12544, 1.537396]  # exact: six 3x3 convolutions
    assert loaded.card.split.key == "ops" and loaded.card.feature_set == "nb201-onehot"
    assert loaded.card.network.attention is None  # branch tokens are MR only
    warehouse = build / "nasmr.duckdb"
    args = ["predict", "0|3|2|3|2|2", "--setting", "nas-bench-201", "--predictors", str(tmp_path)]
    args += ["--warehouse", str(warehouse)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    arch_str = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
    arch_str += "skip_connect~2|"
    args[1] = arch_str  # the same cell in NAS-Bench-201's notation
    assert CliRunner().invoke(main, args).output == result.output
    assert loaded.predict([arch_str]).equals(loaded.predict(["0|3|2|3|2|2"]))
    lines = [line.split() for line in result.output.strip().splitlines()]
    assert [(line[0], line[2]) for line in lines] == [
        ("nas-bench-201.Acc", "predicted"),
        ("nas-bench-201.Flops", "exact"),
        ("nas-bench-201.Params", "exact"),
    ]  # the cell's own count on the CIFAR-100 network the drop's costs are of
    assert [line[1] for line in lines[1:]] == ["15.653120", "0.135156"]  # drop: 15.65, 0.135
    with duckdb.connect(str(warehouse), read_only=True) as con:
        query = "SELECT \"Acc\" FROM nb201_results WHERE ops = '0|3|2|3|2|2'"
        (acc,) = con.execute(query).fetchone()
    # trained on synthetic cells, so the real cell's split in it would mean nothing
    assert " ".join(lines[0][3:]) == f"{acc:.2f} measured (the predictor learned other data)"


def test_missing_or_broken_files_are_named(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.json.*holds no predictor card"):
        load_predictor(tmp_path / "nothing.json")
    with pytest.raises(PredictorError, match=r"is a folder: .*, \S+ holds no predictor card"):
        load_predictor(tmp_path)
    card = train_predictor(frames, ["seg"], DEFAULT.with_epochs(1)).save(tmp_path)
    folder = rf"{re.escape(str(tmp_path))} is a folder: pass one predictor's card file"
    with pytest.raises(
        PredictorError, match=rf"{folder}, e\.g\. .*seg\.json; cards there: seg\.json$"
    ):
        load_predictor(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"segm\.json: .* not found; e\.g\. .*seg\.json"):
        load_predictor(tmp_path / "segm.json")
    text = card.read_text()
    card.write_text(text.replace('"format": 2', '"format": 1'))
    with pytest.raises(PredictorError, match=r"seg\.json: predictor card format 1.*retrain"):
        load_predictor(card)
    card.write_text(text.replace('"members": 2', '"members": 0'))
    with pytest.raises(PredictorError, match=r"(?s)seg\.json: invalid predictor card.*members"):
        load_predictor(card)
    bad = dict(frames)
    bad["seg"] = frames["seg"].drop(columns=["mAcc"])
    with pytest.raises(PredictorError, match=r"seg.*mAcc"):
        train_predictor(bad, ["seg"], DEFAULT.with_epochs(1))


def _reorder_outputs(card: dict) -> None:
    card["outputs"].reverse()


def _rename_output(card: dict) -> None:
    card["outputs"][0]["column"] = card["network"]["groups"][0][0] = "video.top1"


def _shorten_stats(card: dict) -> None:
    card["feature_mean"] = card["feature_mean"][:10]


def _zero_std(card: dict) -> None:
    card["feature_std"][3] = 0.0


def _nan_mean(card: dict) -> None:
    card["outputs"][0]["mean"] = math.nan


def _drop_head_dropout(card: dict) -> None:
    card["network"]["head_dropout"] = card["network"]["head_dropout"][:1]


def _other_setting(card: dict) -> None:
    card["settings"] = ["video"]


def _other_feature_set(card: dict) -> None:
    card["feature_set"] = "embedding"


def _swap_metrics(card: dict) -> None:  # mAcc and aAcc relabelled, consistently
    for output in card["outputs"][1:3]:
        output["metric"] = {"mAcc": "aAcc", "aAcc": "mAcc"}[output["metric"]]
        output["column"] = f"seg.{output['metric']}"
    card["network"]["groups"][1] = ["seg.aAcc", "seg.mAcc"]


def _relabel_setting(card: dict) -> None:  # a seg predictor passed off as video's
    card["settings"] = ["video"]
    for output in card["outputs"][:3]:
        output["setting"], output["column"] = "video", f"video.{output['metric']}"
    card["network"]["groups"][:2] = [["video.mIoU"], ["video.mAcc", "video.aAcc"]]


def _identity_flops(card: dict) -> None:
    card["outputs"][3]["transform"] = "identity"


def _unknown_setting(card: dict) -> None:  # a KeyError traceback from nasmr predict
    card["settings"] = ["sge"]
    for output in card["outputs"][:3]:
        output["setting"], output["column"] = "sge", f"sge.{output['metric']}"
    card["network"]["groups"][:2] = [["sge.mIoU"], ["sge.mAcc", "sge.aAcc"]]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_reorder_outputs, r"network\.groups hold \['seg\.mIoU'.*but outputs are \['params'"),
        (_rename_output, r"output 'video\.top1' has setting seg, metric mIoU"),
        (_shorten_stats, r"in_features is 48, but .*'feature_mean': 10"),
        (_zero_std, r"feature_std\.3\n.*greater than 0"),
        (_nan_mean, r"outputs\.0\.mean\n.*finite"),
        (_drop_head_dropout, r"head_dropout has 1 values for 3 groups"),
        (_other_setting, r"output 'seg\.mIoU' is of no setting in \['video'\]"),
        (_other_feature_set, r"features are not the 27 columns of feature_set embedding"),
        (
            _swap_metrics,
            r"outputs of seg are \['mIoU', 'aAcc', 'mAcc'\]; its metrics are \['mIoU', 'mAcc'",
        ),
        (
            _relabel_setting,
            r"outputs of video are \['mIoU', 'mAcc', 'aAcc'\]; its metrics are \['top1'",
        ),
        (_identity_flops, r"output 'flops': transform identity is not its own"),
        (_unknown_setting, r"settings \['sge'\]: predictors are of seg, seg-4x"),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else "",
)
def test_an_edited_card_that_contradicts_itself_is_named(
    frames: dict[str, pd.DataFrame], tmp_path: Path, edit: Callable[[dict], None], field: str
) -> None:
    """Not a shape error at predict time, nor predictions under another output's name."""
    card = train_predictor(frames, ["seg"], DEFAULT.with_epochs(1)).save(tmp_path)
    data = json.loads(card.read_text())
    edit(data)
    card.write_text(json.dumps(data))
    with pytest.raises(PredictorError, match=rf"(?s)seg\.json: invalid predictor card: .*{field}"):
        load_predictor(card)


def test_corrupt_weights_or_card_bytes_are_named(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """A truncated copy or flipped bits: an error naming the file, in Python and the CLI."""
    card = train_predictor(frames, ["seg"], DEFAULT.with_epochs(1)).save(tmp_path)
    weights = card.with_suffix(".safetensors")
    good = weights.read_bytes()
    code = sample(1, 0)[0].code
    predict = ["predict", code, "--setting", "seg", "--predictors", str(tmp_path)]
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(PredictorError, match=rf"{re.escape(str(weights))}: not a safetensors"):
        load_predictor(card)
    result = CliRunner().invoke(main, predict)
    assert result.exit_code == 1 and f"{weights}: not a safetensors file" in result.output
    state = {k: v.clone() for k, v in safetensors.torch.load(good).items()}
    state["members.0.trunk.1.weight"][0, 0] = math.nan
    safetensors.torch.save_file(state, weights)
    with pytest.raises(PredictorError, match=r"non-finite values in .*members\.0\.trunk\.1\."):
        load_predictor(card)
    weights.write_bytes(good)
    card.write_bytes(b"\xff" + card.read_bytes())
    with pytest.raises(PredictorError, match=r"seg\.json: invalid predictor card: not UTF-8"):
        load_predictor(card)


def test_training_is_deterministic_for_a_seed(frames: dict[str, pd.DataFrame]) -> None:
    a = train_predictor(frames, ["seg"], DEFAULT.with_epochs(5), seed=4)
    b = train_predictor(frames, ["seg"], DEFAULT.with_epochs(5), seed=4)
    assert a.card == b.card
    archs = sample(20, 0)
    pd.testing.assert_frame_equal(a.predict(archs), b.predict(archs))


def test_real_seg_quick_training_ranks_held_out_architectures(raw_dir: Path) -> None:
    frame = load_setting(raw_dir, "seg").valid
    predictor = train_predictor({"seg": frame}, ["seg"], DEFAULT.with_epochs(60), seed=0)
    miou = {m.column: m for m in predictor.card.test_metrics}["seg.mIoU"]
    assert predictor.card.split.n_test > 400
    assert miou.kendall > 0.6, miou


# -- train_all and the CLI ----------------------------------------------------------------


def test_train_all_writes_models_and_report(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    calls: list[tuple[int, int, str]] = []
    report = train_all(
        frames,
        tmp_path,
        seeds=(0, 1),
        data_version="v2",
        epochs=2,
        progress=lambda d, t, label: calls.append((d, t, label)),
    )
    names = [
        "seg",
        "seg.baseline",
        "cls-10c",
        "cls-10c.baseline",
        "nas-bench-201",
        "nas-bench-201.baseline",
        MULTITASK,
    ]
    for name in names:
        assert (tmp_path / f"{name}.safetensors").is_file() and (
            tmp_path / f"{name}.json"
        ).is_file()
    assert calls[-1][:2] == (len(names) * 2, len(names) * 2)
    primary = report[report["primary"]]
    assert set(zip(primary.setting, primary.model, strict=True)) == {
        ("seg", "default"),
        ("seg", "baseline"),
        ("seg", "multitask"),
        ("cls-10c", "default"),
        ("cls-10c", "baseline"),
        ("cls-10c", "multitask"),
        ("nas-bench-201", "default"),
        ("nas-bench-201", "baseline"),
    }
    assert (report["seeds"] == 2).all()
    assert pd.read_csv(tmp_path / "report.csv").shape == report.shape
    markdown = (tmp_path / "report.md").read_text()
    assert "| seg | **mIoU** | baseline |" in markdown and "v2" in markdown
    assert "Bold: each setting's primary metric" in markdown and "tau-b" in markdown
    cells = [c for line in markdown.splitlines() if line.startswith("| ") for c in line.split("|")]
    assert "over 2 seeds" in markdown and sum(" ± " in c for c in cells) == 4 * len(report)
    card = json.loads((tmp_path / "seg.json").read_text())
    assert card["report_seeds"] == [0, 1] and card["split"]["seed"] == 0


def test_cli_trains_then_predicts(
    frames: dict[str, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """predict prints the predicted metrics, the measured ones of an evaluated architecture
    (as published) and the exact FLOPs/params."""
    monkeypatch.setenv("NASMR_OUT", str(tmp_path / "no-build"))
    raw = seg_drop(tmp_path / "drop", frames["seg"])
    warehouse = tmp_path / "build" / "nasmr.duckdb"
    out = tmp_path / "predictors"
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", "--raw", str(raw), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main,
        [
            "predictor",
            "train",
            "--warehouse",
            str(warehouse),
            "--out",
            str(out),
            "--seeds",
            "1",
            "--epochs",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| seg | **mIoU** | default |" in result.output
    assert "one seed, so no std" in result.output and "nan" not in result.output
    assert load_predictor(out / "seg.json").card.data_version == warehouse_version(warehouse)
    assert (out / "seg.json").is_file() and not (out / MULTITASK).with_suffix(".json").exists()
    measured = frames["seg"].iloc[0]
    code = measured["code"]
    args = ["predict", code, "--setting", "seg", "--predictors", str(out)]
    result = runner.invoke(main, [*args, "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    lines = [line.split(maxsplit=2) for line in result.output.strip().splitlines()]
    values = {name: (float(value), label) for name, value, label in lines}
    expected = load_predictor(out / "seg.json").predict([code]).iloc[0]
    for metric in ("mIoU", "mAcc", "aAcc"):
        predicted, label = values[f"seg.{metric}"]
        assert math.isclose(predicted, expected[f"seg.{metric}"], abs_tol=1e-4)
        part = split_labels([code], 0)[0]  # the saved models are split seed 0's
        assert label == f"predicted   {measured[metric]:.2f} measured ({part} split)"
    # the complexity printed is the architecture's exact count, not the predictor's guess at it
    count = analytic_complexity(Arch.from_code(code))
    assert values["flops"] == (round(count.gmac, 9), "exact (GMac)")
    assert values["params"] == (round(count.mparams, 6), "exact (M)")
    assert set(values) == {"seg.mIoU", "seg.mAcc", "seg.aAcc", "flops", "params"}
    # measured values of other data than the predictor learned: its split says nothing of them
    card = out / "seg.json"
    trained_on = card.read_text()
    card.write_text(trained_on.replace(warehouse_version(warehouse), "another data version"))
    result = runner.invoke(main, [*args, "--warehouse", str(warehouse)])
    assert result.stdout.count("measured (the predictor learned other data)") == 3, result.output
    card.write_text(trained_on)
    # an architecture the benchmark did not evaluate, and a build without a warehouse
    other = next(a.code for a in sample(50, 9) if a.code not in set(frames["seg"]["code"]))
    result = runner.invoke(
        main,
        [
            "predict",
            other,
            "--setting",
            "seg",
            "--predictors",
            str(out),
            "--warehouse",
            str(warehouse),
        ],
    )
    assert result.exit_code == 0 and "measured" not in result.stdout, result.output
    assert f"not measured: {other} has no results of seg in {warehouse}" in result.stderr
    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "true metrics not shown: no warehouse" in result.stderr
    assert "predicted" in result.stdout and "measured" not in result.stdout
    result = runner.invoke(main, [*args, "--warehouse", str(tmp_path / "typo.duckdb")])
    assert result.exit_code == 2 and "no warehouse file" in result.output
    (tmp_path / "no-build").mkdir()  # a default warehouse it cannot read: no reason to fail
    (tmp_path / "no-build" / "nasmr.duckdb").write_text("not a database")
    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "predicted" in result.stdout, result.output
    assert "true metrics not shown" in result.stderr and "not a DuckDB file" in result.stderr


def test_cli_predict_uses_the_chosen_saved_model(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """--model picks the baseline or the multi-task predictor; each prints its setting's metrics."""
    mr = {s: frames[s] for s in ("seg", "cls-10c")}
    train_all(mr, tmp_path, seeds=(0,), data_version="v", epochs=1)
    code = frames["cls-10c"]["code"].iloc[0]
    runner = CliRunner()
    for kind, name in (("baseline", "cls-10c.baseline"), ("multitask", MULTITASK)):
        args = ["predict", code, "--setting", "cls-10c", "--model", kind, "--predictors"]
        result = runner.invoke(main, [*args, str(tmp_path)])
        assert result.exit_code == 0, result.output
        values = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()}
        expected = load_predictor(tmp_path / f"{name}.json").predict([code]).iloc[0]
        assert set(values) == {"cls-10c.top1", "cls-10c.top5", "flops", "params"}  # no seg row
        assert math.isclose(values["cls-10c.top1"], expected["cls-10c.top1"], abs_tol=1e-4)
    args = ["predict", "0|3|2|3|2|2", "--setting", "nas-bench-201", "--model", "multitask"]
    result = runner.invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 2 and "nas-bench-201 has no multi-task predictor" in result.output
    # trained on seg and cls-10c only: video once printed no prediction and exited 0
    args = ["predict", code, "--setting", "video", "--model", "multitask"]
    result = runner.invoke(main, [*args, "--predictors", str(tmp_path)])
    assert result.exit_code == 1 and "no outputs of video" in result.output
    assert "it predicts settings ['seg', 'cls-10c']" in result.output


def test_cli_predict_explains_missing_predictors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It says how to make one, and names the latest release's when that has one."""
    runner = CliRunner()
    monkeypatch.setenv("NASMR_RELEASES", str(tmp_path / "releases"))
    args = ["predict", sample(1, 0)[0].code, "--setting", "seg", "--predictors", str(tmp_path)]
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and "nasmr predictor train" in result.output
    assert "nasmr build" in result.output and "--predictors" not in result.output
    released = tmp_path / "releases" / "1.0.0"
    (released / "predictors").mkdir(parents=True)
    (released / "manifest.json").write_text("{}")
    (released / "predictors" / "seg.json").write_text("{}")
    result = runner.invoke(main, args)
    advice = f"use the latest release's ({released / 'predictors'}) with --release latest, or run"
    assert advice in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "0|3|2|3|2|2", "--setting", "3ddet", "--predictors"],
        ["search", "--setting", "3ddet", "--predictors"],
        ["search", "--settings", "seg,3ddet", "--predictors"],
        ["predictor", "train", "--settings", "3ddet", "--out"],
    ],
    ids=["predict", "search", "search-settings", "train"],
)
def test_cli_refuses_a_setting_without_published_results(args: list[str], tmp_path: Path) -> None:
    """3ddet has no results to learn from: no remedy to suggest, only the settings that work."""
    result = CliRunner().invoke(main, [*args, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "nasmr build" not in result.output
    assert "seg-4x" in result.output and "video-p" in result.output


def test_cli_train_names_a_setting_whose_results_it_cannot_learn(tmp_path: Path) -> None:
    """A drop with 3ddet's results: `nasmr predictor train` left them out without a word."""
    archs = sample(40, seed=8)
    raw = det_drop(tmp_path / "raw", archs)
    ingest(raw, tmp_path / "build", method="analytic")
    args = ["predictor", "train", "--warehouse", str(tmp_path / "build" / "nasmr.duckdb")]
    args += ["--out", str(tmp_path / "build" / "predictors"), "--seeds", "1", "--epochs", "1"]
    result = CliRunner().invoke(main, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "skipped 3ddet: its results are in" in result.stderr
    assert "set published=True there to train it" in result.stderr
    assert not list((tmp_path / "build" / "predictors").glob("3ddet*"))
    # the pipeline's predictors step asks the same question of the domain library
    assert unpredicted_settings(tmp_path / "build" / "nasmr.duckdb") == ["3ddet"]
    alone = det_drop(tmp_path / "alone", archs, det=0)
    ingest(alone, tmp_path / "video-only", method="analytic")
    assert unpredicted_settings(tmp_path / "video-only" / "nasmr.duckdb") == []


def test_nas_bench_201_trains_from_warehouse_frames(build: Path) -> None:
    """Warehouse frames are read-only Arrow-backed arrays; training must not write into them."""
    frame = setting_frames(build / "nasmr.duckdb")["nas-bench-201"].head(400)
    predictor = train_predictor(
        {"nas-bench-201": frame}, ["nas-bench-201"], DEFAULT.with_epochs(2), seed=0
    )
    assert "nas-bench-201.Acc" in predictor.predict(frame["ops"].head(3).tolist()).columns


def test_train_all_gives_byte_identical_files_in_any_number_of_workers(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """Releases rely on it: retraining on the same data publishes nothing new."""
    small = {"seg": frames["seg"]}
    one = train_all(small, tmp_path / "one", seeds=(0,), epochs=2, workers=1)
    two = train_all(small, tmp_path / "two", seeds=(0,), epochs=2, workers=2)
    pd.testing.assert_frame_equal(one, two)
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    assert "seg.safetensors" in files and "report.md" in files
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
