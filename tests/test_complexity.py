"""Both FLOPs/params paths reproduce the published values exactly; the CLI reports them."""

from __future__ import annotations

import importlib
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from nasmr.cli import main
from nasmr.complexity import (
    Complexity,
    analytic_complexity,
    module_complexity,
    module_complexity_many,
    nb201_complexity,
)
from nasmr.rawdrop import load_pickle, trainval_path
from nasmr.space import EMBEDDING_FIELDS, Arch, ArchError, sample
from tests.drops import cls_record, seg_record, write_drop

SMALLEST = Arch.from_embedding([8 if kind == "channels" else 1 for _, kind in EMBEDDING_FIELDS])
LARGEST = Arch.from_embedding([128 if kind == "channels" else 4 for _, kind in EMBEDDING_FIELDS])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def records(raw_dir: Path) -> list[dict[str, Any]]:
    return load_pickle(trainval_path(raw_dir, "seg"))


def _published(record: dict[str, Any]) -> Complexity:
    return Complexity.from_published(record["flops"], record["params"])


def test_published_floats_become_exact_integers() -> None:
    count = Complexity.from_published(13.727426866, 28.290994)
    assert count == Complexity(13_727_426_866, 28_290_994)
    assert (count.gmac, count.mparams) == (13.727426866, 28.290994)


def test_analytic_reproduces_every_published_record(records: list[dict[str, Any]]) -> None:
    wrong = [
        (r["embedding"], _published(r), analytic_complexity(Arch.from_embedding(r["embedding"])))
        for r in records
        if analytic_complexity(Arch.from_embedding(r["embedding"])) != _published(r)
    ]
    assert len(records) == 2507
    assert wrong == []


def test_analytic_takes_a_code_string_as_the_rest_of_the_api_does() -> None:
    arch = sample(1, seed=3)[0]
    assert analytic_complexity(arch.code) == analytic_complexity(arch)
    assert module_complexity(arch.code) == analytic_complexity(arch)
    with pytest.raises(ArchError, match="invalid code"):
        analytic_complexity("48_16-1_1_1_48")


def test_nb201_count_takes_every_notation_and_refuses_anything_else() -> None:
    """A misspelt op or a short cell was counted as a cheap op: the all-'none' cell's cost."""
    convs = ["nor_conv_3x3"] * 6
    expected = nb201_complexity(convs)
    assert (expected.macs, expected.params) == (220125440, 1537396)
    arch_str = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    arch_str += "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    for cell in ([4] * 6, "4|4|4|4|4|4", arch_str):
        assert nb201_complexity(cell) == expected, cell
    bad = ([*convs[:5], "nor_conv_5x5"], convs[:5], [5] * 6, [True] * 6, "4|4|4", 7)
    for cell in bad:
        with pytest.raises(ValueError, match="invalid nas-bench-201 cell"):
            nb201_complexity(cell)


