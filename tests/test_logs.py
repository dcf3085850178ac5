"""Regenerating results from raw training logs: parse, quarantine, derive, export, reconcile.

Every log here is produced by real CPU training (``nasmr.training.mini``); bad inputs
are made by corrupting those logs.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nasmr import logs
from nasmr.cli import main
from nasmr.complexity import analytic_complexity
from nasmr.export import ExportError, export_results, records_frame, write_trainval
from nasmr.logs import (
    EmptyLogDrop,
    UnreconciledLogs,
    derive_results,
    log_tables,
    parse_log_drop,
    reconcile,
    reconcile_tolerance,
    results_long,
)
from nasmr.rawdrop import load_pickle
from nasmr.space import Arch, sample
from tests.drops import exact, mr_record, seg_log, write_drop

LINES_PER_LOG = 7  # meta, (train, train, val) x 2 epochs


@pytest.fixture(scope="module")
def drop(log_drop: Path) -> Path:
    return log_drop


@pytest.fixture(scope="module")
def clean(drop: Path) -> pd.DataFrame:
    return derive_results(parse_log_drop(drop).curves)


@pytest.fixture()
def copy(drop: Path, tmp_path: Path) -> Path:
    """A private copy of the drop for a test to corrupt."""
    return Path(shutil.copytree(drop, tmp_path / "drop"))


def _logs(root: Path, setting: str) -> list[Path]:
    return sorted((root / "logs" / setting).glob("*/*.log.json"))


def _name(root: Path, path: Path) -> str:
    """How the parse of ``root`` names ``path``: relative to ``root``, ``logs/`` included."""
    return path.relative_to(root).as_posix()


def _rewrite(path: Path, edit: Callable[[list[dict]], list[dict]]) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(obj) + "\n" for obj in edit(lines)))


# -- the generated drop end to end --------------------------------------------------


def test_mini_drop_parses_derives_exports_and_reads_back(drop: Path, tmp_path: Path) -> None:
    parsed = parse_log_drop(drop)
    assert parsed.quarantine.empty
    assert len(parsed.runs) == 4 and (parsed.runs["status"] == "accepted").all()
    assert parsed.lines == 4 * LINES_PER_LOG
    assert set(parsed.curves.columns) == {
        "arch",
        "setting",
        "run",
        "epoch",
        "iter",
        "metric",
        "value",
    }
    derived = derive_results(parsed.curves)
    assert len(derived) == 2 * 2 + 2 * 3  # (top1, top5) and (mIoU, mAcc, aAcc) per arch
    assert (derived["final_epoch"] == 2).all() and (derived["evaluations"] == 2).all()
    assert derived["final_value"].between(0, 100).all()
    assert (derived["best_value"] >= derived["final_value"]).all()

    written = export_results(results_long(derived), tmp_path / "data")
    assert sorted(written) == ["digits-cls", "digits-seg"]
    for setting, path in written.items():
        records = load_pickle(path)
        expected = derived[derived["setting"] == setting]
        assert len(records) == 2
        for record in records:
            arch = Arch.from_embedding(record["embedding"])
            mine = expected[expected["code"] == arch.code].set_index("metric")["final_value"]
            assert {m: record[m] for m in mine.index} == mine.to_dict()
            assert record["flops"] == analytic_complexity(arch).gmac
            assert record["params"] == analytic_complexity(arch).mparams
            assert record["inverted_residual_setting"] == arch.setting
            assert list(record)[-5:] == [
                "params",
                "input_channel",
                "inverted_residual_setting",
                "last_channel",
                "embedding",
            ]


def test_segmentation_fractions_become_percentages(drop: Path) -> None:
    path = _logs(drop, "digits-seg")[0]
    fractions = [json.loads(line) for line in path.read_text().splitlines()][-1]
    parsed = parse_log_drop(drop)
    curves = parsed.curves[parsed.curves["arch"] == path.parent.name]
    final = curves[(curves["epoch"] == 2) & curves["metric"].isin(["mIoU", "mAcc", "aAcc"])]
    assert final.set_index("metric")["value"].astype(float).to_dict() == pytest.approx(
        {m: 100 * fractions[m] for m in ("mIoU", "mAcc", "aAcc")}
    )


@pytest.mark.parametrize(
    ("setting", "edit"),
    [
        # mmsegmentation 1.x logs percentages
        (
            "digits-seg",
            lambda o: {k: (100 * v if k in ("mIoU", "mAcc", "aAcc") else v) for k, v in o.items()},
        ),
        # mmaction2 0.x: top1_acc/top5_acc, fractions
        (
            "digits-cls",
            lambda o: {
                {"accuracy_top-1": "top1_acc", "accuracy_top-5": "top5_acc"}.get(k, k): (
                    v / 100 if k.startswith("accuracy") else v
                )
                for k, v in o.items()
            },
        ),
        # mmpretrain 1.x: accuracy/top1, percentages
        (
            "digits-cls",
            lambda o: {k.replace("accuracy_top-", "accuracy/top"): v for k, v in o.items()},
        ),
        # mmengine-style lines: no "mode" (inferred from loss / metric keys), "step" for epoch
        (
            "digits-cls",
            lambda o: {
                ("step" if k == "epoch" and "loss" not in o else k): v
                for k, v in o.items()
                if k != "mode"
            },
        ),
    ],
    ids=["mmseg-1.x-percent", "mmaction2-fraction", "mmpretrain-1.x", "no-mode"],
)
def test_tool_spellings_normalise_to_the_same_curves(
    drop: Path, copy: Path, setting: str, edit: Callable[[dict], dict]
) -> None:
    for path in _logs(copy, setting):
        _rewrite(path, lambda lines: [edit(o) for o in lines])
    before, after = parse_log_drop(drop).curves, parse_log_drop(copy).curves
    assert parse_log_drop(copy).quarantine.empty
    pd.testing.assert_frame_equal(after, before, check_exact=False, rtol=1e-12)


# -- bad inputs ----------------------------------------------------------------------


def _cut(line: bytes) -> bytes:
    return line[: len(line) // 2]


def _set(line: bytes, **fields: object) -> bytes:
    obj = json.loads(line) | fields
    return json.dumps(obj).encode()


def _drop_key(line: bytes, key: str) -> bytes:
    return json.dumps({k: v for k, v in json.loads(line).items() if k != key}).encode()


def _at(index: int, change: Callable[[bytes], bytes]) -> Callable[[list[bytes]], list[bytes]]:
    """Edit line ``index`` (0-based) of a log."""
    return lambda ls: [*ls[:index], change(ls[index]), *ls[index + 1 :]]


def _insert(index: int, line: bytes) -> Callable[[list[bytes]], list[bytes]]:
    return lambda ls: [*ls[:index], line, *ls[index:]]


# A digits-cls log: 1 meta, 2 train (epoch 1), 3 val, 4 train (epoch 2), ... 7 val.
# (name, edit, quarantined line, reason start, does the run still land)
BAD_LINES = [
    ("truncated-line", _at(2, _cut), 3, "malformed JSON", True),
    ("not-json", _insert(2, b"epoch 1 done"), 3, "malformed JSON", True),
    ("non-object", _insert(2, b"[1, 2]"), 3, "not a JSON object", True),
    ("nan-loss", _at(4, lambda b: _set(b, loss=float("nan"))), 5, "not a finite number", True),
    ("inf-metric", _at(3, lambda b: _set(b, **{"accuracy_top-5": float("inf")})), 4,
     "not a finite number", True),
    ("missing-metric", _at(3, lambda b: _drop_key(b, "accuracy_top-5")), 4,
     "evaluation line without a metric: top5", True),
    ("out-of-range", _at(3, lambda b: _set(b, **{"accuracy_top-1": 150.0})), 4,
     "metric outside [0, 100]", True),
    ("no-epoch", _at(4, lambda b: _drop_key(b, "epoch")), 5, 'missing or non-integer "epoch"',
     True),
    ("float-epoch", _at(6, lambda b: _set(b, epoch=1.5)), 7,
     'not an integer in [1, 9223372036854775807]: "epoch" is 1.5', False),
    ("string-epoch", _at(4, lambda b: _set(b, epoch="2")), 5,
     'not an integer in [1, 9223372036854775807]: "epoch" is "2"', True),
    ("negative-iter", _at(4, lambda b: _set(b, iter=-5)), 5,
     'not an integer in [0, 9223372036854775807]: "iter" is -5', True),
    ("float-step", _at(4, lambda b: _set(_drop_key(b, "epoch"), step=2.0)), 5,
     'not an integer in [0, 9223372036854775807]: "step" is 2.0', True),
    ("unknown-mode", _at(1, lambda b: _set(b, mode="test")), 2, 'unknown mode: "test"', True),
    ("bad-utf8", _at(1, lambda b: b[:-1] + b', "x": "\xff"}'), 2, "not valid UTF-8", True),
    ("leading-space", _at(1, lambda b: b" " + b), None, None, True),
    ("blank-lines", lambda ls: [ls[0], b"", b" \t", *ls[1:]], None, None, True),
    ("crlf", lambda ls: [line + b"\r" for line in ls], None, None, True),
    ("tab-indented", _at(1, lambda b: b"\t" + b), None, None, True),  # JSON whitespace
    ("bool-metric", _at(3, lambda b: _set(b, **{"accuracy_top-1": True})), 4,
     'not a number: "accuracy_top-1" is true', True),
    ("string-metric", _at(3, lambda b: _set(b, **{"accuracy_top-1": "55.5"})), 4,
     'not a number: "accuracy_top-1" is "55.5"', True),
    ("string-loss", _at(4, lambda b: _set(b, loss="1.5")), 5, 'not a number: "loss" is "1.5"',
     True),
    ("word-lr", _at(4, lambda b: _set(b, lr="x")), 5, 'not a number: "lr" is "x"', True),
    ("escaped-key-string", _at(3, lambda b: _set(b, **{"accuracy_top-1": "55.5"}).replace(
        b'"accuracy_top-1"', b'"accuracy_top\\u002d1"')), 4,
     'not a number: "accuracy_top-1" is "55.5"', True),
    ("deeply-nested", _insert(2, b'{"mode": "val", "x": ' + b"[" * 1000 + b"]" * 999 + b"}"), 3,
     "malformed JSON: nested deeper than Python's JSON decoder follows", True),
    ("json-null", _insert(2, b"null"), 3, "not a JSON object", True),
    ("stopped-early", lambda ls: ls[:4], 4, "stopped early: last evaluation at epoch 1 of 2",
     False),
    ("no-evaluation", lambda ls: ls[:3], 3, "stopped early: no evaluation line", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "line", "reason", "lands"),
    [case[1:] for case in BAD_LINES],
    ids=[case[0] for case in BAD_LINES],
)
def test_bad_lines_are_quarantined_and_other_runs_land(
    copy: Path,
    clean: pd.DataFrame,
    edit: Callable[[list[bytes]], list[bytes]],
    line: int | None,
    reason: str | None,
    lands: bool,
) -> None:
    path = _logs(copy, "digits-cls")[0]
    path.write_bytes(b"\n".join(edit(path.read_bytes().splitlines())) + b"\n")
    parsed = parse_log_drop(copy)
    name = _name(copy, path)
    rows = parsed.quarantine
    if reason is None:
        assert rows.empty
    else:
        hit = rows[(rows["file"] == name) & (rows["line"] == line)]
        assert hit["reason"].str.startswith(reason).any(), rows.to_string()
        assert set(rows["file"]) == {name}
    runs = parsed.runs.set_index("file")["status"]
    assert runs[name] == ("accepted" if lands else "quarantined")
    assert (runs.drop(name) == "accepted").all()
    others = clean[clean["code"] != path.parent.name].reset_index(drop=True)
    derived = derive_results(parsed.curves)
    pd.testing.assert_frame_equal(
        derived[derived["code"] != path.parent.name].reset_index(drop=True), others
    )


def test_a_bad_line_removes_only_its_own_points(drop: Path, copy: Path) -> None:
    """A bad line costs only its own points: the rest of its file reads as in a clean drop."""
    path = _logs(copy, "digits-seg")[1]
    lines = path.read_bytes().splitlines()
    lines[4] = _set(lines[4], loss=float("nan"))  # epoch 2, iter 1
    path.write_bytes(b"\n".join(lines) + b"\n")
    before, after = parse_log_drop(drop).curves, parse_log_drop(copy).curves
    lost = (before["arch"] == path.parent.name) & (before["setting"] == "digits-seg")
    lost &= (before["epoch"] == 2) & (before["iter"] == 1) & before["metric"].isin(["loss", "lr"])
    assert lost.sum() == 2
    pd.testing.assert_frame_equal(after, before[~lost].reset_index(drop=True))


def test_lines_logged_out_of_order_give_the_same_curves(drop: Path, copy: Path) -> None:
    """Curves are sorted by epoch, iteration and training first, not by line order."""
    path = _logs(copy, "digits-seg")[0]
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], *reversed(lines[1:])]) + b"\n")
    parsed = parse_log_drop(copy)
    assert parsed.quarantine.empty
    pd.testing.assert_frame_equal(parsed.curves, parse_log_drop(drop).curves)


def test_batches_of_any_size_parse_the_same(
    drop: Path, copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop read one file per batch parses as in one batch, bad lines included."""
    path = _logs(copy, "digits-cls")[1]
    path.write_bytes(path.read_bytes()[:-40])  # a cut last line
    whole = parse_log_drop(copy)
    monkeypatch.setattr(logs, "BATCH_BYTES", 1)
    one_by_one = parse_log_drop(copy)
    for table in ("curves", "quarantine", "runs"):
        pd.testing.assert_frame_equal(getattr(one_by_one, table), getattr(whole, table))
    assert len(whole.quarantine) == 2


