"""Real CPU training on scikit-learn's digits, logged in the OpenMMLab format."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_digits
from sklearn.metrics import jaccard_score

from nasmr.cli import main
from nasmr.logs import parse_log_drop
from nasmr.space import Arch, sample
from nasmr.train_config import TRAIN_SPLIT, VAL_SPLIT, TrainConfig
from nasmr.training import (
    digits_data,
    log_path,
    segmentation_metrics,
    train,
)
from schemas.logs import LogLine
from schemas.settings import Task

TINY = Arch.from_code("8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8")
FAST = TrainConfig(epochs=2, train_images=64, val_images=64, batch_size=16, log_interval=2)
TIMINGS = ("time", "data_time")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _untimed(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k not in TIMINGS} for line in lines]


@pytest.fixture(scope="module")
def cls_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(TINY, "digits-cls", tmp_path_factory.mktemp("cls"), FAST, run="r0")


def test_classification_log_is_an_mmcls_log(cls_log: Path) -> None:
    lines = _lines(cls_log)
    for line in lines:
        LogLine.model_validate(line)
    meta, body = lines[0], lines[1:]
    assert "mode" not in meta and meta["seed"] == 0
    assert "max_epochs=2" in meta["config"] and TINY.code in meta["config"]
    train_lines = [line for line in body if line["mode"] == "train"]
    val_lines = [line for line in body if line["mode"] == "val"]
    # 64 images / 16 per batch = 4 iterations per epoch, logged every 2
    assert [(t["epoch"], t["iter"]) for t in train_lines] == [(1, 2), (1, 4), (2, 2), (2, 4)]
    assert list(train_lines[0]) == ["mode", "epoch", "iter", "lr", "data_time", "loss", "time"]
    assert [v["epoch"] for v in val_lines] == [1, 2]
    for v in val_lines:
        assert 0 <= v["accuracy_top-1"] <= v["accuracy_top-5"] <= 100
    assert train_lines[-1]["lr"] < train_lines[0]["lr"]  # cosine decay


def test_classification_log_parses_into_one_accepted_run(cls_log: Path) -> None:
    parsed = parse_log_drop(cls_log.parents[3])
    assert parsed.quarantine.empty
    assert parsed.runs["status"].tolist() == ["accepted"]
    final = _lines(cls_log)[-1]
    top1 = parsed.curves[parsed.curves["metric"] == "top1"]
    assert top1["value"].iloc[-1] == final["accuracy_top-1"]


def test_segmentation_log_is_an_mmseg_log(tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, train_images=32, val_images=32, batch_size=16)
    path = train(TINY, "digits-seg", tmp_path, config, run="r0")
    assert path == log_path(tmp_path, "digits-seg", TINY, "r0")
    val = _lines(path)[-1]
    assert val["mode"] == "val" and val["epoch"] == 1
    for key in ("aAcc", "mIoU", "mAcc"):
        assert 0 <= val[key] <= 1 and round(val[key], 4) == val[key]  # mmseg 0.x fractions
    curves = parse_log_drop(tmp_path).curves
    seg = curves[curves["metric"].isin(["aAcc", "mIoU", "mAcc"])]
    assert seg.set_index("metric")["value"].astype(float).to_dict() == pytest.approx(
        {k: 100 * val[k] for k in ("aAcc", "mIoU", "mAcc")}
    )


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path, cls_log: Path) -> None:
    again = train(TINY, "digits-cls", tmp_path, FAST, run="r0")
    assert _untimed(_lines(again)) == _untimed(_lines(cls_log))
    other = train(TINY, "digits-cls", tmp_path, replace(FAST, seed=1), run="r1")
    losses = [[line.get("loss") for line in _lines(p)[1:]] for p in (cls_log, other)]
    assert losses[0] != losses[1]


def test_digits_data_split_and_masks() -> None:
    cls = digits_data(Task.CLASSIFICATION, 32, train_images=10_000, val_images=VAL_SPLIT)
    assert cls.x_train.shape == (1797 - VAL_SPLIT, 3, 32, 32) and cls.num_classes == 10
    assert cls.y_val.shape == (VAL_SPLIT,)
    seg = digits_data(Task.SEGMENTATION, 64, train_images=8, val_images=8)
    assert seg.y_train.shape == (8, 64, 64) and seg.num_classes == 11
    assert torch.equal(seg.x_val, digits_data(Task.SEGMENTATION, 64, 100, 8).x_val)
    for image, mask, label in zip(seg.x_val, seg.y_val, cls.y_val[:8], strict=True):
        assert set(mask.unique().tolist()) == {0, int(label) + 1}  # background and the digit
        assert image[0][mask > 0].mean() > image[0][mask == 0].mean()  # strokes are bright


def test_segmentation_metrics_follow_mmseg() -> None:
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.integers(0, 4, size=(3, 8, 8)))
    pred = torch.as_tensor(rng.integers(0, 5, size=(3, 8, 8)))  # class 4 predicted, never true
    metrics = segmentation_metrics(pred, target, num_classes=6)  # class 5: in neither
    t, p = target.flatten().numpy(), pred.flatten().numpy()
    iou = jaccard_score(t, p, labels=[0, 1, 2, 3, 4], average=None, zero_division=0)
    assert metrics["mIoU"] == round(round(100 * iou.mean(), 2) / 100, 4)
    assert metrics["aAcc"] == round(round(100 * (t == p).mean(), 2) / 100, 4)
    recall = [((p == c) & (t == c)).sum() / (t == c).sum() for c in range(4)]
    assert metrics["mAcc"] == round(round(100 * np.mean(recall), 2) / 100, 4)
    perfect = segmentation_metrics(target, target, num_classes=6)
    assert perfect == {"aAcc": 1.0, "mIoU": 1.0, "mAcc": 1.0}


def test_invalid_schedules_and_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_size must be a multiple of 32"):
        TrainConfig(image_size=48)
    with pytest.raises(ValueError, match=r"val_images must be in \[1, 360\]"):
        TrainConfig(val_images=400)
    with pytest.raises(ValueError, match=r"train_images must be in \[1, 1437\]"):
        TrainConfig(train_images=5000)  # the log's config would claim 5000, not the 1437 used
    with pytest.raises(ValueError, match="train_images 17 in batches of 16 ends on a batch of one"):
        TrainConfig(train_images=17)  # crashed in the first epoch, leaving a log cut short
    with pytest.raises(ValueError, match="train_images 8 in batches of 1 ends on a batch of one"):
        TrainConfig(train_images=8, batch_size=1)
    assert TrainConfig(train_images=17, image_size=64).train_images == 17  # 2x2 lowest branch
    with pytest.raises(ValueError, match="trainable: digits-cls, digits-seg"):
        train(TINY, "seg", tmp_path)
    train(TINY, "digits-cls", tmp_path, TrainConfig(epochs=1, train_images=8, val_images=8), "r")
    with pytest.raises(FileExistsError):
        train(TINY, "digits-cls", tmp_path, TrainConfig(epochs=1, train_images=8), "r")


def test_cli_train(tmp_path: Path) -> None:
    args = ["train", TINY.code, "--setting", "digits-cls", "--epochs", "1", "--out", str(tmp_path)]
    args += ["--train-images", "16", "--val-images", "16", "--run", "cli"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path == log_path(tmp_path, "digits-cls", TINY, "cli") and path.is_file()
    meta, *body = _lines(path)  # the run has the schedule the options gave
    assert "train_images=16, val_images=16" in meta["config"]
    assert "max_epochs=1" in meta["config"] and {line["epoch"] for line in body} == {1}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and isinstance(again.exception, SystemExit), again.output
    assert f"Error: {path}: a log of this run exists" in again.output
    blocked = tmp_path / "blocked"
    (blocked / "logs" / "digits-cls").mkdir(parents=True)
    (blocked / "logs" / "digits-cls" / TINY.code).write_text("a file where a folder goes\n")
    in_the_way = CliRunner().invoke(main, [*args, "--out", str(blocked)])  # the last --out
    assert in_the_way.exit_code == 1, in_the_way.output
    assert f"File exists: '{blocked / 'logs' / 'digits-cls' / TINY.code}'" in in_the_way.output
    bad = CliRunner().invoke(main, ["train", "8_8", "--setting", "digits-cls", "--out", "x"])
    assert bad.exit_code == 2 and "invalid code" in bad.output


def test_cli_mini_makes_a_log_drop_of_the_schedule_it_is_given(tmp_path: Path) -> None:
    """The README's ``nasmr mini --n N --epochs E --out DIR``: N architectures sampled with
    --seed, each trained on both digits settings for the epochs and images the options
    give, and a drop that parses to one accepted run per log."""
    args = ["mini", "--n", "2", "--epochs", "1", "--seed", "97", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--train-images", "16", "--val-images", "16"])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.splitlines()]
    placed = sorted((p.parents[1].name, p.parent.name) for p in printed)
    assert placed == sorted(
        (s, a.code) for a in sample(2, 97) for s in ("digits-cls", "digits-seg")
    )
    for path in printed:
        meta, *body = _lines(path)
        assert "train_images=16, val_images=16" in meta["config"] and meta["seed"] == 97
        assert "max_epochs=1" in meta["config"] and {line["epoch"] for line in body} == {1}
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine.empty and parsed.runs["status"].tolist() == ["accepted"] * 4


@pytest.mark.parametrize("run", ["../elsewhere", "a/b", "..", ""])
def test_cli_train_refuses_a_run_name_that_leaves_the_log_layout(tmp_path: Path, run: str) -> None:
    """A ``--run`` that is a path would write the log where ``logs parse`` cannot place it."""
    args = ["train", TINY.code, "--setting", "digits-cls", "--out", str(tmp_path), "--run", run]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--run': run name {run!r}: must be a file name" in result.output
    assert not any(tmp_path.iterdir())  # refused before any training
    with pytest.raises(ValueError, match="must be a file name"):
        log_path(tmp_path, "digits-cls", TINY, run)


@pytest.mark.parametrize("command", ["train", "mini"])
def test_training_refuses_to_write_logs_into_a_release(tmp_path: Path, command: str) -> None:
    """As root, a release's read-only modes stop nothing: a log written there fails verify."""
    release = tmp_path / "1.0.0"
    release.mkdir()
    (release / "manifest.json").write_text("{}")
    (release / "SHA256SUMS").write_text("")
    args = {"train": ["train", TINY.code, "--setting", "digits-cls"], "mini": ["mini", "--n", "1"]}
    result = CliRunner().invoke(main, [*args[command], "--out", str(release), "--epochs", "1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "is a published release" in result.output
    assert "write the log drop elsewhere (--out)" in result.output
    assert sorted(p.name for p in release.iterdir()) == ["SHA256SUMS", "manifest.json"]


def test_a_seed_torch_cannot_take_is_refused_when_the_schedule_is_made() -> None:
    """2**64 failed mid-run as torch's 'Overflow when unpacking long long'."""
    refused = r"seed must be in \[0, 2\*\*63 - 1\], got 18446744073709551616"
    with pytest.raises(ValueError, match=refused):
        TrainConfig(seed=2**64)


@pytest.mark.parametrize("command", ["train", "mini"])
def test_the_schedule_options_help_states_the_real_splits_and_defaults(command: str) -> None:
    """The help's split sizes are the digits data's (train_config states them without
    loading it), and the options have no defaults of their own: TrainConfig's, which the
    help names, apply."""
    assert len(load_digits().target) == TRAIN_SPLIT + VAL_SPLIT
    train = ["--setting", "digits-cls", sample(1, seed=0)[0].code]
    args = ["--out", "o"] + (train if command == "train" else [])
    given = main.commands[command].make_context(command, args).params
    schedule = ("epochs", "seed", "image_size", "train_images", "val_images")
    assert all(given[name] is None for name in schedule)
    default = TrainConfig()  # what applies to an option left unset
    helped = {p.name: " ".join((p.help or "").split()) for p in main.commands[command].params}
    assert f"(default {default.epochs})" in helped["epochs"]
    assert f"(default {default.seed})" in helped["seed"]
    assert f"multiple of 32 ({default.image_size})" in helped["image_size"]
    assert f"of {TRAIN_SPLIT} ({default.train_images})" in helped["train_images"]
    assert f"of {VAL_SPLIT} ({default.val_images})" in helped["val_images"]