def test_analytic_path_does_not_import_torch() -> None:
    """Counting is microseconds; loading torch would make `nasmr complexity` take seconds."""
    script = (
        "import sys; from nasmr.complexity import analytic_complexity; from nasmr.space import "
        "sample; analytic_complexity(sample(1, 0)[0]); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    for cell in (sample(1, 0)[0].code, "0|3|2|3|2|2"):
        script = (
            "import sys; from click.testing import CliRunner; from nasmr.cli import main; "
            f"r = CliRunner().invoke(main, ['complexity', 'show', {cell!r}]); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules"
        )
        subprocess.run([sys.executable, "-c", script], check=True)


def test_module_reproduces_a_sample_of_records_in_order(records: list[dict[str, Any]]) -> None:
    by_flops = sorted(range(len(records)), key=lambda i: records[i]["flops"])
    minimum = [i for i, r in enumerate(records) if r["embedding"] == SMALLEST.embedding]
    picks = [*minimum, by_flops[0], by_flops[-1], *random.Random(0).sample(range(len(records)), 30)]
    archs = [Arch.from_embedding(records[i]["embedding"]) for i in picks]
    seen: list[tuple[int, int]] = []
    counts = module_complexity_many(archs, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert minimum, "the all-minimum architecture is in the drop"
    assert counts == [_published(records[i]) for i in picks]
    assert seen == [(k, len(picks)) for k in range(1, len(picks) + 1)]


def test_module_and_analytic_agree_beyond_the_drop() -> None:
    """The largest architecture and these samples are not in the drop; they must agree too."""
    archs = [LARGEST, SMALLEST, *sample(2, seed=7)]
    assert module_complexity_many(archs, workers=1) == [analytic_complexity(a) for a in archs]


def test_module_params_equal_the_networks_parameters() -> None:
    from nasmr.supernet import Supernet

    with torch.device("meta"):
        net = Supernet(SMALLEST, init_weights=False)
    assert module_complexity(SMALLEST).params == sum(p.numel() for p in net.parameters())


def test_many_of_nothing_is_nothing() -> None:
    assert module_complexity_many([]) == []


# -- CLI --------------------------------------------------------------------------------


def test_cli_prints_a_codes_published_numbers(records: list[dict[str, Any]]) -> None:
    record = records[1]
    code = Arch.from_embedding(record["embedding"]).code
    result = CliRunner().invoke(main, ["complexity", code])
    assert result.exit_code == 0, result.output
    published = _published(record)
    assert f"{record['flops']:.9f} GMac ({published.macs} " in result.output
    assert f"{record['params']:.6f} M ({published.params} " in result.output


def _spy(monkeypatch: pytest.MonkeyPatch, target: str) -> list[object]:
    """Record the first argument of every call of ``target`` (``module.name``), then call it."""
    module, name = target.rsplit(".", 1)
    real, calls = getattr(importlib.import_module(module), name), []

    def spy(first: object, *args: object, **kwargs: object) -> object:
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(target, spy)
    return calls


@pytest.mark.parametrize(
    "args",
    [
        ["show", SMALLEST.code, "--method", "module"],
        [SMALLEST.code, "--method", "module"],
        ["--method", "module", SMALLEST.code],
    ],
)
def test_cli_show_counts_the_module_too(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    built = _spy(monkeypatch, "nasmr.complexity.module_complexity")
    result = CliRunner().invoke(main, ["complexity", *args])
    assert result.exit_code == 0, result.output
    assert built == [SMALLEST]  # the supernet was built, not the closed form taken
    assert f"({analytic_complexity(SMALLEST).macs} multiply-accumulates)" in result.output


def test_cli_counts_a_nas_bench_201_cell_in_either_notation() -> None:
    """The drop's CIFAR-100 network; the closed form only, the supernet builder is MR's."""
    ops = ["avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "skip_connect"]
    expected = nb201_complexity([*ops, "skip_connect"])
    arch_str = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    arch_str += "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    outputs = []
    for cell in ("0|3|2|3|2|2", arch_str):
        result = CliRunner().invoke(main, ["complexity", cell])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    assert f"({expected.macs} multiply-accumulates)" in outputs[0]
    assert f"({expected.params} parameters)" in outputs[0]
    result = CliRunner().invoke(main, ["complexity", "--method", "module", "0|3|2|3|2|2"])
    assert result.exit_code == 1 and "closed form" in result.output
    result = CliRunner().invoke(main, ["complexity", "0|3|2|3|2|9"])  # a mistyped cell
    assert result.exit_code == 1 and "invalid nas-bench-201 cell" in result.output


def test_cli_unknown_option_is_named() -> None:
    result = CliRunner().invoke(main, ["complexity", "--bogus", SMALLEST.code])
    assert result.exit_code == 2
    assert "No such option '--bogus'" in result.output


def test_cli_rejects_a_bad_code_without_a_traceback() -> None:
    bad = SMALLEST.code.replace("-8", "-9", 1)
    result = CliRunner().invoke(main, ["complexity", bad])
    assert result.exit_code != 0
    assert "invalid code" in result.output and "multiple of 8" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_cli_verify_limit_passes_on_the_real_drop(raw_dir: Path) -> None:
    args = ["complexity", "verify", "--raw", str(raw_dir), "--limit", "100"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "100/100 matched (analytic), 0 invalid records" in result.output


def test_cli_verify_names_a_corrupted_record(tmp_path: Path) -> None:
    archs = sample(6, seed=1)
    records = [seg_record(a) for a in archs]
    records[3]["flops"] += 1e-9
    records[4]["embedding"] = [*archs[4].embedding[:-1], 12]
    write_drop(tmp_path, {"seg": pickle.dumps(records)}, [a.code for a in archs])

    result = CliRunner().invoke(main, ["complexity", "verify", "--raw", str(tmp_path)])
    assert result.exit_code == 1
    assert "4/5 matched (analytic), 1 invalid records" in result.output
    macs = analytic_complexity(archs[3]).macs
    assert f"mismatch {archs[3].code}: published {macs + 1} MACs" in result.output
    assert f"recomputed {macs} MACs" in result.output
    assert "invalid record 4: embedding" in result.output


def test_cli_verify_checks_the_setting_it_is_given(tmp_path: Path) -> None:
    """``--setting`` picks whose trainval.pkl is recomputed: a wrong video value is found
    there, and seg's file, checked by default, is clean."""
    archs = sample(3, seed=2)
    seg = [seg_record(a) for a in archs]
    video = [cls_record(a) for a in archs]
    video[1]["flops"] += 1e-9
    files = {"seg": pickle.dumps(seg), "video": pickle.dumps(video)}
    write_drop(tmp_path, files, [a.code for a in archs])
    verify = ["complexity", "verify", "--raw", str(tmp_path)]

    clean = CliRunner().invoke(main, verify)
    assert clean.exit_code == 0, clean.output
    assert f"{trainval_path(tmp_path, 'seg')}: 3/3 matched (analytic)" in clean.output
    result = CliRunner().invoke(main, [*verify, "--setting", "video"])
    assert result.exit_code == 1, result.output
    assert f"{trainval_path(tmp_path, 'video')}: 2/3 matched (analytic)" in result.output
    assert f"mismatch {archs[1].code}: published" in result.output


def test_cli_verify_refuses_complexity_beyond_the_largest_architecture(tmp_path: Path) -> None:
    """A forged huge count is an invalid record, not an int64 overflow traceback."""
    archs = [LARGEST, *sample(2, seed=3)]
    records = [seg_record(a) for a in archs]
    records[1]["flops"], records[2]["params"] = 1e10, 1e300
    write_drop(tmp_path, {"seg": pickle.dumps(records)}, [a.code for a in archs])

    result = CliRunner().invoke(main, ["complexity", "verify", "--raw", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "1/1 matched (analytic), 2 invalid records" in result.output  # the largest is valid
    assert "invalid record 1: flops: Input should be less than or equal to 27.342555442" in (
        result.output
    )
    assert "invalid record 2: params: Input should be less than or equal to 56.851378" in (
        result.output
    )


@pytest.mark.parametrize("method_first", [False, True])
def test_cli_verify_module_method_flags_a_corrupted_param(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method_first: bool
) -> None:
    """``--method module`` counts the supernets whether it comes after ``verify`` or before."""
    built = _spy(monkeypatch, "nasmr.ingest.module_complexity_many")
    archs = [SMALLEST, *list(SMALLEST.neighbours())[:3]]
    records = [seg_record(a) for a in archs]
    records[2]["params"] += 2e-6
    write_drop(tmp_path, {"seg": pickle.dumps(records)}, [a.code for a in archs])

    method = ["--method", "module"]
    verify = ["verify", "--raw", str(tmp_path), "--workers", "1"]
    args = ["complexity", *(method + verify if method_first else verify + method)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "3/4 matched (module), 0 invalid records" in result.output
    assert [sorted(a.code for a in batch) for batch in built] == [sorted(a.code for a in archs)]
    params = analytic_complexity(archs[2]).params
    assert f"{params + 2} params; recomputed" in result.output


def test_cli_verify_reports_a_missing_drop_or_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["complexity", "verify", "--raw", str(tmp_path)])
    assert result.exit_code == 1
    assert f"raw drop not found at {tmp_path} (no data/search_list.txt)" in result.output
    write_drop(tmp_path, {"video": b"not read"}, ["1_2"])
    result = CliRunner().invoke(main, ["complexity", "verify", "--raw", str(tmp_path)])
    assert result.exit_code == 1
    assert "data/seg/trainval.pkl is not in the drop" in result.output


def test_cli_suggests_the_command_a_misspelt_code_resembles() -> None:
    """``complexity verfiy`` was read as a code; the error now points at ``verify``."""
    for args in (["verfiy"], ["verfiy", "--raw", "/tmp"], ["verifi", "--limit", "3"]):
        result = CliRunner().invoke(main, ["complexity", *args])
        assert result.exit_code == 2, result.output
        assert "did you mean `nasmr complexity verify`?" in result.output
    result = CliRunner().invoke(main, ["complexity", "8_8"])
    assert result.exit_code == 1 and "did you mean" not in result.output
