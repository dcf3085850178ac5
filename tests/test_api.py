"""The query API over a published release of the real drop."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from nasmr.api import (
    Benchmark,
    BenchmarkKeyError,
    UnknownArchitectureError,
    UnknownMetricError,
    UnknownSettingError,
)
from nasmr.pareto import pareto_front
from nasmr.rawdrop import load_pickle, read_search_list, trainval_path
from nasmr.release import ReleaseError
from nasmr.space import Arch
from nasmr.warehouse import WAREHOUSE_NAME, ingest
from schemas.settings import MR_SETTINGS, get_setting
from tests.drops import EVALUATED, WHEN, clean_files, cls_record, copy_release, small_drop

PRESENT = tuple(s for s in MR_SETTINGS if s != "3ddet")


@pytest.fixture(scope="module")
def bench(releases: Path) -> Iterator[Benchmark]:
    with Benchmark.open("latest", releases) as opened:
        yield opened


def test_open_by_latest_version_folder_or_build(releases: Path, build: Path) -> None:
    for ref in ("1.0.0", releases / "1.0.0", str(releases / "1.0.0")):
        with Benchmark.open(ref, releases) as opened:
            assert opened.manifest is not None and opened.manifest.version == "1.0.0"
    with Benchmark.open(build) as opened:
        assert opened.manifest is None and len(opened) == 2507
    with pytest.raises(ReleaseError, match=r"release 2\.0\.0 not found.*published in .*: 1\.0\.0"):
        Benchmark.open("2.0.0", releases)
    with Benchmark.open("1.0.0", releases, verify=True) as opened:  # an intact release
        assert opened.manifest is not None
    with Benchmark.open(build, verify=True) as opened:  # a build folder has no checksums
        assert opened.manifest is None


def test_open_with_verify_refuses_a_damaged_release_before_reading_it(
    releases: Path, tmp_path: Path
) -> None:
    """A flipped byte in a Parquet file is named as a mismatch by ``verify=True``; without it
    the release opens from its DuckDB file as it is, which is why verifying is offered."""
    copy = copy_release(releases / "1.0.0", tmp_path / "1.0.0")
    damaged = copy / "parquet" / "results.parquet"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=r"mismatch.*parquet/results\.parquet") as err:
        Benchmark.open(copy, verify=True)
    assert str(copy) in str(err.value)
    with Benchmark.open(copy) as opened:
        assert len(opened) == 2507
        assert (
            repr(opened) == f"Benchmark(1.0.0: 2507 architectures, {len(opened.settings)} settings)"
        )


def test_open_a_warehouse_file_names_its_folder(build: Path) -> None:
    with pytest.raises(ReleaseError, match=r"nasmr\.duckdb is a file: open the folder") as err:
        Benchmark.open(build / "nasmr.duckdb")
    assert str(build) in str(err.value)


def test_open_latest_or_a_version_is_not_a_file_of_that_name(
    releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("latest", "1.0.0"):
        (tmp_path / name).write_text("not a release\n")
        with Benchmark.open(name, releases) as opened:
            assert opened.manifest is not None and opened.manifest.version == "1.0.0"


def test_open_latest_or_a_version_is_not_a_folder_of_that_name(
    releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build or release folder named like a version in the working directory would
    otherwise be opened in place of the release, with other numbers and no word."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latest").mkdir()
    shutil.copyfile(releases / "1.0.0" / WAREHOUSE_NAME, tmp_path / "latest" / WAREHOUSE_NAME)
    shutil.copytree(releases / "1.0.0", tmp_path / "1.0.0")
    for name in ("latest", "1.0.0"):
        with Benchmark.open(name, releases) as opened:
            assert opened.root == releases / "1.0.0" and opened.manifest is not None
    for folder in (tmp_path / "latest", Path("latest"), "./latest"):  # a Path is a folder
        with Benchmark.open(folder) as opened:
            assert opened.root.resolve() == tmp_path / "latest" and opened.manifest is None
    with pytest.raises(ReleaseError, match=r"none; for the folder latest here, give \./latest"):
        Benchmark.open("latest", tmp_path / "no-releases")
    with pytest.raises(ReleaseError, match=r"^1\.0\.1: neither 'latest', a version nor a"):
        Benchmark.open(Path("1.0.1"), releases)  # no such folder: not the release 1.0.1


def test_query_of_a_setting_without_the_architecture_says_where_it_has_results(
    tmp_path: Path,
) -> None:
    files = clean_files()
    files["cls-10c"] = pickle.dumps([cls_record(a, i) for i, a in enumerate(EVALUATED[:-1])])
    built = ingest(small_drop(tmp_path / "drop", files), tmp_path / "out", ingested_at=WHEN)
    with Benchmark.open(built.warehouse.parent) as opened:
        assert opened.query(EVALUATED[0], "cls-10c")["top1"] == 50.0
        for ask in (
            lambda: opened.query(EVALUATED[-1], "cls-10c"),
            lambda: opened.metric(EVALUATED[-1], "cls-10c", "flops"),
        ):
            with pytest.raises(UnknownArchitectureError) as err:
                ask()
            assert str(err.value) == (
                f"architecture {EVALUATED[-1].code} has no results in setting 'cls-10c'; "
                "it has results in: seg"
            )


def test_architectures_are_the_evaluated_ones_in_search_order(
    bench: Benchmark, raw_dir: Path
) -> None:
    evaluated = {tuple(r["embedding"]) for r in load_pickle(trainval_path(raw_dir, "seg"))}
    search_order = [Arch.from_code(line.text) for line in read_search_list(raw_dir)]
    assert len(bench) == len(evaluated) == 2507
    assert list(bench) == [a for a in search_order if tuple(a.embedding) in evaluated]
    first = bench.arch(0)
    assert isinstance(first, Arch) and bench.index(first) == 0
    assert bench.index(first.code) == 0 and first in bench and first.code in bench
    assert bench.arch(-1) == bench.arch(len(bench) - 1)
    assert all(bench.index(bench.arch(i)) == i for i in (0, 17, 2506))
    with pytest.raises(IndexError, match=r"index 2507 out of range \[0, 2507\)"):
        bench.arch(2507)
    assert bench.arch(np.int64(17)) == bench.arch(17)  # an index column's value
    with pytest.raises(TypeError, match=r"index must be an int .*got '0'; for a code use"):
        bench.arch("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"index must be an int .*got True"):
        bench.arch(True)  # was architecture 1
    with pytest.raises(UnknownArchitectureError, match=r"position 5 use arch\(5\)$"):
        bench.query(5, "seg")  # type: ignore[arg-type]  # NAS-Bench-201 users' habit
    with pytest.raises(UnknownArchitectureError, match=r"embedding use Arch.from_embedding"):
        bench.query(list(first.embedding), "seg")  # type: ignore[arg-type]


def test_query_returns_the_published_record(bench: Benchmark, raw_dir: Path) -> None:
    for setting in ("seg", "cls-50-1000", "video-p"):
        records = load_pickle(trainval_path(raw_dir, setting))
        for i in (0, 1234, 2506):
            record = records[i]
            arch = Arch.from_embedding(record["embedding"])
            expected = {m: record[m] for m in bench.metrics(setting)}
            expected |= {"flops": record["flops"], "params": record["params"]}
            assert bench.query(arch, setting) == expected
            assert bench.query(arch.code, setting) == expected
            for name, value in expected.items():
                assert bench.metric(arch, setting, name) == value


def test_settings_and_metrics(bench: Benchmark) -> None:
    assert bench.settings == PRESENT
    assert bench.metrics("seg-4x") == ("mIoU", "mAcc", "aAcc")
    assert bench.metrics("cls-10c") == ("top1", "top5")


def test_to_pandas_matches_the_wide_view(bench: Benchmark) -> None:
    for setting in ("seg", "video"):
        frame = bench.to_pandas(setting)
        assert list(frame.columns) == ["code", *bench.metrics(setting), "flops", "params"]
        assert frame["code"].tolist() == list(bench.codes)
        view = bench.sql(f"SELECT * FROM results_{setting.replace('-', '_')} ORDER BY code")
        ordered = frame.sort_values("code", ignore_index=True)
        pd.testing.assert_frame_equal(ordered, view, check_dtype=False)


def test_best_is_the_top_k_within_the_budget(bench: Benchmark) -> None:
    frame = bench.to_pandas("seg")
    top = bench.best("seg", "mIoU", max_gflops=1.5, k=5)
    assert list(top.columns) == ["index", "search_index", "code", "mIoU", "flops", "params"]
    assert len(top) == 5 and (top["flops"] <= 1.5).all()
    within = frame[frame["flops"] <= 1.5]["mIoU"].sort_values(ascending=False)
    assert top["mIoU"].tolist() == within.head(5).tolist()
    assert [bench.codes[i] for i in top["index"]] == top["code"].tolist()
    assert bench.best("seg", "mIoU", k=1)["mIoU"].item() == frame["mIoU"].max()
    assert bench.best("seg", "mIoU", max_gflops=0.0).empty
    for budget in (float("nan"), True, "1"):
        refused = f"max_gflops must be a number or None, got {budget!r}"
        with pytest.raises(ValueError, match=refused):
            bench.best("seg", "mIoU", max_gflops=budget)
    for k in (0, -1, 2.5, True):  # 2.5 and True failed inside pandas
        with pytest.raises(ValueError, match=f"k must be a whole number of at least 1, got {k}"):
            bench.best("seg", "mIoU", k=k)
    with pytest.raises(TypeError, match="positional argument"):  # 5 GMac, or k=5?
        bench.best("seg", "mIoU", 5)


def test_best_breaks_ties_by_fewer_flops(bench: Benchmark) -> None:
    """Published metrics have two decimals, so most values are shared (1947 of seg's 2507
    mIoU): of tied architectures ``best`` lists the cheaper first, as its docstring says, so
    a top k cut inside a tie keeps the ones a user would pick."""
    ranked = bench.best("seg", "mIoU", k=len(bench))
    assert len(ranked) == 2507
    tied = ranked[ranked.duplicated("mIoU", keep=False)]
    assert len(tied) == 1947
    for _, group in tied.groupby("mIoU"):
        assert group["flops"].is_monotonic_increasing, group
    assert ranked["mIoU"].is_monotonic_decreasing


def test_a_benchmark_goes_to_worker_processes(bench: Benchmark) -> None:
    """Its DuckDB connection does not pickle; the folder does, and a worker opens it again."""
    with pickle.loads(pickle.dumps(bench)) as copy:
        assert copy.root == bench.root and copy.manifest == bench.manifest
    codes = list(bench.codes[:3])
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        answers = list(pool.map(bench.query, codes, ["seg"] * 3))
    assert answers == [bench.query(code, "seg") for code in codes]


def test_best_takes_a_params_budget_and_the_primary_metric_by_default(bench: Benchmark) -> None:
    """As ``nasmr search`` takes --max-mparams; the metric a user means first is the primary."""
    frame = bench.to_pandas("video")
    both = bench.best("video", max_gflops=2.0, max_mparams=3.0, k=4)
    assert list(both.columns) == ["index", "search_index", "code", "top1", "flops", "params"]
    within = frame[(frame["flops"] <= 2.0) & (frame["params"] <= 3.0)]
    assert both["top1"].tolist() == within["top1"].sort_values(ascending=False).head(4).tolist()
    assert (within["params"] <= 3.0).all() and (frame["params"] > 3.0).any()
    assert bench.best("seg", k=3).equals(bench.best("seg", "mIoU", k=3))
    with pytest.raises(ValueError, match="max_mparams must be a number or None, got '3'"):
        bench.best("seg", max_mparams="3")
    with pytest.raises(UnknownSettingError, match="unknown setting 'segm'"):
        bench.best("segm")


def test_index_is_the_position_among_evaluated_and_search_index_the_line(
    bench: Benchmark, raw_dir: Path
) -> None:
    lines = {line.text: line.index for line in read_search_list(raw_dir)}
    for frame in (bench.best("seg", "mIoU", k=2507), bench.pareto("cls-10c", "top1")):
        assert frame["index"].tolist() == [bench.index(c) for c in frame["code"]]
        assert frame["search_index"].tolist() == [lines[c] for c in frame["code"]]
    everything = bench.best("seg", "mIoU", k=2507)
    differ = everything[everything["index"] != everything["search_index"]]
    assert len(differ) == 946 and differ["search_index"].min() == 1562


def test_pareto_front_is_exactly_the_non_dominated_set(bench: Benchmark) -> None:
    front = bench.pareto("cls-10c", "top1")
    assert front["flops"].is_monotonic_increasing
    assert front["top1"].is_monotonic_increasing
    frame = bench.to_pandas("cls-10c")
    flops, acc = frame["flops"].to_numpy(), frame["top1"].to_numpy()
    dominated = [
        bool(np.any((flops <= f) & (acc >= a) & ((flops < f) | (acc > a))))
        for f, a in zip(flops, acc, strict=True)
    ]
    non_dominated = frame.loc[~np.array(dominated), ["code", "flops", "top1"]]
    # among equal (flops, top1) pairs the front keeps the first in search order
    expected = non_dominated.drop_duplicates(["flops", "top1"]).sort_values("flops")
    assert front["code"].tolist() == expected["code"].tolist()


def test_pareto_front_keeps_the_first_of_equal_points_and_skips_nan() -> None:
    cost = np.array([2.0, 1.0, 1.0, 3.0, 2.0, 4.0])
    value = np.array([5.0, 3.0, 3.0, np.nan, 5.0, 6.0])
    assert pareto_front(cost, value).tolist() == [1, 0, 5]
    assert pareto_front(np.array([]), np.array([])).tolist() == []


def test_unknown_codes_say_what_exists(bench: Benchmark, releases: Path) -> None:
    with pytest.raises(UnknownArchitectureError, match=r"not a valid architecture code .* 2507"):
        bench.query("12_34", "seg")
    with pytest.raises(UnknownArchitectureError, match=r"position 0 \(stem\.c0\).*multiple of 8"):
        bench.query(
            "7_128-1_1_1_48-1_2_1_1_128_8-1_3_1_1_1_128_128_120-1_4_1_1_1_1_8_8_8_8-64", "seg"
        )
    unevaluated = bench.manifest.unevaluated_codes[0]  # type: ignore[union-attr]
    with pytest.raises(UnknownArchitectureError, match="in the search list but has no results"):
        bench.index(unevaluated)
    known = {*bench.codes, *bench.manifest.unevaluated_codes}  # type: ignore[union-attr]
    outside = next(a for a in bench.arch(0).neighbours() if a.code not in known)
    with pytest.raises(UnknownArchitectureError, match="in the space but not in the benchmark"):
        bench.metric(outside, "seg", "mIoU")
    assert outside not in bench
    with pytest.raises(KeyError):
        bench.index("nonsense")
    with pytest.raises(UnknownArchitectureError, match=r"not a valid.*position 0 \(stem\.c0\)"):
        bench.index(" " + bench.codes[0])  # one architecture, one spelling


def test_unknown_settings_and_metrics_list_the_choices(bench: Benchmark) -> None:
    code = bench.codes[0]
    with pytest.raises(UnknownSettingError, match=r"unknown setting 'segm'; settings: seg, seg-4x"):
        bench.query(code, "segm")
    with pytest.raises(UnknownSettingError, match="'3ddet' has no results in this release"):
        bench.to_pandas("3ddet")
    with pytest.raises(UnknownSettingError, match=r"nb201_results"):
        bench.best("nas-bench-201", "Acc")
    with pytest.raises(
        UnknownMetricError, match=r"no metric 'top1'; its metrics: mIoU, mAcc, aAcc"
    ):
        bench.metric(code, "seg", "top1")
    with pytest.raises(UnknownSettingError, match=r"video-p; did you mean 'cls-10c'\?$"):
        bench.query(code, "cls_10c")  # SQL views spell it so
    with pytest.raises(UnknownMetricError, match=r"aAcc; did you mean 'mIoU'\?$"):
        bench.metric(code, "seg", "miou")
    with pytest.raises(KeyError, match=r"nas-bench-201; did you mean 'video-p'\?"):
        get_setting("Video-P")
    with pytest.raises(BenchmarkKeyError) as caught:
        bench.pareto("video", "mIoU")
    assert str(caught.value).startswith("setting 'video' has no metric")


def test_sql_is_read_only(bench: Benchmark) -> None:
    counts = bench.sql("SELECT setting, count(*) AS n FROM results GROUP BY setting ORDER BY 1")
    assert dict(zip(counts["setting"], counts["n"], strict=True))["seg"] == 2507 * 3
    assert bench.sql("SELECT count(*) AS n FROM nb201_results")["n"].item() == 15625
    with pytest.raises(duckdb.Error, match="read-only"):
        bench.sql("DELETE FROM results")
    with pytest.raises(ValueError, match="no SQL statement in '-- all commented out'"):
        bench.sql("-- all commented out")


def test_sql_takes_positional_and_named_parameters(bench: Benchmark) -> None:
    """A dict fills $names (it failed as a 'count mismatch'); a bare string is refused, where
    it became one parameter per character."""
    code = bench.arch(0).code
    query = "SELECT search_index FROM architectures WHERE code = "
    positional = bench.sql(query + "?", [code])["search_index"].item()
    assert bench.sql(query + "$code", {"code": code})["search_index"].item() == positional == 0
    assert bench.sql("SELECT 1 AS one", None)["one"].item() == 1  # None: no parameters
    with pytest.raises(TypeError, match="SQL parameters are a list or a dict, not str"):
        bench.sql(query + "?", code)


def test_nas_bench_201_cells_are_sent_to_their_table(bench: Benchmark) -> None:
    cell = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    with pytest.raises(UnknownSettingError, match=r"another search space.*nb201_results"):
        bench.query(cell, "nas-bench-201")
    with pytest.raises(UnknownSettingError, match=r"another search space.*nb201_results"):
        bench.metric("4|4|4|2|4|4", "nas-bench-201", "Acc")