def test_an_unexpected_error_while_reading_raises_as_itself(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error reading the files is not hidden behind DuckDB's wrapping of it."""

    def fail(batch: object, unreadable: object) -> None:
        raise MemoryError("out of memory")

    monkeypatch.setattr(logs, "_load", fail)
    with pytest.raises(MemoryError, match="out of memory"):
        parse_log_drop(copy)


def test_a_file_gone_before_it_is_read_is_quarantined(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log deleted between listing and reading used to abort the whole parse."""
    gone = _logs(copy, "digits-seg")[0]
    listed = logs._discover

    def discover_then_delete(drop: Path) -> object:
        found = listed(drop)
        gone.unlink()
        return found

    monkeypatch.setattr(logs, "_discover", discover_then_delete)
    parsed = parse_log_drop(copy)
    assert parsed.quarantine.to_dict("records") == [
        {"file": _name(copy, gone), "line": None, "reason": "unreadable: No such file or directory"}
    ]
    runs = parsed.runs.set_index("file")["status"]
    assert runs[_name(copy, gone)] == "quarantined"
    assert (runs.drop(_name(copy, gone)) == "accepted").all()


def test_a_folder_that_cannot_be_listed_is_named(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder without read permission was skipped without a word, its runs unaccounted for."""
    locked = _logs(copy, "digits-cls")[0].parent
    scandir = logs.os.scandir

    def refuse(path: str) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(logs.os, "scandir", refuse)
    parsed = parse_log_drop(copy)
    assert parsed.quarantine.to_dict("records") == [
        {
            "file": f"logs/digits-cls/{locked.name}/",
            "line": None,
            "reason": "unreadable folder: Permission denied",
        }
    ]
    assert len(parsed.runs) == 3 and (parsed.runs["status"] == "accepted").all()


def test_a_log_drop_that_cannot_be_listed_fails_naming_it(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scandir = logs.os.scandir

    def refuse(path: str) -> object:
        if Path(path) == copy / "logs":
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(logs.os, "scandir", refuse)
    result = CliRunner().invoke(main, ["logs", "parse", str(copy), "--out", str(copy / "t")])
    assert result.exit_code == 1
    assert f"Error: {copy}: cannot read the log drop: [Errno 13] Permission denied" in result.output


def test_a_drop_without_log_files_is_refused(tmp_path: Path) -> None:
    """Most likely the wrong folder: empty tables would replace the last parse's outputs."""
    (tmp_path / "logs").mkdir()
    for folder in (tmp_path, tmp_path / "logs"):
        with pytest.raises(EmptyLogDrop, match=f"no log file under {folder} "):
            parse_log_drop(folder)


def test_a_drop_without_a_good_run_parses_to_empty_typed_tables(drop: Path, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "stray.log.json").write_text("{}\n")  # out of the layout
    parsed = parse_log_drop(tmp_path)
    assert parsed.runs.empty and parsed.curves.empty
    assert parsed.quarantine["file"].tolist() == ["logs/stray.log.json"]
    assert parsed.summary().startswith("0 run files, 0 lines, 0 runs accepted, 0 curve points")
    kinds = parse_log_drop(drop).curves.dtypes.astype(str)
    pd.testing.assert_series_equal(parsed.curves.dtypes.astype(str), kinds)


def test_truncated_last_line_quarantines_the_line_and_the_run(copy: Path) -> None:
    path = _logs(copy, "digits-seg")[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # cut inside the last (epoch 2) val line
    parsed = parse_log_drop(copy)
    name = _name(copy, path)
    rows = parsed.quarantine[parsed.quarantine["file"] == name]
    assert rows["line"].tolist() == [LINES_PER_LOG, LINES_PER_LOG]
    assert rows["reason"].iloc[0].startswith("truncated last line: no newline")
    assert rows["reason"].iloc[1].startswith("stopped early: last evaluation at epoch 1 of 2")
    assert name not in set(parsed.runs.loc[parsed.runs["status"] == "accepted", "file"])


def test_without_max_epochs_the_usual_last_epoch_sets_the_length(copy: Path) -> None:
    """Two runs, one stopped after epoch 1: of equally common last epochs, the furthest."""
    for path in _logs(copy, "digits-cls"):
        _rewrite(path, lambda ls: [{k: v for k, v in o.items() if k != "config"} for o in ls])
    short = _logs(copy, "digits-cls")[0]
    short.write_text("".join(short.read_text().splitlines(keepends=True)[:4]))
    parsed = parse_log_drop(copy)
    assert parsed.quarantine["reason"].tolist() == [
        "stopped early: last evaluation at epoch 1 of 2 (the usual last epoch of digits-cls runs)"
    ]
    assert parsed.runs.set_index("file").loc[_name(copy, short), "expected_epochs"] == 2


def test_one_mistyped_epoch_does_not_make_every_other_run_stop_early(copy: Path) -> None:
    """Without max_epochs, the last evaluation most runs share is the length: the run whose
    last evaluation says epoch 20 is quarantined, not the others as stopped at 2 of 20."""
    source = _logs(copy, "digits-cls")[0]
    third = copy / "logs" / "digits-cls" / sample(1, seed=9)[0].code / source.name
    third.parent.mkdir()
    shutil.copy(source, third)
    for path in _logs(copy, "digits-cls"):
        _rewrite(path, lambda ls: [{k: v for k, v in o.items() if k != "config"} for o in ls])
    _rewrite(source, lambda ls: [*ls[:-1], ls[-1] | {"epoch": 20}])
    parsed = parse_log_drop(copy)
    assert parsed.quarantine.to_dict("records") == [
        {
            "file": _name(copy, source),
            "line": LINES_PER_LOG,
            "reason": "past the usual end: last evaluation at epoch 20, where digits-cls runs "
            "usually end at 2 (a mistyped epoch, or another schedule)",
        }
    ]
    runs = parsed.runs.set_index("file")["status"]
    assert (runs.drop(_name(copy, source)) == "accepted").all()


def test_a_non_integer_epoch_does_not_set_the_length(copy: Path) -> None:
    """An evaluation at epoch 2.6 is quarantined, not rounded to 3 to outrun every good run."""
    for path in _logs(copy, "digits-cls"):
        _rewrite(path, lambda ls: [{k: v for k, v in o.items() if k != "config"} for o in ls])
    odd = _logs(copy, "digits-cls")[0]
    _rewrite(odd, lambda ls: [*ls[:-1], ls[-1] | {"epoch": 2.6}])
    parsed = parse_log_drop(copy)
    assert parsed.quarantine["reason"].tolist() == [
        'not an integer in [1, 9223372036854775807]: "epoch" is 2.6',
        "stopped early: last evaluation at epoch 1 of 2 (the usual last epoch of digits-cls runs)",
    ]
    runs = parsed.runs.set_index("file")["status"]
    assert runs[_name(copy, odd)] == "quarantined"
    assert (runs.drop(_name(copy, odd)) == "accepted").all()


def test_duplicate_runs_keep_the_latest(copy: Path, clean: pd.DataFrame) -> None:
    path = _logs(copy, "digits-cls")[1]
    later = path.with_name("99991231_235959.log.json")
    shutil.copy(path, later)
    parsed = parse_log_drop(copy)
    assert parsed.quarantine["file"].tolist() == [_name(copy, path)]
    assert parsed.quarantine["line"].isna().all()
    assert (
        parsed.quarantine["reason"]
        .iloc[0]
        .startswith("duplicate run: 99991231_235959.log.json is kept")
    )
    derived = derive_results(parsed.curves)
    assert len(derived) == len(clean)
    mine = (derived["code"] == path.parent.name) & (derived["setting"] == "digits-cls")
    assert set(derived.loc[mine, "run"]) == {"99991231_235959"}


def _resume(path: Path, stop: int, restart: int) -> Path:
    """Split a run as a crash and a resume from a checkpoint make it: ``path`` keeps its meta
    line and lines up to ``stop``; a later file, its own meta line and lines from ``restart``."""
    lines = path.read_text().splitlines(keepends=True)
    later = path.with_name("99991231_235959.log.json")
    later.write_text("".join([lines[0], *lines[restart:]]))
    path.write_text("".join(lines[:stop]))
    return later


def test_a_resumed_run_is_one_run(drop: Path, copy: Path, clean: pd.DataFrame) -> None:
    """mmcv starts a new log file when a run resumes: the two files are one run whose curves
    and results are those of the run that was never interrupted."""
    path = _logs(copy, "digits-cls")[0]
    later = _resume(path, stop=4, restart=4)  # epoch 1 in the first file, epoch 2 in the next
    parsed = parse_log_drop(copy)
    assert parsed.quarantine.empty
    runs = parsed.runs.set_index("file")
    assert runs.loc[_name(copy, later), "resumes"] == path.name.removesuffix(".log.json")
    assert runs["resumes"].drop(_name(copy, later)).isna().all()
    assert (runs["status"] == "accepted").all()
    assert "5 run files" in parsed.summary() and "4 runs accepted" in parsed.summary()
    pd.testing.assert_frame_equal(parsed.curves, parse_log_drop(drop).curves)
    pd.testing.assert_frame_equal(derive_results(parsed.curves), clean)


def _schemas(drop: Path, out: Path) -> dict[str, pa.Schema]:
    """The Parquet schema of each table ``write_log_tables`` writes for ``drop``."""
    logs.write_log_tables(parse_log_drop(drop), out)
    return {p.stem: pq.read_schema(p).remove_metadata() for p in sorted(out.glob("*.parquet"))}


def test_the_tables_parquet_schemas_do_not_depend_on_the_drop(
    drop: Path, copy: Path, tmp_path: Path
) -> None:
    """``runs.resumes`` was stored as Arrow type null where no file resumes another (every
    ``nasmr mini`` drop), and every text column of an empty ``runs`` so too."""
    plain = _schemas(drop, tmp_path / "plain")
    runs = plain["runs"]
    assert len(plain) == 5 and runs.field("resumes").type == runs.field("file").type
    _resume(_logs(copy, "digits-cls")[0], stop=4, restart=4)
    assert _schemas(copy, tmp_path / "resumed") == plain
    (tmp_path / "none" / "logs").mkdir(parents=True)
    (tmp_path / "none" / "logs" / "stray.log.json").write_text("{}\n")  # no run at all
    assert _schemas(tmp_path / "none", tmp_path / "empty") == plain


def _train(epoch: int) -> list[dict]:
    """The two training lines of an epoch, as mmcls logs them."""
    return [{"mode": "train", "epoch": epoch, "iter": i, "lr": 0.1, "loss": 1.0} for i in (5, 10)]


def _val(epoch: int) -> dict:
    """An evaluation after ``epoch``: top1 = 10 x epoch."""
    return {
        "mode": "val",
        "epoch": epoch,
        "iter": 3,
        "accuracy_top-1": 10.0 * epoch,
        "accuracy_top-5": 90.0,
    }


def _write_launch(
    root: Path,
    name: str,
    lines: list[dict],
    max_epochs: int | None = 4,
    arch: int = 9,
    setting: str = "digits-cls",
) -> None:
    """``logs/<setting>/<arch>/<name>.log.json``: a meta line (declaring ``max_epochs``
    unless None), then ``lines``."""
    folder = root / "logs" / setting / sample(1, seed=arch)[0].code
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"env_info": "x"} | (
        {"config": f"runner = dict(max_epochs={max_epochs})"} if max_epochs else {}
    )
    text = "".join(json.dumps(o) + "\n" for o in [meta, *lines])
    (folder / f"{name}.log.json").write_text(text)


def _launches(
    root: Path,
    runs: dict[str, tuple[int, int]],
    max_epochs: int | None = 4,
    arch: int = 9,
    **keys: str,
) -> None:
    """Launches of one digits-cls architecture: ``name -> (first, last)`` epoch, each epoch
    trained and evaluated. ``keys`` renames line keys (``epoch="step"``)."""
    for name, (first, last) in runs.items():
        lines = [o for e in range(first, last + 1) for o in [*_train(e), _val(e)]]
        lines = [{keys.get(k, k): v for k, v in o.items()} for o in lines]
        _write_launch(root, name, lines, max_epochs, arch)


def _top1(parsed: logs.LogParse) -> list[tuple[str, int, float]]:
    curves = parsed.curves[parsed.curves["metric"] == "top1"]
    return list(zip(curves["run"].astype(str), curves["epoch"], curves["value"], strict=True))


def test_lines_a_resumed_run_logs_again_supersede_the_earlier_files(tmp_path: Path) -> None:
    """a: epochs 1-3; b resumed at epoch 4; c, launched last, resumed from epoch 2's
    checkpoint. Each file is cut at the earliest epoch a later one logs again."""
    _launches(tmp_path, {"a": (1, 3), "b": (4, 4), "c": (3, 4)})
    parsed = parse_log_drop(tmp_path)
    assert _top1(parsed) == [("a", e, 10.0 * e) for e in range(1, 5)]
    assert [r.split(".log.json")[0] for r in parsed.quarantine["reason"]] == [
        "superseded: 3 lines from epoch 3 on, logged again by c",
        "superseded: 3 lines from epoch 3 on, logged again by c",
    ]
    assert parsed.runs["resumes"].fillna("").tolist() == ["", "a", "b"]
    assert (parsed.runs["status"] == "accepted").all()
    assert derive_results(parsed.curves)["evaluations"].tolist() == [4, 4]


def test_the_segmentation_scale_is_the_runs_not_each_files(tmp_path: Path) -> None:
    """A resumed run on the percentage scale whose first launch logged only values <= 1
    (epoch 1): that file's values were multiplied by 100 on their own."""

    def val(epoch: int, aacc: float, miou: float, macc: float) -> dict:
        return {"mode": "val", "epoch": epoch, "iter": 3, "aAcc": aacc, "mIoU": miou, "mAcc": macc}

    first = [*_train(1), val(1, 0.9, 0.5, 0.6)]
    later = [*_train(2), val(2, 50.0, 20.0, 30.0), *_train(3), val(3, 60.0, 25.0, 35.0)]
    _write_launch(tmp_path, "a", first, max_epochs=3, setting="digits-seg")
    _write_launch(tmp_path, "b", later, max_epochs=3, setting="digits-seg")
    parsed = parse_log_drop(tmp_path)
    assert parsed.runs["resumes"].fillna("").tolist() == ["", "a"]
    curves = parsed.curves[parsed.curves["metric"] == "aAcc"]
    assert curves["value"].tolist() == [0.9, 50.0, 60.0]


def test_a_launch_that_logged_nothing_does_not_break_a_run(tmp_path: Path) -> None:
    """A relaunch that died before its first line leaves a file with no training line; the
    next launch resumes the run before it."""
    _launches(tmp_path, {"a": (1, 2), "b": (1, 0), "c": (3, 4)})
    parsed = parse_log_drop(tmp_path)
    assert _top1(parsed) == [("a", e, 10.0 * e) for e in range(1, 5)]
    runs = parsed.runs.set_index("run")
    assert runs.loc["c", "resumes"] == "a" and runs.loc["c", "status"] == "accepted"
    assert parsed.quarantine["reason"].tolist() == ["stopped early: no evaluation line"]


def test_launches_logged_by_step_stay_separate_runs(tmp_path: Path) -> None:
    """A step count has no 1 to restart from: every launch starts past it."""
    _launches(tmp_path, {"a": (1, 4), "b": (1, 4)}, epoch="step")
    parsed = parse_log_drop(tmp_path)
    assert parsed.runs["resumes"].isna().all()
    assert parsed.runs["status"].tolist() == ["quarantined", "accepted"]
    assert set(parsed.curves["run"].astype(str)) == {"b"}


@pytest.mark.parametrize(
    ("launches", "evaluations"),
    [
        ({"a": [1, 2], "b": [3, 4]}, 4),  # no training line: a log interval over an epoch
        ({"a": [1], "b": [3, 4]}, 3),  # epoch 2's lines lost (a crash wrote a NUL block)
    ],
)
def test_launches_join_on_their_evaluations_and_across_a_gap(
    launches: dict[str, list[int]], evaluations: int, tmp_path: Path
) -> None:
    for name, epochs in launches.items():
        _write_launch(tmp_path, name, [_val(e) for e in epochs])
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine.empty
    assert parsed.runs["resumes"].fillna("").tolist() == ["", "a"]
    assert derive_results(parsed.curves)["evaluations"].tolist() == [evaluations] * 2


@pytest.mark.parametrize("mode", [True, False])
def test_training_accuracies_are_not_evaluations(mode: bool, tmp_path: Path) -> None:
    """mmaction2 logs the training batch's top1_acc on every training line (with mode in
    0.x, without in 1.x): the run's results are its evaluations'."""
    accuracy = {"top1_acc": 0.95, "top5_acc": 1.0}
    lines = []
    for e in (1, 2, 3, 4):
        lines += [o | accuracy for o in _train(e)] + [_val(e) | {"iter": 500}]
    lines = [o if mode else {k: v for k, v in o.items() if k != "mode"} for o in lines]
    _write_launch(tmp_path, "a", lines)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine.empty
    top1 = derive_results(parsed.curves).set_index("metric").loc["top1"]
    assert (top1["evaluations"], top1["final_value"], top1["best_value"]) == (4, 40.0, 40.0)


def test_a_non_finite_training_accuracy_keeps_its_line(tmp_path: Path) -> None:
    """The training batch's accuracy is not read, so a NaN there does not cost the line's
    loss; a NaN in an evaluation still quarantines that line."""
    lines = [o for e in (1, 2, 3, 4) for o in [*_train(e), _val(e)]]
    lines[0] |= {"top1_acc": float("nan")}
    lines[5] |= {"accuracy_top-5": float("nan")}  # epoch 2's evaluation
    _write_launch(tmp_path, "a", lines)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine[["line", "reason"]].values.tolist() == [
        [7, 'not a finite number: "accuracy_top-5" is nan']
    ]
    assert (parsed.curves["metric"] == "loss").sum() == 8


def test_a_crashed_rerun_does_not_set_the_usual_end(tmp_path: Path) -> None:
    """Without max_epochs, each architecture votes with its latest run: one architecture's
    rerun that crashed at epoch 1 is outvoted, stopped early, and its resumed run kept."""
    _launches(tmp_path, {"a": (1, 2), "b": (3, 4), "c": (1, 1)}, max_epochs=None)
    for arch in (1, 2):
        _launches(tmp_path, {"a": (1, 4)}, max_epochs=None, arch=arch)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine["reason"].tolist() == [
        "stopped early: last evaluation at epoch 1 of 4 (the usual last epoch of digits-cls runs)"
    ]
    assert (parsed.runs["status"] == "accepted").sum() == 4


def test_a_rerun_that_logged_only_evaluations_is_not_a_resume(tmp_path: Path) -> None:
    """Evaluating every second epoch, a fresh rerun's first line is at epoch 2: without
    training lines, only an evaluation after the earlier file's last one continues it."""
    _write_launch(tmp_path, "a", [_val(2), _val(4)])
    _write_launch(tmp_path, "b", [_val(2)])
    parsed = parse_log_drop(tmp_path)
    assert parsed.runs["resumes"].isna().all()
    assert parsed.runs["status"].tolist() == ["accepted", "quarantined"]
    assert parsed.quarantine["reason"].tolist() == [
        "stopped early: last evaluation at epoch 2 of 4 (the schedule its config declares)"
    ]


def test_an_evaluation_of_the_resumed_checkpoint_supersedes_the_earlier_one(
    tmp_path: Path,
) -> None:
    """mmcv's EvalHook(start=...) evaluates the checkpoint a launch resumes from: that
    evaluation replaces the first launch's, and the first launch's training stays."""
    _launches(tmp_path, {"a": (1, 2)})
    lines = [_val(2)] + [o for e in (3, 4) for o in [*_train(e), _val(e)]]
    _write_launch(tmp_path, "b", lines)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine["reason"].tolist() == [
        "superseded: 1 line from epoch 2 on (training lines from epoch 3), logged again by "
        "b.log.json, which resumes the run"
    ]
    assert _top1(parsed) == [("a", e, 10.0 * e) for e in range(1, 5)]
    assert derive_results(parsed.curves)["evaluations"].tolist() == [4, 4]
    curves = parsed.curves
    assert (curves[curves["metric"] == "loss"]["epoch"].value_counts() == 2).all()


def test_training_by_epoch_is_joined_when_evaluations_log_a_step(tmp_path: Path) -> None:
    """mmengine writes ``epoch`` on training lines and ``step`` on evaluations."""
    for name, (first, last) in {"a": (1, 2), "b": (3, 4)}.items():
        lines = []
        for e in range(first, last + 1):
            val = {k: v for k, v in _val(e).items() if k != "epoch"} | {"step": e}
            lines += [*_train(e), val]
        _write_launch(tmp_path, name, lines)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine.empty
    assert parsed.runs["resumes"].fillna("").tolist() == ["", "a"]


def test_the_usual_end_is_one_vote_per_architecture(tmp_path: Path) -> None:
    """Launches that are not joined (logged by step) must not outvote complete runs: two
    architectures crashed at 2 and relaunched to 4, one crashed at 2 only."""
    for arch, runs in ((1, {"a": (1, 2), "b": (3, 4)}), (2, {"a": (1, 2), "b": (3, 4)})):
        _launches(tmp_path, runs, max_epochs=None, arch=arch, epoch="step")
    _launches(tmp_path, {"a": (1, 2)}, max_epochs=None, arch=3, epoch="step")
    parsed = parse_log_drop(tmp_path)
    status = parsed.runs.set_index("file")["status"]
    assert sorted(status[status == "accepted"].index.str[-10:]) == ["b.log.json", "b.log.json"]
    assert set(parsed.quarantine["reason"]) == {
        "stopped early: last evaluation at epoch 2 of 4 (the usual last epoch of digits-cls runs)"
    }


def test_a_run_evaluated_past_its_declared_schedule_is_quarantined(tmp_path: Path) -> None:
    lines = [o for e in (1, 2, 3, 4) for o in [*_train(e), _val(e)]]
    lines[-1] |= {"epoch": 40}  # a mistyped last evaluation
    _write_launch(tmp_path, "a", lines)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine["reason"].tolist() == [
        "past its schedule: last evaluation at epoch 40, past the 4 epochs its config declares"
    ]


def test_total_epochs_of_older_configs_declare_the_schedule(tmp_path: Path) -> None:
    """mmaction2 0.x and mmcv before its runner dict spell the length ``total_epochs``."""
    lines = [o for e in (1, 2) for o in [*_train(e), _val(e)]]
    _write_launch(tmp_path, "a", lines, max_epochs=None)
    path = next((tmp_path / "logs").rglob("a.log.json"))
    _rewrite(path, lambda ls: [ls[0] | {"config": "total_epochs = 4\n"}, *ls[1:]])
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine["reason"].tolist() == [
        "stopped early: last evaluation at epoch 2 of 4 (the schedule its config declares)"
    ]


def test_the_latest_launch_declares_the_schedule(tmp_path: Path) -> None:
    """A run launched for 6 epochs and resumed with a config of 4 ends at 4."""
    _launches(tmp_path, {"a": (1, 2)}, max_epochs=6)
    _launches(tmp_path, {"b": (3, 4)}, max_epochs=4)
    parsed = parse_log_drop(tmp_path)
    assert parsed.quarantine.empty and (parsed.runs["status"] == "accepted").all()


def test_a_resumed_run_that_stopped_early_is_quarantined_in_both_files(copy: Path) -> None:
    path = _logs(copy, "digits-cls")[0]
    later = _resume(path, stop=4, restart=4)
    later.write_text("".join(later.read_text().splitlines(keepends=True)[:3]))  # no evaluation
    parsed = parse_log_drop(copy)
    stopped = "stopped early: last evaluation at epoch 1 of 2 (the schedule its config declares)"
    assert parsed.quarantine.to_dict("records") == [
        {
            "file": _name(copy, path),
            "line": None,
            "reason": f"{stopped}; the run ends in 99991231_235959.log.json",
        },
        {"file": _name(copy, later), "line": 3, "reason": stopped},
    ]
    runs = parsed.runs.set_index("file")["status"]
    assert runs[_name(copy, path)] == runs[_name(copy, later)] == "quarantined"


def test_files_out_of_layout_are_quarantined_whole(copy: Path) -> None:
    text = _logs(copy, "digits-cls")[0].read_text()
    code = _logs(copy, "digits-cls")[0].parent.name
    for rel in [
        "x.log.json",
        f"cls-typo/{code}/r.log.json",
        "digits-cls/8_8-1_1_1_8/r.log.json",
        f"digits-cls/{code.replace('-', '-0', 1)}/r.log.json",
    ]:
        target = copy / "logs" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    parsed = parse_log_drop(copy)
    reasons = dict(zip(parsed.quarantine["file"], parsed.quarantine["reason"], strict=True))
    assert reasons["logs/x.log.json"].startswith("not in the <setting>/<arch code>/<run>.log.json")
    assert reasons[f"logs/cls-typo/{code}/r.log.json"].startswith("folder is not a known setting")
    assert reasons["logs/digits-cls/8_8-1_1_1_8/r.log.json"].startswith(
        "folder is not an architecture code"
    )
    assert reasons[f"logs/digits-cls/{code.replace('-', '-0', 1)}/r.log.json"].startswith(
        "folder is not an architecture code: invalid code: position 2 (stage1.repeats) value '0"
    )


def test_json_files_that_are_not_read_are_named(copy: Path) -> None:
    """mmengine's <time>.json log and a broken link were skipped without a word."""
    source = _logs(copy, "digits-cls")[0]
    (source.parent / "20990101_000000.json").write_text(source.read_text())
    (source.parent / "20990102_000000.log.json").symlink_to(copy / "missing")
    parsed = parse_log_drop(copy)
    reasons = dict(zip(parsed.quarantine["file"], parsed.quarantine["reason"], strict=True))
    folder = _name(copy, source.parent)
    assert reasons == {
        f"{folder}/20990101_000000.json": "not named <run>.log.json: not read (mmengine's "
        "<time>.json log is read once renamed <time>.log.json)",
        f"{folder}/20990102_000000.log.json": "not a regular file (a broken link?): not read",
    }
    assert (parsed.runs["status"] == "accepted").all()


def test_an_empty_log_file_is_called_empty(copy: Path) -> None:
    """It was quarantined as 'stopped early', which sends one looking for a crash."""
    path = _logs(copy, "digits-cls")[0].parent / "99991231_235959.log.json"
    path.write_bytes(b"")
    parsed = parse_log_drop(copy)
    rows = parsed.quarantine[parsed.quarantine["file"] == _name(copy, path)]
    assert rows["reason"].tolist() == ["empty file: no line, or only blank ones"]


def test_malformed_json_is_worded_once(copy: Path) -> None:
    """Python's 'Unterminated string starting at' read '... starting at at column 7'."""
    path = _logs(copy, "digits-cls")[0]
    path.write_bytes(b"\n".join(_insert(2, b'{"a": "xx')(path.read_bytes().splitlines())) + b"\n")
    reasons = parse_log_drop(copy).quarantine["reason"].tolist()
    assert reasons == ["malformed JSON: Unterminated string starting at column 7"]


def test_logs_beside_the_drops_logs_folder_are_named(copy: Path) -> None:
    """A run filed at the drop's root, next to logs/, was skipped without a word."""
    source = _logs(copy, "digits-cls")[0]
    stray = copy / "digits-cls" / source.parent.name / "r.log.json"
    stray.parent.mkdir(parents=True)
    stray.write_text(source.read_text())
    parsed = parse_log_drop(copy)
    reasons = dict(zip(parsed.quarantine["file"], parsed.quarantine["reason"], strict=True))
    assert reasons == {
        f"digits-cls/{source.parent.name}/r.log.json": "outside the drop's logs/ folder"
    }
    assert parsed.quarantine["line"].isna().all()
    assert (parsed.runs["status"] == "accepted").all() and len(parsed.runs) == 4


def test_a_file_name_names_one_file(copy: Path) -> None:
    """Names were relative to logs/ for its files and to the drop beside it: a stray log
    and an empty one inside logs/ were both ``digits-cls/<code>/r.log.json``."""
    inside = _logs(copy, "digits-cls")[0].parent / "r.log.json"
    inside.write_bytes(b"")
    stray = copy / inside.relative_to(copy / "logs")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"")
    rows = parse_log_drop(copy).quarantine
    assert rows[["file", "reason"]].to_dict("records") == [
        {"file": _name(copy, stray), "reason": "outside the drop's logs/ folder"},
        {"file": _name(copy, inside), "reason": "empty file: no line, or only blank ones"},
    ]
    assert _name(copy, inside) == f"logs/{_name(copy, stray)}"
    flat = parse_log_drop(copy / "logs")  # the logs/ folder itself: names relative to it
    assert flat.quarantine["file"].tolist() == [_name(copy, stray)]
    assert set(flat.runs["file"]) == {
        f.removeprefix("logs/") for f in parse_log_drop(copy).runs["file"]
    }


def test_a_setting_without_a_log_metric_is_quarantined(copy: Path, tmp_path: Path) -> None:
    """3ddet's ``moderate`` has no log key: its runs would be accepted with no metric required."""
    path = _logs(copy, "digits-cls")[0]
    target = copy / "logs" / "3ddet" / path.parent.name / path.name
    target.parent.mkdir(parents=True)
    path.rename(target)
    parsed = parse_log_drop(copy)
    name = _name(copy, target)
    assert parsed.quarantine["file"].tolist() == [name]
    assert (
        parsed.quarantine["reason"]
        .iloc[0]
        .startswith(
            "folder is not a known setting: setting '3ddet' publishes moderate, which no log key"
        )
    )
    assert "3ddet" not in set(parsed.runs["setting"])
    assert sorted(export_results(results_long(derive_results(parsed.curves)), tmp_path)) == [
        "digits-cls",
        "digits-seg",
    ]


def test_missing_log_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="log folder not found"):
        parse_log_drop(tmp_path / "nowhere")


# -- derived results ----------------------------------------------------------------


def test_final_is_the_last_evaluation_and_best_the_highest(drop: Path) -> None:
    curves = parse_log_drop(drop).curves
    top1 = curves["metric"] == "top1"
    first = curves.index[top1 & (curves["epoch"] == 1)]
    curves.loc[first, "value"] = 100.0  # epoch 1 becomes the best evaluation
    derived = derive_results(curves).set_index(["code", "metric"])
    final = curves[top1 & (curves["epoch"] == 2)].set_index("arch")["value"]
    for code, value in final.items():
        row = derived.loc[(code, "top1")]
        assert (row["final_epoch"], row["final_value"]) == (2, value)
        assert (row["best_epoch"], row["best_value"]) == (1, 100.0)


def test_results_long_holds_the_final_values(clean: pd.DataFrame) -> None:
    long = results_long(clean)
    assert list(long.columns) == ["code", "setting", "metric", "value"]
    assert long["value"].tolist() == clean["final_value"].tolist()


# -- reconciliation -----------------------------------------------------------------


def _published(tmp_path: Path, clean: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The exported records read back as per-setting frames (code + metric columns)."""
    out = {}
    for setting, path in export_results(results_long(clean), tmp_path).items():
        records = load_pickle(path)
        out[setting] = pd.DataFrame(
            [
                {"code": Arch.from_embedding(r["embedding"]).code}
                | {k: v for k, v in r.items() if isinstance(v, float)}
                for r in records
            ]
        )
    return out


def test_reconcile_flags_a_changed_published_value(tmp_path: Path, clean: pd.DataFrame) -> None:
    published = _published(tmp_path, clean)
    table = reconcile(clean, published)
    assert list(table.columns) == [
        "code",
        "setting",
        "metric",
        "log_value",
        "published_value",
        "diff",
        "agree",
    ]
    assert len(table) == len(clean) and table["agree"].all()

    seg = published["digits-seg"]
    seg.loc[0, "mIoU"] += 0.5  # a deliberate change
    seg.loc[1, "mAcc"] += reconcile_tolerance("digits-seg") - 1e-6  # within the rounding tolerance
    table = reconcile(clean, published)
    bad = table[~table["agree"]]
    assert bad[["code", "setting", "metric"]].values.tolist() == [
        [seg.loc[0, "code"], "digits-seg", "mIoU"]
    ]
    assert bad["diff"].iloc[0] == pytest.approx(-0.5)


def test_reconcile_without_a_published_value_disagrees(clean: pd.DataFrame) -> None:
    table = reconcile(clean, {})
    assert table["published_value"].isna().all() and not table["agree"].any()


def test_reconcile_reads_ingested_frames(raw_dir: Path) -> None:
    """The published side is what ingest validates from the real drop."""
    from nasmr.ingest import load_setting

    valid = load_setting(raw_dir, "seg").valid.head(3)
    offsets = [0.0, 0.004, 0.02]
    derived = pd.DataFrame(
        {
            "code": valid["code"],
            "setting": "seg",
            "metric": "mIoU",
            "final_value": valid["mIoU"] + offsets,
        }
    )
    table = reconcile(derived, {"seg": valid})
    assert table["agree"].tolist() == [True, True, False]
    assert table["published_value"].tolist() == valid["mIoU"].tolist()


def test_reconcile_holds_video_to_its_three_published_decimals(raw_dir: Path) -> None:
    """HMDB51 top-1 is published as 23.043: a log value of 23.047 differs from it."""
    from nasmr.ingest import load_setting

    for setting in ("video", "video-p"):
        valid = load_setting(raw_dir, setting).valid
        assert ((valid["top1"] * 100).round(6) % 1 != 0).any()  # more than two decimals
        valid = valid.head(3)
        derived = pd.DataFrame(
            {
                "code": valid["code"],
                "setting": setting,
                "metric": "top1",
                "final_value": valid["top1"] + [0.0, 0.0004, 0.004],
            }
        )
        assert reconcile(derived, {setting: valid})["agree"].tolist() == [True, True, False]


# -- export -------------------------------------------------------------------------


def test_write_trainval_names_the_bad_record_and_field(tmp_path: Path, clean: pd.DataFrame) -> None:
    frame = records_frame(results_long(clean), "digits-cls")
    frame.loc[1, "top5"] = float("nan")
    path = tmp_path / "trainval.pkl"
    with pytest.raises(ExportError, match=r"record 1 \(.*\): top5: "):
        write_trainval(frame, "digits-cls", path)
    assert not path.exists()
    with pytest.raises(ExportError, match="lack column"):
        write_trainval(frame.drop(columns="flops"), "digits-cls", path)
    with pytest.raises(ExportError, match="unknown setting"):
        write_trainval(frame, "cls-typo", path)
    with pytest.raises(ExportError, match="'nas-bench-201' holds nas-bench-201 cells, not MR"):
        write_trainval(frame, "nas-bench-201", path)


def test_write_trainval_takes_a_published_setting(tmp_path: Path, clean: pd.DataFrame) -> None:
    """The release exporter writes the benchmark's own settings through the same function."""
    frame = records_frame(results_long(clean), "digits-cls")
    path = write_trainval(frame, "cls-10c", tmp_path / "cls-10c" / "trainval.pkl")
    records = load_pickle(path)
    assert [r["top1"] for r in records] == frame["top1"].tolist()


def test_write_trainval_takes_a_setting_that_no_log_carries(
    tmp_path: Path, clean: pd.DataFrame
) -> None:
    """A warehouse export looked settings up as log settings: 3ddet records failed, its
    ``moderate`` being a metric "which no log key carries"."""
    top1 = results_long(clean).query("setting == 'digits-cls' and metric == 'top1'")
    results = top1.assign(setting="3ddet", metric="moderate")
    frame = records_frame(results, "3ddet")
    path = write_trainval(frame, "3ddet", tmp_path / "3ddet" / "trainval.pkl")
    assert [r["moderate"] for r in load_pickle(path)] == frame["moderate"].tolist()


# -- command line -------------------------------------------------------------------


def test_cli_parse_and_export(drop: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["logs", "parse", str(drop), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "4 runs accepted" in result.output
    for table in ("curves", "derived", "results", "runs", "quarantine"):
        assert (tmp_path / "t" / f"{table}.parquet").is_file()
    assert len(pd.read_parquet(tmp_path / "t" / "results.parquet")) == 10
    result = runner.invoke(main, ["logs", "export", str(drop / "logs"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(load_pickle(tmp_path / "digits-seg" / "trainval.pkl")) == 2


def test_cli_parse_replaces_what_an_earlier_run_left(
    drop: Path, copy: Path, tmp_path: Path
) -> None:
    """Parsing into the logs job's folder kept the job's reconciliation and export of another
    drop beside the new tables; anything else there, or the drop, is refused untouched."""
    out = tmp_path / "build" / "logs"
    export_results(log_tables(parse_log_drop(drop))["results"], out / "trainval")  # the job's
    assert {p.name for p in (out / "trainval").iterdir()} == {"digits-cls", "digits-seg"}
    (out / "log_reconciliation.parquet").write_bytes(b"another drop's")
    (out / "runs.parquet").write_bytes(b"another drop's")
    result = CliRunner().invoke(main, ["logs", "parse", str(drop), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tables = [f"{t}.parquet" for t in ("curves", "derived", "quarantine", "results", "runs")]
    assert sorted(p.name for p in out.iterdir()) == tables  # no unfinished folder either
    assert sorted(p.name for p in out.parent.iterdir()) == ["logs"]
    mine = tmp_path / "mine"
    (mine / "trainval" / "seg").mkdir(parents=True)  # a user's own trainval/, not an export
    (mine / "trainval" / "seg" / "notes.txt").write_text("mine")
    (tmp_path / "dir-table" / "curves.parquet").mkdir(parents=True)
    (tmp_path / "dir-table" / "curves.parquet" / "part-0").write_text("mine")
    for target, why in [
        (tmp_path / "mine", "it holds other files (trainval)"),
        (tmp_path / "dir-table", "it holds other files (curves.parquet)"),
        (copy, f"which overlaps the log drop's {copy / 'logs'}"),
        (copy / "logs", f"which overlaps the log drop's {copy / 'logs'}"),
    ]:
        before = sorted(target.rglob("*"))
        result = CliRunner().invoke(main, ["logs", "parse", str(copy), "--out", str(target)])
        assert result.exit_code == 1 and why in result.output, result.output
        assert sorted(target.rglob("*")) == before


def test_unreconciled_logs_cross_a_process_pool() -> None:
    """A pool pickles an exception by its arguments; this one's are its two lists."""
    error = pickle.loads(pickle.dumps(UnreconciledLogs(["seg"], ["video (failed: x)"])))
    assert (error.absent, error.unusable) == (["seg"], ["video (failed: x)"])
    assert str(error) == "cannot reconcile the logs: no records of seg; records that did not " + (
        "load: video (failed: x)"
    )


def test_cli_parse_keeps_its_out_folder_itself(
    drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renaming --out in its parent failed for '.' (a traceback, and leftovers that refused
    the next run) and replaced a link to another disk by a plain folder."""
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for _ in range(2):  # and again over its own tables
        result = CliRunner().invoke(main, ["logs", "parse", str(drop), "--out", "."])
        assert result.exit_code == 0, result.output
        assert len(list(Path(".").iterdir())) == 5
    (tmp_path / "disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "disk")
    result = CliRunner().invoke(main, ["logs", "parse", str(drop), "--out", str(tmp_path / "link")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link").is_symlink() and len(list((tmp_path / "disk").iterdir())) == 5


def test_cli_parse_of_a_folder_without_logs_fails_and_keeps_the_tables(
    drop: Path, tmp_path: Path
) -> None:
    """A mistyped LOG_DIR used to replace the last parse's tables with empty ones, exit 0
    (and reconcile nothing, exit 0)."""
    runner = CliRunner()
    out = tmp_path / "t"
    assert runner.invoke(main, ["logs", "parse", str(drop), "--out", str(out)]).exit_code == 0
    before = (out / "curves.parquet").read_bytes()
    (tmp_path / "empty" / "logs").mkdir(parents=True)
    raw = write_drop(tmp_path / "raw", {}, [])
    for folder in (tmp_path / "empty", tmp_path / "empty" / "logs"):
        for command in ("parse", "export", "reconcile"):
            where = ["--raw", str(raw)] if command == "reconcile" else ["--out", str(out)]
            result = runner.invoke(main, ["logs", command, str(folder), *where])
            assert result.exit_code == 1, result.output
            assert f"no log file under {folder} (expected <setting>/<code>/" in result.output
    assert (out / "curves.parquet").read_bytes() == before


def test_cli_export_of_logs_without_an_accepted_run_fails(copy: Path, tmp_path: Path) -> None:
    """Every run stopped early: the command says there is nothing to export, and writes nothing."""
    for path in _logs(copy, "digits-seg") + _logs(copy, "digits-cls"):
        _rewrite(path, lambda ls: ls[:3])  # meta and two training lines: no evaluation
    out = tmp_path / "exported"
    result = CliRunner().invoke(main, ["logs", "export", str(copy), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "4 run files" in result.output and "0 runs accepted" in result.output
    assert "nothing to export: no accepted run has an evaluation" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_cli_reconcile_compares_logs_with_the_drops_records(tmp_path: Path) -> None:
    """Without Dagster or a build folder: values within the published rounding agree, a
    changed one fails the command naming its architecture and metric."""
    archs = sample(3, seed=5)
    published = [
        {"mIoU": 70.12, "mAcc": 80.34, "aAcc": 95.56},
        {"mIoU": 61.5, "mAcc": 72.25, "aAcc": 93.0},
    ]
    records = [mr_record(a, *exact(a), **m) for a, m in zip(archs[:2], published, strict=True)]
    raw = write_drop(tmp_path / "raw", {"seg": pickle.dumps(records)}, [a.code for a in archs])
    drop = tmp_path / "drop"
    seg_log(drop, archs[0], {**published[0], "mIoU": 70.124})  # within the 2-decimal rounding
    seg_log(drop, archs[1], published[1])
    seg_log(drop, archs[2], {"mIoU": 60.0, "mAcc": 70.0, "aAcc": 90.0})  # never published
    args = ["logs", "reconcile", str(drop), "--raw", str(raw)]

    agreed = CliRunner().invoke(main, args)
    assert agreed.exit_code == 0, agreed.output
    assert "seg: 9 values, 6 with a published value, 6 agree" in agreed.output

    seg_log(drop, archs[1], {**published[1], "mIoU": 62.0})
    differed = CliRunner().invoke(main, args)
    assert differed.exit_code == 1, differed.output
    assert "seg: 9 values, 6 with a published value, 5 agree" in differed.output
    [row] = [line for line in differed.output.splitlines() if archs[1].code in line]
    assert row.split()[-3:] == ["mIoU", "62.0", "61.5"]
    assert "Error: 1 of 6 log values differ from the published ones" in differed.output

    nowhere = CliRunner().invoke(main, [*args[:3], "--raw", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 1
    assert f"raw drop not found at {tmp_path / 'nowhere'} (no data/" in nowhere.output
    without_seg = write_drop(tmp_path / "no-seg", {}, [a.code for a in archs])
    missing = CliRunner().invoke(main, [*args[:3], "--raw", str(without_seg)])
    assert missing.exit_code == 1
    expected = "records that did not load: seg (missing: data/seg/trainval.pkl is not in the"
    assert "cannot reconcile the logs: " in missing.output and expected in missing.output
