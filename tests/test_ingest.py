"""Ingestion: validation, quarantine, statuses and table assembly, on generated and real drops."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from nasmr.complexity import Complexity, nb201_complexity
from nasmr.ingest import (
    SettingLoad,
    build_tables,
    complexity_table,
    load_architectures,
    load_setting,
    published_complexity,
    valid_schema,
)
from nasmr.space import EMBEDDING_COLUMNS
from nasmr.warehouse import ingest
from schemas.records import describe_errors, record_model
from schemas.settings import MR_SETTINGS, NB201, SETTINGS
from tests.drops import (
    EVALUATED,
    OUTSIDER,
    UNEVALUATED,
    WHEN,
    Exploit,
    clean_files,
    cls_record,
    exact,
    mr_record,
    nb201_record,
    nb201_records,
    refuse_open,
    seg_record,
    small_drop,
    write_drop,
)


def _mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    record = copy.deepcopy(seg_record(EVALUATED[0]))
    change(record)
    return record


def _disagree(record: dict[str, Any]) -> None:
    record["embedding"][2] = record["embedding"][2] % 4 + 1  # stage1.repeats, still valid


SEG_CASES: dict[str, tuple[Any, str, str]] = {
    "short embedding": (_mutated(lambda r: r["embedding"].pop()), "embedding", "27 ints"),
    "bad channel": (
        _mutated(lambda r: r["embedding"].__setitem__(4, 100)),
        "embedding",
        "position 4 (stage1.channels[0]) value 100, expected a multiple of 8",
    ),
    "setting disagrees": (_mutated(_disagree), "embedding", "disagrees with input_channel"),
    "NaN metric": (_mutated(lambda r: r.update(mIoU=math.nan)), "mIoU", "finite number"),
    "over 100": (_mutated(lambda r: r.update(mAcc=100.5)), "mAcc", "less than or equal to 100"),
    "negative flops": (_mutated(lambda r: r.update(flops=-1.0)), "flops", "greater than 0"),
    "missing key": (_mutated(lambda r: r.pop("params")), "params", "Field required"),
    "wrong type": (
        _mutated(lambda r: r.update(last_channel="64")),
        "last_channel",
        "valid integer (got '64')",
    ),
    "bad setting shape": (
        _mutated(lambda r: r["inverted_residual_setting"][0].__setitem__(1, 2)),
        "inverted_residual_setting[0][1]",
        "valid list",
    ),
    "not a dict": ("mIoU=60", "record", "valid dictionary"),
    "duplicate": (seg_record(EVALUATED[1], 9), "embedding", "duplicate architecture"),
    "two errors": (
        _mutated(lambda r: r.update(mIoU=-1.0, aAcc=None)),
        "mIoU, aAcc",
        "mIoU: Input should be greater than or equal to 0",
    ),
    "long list": (  # a million memo references: a million errors, 1.4 GB, from 2 MB
        _mutated(lambda r: r.update(embedding=["x"] * 1_000_000)),
        "embedding",
        "1000000 items, more than 64",
    ),
    "big array": (  # NumPy printed all 2**20 items of shape (2,) * 20 before the cut
        _mutated(lambda r: r.update(mIoU=np.zeros((2,) * 12))),
        "mIoU",
        "got array(shape=(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2), dtype=float64))",
    ),
    "numpy bool": (  # passed StrictFloat as 1.0 (NumPy's bool converts to float)
        _mutated(lambda r: r.update(flops=np.True_)),
        "flops",
        "a boolean is not a number (got np.True_)",
    ),
}
"""name -> (record, quarantined field, fragment of the reason)."""


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exploit") / "pwned"


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory, marker: Path) -> Path:
    """A drop with bad records in seg, cls-10c and nas-bench-201, and five broken files."""
    files = clean_files()
    seg = [seg_record(a, i) for i, a in enumerate(EVALUATED)]
    seg += [record for record, _, _ in SEG_CASES.values()] + [seg_record(OUTSIDER)]
    cls = [cls_record(a, i) for i, a in enumerate(EVALUATED)]
    cls.append(cls_record(EVALUATED[0]) | {"top1": 90.0, "top5": 85.0})
    nb201 = [
        *nb201_records(),
        nb201_record([0, 3, 2, 3, 2, 2], 30.0),
        nb201_record([1, 1, 1, 1, 1, 1], 0.8),
    ]
    nb201[-1]["embedding"][:5] = [1.0, 1.0, 0.0, 0.0, 0.0]
    files |= {
        "seg": pickle.dumps(seg),
        "cls-10c": pickle.dumps(cls),
        "nas-bench-201": pickle.dumps(nb201),
        "video": pickle.dumps(seg)[:-100],
        "video-p": b"",
        "cls-10-1000": pickle.dumps({"records": seg}),
        "cls-50-100": pickle.dumps([Exploit(marker)]),
        "cls-50-1000": pickle.dumps([]),
    }
    codes = [a.code for a in [*EVALUATED, UNEVALUATED]]
    codes += [
        "16_16-1_1_1_16",
        "16_16-1_1_1_16-1_2_1_1_16_16-1_3_1_1_1_16_16_16-1_4_1_1_1_1_16_16_16_9-16",
    ]
    codes.append(EVALUATED[2].code)
    return write_drop(tmp_path_factory.mktemp("drop"), files, codes)


@pytest.fixture(scope="module")
def loads(drop: Path) -> dict[str, SettingLoad]:
    return {setting: load_setting(drop, setting) for setting in SETTINGS}


@pytest.fixture(scope="module")
def tables(drop: Path, loads: dict[str, SettingLoad]) -> dict[str, pd.DataFrame]:
    search_list = load_architectures(drop)
    complexity = complexity_table(published_complexity(list(loads.values())), {}, "none")
    return build_tables(search_list, list(loads.values()), complexity, WHEN)


def _quarantined(load: SettingLoad, index: int) -> dict[str, Any]:
    rows = load.quarantine[load.quarantine["record_index"] == index]
    assert len(rows) == 1, f"record {index} quarantined {len(rows)} times"
    return rows.iloc[0].to_dict()


@pytest.mark.parametrize("case", list(SEG_CASES))
def test_invalid_record_is_quarantined_with_field_and_reason(
    loads: dict[str, SettingLoad], case: str
) -> None:
    _, field, reason = SEG_CASES[case]
    index = len(EVALUATED) + list(SEG_CASES).index(case)
    row = _quarantined(loads["seg"], index)
    assert row["field"] == field
    assert reason in row["reason"]
    assert row["setting"] == "seg"
    assert row["source_file"] == "data/seg/trainval.pkl"


def test_valid_rows_land_beside_the_quarantine(loads: dict[str, SettingLoad]) -> None:
    seg = loads["seg"]
    assert seg.status == "ok"
    assert seg.read == len(EVALUATED) + len(SEG_CASES) + 1
    assert seg.valid["code"].tolist() == [a.code for a in [*EVALUATED, OUTSIDER]]
    assert list(seg.valid.columns) == [
        "record_index",
        "code",
        "mIoU",
        "mAcc",
        "aAcc",
        "flops",
        "params",
    ]
    first = seg.valid.iloc[0]
    assert (first["mIoU"], first["mAcc"], first["aAcc"]) == (60.0, 70.0, 90.0)
    assert (first["flops"], first["params"]) == exact(EVALUATED[0])


def test_cls_and_nb201_rules(loads: dict[str, SettingLoad]) -> None:
    cls = loads["cls-10c"]
    row = _quarantined(cls, len(EVALUATED))
    assert (row["field"], row["reason"]) == ("top5", "top5 85.0 is below top1 90.0")
    nb201 = loads["nas-bench-201"]
    assert nb201.valid["ops"].tolist() == ["0|3|2|3|2|2", "4|4|4|2|4|4"]
    assert list(nb201.valid.columns) == [
        "record_index",
        "ops",
        "arch_str",
        "Acc",
        "Flops",
        "Params",
        "cost_matches_cell",
    ]
    assert nb201.valid["cost_matches_cell"].tolist() == [True, True]
    assert nb201.valid["arch_str"].iloc[1] == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert (
        "duplicate architecture 0|3|2|3|2|2 (first at record 0)" in _quarantined(nb201, 2)["reason"]
    )
    assert "edge 0 is [1.0, 1.0, 0.0, 0.0, 0.0]" in _quarantined(nb201, 3)["reason"]


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("video", "ends before the pickle's end (truncated?)"),
        ("video-p", "file is empty"),
        ("cls-10-1000", "expected a list of records, found dict"),
        ("cls-50-100", "refused global"),
        ("cls-50-1000", "the list holds no records"),
    ],
)
def test_broken_files_fail_and_name_the_file(
    drop: Path, loads: dict[str, SettingLoad], marker: Path, setting: str, reason: str
) -> None:
    load = loads[setting]
    assert load.status == "failed"
    assert (load.reason or "").startswith(f"data/{setting}/trainval.pkl: ")  # in the drop
    assert reason in (load.reason or "")
    assert (load.read, len(load.valid), len(load.quarantine)) == (0, 0, 0)
    assert load.source is not None and len(load.source.sha256) == 64
    assert not marker.exists()


def test_missing_files_are_a_status(loads: dict[str, SettingLoad]) -> None:
    for setting in ("3ddet", "seg-4x"):
        load = loads[setting]
        assert (load.status, load.source, load.read) == ("missing", None, 0)
        assert f"data/{setting}/trainval.pkl is not in the drop" in (load.reason or "")
        assert list(load.valid.columns) == list(valid_schema(setting))


def test_read_is_valid_plus_quarantined(loads: dict[str, SettingLoad]) -> None:
    for load in loads.values():
        assert load.read == len(load.valid) + len(load.quarantine), load.setting


def test_search_list(drop: Path) -> None:
    search = load_architectures(drop)
    archs = search.architectures
    assert archs["code"].tolist() == [a.code for a in [*EVALUATED, UNEVALUATED]]
    assert archs["search_index"].tolist() == list(range(6))
    first = archs.iloc[0]
    assert [first[c] for c in EMBEDDING_COLUMNS] == EVALUATED[0].embedding
    assert (first["n_modules"], first["n_blocks"]) == (
        EVALUATED[0].n_modules,
        EVALUATED[0].n_blocks,
    )
    reasons = dict(zip(search.quarantine["record_index"], search.quarantine["reason"], strict=True))
    assert "expected 6 '-'-separated groups" in reasons[6]
    assert "position 29 (stage4.channels[3]) value 9" in reasons[7]
    assert reasons[8] == f"duplicate architecture {EVALUATED[2].code} (first at search_index 2)"
    assert search.quarantine["setting"].isna().all()
    assert search.read == 9


def test_search_list_positions_are_line_numbers(tmp_path: Path) -> None:
    """Blank lines are skipped, not renumbered: search_index and record_index find the line."""
    codes = [EVALUATED[0].code, "", "BAD", " ", EVALUATED[1].code, EVALUATED[0].code]
    search = load_architectures(write_drop(tmp_path, {}, codes))
    assert search.architectures["search_index"].tolist() == [0, 4]
    quarantine = search.quarantine.set_index("record_index")["reason"]
    assert quarantine.index.tolist() == [2, 5]
    assert quarantine[5] == f"duplicate architecture {EVALUATED[0].code} (first at search_index 0)"
    assert search.read == 4 == len(search.architectures) + len(search.quarantine)


def test_search_list_codes_are_stripped_but_must_be_canonical(tmp_path: Path) -> None:
    """Spaces around a line are dropped on read; a leading zero is quarantined, not rewritten."""
    codes = [f"  {EVALUATED[0].code}\t", EVALUATED[1].code.replace("_", "_0", 1)]
    search = load_architectures(write_drop(tmp_path, {}, codes))
    assert search.architectures["code"].tolist() == [EVALUATED[0].code]
    (reason,) = search.quarantine["reason"]
    assert "position 1 (stem.c1)" in reason and "without leading zeros" in reason


def test_a_search_list_line_that_is_not_utf8_is_quarantined(tmp_path: Path) -> None:
    """One undecodable line is quarantined with its line number; the other codes land."""
    root = write_drop(tmp_path, {}, [EVALUATED[0].code, "x", EVALUATED[1].code])
    path = root / "data" / "search_list.txt"
    path.write_bytes(path.read_bytes().replace(b"x", b"16_\xff\xfe"))
    search = load_architectures(root)
    assert search.architectures["code"].tolist() == [EVALUATED[0].code, EVALUATED[1].code]
    assert search.quarantine[["source_file", "record_index", "field", "reason"]].to_dict(
        "records"
    ) == [
        {
            "source_file": "data/search_list.txt",
            "record_index": 1,
            "field": "code",
            "reason": "not valid UTF-8: byte 4 of the line",
        }
    ]
    assert search.read == 3


def test_a_record_listed_again_by_reference_is_quarantined_unvalidated(tmp_path: Path) -> None:
    """A pickle can list one record object thousands of times at 2 bytes each, and every
    cost of validating it was paid again each time; real files list distinct records."""
    record = seg_record(EVALUATED[0])
    files = clean_files() | {"seg": pickle.dumps([record, seg_record(EVALUATED[1]), record])}
    load = load_setting(small_drop(tmp_path / "drop", files), "seg")
    assert (load.read, len(load.valid), len(load.quarantine)) == (3, 2, 1)
    row = load.quarantine.iloc[0]
    assert (row["record_index"], row["field"]) == (2, "record")
    assert row["reason"] == "the same object as record 0 (listed again by reference)"


def test_nested_lists_make_few_errors() -> None:
    """64 modules of 64-item lists, every item wrong, made 8,320 errors per record (16 ms),
    all built before ten were kept."""
    record = seg_record(EVALUATED[0])
    record["inverted_residual_setting"] = [("x", ["y"] * 64, ["z"] * 64)] * 64
    with pytest.raises(ValidationError) as err:
        record_model("seg").model_validate(record)
    assert err.value.error_count() <= 3


def test_a_record_describes_at_most_ten_errors_each_cut_short() -> None:
    """A record of 64 bad keys, each named by 100,000 characters, used to give 64 full
    names in its quarantine row; one of 65 keys is refused whole."""
    record = seg_record(EVALUATED[0]) | {f"{i:03d}" + "k" * 100_000: 0 for i in range(50)}
    with pytest.raises(ValidationError) as err:
        record_model("seg").model_validate(record)
    described = describe_errors(err.value)
    assert len(described) == 11 and described[-1] == ("record", "40 more error(s)")
    assert described[0] == ("000" + "k" * 77 + "...", "Extra inputs are not permitted (got 0)")
    crowded = seg_record(EVALUATED[0]) | {f"x{i}": 0 for i in range(60)}
    with pytest.raises(ValidationError) as err:
        record_model("seg").model_validate(crowded)
    assert describe_errors(err.value) == [("record", "69 keys, more than 64: not a result record")]


def test_tables(tables: dict[str, pd.DataFrame], loads: dict[str, SettingLoad]) -> None:
    archs = tables["architectures"]
    assert archs.loc[~archs["evaluated"], "code"].tolist() == [UNEVALUATED.code]

    results = tables["results"]
    assert set(results["setting"]) == {"seg", "cls-10c"}
    assert OUTSIDER.code not in set(results["code"])
    code = EVALUATED[3].code
    got = results[(results["code"] == code) & (results["setting"] == "seg")]
    assert dict(zip(got["metric"], got["value"], strict=True)) == {
        "mIoU": 63.0,
        "mAcc": 73.0,
        "aAcc": 90.3,
    }

    moved = tables["quarantine"][tables["quarantine"]["reason"].str.contains("not in the search")]
    assert moved["record_index"].tolist() == [len(EVALUATED) + len(SEG_CASES)]

    report = tables["ingest_report"].set_index("source_file")
    seg = report.loc["data/seg/trainval.pkl"]
    assert (seg["read"], seg["valid"], seg["quarantined"]) == (21, 5, 16)
    assert (report["read"] == report["valid"] + report["quarantined"]).all()
    assert report.loc["data/3ddet/trainval.pkl", "status"] == "missing"
    assert tables["quarantine"].shape[0] == report["quarantined"].sum()

    sources = tables["sources"]
    assert set(sources["path"]) == {"data/search_list.txt"} | {
        f"data/{s}/trainval.pkl" for s, load in loads.items() if load.source
    }
    assert (sources["ingested_at"] == pd.Timestamp(WHEN)).all()
    assert set(tables["complexity"]["code"]) <= set(archs["code"])


def test_tables_are_deterministic(drop: Path, tables: dict[str, pd.DataFrame]) -> None:
    loads = [load_setting(drop, s) for s in reversed(list(SETTINGS))]
    again = build_tables(
        load_architectures(drop),
        loads,
        complexity_table(published_complexity(loads), {}, "none"),
        WHEN,
    )
    assert again.keys() == tables.keys()
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(again[name], frame, obj=name)


def test_a_disputed_complexity_quarantines_only_the_records_that_are_not_exact(
    tmp_path: Path,
) -> None:
    """Settings disagreeing on an architecture's flops or params stop nothing: the records
    that are not the exact count are quarantined, every other record and setting lands."""
    seg = [mr_record(a, *exact(a), mIoU=60.0, mAcc=70.0, aAcc=90.0) for a in EVALUATED]
    cls = [mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in EVALUATED]
    cls[1]["flops"] += 0.5
    seg[2]["params"] -= 0.25
    files = {"seg": pickle.dumps(seg), "cls-10c": pickle.dumps(cls)}
    root = small_drop(tmp_path / "drop", files)
    tables = ingest(root, tmp_path / "out", "analytic", ingested_at=WHEN).tables

    quarantine = tables["quarantine"]
    assert quarantine[["setting", "record_index", "field"]].values.tolist() == [
        ["cls-10c", 1, "flops"],
        ["seg", 2, "params"],
    ]
    assert quarantine["reason"].tolist() == [
        f"settings disagree on this architecture's flops: this record's {cls[1]['flops']!r} "
        f"is not the exact count {exact(EVALUATED[1])[0]!r} GMac",
        f"settings disagree on this architecture's params: this record's {seg[2]['params']!r} "
        f"is not the exact count {exact(EVALUATED[2])[1]!r} M",
    ]
    report = tables["ingest_report"].set_index("source_file")
    assert (report["read"] == report["valid"] + report["quarantined"]).all()
    assert report.loc["data/seg/trainval.pkl", ["valid", "quarantined"]].tolist() == [4, 1]
    assert report.loc["data/cls-10c/trainval.pkl", ["valid", "quarantined"]].tolist() == [4, 1]
    results = tables["results"].groupby("setting")["code"].unique()
    codes = [a.code for a in EVALUATED]
    assert sorted(results["seg"]) == sorted(codes[:2] + codes[3:])
    assert sorted(results["cls-10c"]) == sorted(codes[:1] + codes[2:])
    complexity = tables["complexity"].set_index("code").loc[codes]
    assert complexity["match"].tolist() == [True] * len(codes)


def test_complexity_table_matches_exact_counts() -> None:
    codes = [a.code for a in EVALUATED[:3]]
    stated = pd.DataFrame(
        {"code": codes[:2], "flops": [13.727426866, 0.5], "params": [28.290994, 1.0]}
    )
    recomputed = {
        codes[0]: Complexity(13_727_426_866, 28_290_994),
        codes[1]: Complexity(500_000_001, 1_000_000),
        codes[2]: Complexity(1, 1),
    }
    table = complexity_table(stated, recomputed, "analytic").set_index("code")
    assert table.loc[codes[0], "published_macs"] == 13_727_426_866
    assert table.loc[codes[0], "published_params"] == 28_290_994
    assert table.loc[codes[:2], "match"].tolist() == [True, False]
    assert table.loc[codes[2], "match"] is pd.NA
    assert pd.isna(table.loc[codes[2], "published_macs"])
    assert (table["method"] == "analytic").all()


def test_record_models_cover_every_setting_metric() -> None:
    for name, setting in SETTINGS.items():
        assert setting.metrics == record_model(name).METRICS, name


# -- the real drop ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(raw_dir: Path) -> dict[str, SettingLoad]:
    return {setting: load_setting(raw_dir, setting) for setting in SETTINGS}


def test_real_drop_validates_completely(raw_dir: Path, real: dict[str, SettingLoad]) -> None:
    for setting in MR_SETTINGS:
        load = real[setting]
        if setting == "3ddet":
            assert load.status == "missing"
            continue
        assert (load.status, len(load.valid), len(load.quarantine)) == ("ok", 2507, 0), setting
    nb201 = real["nas-bench-201"]
    assert (nb201.status, len(nb201.valid), len(nb201.quarantine)) == ("ok", 15625, 0)
    search = load_architectures(raw_dir)
    assert (len(search.architectures), len(search.quarantine)) == (2511, 0)
    tables = build_tables(
        search,
        list(real.values()),
        complexity_table(published_complexity(list(real.values())), {}, "none"),
        WHEN,
    )
    assert (~tables["architectures"]["evaluated"]).sum() == 4
    assert len(tables["results"]) == 2507 * (3 + 3 + 2 * 6)
    assert len(tables["quarantine"]) == 0


def test_real_nb201_op_1_is_none(real: dict[str, SettingLoad]) -> None:
    """Cells where every input-to-output path crosses op 1 score chance (1/120): 1 is 'none'."""
    valid = real["nas-bench-201"].valid
    ops = np.array([list(map(int, o.split("|"))) for o in valid["ops"]])
    live = ops != 1
    node1 = live[:, 0]
    node2 = live[:, 1] | (node1 & live[:, 2])
    output = live[:, 3] | (node1 & live[:, 4]) | (node2 & live[:, 5])
    chance = valid["Acc"].to_numpy() < 1.0
    assert (~output).sum() > 300
    assert chance[~output].all()
    assert chance[output].sum() <= 4


def test_nb201_costs_of_another_cell_are_flagged_not_quarantined(tmp_path: Path) -> None:
    """A cell published with another cell's Flops/Params stays valid, flagged as such."""
    records = nb201_records()
    records[1] |= {"Flops": records[0]["Flops"], "Params": records[0]["Params"]}
    load = load_setting(small_drop(tmp_path, {"nas-bench-201": pickle.dumps(records)}), NB201)
    assert (load.status, len(load.valid), len(load.quarantine)) == ("ok", 2, 0)
    assert load.valid["cost_matches_cell"].tolist() == [True, False]


def test_real_nb201_costs_are_the_cifar100_networks(real: dict[str, SettingLoad]) -> None:
    """Flops/Params count the cell on NAS-Bench-201's CIFAR-100 network (not ImageNet16-120's,
    whose accuracy Acc is), except for 150 cells given another cell's costs."""
    valid = real["nas-bench-201"].valid
    assert (~valid["cost_matches_cell"]).sum() == 150
    record = valid.set_index("record_index").loc[327]  # three 1x1 convs, the costs of two
    assert (record["ops"], record["Flops"], record["Params"]) == ("2|3|3|2|3|0", 15.65, 0.135)
    assert not record["cost_matches_cell"]
    for classes, side in [(10, 32), (120, 16)]:  # CIFAR-10, ImageNet16-120: none match
        other = [nb201_complexity(ops, classes, side) for ops in valid["ops"].head(200)]
        params = np.array([c.params / 1e6 for c in other])
        assert not np.isclose(params, valid["Params"].head(200), atol=0.0005).any()


def test_real_nb201_record_0_is_nas_bench_201_architecture_0(real: dict[str, SettingLoad]) -> None:
    """NAS-Bench-201's ``api.arch(0)``; with op 1 = none this pins the op names of the drop."""
    first = real["nas-bench-201"].valid.iloc[0]
    assert first["arch_str"] == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
        "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )


def test_a_value_nested_too_deep_to_print_is_quarantined(tmp_path: Path) -> None:
    """A record holding a list nested 100,000 deep is quarantined, not a crash of the load."""
    depth = 100_000
    nested = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST depth times, APPEND depth-1 times
    payload = b"\x80\x02](}U\x04deep" + nested + b"se."  # [{"deep": [[[...]]]}], protocol 2
    load = load_setting(small_drop(tmp_path, {"seg": payload}), "seg")
    assert (load.status, load.read, len(load.valid)) == ("ok", 1, 0)
    row = _quarantined(load, 0)
    assert row["field"].endswith("deep")
    assert "deep: Extra inputs are not permitted (got [[[[...]]]])" in row["reason"]


def _refuse_stat(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Anything inside ``folder`` fails ``stat`` as in a folder without search permission."""
    real_stat = Path.stat

    def guarded_stat(self: Path, *args: Any, **kwargs: Any) -> Any:
        if folder in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", guarded_stat)


def _unreadable_file(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_open(monkeypatch, root / "data" / "seg" / "trainval.pkl")


def _unsearchable_folder(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_stat(monkeypatch, root / "data" / "seg")


def _directory(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = root / "data" / "seg" / "trainval.pkl"
    path.unlink()
    path.mkdir()


def _broken_link(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = root / "data" / "seg" / "trainval.pkl"
    path.unlink()
    path.symlink_to(root / "elsewhere.pkl")


def _named_pipe(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = root / "data" / "seg" / "trainval.pkl"
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_unreadable_file, "cannot be read (Permission denied)"),
        (_unsearchable_folder, "cannot be read (Permission denied)"),
        (_directory, "is a directory, not a file"),
        (_broken_link, "is a broken symbolic link"),
        (_named_pipe, "is not a regular file"),
    ],
    ids=["no read permission", "folder not searchable", "directory", "broken link", "fifo"],
)
def test_a_path_that_is_no_readable_file_fails_its_setting_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spoil: Callable[[Path, pytest.MonkeyPatch], None],
    reason: str,
) -> None:
    """An unreadable trainval.pkl raised PermissionError out of the whole ingest, and a
    directory or broken link in its place was 'missing' (exit 0); now the setting fails
    naming the file, and the others load."""
    root = small_drop(tmp_path / "drop", clean_files())
    spoil(root, monkeypatch)
    result = ingest(root, tmp_path / "out", ingested_at=WHEN)
    report = result.report.set_index("setting", drop=False)
    seg = report.loc["seg"]
    assert (seg["status"], seg["read"], seg["valid"], seg["quarantined"]) == ("failed", 0, 0, 0)
    assert seg["reason"].startswith(f"data/seg/trainval.pkl: {reason}")
    assert result.failed == ["seg"]
    assert report.loc["cls-10c", "status"] == report.loc[NB201, "status"] == "ok"
    assert "data/seg/trainval.pkl" not in set(result.tables["sources"]["path"])


def test_what_is_hashed_is_what_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's sha256 and the records came from two reads of the file, so a file
    replaced between them was recorded as one version and ingested as another."""
    root = small_drop(tmp_path / "drop", clean_files())
    path = root / "data" / "seg" / "trainval.pkl"
    first = path.read_bytes()
    replacement = tmp_path / "replacement.pkl"
    replacement.write_bytes(pickle.dumps([seg_record(EVALUATED[0], 9)]))
    real_open = Path.open

    def open_then_replace(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, *args, **kwargs)
        if self == path:  # the next open of the path reads other bytes
            os.replace(replacement, path)
            monkeypatch.setattr(Path, "open", real_open)
        return handle

    monkeypatch.setattr(Path, "open", open_then_replace)
    load = load_setting(root, "seg")
    assert load.source is not None
    assert load.source.sha256 == hashlib.sha256(first).hexdigest()
    assert load.source.bytes == len(first)
    assert load.valid["code"].tolist() == [a.code for a in EVALUATED]
