"""The Dagster code location: definitions, the full graph on the real drop, sensor, schedule."""

from __future__ import annotations

import base64
import json
import math
import os
import pickle
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import dagster as dg
import duckdb
import pandas as pd
import pytest
import scipy.stats
from click.testing import CliRunner
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.observe import observe
from dagster._core.loader import LoadingContextForTest
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)

from nasmr import ncp, paths, warehouse
from nasmr.build_lock import BuildFolderBusy, build_lock
from nasmr.checksums import sha256_file
from nasmr.complexity import Complexity, module_complexity_many
from nasmr.ingest import load_architectures
from nasmr.logs import LogOutputOverlap
from nasmr.predictor import train_all
from nasmr.rawdrop import UNREADABLE, RawDropError, load_pickle, search_list_path, trainval_path
from nasmr.release import ReleaseError, list_releases, publish_release
from nasmr.space import Arch, sample
from nasmr.warehouse import connect
from pipelines.assets.ingest import validated_records
from pipelines.assets.logs import log_curves
from pipelines.assets.models import NCP_SEARCHES, search_evaluation
from pipelines.assets.raw import raw_search_list, raw_trainval
from pipelines.assets.release import release
from pipelines.assets.warehouse import WRITER_POOL, inputs_match_the_drop, rule_checks
from pipelines.cli import main
from pipelines.definitions import build_definitions, defs
from pipelines.jobs import weekly_refresh
from pipelines.metadata import plots, preview
from pipelines.resources import (
    BuildDir,
    BuildOptions,
    LogDrop,
    RawDrop,
    ReleaseDir,
    resources_run_config,
)
from pipelines.run import INSTANCE_CONFIG, BuildOutcome, local_instance, run_job
from pipelines.sensors import raw_drop_sensor
from schemas.settings import MR_SETTINGS, NB201, SETTINGS
from tests.drops import (
    WHEN,
    clean_files,
    det_drop,
    exact,
    mr_record,
    nb201_record,
    refuse_open,
    seg_log,
    small_drop,
    synthetic_frames,
    write_drop,
)

FAST = BuildOptions(
    complexity_method="analytic",
    predictor_seeds=1,
    predictor_epochs=5,
    predictor_settings=["seg", "video"],
    ncp_starts=4,
    ncp_steps=10,
)


def _job_assets(definitions: dg.Definitions, job: str) -> set[str]:
    """The assets ``job`` materialises or (the search list) observes."""
    layer = definitions.resolve_job_def(job).asset_layer
    return {key.to_user_string() for key in layer.executable_asset_keys}


def test_definitions_load_with_jobs_schedule_and_sensor() -> None:
    ingest = {"raw_search_list", "architectures", "validated_records", "complexity", "warehouse"}
    models = {"predictors", "ncp_results", "search_evaluation"}
    assert _job_assets(defs, "ingest") == ingest
    assert _job_assets(defs, "reingest") == {"validated_records", "warehouse"}
    assert _job_assets(defs, "refresh") == models | {"release"}
    assert _job_assets(defs, "build") == ingest | models | {"release"}
    assert _job_assets(defs, "logs").isdisjoint(_job_assets(defs, "build"))
    assert defs.resolve_schedule_def("weekly_refresh").cron_schedule == "0 3 * * 1"
    assert defs.resolve_sensor_def("raw_drop_sensor").job_name == "reingest"
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"raw_trainval", "validated_records", "complexity", "warehouse"} <= keys
    untyped = [key for key in graph.get_all_asset_keys() if not graph.get(key).kinds]
    assert not untyped  # the UI's catalog filters by kind: every asset says what it holds
    assert graph.get(dg.AssetKey("warehouse")).kinds == {"duckdb", "parquet"}


def test_nasmr_build_offers_every_job() -> None:
    """`nasmr build --job` lists the jobs by name (importing Dagster only when it runs)."""
    option = next(p for p in main.commands["build"].params if p.name == "job_name")
    assert sorted(option.type.choices) == sorted(job.name for job in defs.jobs)


@pytest.fixture(scope="module")
def full_build(
    raw_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BuildOutcome, Path]:
    out = tmp_path_factory.mktemp("build")
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "build",
            raw_dir=raw_dir,
            out_dir=out,
            releases_dir=out / "releases",
            options=FAST,
            instance=instance,
        )
    return outcome, out


def test_full_graph_on_the_real_drop(full_build: tuple[BuildOutcome, Path]) -> None:
    outcome, out = full_build
    assert outcome.success, outcome.failures
    assert outcome.failed_checks == {}
    assert {
        "warehouse.counts_reconcile",
        "warehouse.tables_have_this_nasmrs_columns",
        "warehouse.published_complexity_reproduced",
        "warehouse.no_duplicate_architectures",
        "warehouse.results_reference_known_architectures",
        "warehouse.metric_ranges",
        "complexity.analytic_count_agrees",
        "release.release_verifies",
    } <= set(outcome.passed_checks)
    assert [m.version for m in list_releases(out / "releases")] == ["1.0.0"]
    assert outcome.release == "published 1.0.0 (major release)"  # nasmr build prints it
    with connect(out / "nasmr.duckdb") as con:
        report = (
            con.execute(
                "SELECT setting, status, read, valid, quarantined FROM ingest_report "
                "WHERE setting IS NOT NULL"
            )
            .df()
            .set_index("setting")
        )
        for setting in MR_SETTINGS:
            if setting == "3ddet":
                assert report.loc[setting, "status"] == "missing"
            else:
                assert report.loc[setting, ["read", "valid", "quarantined"]].tolist() == [
                    2507,
                    2507,
                    0,
                ]
        assert report.loc["nas-bench-201", "valid"] == 15625
        matched = con.execute("SELECT count(*) FROM complexity WHERE match").fetchall()[0][0]
        assert matched == 2507
    # every model output says which data made it, so publishing can refuse stale ones
    version = warehouse.warehouse_version(out / "nasmr.duckdb")
    card = json.loads((out / "ncp" / "seg_video_1gflops.json").read_text())
    assert card["data_version"] == version and card["predictor"] == "multitask"
    assert card["objective"]["weights"] == {"seg": 0.5, "video": 0.5}
    assert (card["starts"], card["steps"]) == (FAST.ncp_starts, FAST.ncp_steps)
    assert f"Data version `{version}`" in (out / "reports" / "search_report.md").read_text()


def test_a_failing_check_names_the_offending_rows(tmp_path: Path) -> None:
    archs = sample(4, seed=11)
    records = [mr_record(a, *exact(a), mIoU=70.0, mAcc=80.0, aAcc=95.0) for a in archs]
    records[2]["flops"] += 0.001  # a published value the supernet does not reproduce
    raw = write_drop(tmp_path / "raw", {"seg": pickle.dumps(records)}, [a.code for a in archs])
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST, instance=instance
        )
    assert not outcome.success
    rows = outcome.failed_checks["warehouse.published_complexity_reproduced"]
    assert archs[2].code in rows
    assert all(a.code not in rows for a in archs if a != archs[2])


def _ingested(tmp_path: Path, seg: bytes | None = None) -> tuple[list[Arch], BuildDir]:
    """A warehouse of three architectures' video results (and ``seg``'s bytes, if given),
    built by the ingest code the pipeline runs."""
    archs, _, raw = _video_drop(tmp_path, seed=5, extra={"seg": seg} if seg is not None else None)
    warehouse.ingest(raw, tmp_path / "out", method="analytic")
    return archs, BuildDir(path=str(tmp_path / "out"))


def _video_drop(
    tmp_path: Path, seed: int, n: int = 3, extra: dict[str, bytes] | None = None
) -> tuple[list[Arch], list[dict[str, Any]], Path]:
    """A raw drop in ``tmp_path/raw`` of ``n`` sampled architectures' video results (and the
    ``extra`` settings' bytes): the architectures, the video records and the drop."""
    archs = sample(n, seed=seed)
    records = [mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs]
    files = {"video": pickle.dumps(records), **(extra or {})}
    return archs, records, write_drop(tmp_path / "raw", files, [a.code for a in archs])


def _tamper(build_dir: BuildDir, sql: str, *params: str) -> None:
    """Change the warehouse behind the pipeline's back, as a later hand edit would."""
    with connect(build_dir.root() / "nasmr.duckdb", read_only=False) as con:
        con.execute(sql, list(params))


def _rule_check(name: str) -> dg.AssetChecksDefinition:
    """The warehouse's blocking check of the data-quality rule ``name``."""
    return next(c for c in rule_checks if c.check_key.name == name)


counts_reconcile = _rule_check("counts_reconcile")
tables_have_this_nasmrs_columns = _rule_check("tables_have_this_nasmrs_columns")
no_duplicate_architectures = _rule_check("no_duplicate_architectures")
results_reference_known_architectures = _rule_check("results_reference_known_architectures")
metric_ranges = _rule_check("metric_ranges")


def _offending(result: dg.AssetCheckResult) -> str:
    """The offending rows a failed check shows in the UI (markdown)."""
    return str(result.metadata["offending_rows"].value)


def test_plots_show_inline_on_the_materialization(tmp_path: Path) -> None:
    """search_evaluation's Pareto plots were files only: the catalog showed none."""
    images = {"pareto_seg": b"\x89PNG seg", "pareto_video": b"\x89PNG video"}
    for name, data in images.items():
        (tmp_path / f"{name}.png").write_bytes(data)
    (tmp_path / "search_report.md").write_text("not a plot")
    shown = plots(tmp_path)
    assert list(shown) == list(images)
    for name, value in shown.items():
        alt, _, uri = str(value.value).partition("](data:image/png;base64,")
        assert alt == f"![{name}" and base64.b64decode(uri.rstrip(")")) == images[name]


def test_previews_show_missing_values_as_empty_cells() -> None:
    """The ingest_report preview read 'nan' for the search list's setting and ok rows' reason."""
    frame = pd.DataFrame({"setting": [None, "seg"], "read": [2511, 2507], "x": [0.5, math.nan]})
    rows = str(preview(frame).value).splitlines()
    assert "nan" not in " ".join(rows) and "None" not in " ".join(rows)
    assert [cell.strip() for cell in rows[2].strip("|").split("|")] == ["", "2511", "0.5"]


def test_counts_reconcile_names_an_unreadable_file_and_a_miscounted_one(tmp_path: Path) -> None:
    """A present file that failed to load, or whose counts do not add up, fails the check."""
    _, build_dir = _ingested(tmp_path, seg=b"not a pickle")
    result = counts_reconcile(build_dir=build_dir)
    assert not result.passed
    assert result.metadata["offending"].value == 1
    assert "data/seg/trainval.pkl" in _offending(result)
    assert "is not a pickle" in _offending(result)
    assert "reingest --partition SETTING" in str(result.metadata["fix"].value)  # what to do

    _tamper(build_dir, "UPDATE ingest_report SET read = read + 1 WHERE setting = 'video'")
    result = counts_reconcile(build_dir=build_dir)
    assert result.metadata["offending"].value == 2
    assert "data/video/trainval.pkl" in _offending(result)


def test_a_run_with_an_unreadable_file_says_what_to_do(tmp_path: Path) -> None:
    """The sensor's run on a corrupt file failed counts_reconcile naming the file, and
    nothing said how to recover; `nasmr build` prints the rule's fix under the rows."""
    _, _, raw = _video_drop(tmp_path, seed=4, extra={"seg": b"not a pickle"})
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST, instance=instance
        )
    shown = outcome.failed_checks["warehouse.counts_reconcile"]
    assert "data/seg/trainval.pkl" in shown and "is not a pickle" in shown
    assert "\nfix: read what is wrong with each source_file named" in shown


def test_a_run_with_no_published_complexity_to_compare_reaches_the_checks(tmp_path: Path) -> None:
    """No MR file loaded, the warehouse step raised TypeError on the mean of no matches
    (float(NA)); it now says 0 of 0 and the run fails on the check naming the file."""
    archs = sample(2, seed=5)
    raw = write_drop(tmp_path / "raw", {"seg": b"not a pickle"}, [a.code for a in archs])
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST, instance=instance
        )
        [record] = instance.fetch_materializations(dg.AssetKey("warehouse"), limit=1).records
    assert [f.split(":")[0] for f in outcome.failures] == ["warehouse_counts_reconcile"]
    assert "data/seg/trainval.pkl" in outcome.failed_checks["warehouse.counts_reconcile"]
    metadata = record.asset_materialization.metadata
    assert (metadata["complexity_compared"].value, metadata["complexity_reproduced"].value) == (
        0,
        0,
    )


def test_counts_reconcile_fails_a_file_whose_every_record_was_quarantined(
    tmp_path: Path,
) -> None:
    """seg's file holding another setting's records loaded 'ok' with 0 valid records: every
    check passed, and the refresh published a release without seg's results."""
    archs = sample(3, seed=5)
    video = pickle.dumps([mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs])
    _, build_dir = _ingested(tmp_path, seg=video)
    result = counts_reconcile(build_dir=build_dir)
    assert not result.passed
    assert result.metadata["offending"].value == 1
    assert "data/seg/trainval.pkl" in _offending(result)


def test_a_warehouse_of_another_layout_fails_its_layout_check(tmp_path: Path) -> None:
    """A warehouse built by a nasmr that wrote other columns is named, column by column, by
    a blocking check: the refresh job stops there instead of training on it first."""
    _, build_dir = _ingested(tmp_path)
    assert tables_have_this_nasmrs_columns(build_dir=build_dir).passed
    _tamper(build_dir, "ALTER TABLE nb201_results DROP COLUMN cost_matches_cell")
    _tamper(build_dir, "ALTER TABLE sources ADD COLUMN note VARCHAR")
    result = tables_have_this_nasmrs_columns(build_dir=build_dir)
    assert not result.passed
    assert result.metadata["offending"].value == 2
    rows = _offending(result)
    assert "nb201_results" in rows and "cost_matches_cell" in rows
    assert "sources" in rows and "note" in rows


def test_a_warehouse_with_an_older_nasmrs_descriptions_fails_its_layout_check(
    tmp_path: Path,
) -> None:
    """Refresh keeps the warehouse: after an upgrade rewords a column, its comment would
    contradict the release's metadata files, so the blocking check stops the run first."""
    _, build_dir = _ingested(tmp_path)
    _tamper(build_dir, "COMMENT ON COLUMN nb201_results.Acc IS 'an older wording'")
    _tamper(build_dir, "COMMENT ON TABLE sources IS NULL")
    result = tables_have_this_nasmrs_columns(build_dir=build_dir)
    assert not result.passed and result.metadata["offending"].value == 2
    rows = [line.split("|")[1:-1] for line in _offending(result).splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["nb201_results", "4", "Acc", "Acc", "description"],
        ["sources", "0", "", "", "description"],  # the table's own description
    ]


def test_results_reference_known_architectures_names_an_orphan_result(tmp_path: Path) -> None:
    """A result whose architecture left the search list fails the check, naming the code."""
    archs, build_dir = _ingested(tmp_path)
    assert results_reference_known_architectures(build_dir=build_dir).passed
    _tamper(build_dir, "DELETE FROM architectures WHERE code = ?", archs[1].code)
    result = results_reference_known_architectures(build_dir=build_dir)
    assert not result.passed
    assert result.metadata["checked"].value == 3
    assert result.metadata["offending"].value == 1
    rows = _offending(result)
    assert archs[1].code in rows and "video" in rows
    assert archs[0].code not in rows and archs[2].code not in rows


def test_no_duplicate_architectures_names_a_repeated_result_and_code(tmp_path: Path) -> None:
    """A result stored twice and an architecture listed twice both fail the check."""
    archs, build_dir = _ingested(tmp_path)
    assert no_duplicate_architectures(build_dir=build_dir).passed
    _tamper(
        build_dir,
        "INSERT INTO results SELECT * FROM results WHERE code = ? AND metric = 'top1'",
        archs[0].code,
    )
    _tamper(
        build_dir,
        "INSERT INTO architectures SELECT * FROM architectures WHERE code = ?",
        archs[2].code,
    )
    result = no_duplicate_architectures(build_dir=build_dir)
    assert not result.passed
    assert result.metadata["offending"].value == 2
    rows = _offending(result)
    assert archs[0].code in rows and archs[2].code in rows and archs[1].code not in rows


def test_rules_cover_the_nas_bench_201_cells(tmp_path: Path) -> None:
    """An Acc of 150, a cell stored twice and a NULL metric used to keep every rule: only
    ingest checked them, and publishing trusts the rules to catch what is edited after it."""
    cells = [nb201_record([0, 1, 2, 3, 4, 0], 40.0), nb201_record([1, 1, 2, 3, 4, 0], 41.0)]
    _, _, raw = _video_drop(tmp_path, seed=5, extra={NB201: pickle.dumps(cells)})
    warehouse.ingest(raw, tmp_path / "out", method="analytic")
    build_dir = BuildDir(path=str(tmp_path / "out"))
    assert metric_ranges(build_dir=build_dir).passed
    assert no_duplicate_architectures(build_dir=build_dir).passed
    _tamper(build_dir, "UPDATE nb201_results SET Acc = 150 WHERE ops = '0|1|2|3|4|0'")
    _tamper(build_dir, "UPDATE results SET value = NULL WHERE metric = 'top5'")  # passed too
    _tamper(build_dir, "INSERT INTO nb201_results SELECT * FROM nb201_results WHERE Acc = 41")
    ranges, repeated = (
        metric_ranges(build_dir=build_dir),
        no_duplicate_architectures(build_dir=build_dir),
    )
    assert not ranges.passed and not repeated.passed
    assert "0|1|2|3|4|0" in _offending(ranges) and "150" in _offending(ranges)
    assert ranges.metadata["offending"].value == 1 + 3  # and the three NULL top5 values
    assert "1|1|2|3|4|0" in _offending(repeated) and "0|1|2|3|4|0" not in _offending(repeated)


def test_analytic_count_agrees_names_a_wrong_module_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of the ingest job's thop counts, the one that differs from the closed form fails the
    check, named alone (the genuine count agrees), and no warehouse is built from it."""
    archs, _, raw = _video_drop(tmp_path, seed=97, n=2)  # small: thop counts them in seconds

    def off_by_one(
        batch: list[Arch], workers: int | None, progress: Callable[[int, int], None]
    ) -> list[Complexity]:
        counts = module_complexity_many(batch, workers=workers, progress=progress)
        return [
            Complexity(c.macs + 1, c.params) if a.code == archs[0].code else c
            for a, c in zip(batch, counts, strict=True)
        ]

    monkeypatch.setattr("nasmr.ingest.module_complexity_many", off_by_one)
    module = BuildOptions(complexity_method="module", workers=1)
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=module, instance=instance
        )
    assert not outcome.success
    rows = outcome.failed_checks["complexity.analytic_count_agrees"]
    assert archs[0].code in rows and archs[1].code not in rows
    assert not (tmp_path / "out" / "nasmr.duckdb").exists()


def test_build_options_refuse_an_unknown_predictor_setting() -> None:
    """A misspelt setting is refused before any run, not silently left untrained."""
    unknown = "vidoe: no setting with published results; those are seg, seg-4x,"
    with pytest.raises(ValueError, match=unknown):
        BuildOptions(predictor_settings=["seg", "vidoe"])
    with pytest.raises(ValueError, match="3ddet: no setting with published results"):
        BuildOptions(predictor_settings=["3ddet"])
    with pytest.raises(ValueError, match="no setting named"):  # it trained nothing, silently
        BuildOptions(predictor_settings=[])
    assert BuildOptions(predictor_settings=["seg", "video"]).predictor_settings == ["seg", "video"]


@pytest.mark.parametrize(
    "field", ["workers", "predictor_seeds", "predictor_epochs", "ncp_steps", "ncp_starts"]
)
def test_build_options_refuse_counts_below_one(field: str) -> None:
    """A count of 0 from the launchpad is refused by name, as the CLI refuses it."""
    with pytest.raises(ValueError, match=f"{field}\n  Input should be greater than or equal to 1"):
        BuildOptions(**{field: 0})


def test_one_partition_on_a_fresh_build_folder_names_every_setting_not_validated(
    tmp_path: Path,
) -> None:
    """The warehouse needs every setting's staged records: a one-setting run on a fresh folder
    fails naming all the settings never validated there, and how to validate them."""
    _, _, raw = _video_drop(tmp_path, seed=5)
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "ingest",
            raw_dir=raw,
            out_dir=tmp_path / "out",
            partition="video",
            options=FAST,
            instance=instance,
        )
    [failure] = outcome.failures
    others = ", ".join(s for s in SETTINGS if s != "video")
    assert failure.startswith("warehouse:")
    assert f"no validated records of {others};" in failure
    assert "without --partition" in failure


def test_a_missing_drop_says_how_to_point_at_one(tmp_path: Path) -> None:
    """Said before any folder is made: a build or ingest against a mistyped --raw left an
    output folder holding only its lock file (nasmr build after a failed Dagster run)."""
    nowhere = tmp_path / "nowhere"
    with pytest.raises(RawDropError, match=r"raw drop not found at .*NASMR_RAW"):
        RawDrop(path=str(nowhere)).root()
    for command in (
        ["build", "--job", "ingest", "--out", str(tmp_path / "out")],
        ["ingest", "--warehouse", str(tmp_path / "out" / "nasmr.duckdb")],
    ):
        result = CliRunner().invoke(main, [*command, "--raw", str(nowhere)])
        assert result.exit_code == 1 and "raw drop not found at" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no build folder, no run history


NOTHING_SEEN = json.dumps({"checksums": {}})
"""A sensor cursor from before any file of the drop existed."""


def _sensor_tick(
    raw: Path,
    cursor: str | None,
    build: Path | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.SensorResult:
    """One tick against the drop ``raw`` and the build folder ``build`` (default: none yet),
    on ``instance`` (default: a new one, where the sensor has launched no run)."""
    resources = {
        "raw_drop": RawDrop(path=str(raw)),
        "build_dir": BuildDir(path=str(build or raw / "no-build")),
    }
    if instance is None:
        with dg.instance_for_test() as fresh:
            return _sensor_tick(raw, cursor, build, fresh)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, sensor_name=raw_drop_sensor.name
    ) as context:
        return raw_drop_sensor(context)


def test_sensor_ingests_exactly_the_changed_settings(raw_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "drop"
    shutil.copytree(raw_dir, raw)
    first = _sensor_tick(raw, NOTHING_SEEN)
    present = [s for s in SETTINGS if s != "3ddet"]
    assert sorted(r.partition_key for r in first.run_requests) == sorted(present)

    unchanged = _sensor_tick(raw, first.cursor)
    assert unchanged.run_requests == []
    assert unchanged.skip_reason is not None
    assert unchanged.skip_reason.skip_message == "no trainval.pkl changed since the last tick"
    flat = json.dumps(json.loads(first.cursor)["checksums"])  # the cursor's earlier format
    assert _sensor_tick(raw, flat).run_requests == []

    path = raw / "data" / "video" / "trainval.pkl"
    records = pickle.loads(path.read_bytes())
    records[0]["top1"] += 0.01
    path.chmod(0o644)
    path.write_bytes(pickle.dumps(records))
    changed = _sensor_tick(raw, unchanged.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["video"]
    assert changed.run_requests[0].tags["nasmr/writer"] == "automation"  # one at a time
    assert (
        json.loads(changed.cursor)["checksums"]["video"]
        != json.loads(first.cursor)["checksums"]["video"]
    )


def test_sensor_ingests_a_file_that_becomes_unreadable_and_ticks_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable trainval.pkl raised PermissionError out of every tick, for all settings;
    it is now a version of its own, re-ingested (to fail its setting by name) once."""
    archs = sample(3, seed=5)
    video = pickle.dumps([mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs])
    raw = write_drop(tmp_path / "raw", {"video": video, "seg-4x": video}, [a.code for a in archs])
    seen = _sensor_tick(raw, NOTHING_SEEN).cursor
    refuse_open(monkeypatch, trainval_path(raw, "video"))
    tick = _sensor_tick(raw, seen)
    assert [r.partition_key for r in tick.run_requests] == ["video"]
    assert json.loads(tick.cursor)["checksums"]["video"] == UNREADABLE
    assert _sensor_tick(raw, tick.cursor).run_requests == []


def _two_video_files(tmp_path: Path) -> tuple[bytes, bytes, Path, Path]:
    """Two versions of a video trainval.pkl (top1 50 and 51), a drop holding the first, and
    the file's path in it."""
    archs = sample(3, seed=5)
    first, second = (
        pickle.dumps([mr_record(a, *exact(a), top1=top1, top5=80.0) for a in archs])
        for top1 in (50.0, 51.0)
    )
    raw = write_drop(tmp_path / "raw", {"video": first}, [a.code for a in archs])
    return first, second, raw, trainval_path(raw, "video")


def test_sensor_ingests_a_file_that_returns_to_earlier_bytes(tmp_path: Path) -> None:
    """Reverting a bad file to its good bytes, or losing it twice, re-ingests it every time:
    each change gets a run key of its own, and a retried tick (same cursor) the same key."""
    good, bad, raw, path = _two_video_files(tmp_path)
    cursor, keys = NOTHING_SEEN, []
    for payload in [good, bad, good, None, good, None]:
        if payload is None:
            path.unlink()
        else:
            path.write_bytes(payload)
        tick = _sensor_tick(raw, cursor)
        assert [r.partition_key for r in tick.run_requests] == ["video"]
        assert _sensor_tick(raw, cursor).run_requests == tick.run_requests
        keys.append(tick.run_requests[0].run_key)
        cursor = tick.cursor
    assert len(set(keys)) == len(keys), keys


def test_sensor_after_a_cursor_reset_reuses_no_run_key(tmp_path: Path) -> None:
    """A reset cursor counted changes from 0 again: a change then got a key launched before,
    Dagster skipped its run, and the warehouse stayed stale without a word."""
    a, b, raw, path = _two_video_files(tmp_path)
    keys = []
    with dg.instance_for_test() as instance:
        built = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST, instance=instance
        )
        assert built.success, built.failures
        cursor = None  # the build validated a
        for payload, reset in [(a, False), (b, False), (a, False), (b, True)]:
            path.write_bytes(payload)
            tick = _sensor_tick(raw, None if reset else cursor, tmp_path / "out", instance)
            for request in tick.run_requests:  # as the daemon launches them
                tags = {"dagster/sensor_name": raw_drop_sensor.name, "dagster/partition": "video"}
                tags["dagster/run_key"] = request.run_key
                run = dg.DagsterRun(job_name="reingest", run_id=str(len(keys)), tags=tags)
                instance.add_run(run)
                keys.append(request.run_key)
            cursor = tick.cursor
    assert len(keys) == 3 and len(set(keys)) == 3, keys  # b, a, then b again after the reset


def test_sensor_before_any_build_launches_nothing_and_says_why(tmp_path: Path) -> None:
    """Each of its runs would fail at the warehouse, which rebuilds on a build's staging."""
    _, _, raw, _ = _two_video_files(tmp_path)
    tick = _sensor_tick(raw, None, tmp_path / "no-build")
    assert tick.run_requests == [] and tick.cursor is None  # the next tick looks again
    assert tick.skip_reason is not None
    assert f"no records staged by a build in {tmp_path / 'no-build'} (`nasmr build`" in (
        tick.skip_reason.skip_message or ""
    )


def test_sensor_first_tick_ingests_only_what_the_build_did_not(tmp_path: Path) -> None:
    """Switched on after a build, the sensor's first tick launches nothing for the files the
    build validated, and one run for a file that changed or appeared since."""
    archs, records, raw = _video_drop(tmp_path, seed=5)
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        built = run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
    assert built.success, built.failures
    first = _sensor_tick(raw, None, out)
    assert first.run_requests == [] and first.skip_reason is not None
    since_build = "no trainval.pkl changed since the build validated them"
    assert first.skip_reason.skip_message == since_build  # not "since the last tick": none yet

    records[0]["top1"] = 51.0
    trainval_path(raw, "video").write_bytes(pickle.dumps(records))
    seg = [mr_record(a, *exact(a), mIoU=70.0, mAcc=80.0, aAcc=95.0) for a in archs]
    trainval_path(raw, "seg").parent.mkdir()
    trainval_path(raw, "seg").write_bytes(pickle.dumps(seg))
    changed = _sensor_tick(raw, None, out)
    assert sorted(r.partition_key for r in changed.run_requests) == ["seg", "video"]


def test_a_run_records_its_folders_so_a_reexecution_writes_where_it_did(tmp_path: Path) -> None:
    """The UI re-executes a run with its run config and the code location's resources: the
    folders and options nasmr build was given must be in that config, the lock mode not."""
    _, _, raw = _video_drop(tmp_path, seed=7)
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        built = run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        assert built.success, built.failures
        run = instance.get_run_by_id(built.run_id)
        resources = run.run_config["resources"]
        assert resources["build_dir"]["config"] == {"path": str(out)}
        assert resources["raw_drop"]["config"] == {"path": str(raw)}
        assert resources["options"]["config"]["complexity_method"] == "analytic"
        before = (out / "nasmr.duckdb").stat().st_mtime_ns
        ui = build_definitions(out_dir=tmp_path / "elsewhere")  # the UI's own folders
        again = ui.resolve_job_def("ingest").execute_in_process(
            run_config=run.run_config, instance=instance, tags=run.tags
        )
    assert again.success and (out / "nasmr.duckdb").stat().st_mtime_ns > before
    assert not (tmp_path / "elsewhere").exists()
    # run by another process (a UI worker), the copied tags do not let it skip the lock
    elsewhere = {**run.tags, "nasmr/pid": "1"}
    with dg.instance_for_test() as instance, build_lock(out, "nasmr build ingest"):
        locked_out = ui.resolve_job_def("ingest").execute_in_process(
            run_config=run.run_config, instance=instance, tags=elsewhere, raise_on_error=False
        )
    assert not locked_out.success
    assert "is in use by nasmr build ingest" in str(locked_out.all_events)


def test_validating_without_a_partition_says_how_to_launch_it(tmp_path: Path) -> None:
    """From the UI, the reingest job launched without a partition failed with Dagster's
    'Cannot access partition_key for a non-partitioned run'."""
    resources = {"raw_drop": RawDrop(path=str(tmp_path)), "build_dir": BuildDir(path=str(tmp_path))}
    with dg.build_asset_context() as context, pytest.raises(ValueError, match="for one setting"):
        validated_records(context, **resources)


def test_a_run_records_absolute_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out build2 re-executed from the UI (started elsewhere) must write tmp_path/build2."""
    monkeypatch.chdir(tmp_path)
    config = resources_run_config(build_definitions(out_dir=Path("build2")).resources)
    assert config["build_dir"]["config"]["path"] == str(tmp_path / "build2")


def test_a_rebuild_from_the_same_records_keeps_the_warehouse_data_version(
    tmp_path: Path,
) -> None:
    """Dagster marks predictors stale when the warehouse's data version moves: a reingest
    of an unchanged drop must not move it."""
    _, _, raw = _video_drop(tmp_path, seed=7)
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        for _ in range(2):
            run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        records = instance.fetch_materializations(dg.AssetKey("warehouse"), limit=2).records
    versions = [r.asset_materialization.tags["dagster/data_version"] for r in records]
    assert versions == [warehouse.warehouse_version(out / "nasmr.duckdb")] * 2


def test_observing_an_unchanged_drop_after_a_build_marks_nothing_stale(tmp_path: Path) -> None:
    """The UI's "Observe sources" after a build marked `architectures` stale although no
    file had changed (the run had recorded no version of the search list). A changed
    search list still marks it stale."""
    archs, _, raw = _video_drop(tmp_path, seed=8)
    graph = defs.get_repository_def().asset_graph
    sources = {"raw_drop": RawDrop(path=str(raw))}

    def stale(instance: dg.DagsterInstance) -> set[str]:
        """What the UI shows stale after "Observe sources": Dagster's own resolver, a private
        API (constraints.txt pins the Dagster it was written against)."""
        observe([raw_search_list, raw_trainval], instance=instance, resources=sources)
        status = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
        keys = [("architectures", None), ("warehouse", None)]
        keys += [("validated_records", s) for s in ("video", "seg")]
        return {
            f"{key}[{part}]" if part else key
            for key, part in keys
            if status.get_status(dg.AssetKey(key), part) == StaleStatus.STALE
        }

    with dg.instance_for_test() as instance:
        built = run_job(
            "ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST, instance=instance
        )
        assert built.success, built.failures
        assert stale(instance) == set()
        codes = [a.code for a in [*archs, *sample(1, seed=9)]]
        search_list_path(raw).write_text("\n".join(codes) + "\n")
        assert stale(instance) == {"architectures"}


def test_every_job_that_writes_the_build_folder_holds_the_writer_pool() -> None:
    """The run queue starts one run of the pool at a time. A refresh held none, so a
    reingest launched from the UI rebuilt the warehouse while the refresh trained on it."""
    for job in ("build", "ingest", "reingest", "refresh"):
        pools = {node.definition.pool for node in defs.resolve_job_def(job).nodes}
        assert WRITER_POOL in pools, job


def test_jobs_that_validate_every_setting_backfill_them_in_one_run() -> None:
    """A job backfill from the UI runs all settings at once: the warehouse step reads every
    setting's records, so one run per setting would rebuild it ten times."""
    for job in ("build", "ingest", "reingest"):
        assert defs.resolve_job_def(job).backfill_policy == dg.BackfillPolicy.single_run(), job


def test_records_staged_by_an_older_nasmr_are_named_not_a_database_error(tmp_path: Path) -> None:
    """After an upgrade that adds a column, a reingest run that keeps a setting's records
    staged by the older nasmr fails naming that setting and how to restage it, instead of
    DuckDB's binder error about the new column."""
    cells = pickle.dumps([nb201_record([0, 1, 2, 3, 4, 0], 40.0)])
    _, _, raw = _video_drop(tmp_path, seed=6, extra={NB201: cells})
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        built = run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        assert built.success, built.failures
        staged = out / "staging" / "records" / NB201 / "valid.parquet"
        pd.read_parquet(staged).drop(columns="cost_matches_cell").to_parquet(staged)
        again = run_job(
            "reingest", raw_dir=raw, out_dir=out, partition="video", options=FAST,
            instance=instance,
        )  # fmt: skip
    [failure] = again.failures
    assert failure.startswith("warehouse: ValueError: ") and f"{NB201}'s" in failure
    assert "cost_matches_cell" in failure and "without --partition" in failure


def test_the_sensors_job_revalidates_one_setting_without_recounting(tmp_path: Path) -> None:
    """A changed file's reingest run rebuilds the warehouse from it, and leaves the search
    list and complexity counts of the last build alone."""
    archs, records, raw = _video_drop(tmp_path, seed=6)
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        built = run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        assert built.success, built.failures
        records[0]["top1"] = 51.0
        trainval_path(raw, "video").write_bytes(pickle.dumps(records))
        again = run_job(
            "reingest", raw_dir=raw, out_dir=out, partition="video", options=FAST,
            instance=instance,
        )  # fmt: skip
        assert again.success, again.failures
        counted = instance.fetch_materializations(dg.AssetKey("complexity"), limit=10).records
        assert len(counted) == 1  # the build's; reingest did not recount
    with connect(out / "nasmr.duckdb") as con:
        top1 = con.execute(
            "SELECT value FROM results WHERE code = ? AND metric = 'top1'", [archs[0].code]
        ).fetchall()
    assert top1 == [(51.0,)]


def test_the_local_instance_runs_automated_runs_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instance config nasmr writes is valid for Dagster and limits the runs the sensor
    and the schedule launch, together: a weekly refresh and a reingest rewrote the same
    build folder at once."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with local_instance() as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "nasmr/writer", "value": "automation", "limit": 1} in limits
    tick = weekly_refresh.evaluate_tick(dg.build_schedule_context())
    assert tick.run_requests[0].tags["nasmr/writer"] == "automation"


def test_nasmr_ui_prepares_the_instance_then_serves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI's runs are not held up by a killed build's run: nasmr ui fails such runs, as
    nasmr build does, before it hands over to dagster dev (with the arguments given)."""
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    calls: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append(args))
    with patch("pipelines.run.fail_killed_runs") as failed:
        result = CliRunner().invoke(main, ["ui", "--port", "3001"])
    assert result.exit_code == 0, result.output
    assert failed.call_count == 1 and (home / "dagster.yaml").read_text() == INSTANCE_CONFIG
    [args] = calls
    assert args[1:] == ["-m", "dagster", "dev", "-m", "pipelines.definitions", "--port", "3001"]


EARLIER_INSTANCE_CONFIG = """\
# Written by nasmr on first use. Local, embedded SQLite storage under this folder.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1  # one writer of the DuckDB warehouse at a time (pool duckdb_writer)
  runs:
    tag_concurrency_limits:  # the sensor's and the schedule's runs one at a time
      - key: nasmr/writer
        value: automation
        limit: 1
"""
"""The dagster.yaml nasmr wrote until today, byte for byte."""


def test_the_instance_config_of_an_earlier_nasmr_is_replaced_and_an_edited_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fixes to the instance settings reached only new folders: a maintainer's .dagster/
    kept the file of the nasmr that created it (without the run-granular pool, say). An
    edited file, or one of the user's own, is theirs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = home / "dagster.yaml"
    config.write_text(EARLIER_INSTANCE_CONFIG)
    with local_instance() as instance:
        pools = instance.get_concurrency_config().pool_config
    assert config.read_text() == INSTANCE_CONFIG and pools.pool_granularity.value == "run"
    for own in (
        EARLIER_INSTANCE_CONFIG.replace("limit: 1\n", "limit: 2\n"),
        "# my settings\ntelemetry:\n  enabled: false\n",
    ):
        config.write_text(own)
        with local_instance():
            assert config.read_text() == own


def test_the_local_instance_fails_the_runs_of_killed_builds_and_limits_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nasmr build killed with SIGKILL left its run STARTED, and the run queue then held
    every queued run that writes the warehouse behind it; and before any build had claimed
    the pool, its first pass let all of them through at once (no limit row yet)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    ended = subprocess.Popen(["true"])
    ended.wait()
    host = socket.gethostname()
    worker = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("pipelines"), "__repository__"),
        "build",
    )  # a run re-executed from the UI: its parent's tags, but a Dagster worker runs it
    runs = {
        "killed": (ended.pid, None),
        "running": (os.getpid(), None),
        "re-executed": (ended.pid, worker),
        "tags-edited": ("x", None),
    }
    with local_instance() as instance:
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").slot_count == 1
        for run_id, (pid, origin) in runs.items():
            tags = {"nasmr/host": host, "nasmr/pid": str(pid)}
            status = dg.DagsterRunStatus.STARTED
            instance.add_run(
                dg.DagsterRun("build", run_id, status=status, tags=tags, remote_job_origin=origin)
            )
        instance.event_log_storage.set_concurrency_slots("duckdb_writer", 3)  # set by hand
    with local_instance() as instance:
        status = {r: instance.get_run_by_id(r).status for r in runs}
        failure = instance.all_logs("killed")[-1].message
        assert instance.event_log_storage.get_concurrency_info("duckdb_writer").slot_count == 3
    assert status == {
        "killed": dg.DagsterRunStatus.FAILURE,
        "running": dg.DagsterRunStatus.STARTED,
        "re-executed": dg.DagsterRunStatus.STARTED,
        "tags-edited": dg.DagsterRunStatus.STARTED,
    }
    assert failure == f"the nasmr process {ended.pid} that ran it has ended (killed)"


def test_a_warehouse_slot_left_by_a_killed_run_does_not_stop_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool slots were claimed per step: one held by a build killed with SIGKILL in its
    warehouse step stayed claimed, and every later build waited for it forever."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    _, _, raw = _video_drop(tmp_path, seed=5)
    outcome: list[BuildOutcome] = []
    with local_instance() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("duckdb_writer")
        storage.claim_concurrency_slot("duckdb_writer", "killed-run", "warehouse")

        def build() -> None:
            run = run_job("ingest", raw_dir=raw, out_dir=tmp_path / "out", options=FAST,
                          instance=instance)  # fmt: skip
            outcome.append(run)

        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert outcome and outcome[0].success, "the build waited for the killed run's slot"
        tags = instance.get_run_by_id(outcome[0].run_id).tags  # what fail_killed_runs reads
    assert (tags["nasmr/host"], tags["nasmr/pid"]) == (socket.gethostname(), str(os.getpid()))


def test_weekly_schedule_requests_a_refresh_run() -> None:
    context = dg.build_schedule_context()
    result = weekly_refresh.evaluate_tick(context)
    assert len(result.run_requests) == 1
    assert weekly_refresh.job_name == "refresh"


def test_definitions_accept_another_drop(tmp_path: Path) -> None:
    other = build_definitions(raw_dir=tmp_path / "x", out_dir=tmp_path / "y")
    assert other.resources["raw_drop"].path == str(tmp_path / "x")
    assert other.resources["build_dir"].path == str(tmp_path / "y")
    assert defs.resources["raw_drop"].path == str(paths.raw_dir())


@pytest.mark.parametrize(
    ("settings", "run"),
    [
        (["seg"], ["seg_1gflops"]),
        (["seg", "cls-10c"], ["seg_1gflops"]),
        (["seg", "video"], ["seg_1gflops", "seg_video_1gflops"]),
        (["cls-10c"], []),
    ],
)
def test_ncp_runs_the_searches_the_chosen_predictors_cover(
    settings: list[str], run: list[str], tmp_path: Path
) -> None:
    frames = synthetic_frames(n=120)
    frames["video"] = frames["cls-10c"]
    train_all({s: frames[s] for s in settings}, tmp_path, seeds=[0], epochs=1)
    found, skipped = ncp.search_predictors(NCP_SEARCHES, tmp_path)
    assert sorted(found) == run
    assert sorted(skipped) == sorted(set(NCP_SEARCHES) - set(run))
    for name, predictor in found.items():
        result = ncp.ncp_search(predictor, NCP_SEARCHES[name], sample(2, 0), steps=1)
        assert len(result.final) == 2


def test_shipped_sql_runs_and_kendall_agrees_with_scipy(
    full_build: tuple[BuildOutcome, Path],
) -> None:
    _, out = full_build
    sql_dir = Path(__file__).resolve().parents[1] / "warehouse" / "sql"
    with connect(out / "nasmr.duckdb") as con:
        best = con.execute((sql_dir / "best_seg_under_1gflops.sql").read_text()).df()
        assert len(best) == 10 and (best["gflops"] < 1).all()
        assert best["mIoU"].is_monotonic_decreasing
        tau = con.execute((sql_dir / "kendall.sql").read_text()).df()
        assert len(tau) == 28  # every pair of the 8 settings
        seg = con.execute('SELECT code, "mIoU" FROM results_seg').df()
        video = con.execute("SELECT code, top1 FROM results_video").df()
    joined = seg.merge(video, on="code")
    expected = scipy.stats.kendalltau(joined["mIoU"], joined["top1"]).statistic
    row = tau[(tau["s1"] == "seg") & (tau["s2"] == "video")]
    assert row["kendall_tau_b"].iloc[0] == pytest.approx(expected, abs=1e-3)


def test_replaced_folders_keep_nothing_of_an_earlier_run_and_survive_a_failure(
    tmp_path: Path,
) -> None:
    """A step's outputs are replaced whole when it succeeds; a failed (or killed) step leaves
    the last complete ones, and the next exclusive writer deletes what it left."""
    build_dir = BuildDir(path=str(tmp_path))
    (tmp_path / "predictors").mkdir()
    (tmp_path / "predictors" / "multitask.json").write_text("{}")
    with pytest.raises(RuntimeError), build_dir.replacing("predictors") as new:
        (new / "seg.json").write_text("{}")
        raise RuntimeError("training failed")
    assert [p.name for p in (tmp_path / "predictors").iterdir()] == ["multitask.json"]
    with build_dir.replacing("predictors") as new:
        assert list(new.iterdir()) == []
        (new / "seg.json").write_text("{}")
    assert [p.name for p in (tmp_path / "predictors").iterdir()] == ["seg.json"]
    with build_dir.replacing("ncp"):
        pass
    assert (tmp_path / "ncp").is_dir()
    (tmp_path / "usual").mkdir()  # others may read a shared build: no owner-only folders
    assert (tmp_path / "predictors").stat().st_mode == (tmp_path / "usual").stat().st_mode
    ended = subprocess.Popen(["true"])
    ended.wait()
    host = socket.gethostname()
    killed = tmp_path / f"{paths.UNFINISHED}{ended.pid}@{host}@predictors-new-x"  # SIGKILL's
    running = tmp_path / f"{paths.UNFINISHED}{os.getpid()}@{host}@ncp-new-x"  # a UI step's
    elsewhere = tmp_path / f"{paths.UNFINISHED}{ended.pid}@another-host@ncp-new-x"
    for folder in (killed, running, elsewhere):
        folder.mkdir()
    with build_lock(tmp_path, "nasmr build"):
        assert not killed.exists() and running.exists() and elsewhere.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "ncp",
        "predictors",
        "usual",
    ]


def test_refresh_publishes_nothing_from_a_warehouse_failing_its_checks(tmp_path: Path) -> None:
    _, _, raw = _video_drop(tmp_path, seed=5)
    folders = {"raw_dir": raw, "out_dir": tmp_path / "out", "releases_dir": tmp_path / "rel"}
    with dg.instance_for_test() as instance:
        ingested = run_job("ingest", **folders, options=FAST, instance=instance)
        assert ingested.success and not ingested.failed_checks, ingested.failures
        with duckdb.connect(str(tmp_path / "out" / "nasmr.duckdb")) as con:
            con.execute("UPDATE results SET value = 150 WHERE metric = 'top1'")
        refreshed = run_job("refresh", **folders, options=FAST, instance=instance)
        trained = instance.get_latest_materialization_event(dg.AssetKey("predictors"))
    assert "warehouse.metric_ranges" in refreshed.failed_checks
    assert trained is None
    assert [f.split(":")[0] for f in refreshed.failures] == ["warehouse_metric_ranges"]
    assert list_releases(tmp_path / "rel") == []


def test_refresh_of_a_build_made_without_dagster_publishes_and_succeeds(tmp_path: Path) -> None:
    """`nasmr ingest` stages no complexity counts; refresh re-ran their check, which failed
    the run after the release was published anyway (it blocked nothing)."""
    archs = sample(60, seed=8)
    records = [
        mr_record(a, *exact(a), top1=40.0 + (i * 7919 % 60) / 4, top5=70.0 + i / 4)
        for i, a in enumerate(archs)
    ]
    raw = write_drop(tmp_path / "raw", {"video": pickle.dumps(records)}, [a.code for a in archs])
    folders = {"raw_dir": raw, "out_dir": tmp_path / "out", "releases_dir": tmp_path / "rel"}
    warehouse.ingest(raw, tmp_path / "out", method="analytic", ingested_at=WHEN)
    with dg.instance_for_test() as instance:
        refreshed = run_job("refresh", **folders, options=FAST, instance=instance)
    assert refreshed.success, (refreshed.failures, refreshed.failed_checks)
    assert [m.version for m in list_releases(tmp_path / "rel")] == ["1.0.0"]
    with dg.instance_for_test() as instance:  # the same models again: said, not an error
        again = run_job("refresh", **folders, options=FAST, instance=instance)
    assert again.release == "nothing published: nothing changed since 1.0.0"


def test_a_drop_with_3ddet_results_releases_them_and_trains_no_3ddet_predictor(
    tmp_path: Path,
) -> None:
    """The authors publishing 3ddet's file: it validated and loaded, but the predictors step
    (every available setting by default) trained 3ddet models and then failed writing their
    cards, as 3ddet is no predictor setting; so no release of the new data was made."""
    raw = det_drop(tmp_path / "raw", sample(60, seed=8))
    folders = {"raw_dir": raw, "out_dir": tmp_path / "out", "releases_dir": tmp_path / "rel"}
    options = FAST.model_copy(update={"predictor_settings": None})
    with dg.instance_for_test() as instance:
        built = run_job("ingest", **folders, options=options, instance=instance)
        assert built.success, (built.failures, built.failed_checks)
        refreshed = run_job("refresh", **folders, options=options, instance=instance)
    assert refreshed.success, (refreshed.failures, refreshed.failed_checks)
    assert not list((tmp_path / "out" / "predictors").glob("3ddet*"))
    assert (tmp_path / "out" / "predictors" / "video.json").is_file()
    (release,) = list_releases(tmp_path / "rel")
    with connect(tmp_path / "rel" / str(release.version) / "nasmr.duckdb") as con:
        assert con.execute("SELECT count(*) FROM results_3ddet").fetchone() == (60,)


def test_a_failed_step_is_reported_with_the_error_naming_the_file(tmp_path: Path) -> None:
    """A step's error is reported as the project raised it (naming the file), not as the
    lower-level error it was raised from."""
    archs = sample(20, seed=5)
    records = [mr_record(a, *exact(a), top1=50.0 + i, top5=80.0 + i) for i, a in enumerate(archs)]
    raw = write_drop(tmp_path / "raw", {"video": pickle.dumps(records)}, [a.code for a in archs])
    manifest = tmp_path / "rel" / "0.9.0" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"version": "0.9.0"}')
    sums = f"{sha256_file(manifest)}  manifest.json\n"  # intact, so its manifest is read
    (manifest.parent / "SHA256SUMS").write_text(sums)
    folders = {"raw_dir": raw, "out_dir": tmp_path / "out", "releases_dir": tmp_path / "rel"}
    with dg.instance_for_test() as instance:
        outcome = run_job("build", **folders, options=FAST, instance=instance)
    [failure] = outcome.failures
    error = "nasmr.release.store.ReleaseError"
    assert failure.startswith(f"release: {error}: {manifest}: invalid manifest")


def test_logs_job_regenerates_results_from_real_logs(log_drop: Path, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        outcome = run_job(
            "logs", out_dir=tmp_path, log_dir=log_drop, options=FAST, instance=instance
        )
    assert outcome.success, outcome.failures
    assert outcome.release is None  # the logs job has no release step
    assert "log_reconciliation.logs_agree_with_published" in outcome.passed_checks
    results = pd.read_parquet(tmp_path / "logs" / "results.parquet")
    assert set(results["setting"]) == {"digits-cls", "digits-seg"}
    exported = load_pickle(tmp_path / "logs" / "trainval" / "digits-cls" / "trainval.pkl")
    assert len(exported) == results.loc[results["setting"] == "digits-cls", "code"].nunique()


def test_logs_of_a_published_setting_are_reconciled_with_its_records(tmp_path: Path) -> None:
    """Logs of a benchmark setting are compared with its ingested records: values within the
    rounding tolerance pass the check, a changed one fails it naming the architecture."""
    archs = sample(2, seed=5)
    published = [
        {"mIoU": 70.12, "mAcc": 80.34, "aAcc": 95.56},
        {"mIoU": 61.5, "mAcc": 72.25, "aAcc": 93.0},
    ]
    records = [mr_record(a, *exact(a), **m) for a, m in zip(archs, published, strict=True)]
    raw = write_drop(tmp_path / "raw", {"seg": pickle.dumps(records)}, [a.code for a in archs])
    out, drop = tmp_path / "out", tmp_path / "drop"
    seg_log(drop, archs[0], {**published[0], "mIoU": 70.124})  # within the 2-decimal rounding
    seg_log(drop, archs[1], published[1])
    check = "log_reconciliation.logs_agree_with_published"
    with dg.instance_for_test() as instance:
        ingested = run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        assert ingested.success, ingested.failures
        agreed = run_job("logs", out_dir=out, log_dir=drop, options=FAST, instance=instance)
        table = pd.read_parquet(out / "logs" / "log_reconciliation.parquet")
        seg_log(drop, archs[1], {**published[1], "mIoU": 62.0})
        differed = run_job("logs", out_dir=out, log_dir=drop, options=FAST, instance=instance)
    assert check in agreed.passed_checks
    assert table["published_value"].notna().sum() == 6 and table["agree"].all()
    assert check in differed.failed_checks
    [row] = [line for line in differed.failed_checks[check].splitlines() if "| seg " in line]
    assert archs[1].code in row and "mIoU" in row


def test_logs_of_a_setting_never_ingested_here_say_how_to_stage_its_records(
    tmp_path: Path,
) -> None:
    """Seg logs on a build folder without validated seg records (a fresh one, or one made by
    nasmr ingest) fail naming the setting and the job that validates it."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    for setting in ("seg", "seg-4x"):  # every such setting named, not only the first
        metrics = {"mIoU": 70.12, "mAcc": 80.34, "aAcc": 95.56}
        seg_log(drop, sample(1, seed=5)[0], metrics, setting)
    with dg.instance_for_test() as instance:
        outcome = run_job("logs", out_dir=out, log_dir=drop, options=FAST, instance=instance)
    [failure] = outcome.failures
    assert failure.startswith("log_reconciliation: ")
    assert "no validated records of seg, seg-4x to reconcile" in failure
    assert f"nasmr build --job ingest --out {out}`" in failure


def test_logs_of_a_setting_whose_records_did_not_load_fail_naming_why(tmp_path: Path) -> None:
    """Seg logs on a build whose seg file failed to load: the run fails naming the setting and
    the file's problem, where it used to pass the check without comparing them."""
    archs = sample(2, seed=5)
    video = [mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs]
    files = {"video": pickle.dumps(video), "seg": b"not a pickle"}
    raw = write_drop(tmp_path / "raw", files, [a.code for a in archs])
    drop, out = tmp_path / "drop", tmp_path / "out"
    seg_log(drop, archs[0], {"mIoU": 70.12, "mAcc": 80.34, "aAcc": 95.56})
    with dg.instance_for_test() as instance:
        run_job("ingest", raw_dir=raw, out_dir=out, options=FAST, instance=instance)
        outcome = run_job("logs", out_dir=out, log_dir=drop, options=FAST, instance=instance)
    [failure] = outcome.failures
    assert failure.startswith("log_reconciliation: ")
    assert "the drop's records of seg (failed: data/seg/trainval.pkl: is not a" in failure
    assert "did not load into this build: mend the drop" in failure
    assert not (out / "logs" / "log_reconciliation.parquet").exists()


@pytest.mark.parametrize(
    ("drop", "out"),
    [("drop", "drop"), ("drop", "drop/logs/digits-cls"), ("build/logs/drop", "build")],
)
def test_logs_job_refuses_to_empty_its_own_log_drop(
    drop: str, out: str, log_drop: Path, tmp_path: Path
) -> None:
    """A build whose logs/ holds or lies inside the drop's logs/ is refused naming both before
    the run, and by the first step of a run launched otherwise; the drop is as it was: every
    log file survives, nothing is staged or locked in it."""
    shutil.copytree(log_drop, tmp_path / drop)
    before = sorted((tmp_path / drop).rglob("*"))
    assert len([p for p in before if p.name.endswith(".log.json")]) == 4
    both = f"{tmp_path / out / 'logs'}, which overlaps the log drop's {tmp_path / drop / 'logs'}"
    with dg.instance_for_test() as instance, pytest.raises(LogOutputOverlap, match=both):
        run_job("logs", out_dir=tmp_path / out, log_dir=tmp_path / drop, instance=instance)
    resources = {"log_drop": LogDrop(path=str(tmp_path / drop))}
    with dg.build_asset_context() as context, pytest.raises(LogOutputOverlap, match=both):
        log_curves(context, build_dir=BuildDir(path=str(tmp_path / out)), **resources)
    assert sorted((tmp_path / drop).rglob("*")) == before


def test_logs_job_fails_when_no_run_was_accepted(log_drop: Path, tmp_path: Path) -> None:
    """Every run stopped before its first evaluation: the job fails saying nothing was
    exported, not succeeds having written no trainval.pkl."""
    drop = Path(shutil.copytree(log_drop, tmp_path / "drop"))
    for path in drop.rglob("*.log.json"):
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    with dg.instance_for_test() as instance:
        outcome = run_job("logs", out_dir=tmp_path / "out", log_dir=drop, instance=instance)
    [failure] = outcome.failures
    assert failure.startswith("log_results:") and "nothing to export" in failure


def test_logs_job_on_a_drop_without_log_files_keeps_the_last_outputs(
    log_drop: Path, tmp_path: Path
) -> None:
    """An empty logs/ (the wrong folder named) used to fail only at the export, after the
    previous run's tables and trainval files had been replaced with empty ones."""
    out = tmp_path / "out"
    with dg.instance_for_test() as instance:
        assert run_job("logs", out_dir=out, log_dir=log_drop, instance=instance).success
        before = {p: p.read_bytes() for p in sorted((out / "logs").rglob("*")) if p.is_file()}
        (tmp_path / "empty" / "logs").mkdir(parents=True)
        outcome = run_job("logs", out_dir=out, log_dir=tmp_path / "empty", instance=instance)
    [failure] = outcome.failures
    assert failure.startswith("log_curves:") and "no log file under" in failure
    assert {p: p.read_bytes() for p in sorted((out / "logs").rglob("*")) if p.is_file()} == before


def test_logs_job_without_a_drop_says_how_to_make_one(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        outcome = run_job("logs", out_dir=tmp_path / "out", log_dir=tmp_path, instance=instance)
    assert not outcome.success
    assert any("nasmr mini" in failure for failure in outcome.failures)


def test_nasmr_build_cli_runs_a_job_and_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    archs, records, raw = _video_drop(tmp_path, seed=5)
    args = ["build", "--job", "ingest", "--complexity", "analytic", "--raw", str(raw)]
    ok = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    assert "succeeded" in ok.output
    assert (tmp_path / "ok" / "nasmr.duckdb").is_file()

    records[1]["params"] *= 2
    (raw / "data" / "video" / "trainval.pkl").write_bytes(pickle.dumps(records))
    bad = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1
    assert "failed check warehouse.published_complexity_reproduced" in bad.output
    assert archs[1].code in bad.output


def test_nasmr_build_does_not_call_a_run_with_a_failed_check_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The logs job's check is not blocking: its steps succeed while a log disagrees with the
    published value, and the summary line says both before the exit status of 1."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    [arch] = sample(1, seed=5)
    published = {"mIoU": 70.12, "mAcc": 80.34, "aAcc": 95.56}
    raw = write_drop(
        tmp_path / "raw",
        {"seg": pickle.dumps([mr_record(arch, *exact(arch), **published)])},
        [arch.code],
    )
    seg_log(tmp_path / "drop", arch, {**published, "mIoU": 71.0})
    out = ["--out", str(tmp_path / "out"), "--complexity", "analytic"]
    assert (
        CliRunner().invoke(main, ["build", "--job", "ingest", "--raw", str(raw), *out]).exit_code
        == 0
    )
    result = CliRunner().invoke(
        main, ["build", "--job", "logs", "--logs", str(tmp_path / "drop"), *out]
    )
    assert result.exit_code == 1
    assert "(logs): steps succeeded, CHECKS FAILED" in result.output
    assert f"outputs: {tmp_path / 'out' / 'logs'}\n" in result.output  # no warehouse written
    assert "failed check log_reconciliation.logs_agree_with_published" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--job", "ingest", "--partition", "sge"], f"choose one of {', '.join(SETTINGS)}"),
        (["--job", "refresh", "--partition", "seg"], "job 'refresh' is not partitioned"),
    ],
)
def test_nasmr_build_rejects_a_partition_before_running_anything(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", *args, "--raw", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Invalid value for --partition" in result.output
    assert message in result.output
    assert not out.exists() and not (tmp_path / "dagster").exists()


def test_a_second_writer_of_a_build_folder_is_refused_naming_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs on one folder took each other's staged records, and both reported success."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    _, _, raw = _video_drop(tmp_path, seed=5)
    out = tmp_path / "out"
    build = ["build", "--job", "ingest", "--complexity", "analytic", "--raw", str(raw)]
    ingest = ["ingest", "--complexity", "analytic", "--raw", str(raw)]
    publish = ["release", "publish", "--build", str(out), "--raw", str(raw)]
    publish += ["--releases", str(tmp_path / "releases")]
    held = f"{out} is in use by nasmr build build (pid {os.getpid()}, since "
    with build_lock(out, "nasmr build build"):
        for args, advice in (
            ([*build, "--out", str(out)], "or build elsewhere (--out or NASMR_OUT)"),
            ([*ingest, "--warehouse", str(out / "x.duckdb")], "(--warehouse or NASMR_WAREHOUSE)"),
            (publish, "wait for it to finish\n"),  # a half-rebuilt build is not published
        ):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
            assert held in result.output and advice in result.output, result.output
        assert not (out / "nasmr.duckdb").exists() and not (out / "x.duckdb").exists()
    assert CliRunner().invoke(main, [*build, "--out", str(out)]).exit_code == 0  # released
    with build_lock(out, "nasmr release publish", elsewhere=None, shared=True):
        assert CliRunner().invoke(main, publish).exit_code == 0  # readers share it
        result = CliRunner().invoke(main, [*build, "--out", str(out)])
        assert "is in use by nasmr release publish (pid" in result.output


def test_a_run_from_the_ui_and_nasmr_build_never_write_one_folder_at_once(tmp_path: Path) -> None:
    """Runs launched from the UI or by the daemon hold the build lock (shared) while their
    steps run, in a folder a nasmr build has locked before: started under a nasmr build
    they fail naming it, and running they keep a nasmr build out, named in its refusal."""
    out = tmp_path / "build"
    refusals: list[str] = []

    @dg.asset
    def writes(build_dir: BuildDir) -> None:
        try:
            with build_lock(build_dir.root(), "nasmr build build"):
                pass
        except BuildFolderBusy as err:
            refusals.append(str(err))
        (build_dir.root() / "written").touch()

    resources = {"build_dir": BuildDir(path=str(out))}
    with build_lock(out, "nasmr build build"):
        blocked = dg.materialize([writes], resources=resources, raise_on_error=False)
    assert not blocked.success and not (out / "written").exists()
    [failure] = [e for e in blocked.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    cause = failure.event_specific_data.error.cause
    assert f"{out} is in use by nasmr build build (pid {os.getpid()}" in cause.message
    ran = dg.materialize([writes], resources=resources)
    assert ran.success and (out / "written").exists()
    [refusal] = refusals
    assert refusal.startswith(f"{out} is in use by dagster run {ran.run_id} (pid {os.getpid()}")
    with build_lock(out, "nasmr build build"):  # the run let go of it
        pass


def test_the_sensors_first_tick_reads_the_build_under_its_lock(tmp_path: Path) -> None:
    """Only the first tick reads the build (what it validated); during a nasmr build it
    fails naming it rather than read staged files half rewritten. Later ticks lock nothing."""
    raw = write_drop(tmp_path / "raw", {}, [a.code for a in sample(3, seed=5)])
    build = tmp_path / "build"
    with build_lock(build, "nasmr build build"):
        with pytest.raises(BuildFolderBusy, match=r"in use by nasmr build build \(pid"):
            _sensor_tick(raw, None, build)
        later = _sensor_tick(raw, json.dumps({"checksums": {}}), build)
    assert later.skip_reason is not None
    assert _sensor_tick(raw, None, build).skip_reason is not None


def test_nasmr_build_takes_a_relative_dagster_home_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", "dagster")
    _, _, raw = _video_drop(tmp_path, seed=5)
    args = ["build", "--job", "ingest", "--complexity", "analytic"]
    result = CliRunner().invoke(main, [*args, "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"run history: DAGSTER_HOME={tmp_path / 'dagster'} nasmr ui" in result.output
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        [run] = instance.get_runs()
    assert run.job_name == "ingest" and run.is_success


def _assert_release_step_refuses(out: Path, raw: Path, releases: Path, message: str) -> None:
    """The release asset raises ``message`` and publishes nothing after release 1.0.0."""
    resources = {"build_dir": BuildDir(path=str(out)), "raw_drop": RawDrop(path=str(raw))}
    with dg.build_asset_context() as context, pytest.raises(ReleaseError, match=message):
        release(context, release_dir=ReleaseDir(path=str(releases)), **resources)
    assert [m.version for m in list_releases(releases)] == ["1.0.0"]


def test_the_release_step_refuses_a_build_that_lost_a_setting(tmp_path: Path) -> None:
    """cls-10c's file gone from the drop after release 1.0.0: every check passes (a missing
    file is a status), so the release step is what must stop a release without cls-10c."""
    _, records, raw = _video_drop(tmp_path, seed=5)
    cls = pickle.dumps([{**r, "top1": 60.0} for r in records])
    trainval_path(raw, "cls-10c").parent.mkdir(parents=True)
    trainval_path(raw, "cls-10c").write_bytes(cls)
    out, releases = tmp_path / "out", tmp_path / "releases"
    warehouse.ingest(raw, out, method="analytic")
    publish_release(out, releases)
    trainval_path(raw, "cls-10c").unlink()
    warehouse.ingest(raw, out, method="analytic")
    _assert_release_step_refuses(out, raw, releases, r"no results of cls-10c, which release 1\.0")


def test_the_release_step_refuses_a_stale_build_even_when_nothing_changed(tmp_path: Path) -> None:
    """A refresh after the drop changed, without re-ingesting: the build still equals release
    1.0.0, and 'nothing published' would hide that it no longer matches the drop."""
    _, records, raw = _video_drop(tmp_path, seed=5)
    out, releases = tmp_path / "out", tmp_path / "releases"
    warehouse.ingest(raw, out, method="analytic")
    publish_release(out, releases)
    changed = [{**records[0], "top1": 12.5}, *records[1:]]
    trainval_path(raw, "video").write_bytes(pickle.dumps(changed))
    _assert_release_step_refuses(out, raw, releases, r"stale build .*video/trainval\.pkl changed")


def test_a_run_on_a_folder_without_a_build_says_which_job_makes_one(tmp_path: Path) -> None:
    """A refresh scheduled on a fresh clone: the advice is a job, not a CLI option."""
    empty = BuildDir(path=str(tmp_path / "empty"))
    raw = RawDrop(path=str(tmp_path))
    for check in (counts_reconcile, partial(inputs_match_the_drop, raw_drop=raw)):
        with pytest.raises(FileNotFoundError, match="run the build or ingest job first"):
            check(build_dir=empty)


def test_a_refresh_stops_at_its_checks_when_the_drop_changed(tmp_path: Path) -> None:
    """The blocking check names the changed file and the job to run, before any training
    (the release step's refusal came after ten minutes of it)."""
    _, records, raw = _video_drop(tmp_path, seed=5)
    out = tmp_path / "out"
    warehouse.ingest(raw, out, method="analytic")
    resources = {"build_dir": BuildDir(path=str(out)), "raw_drop": RawDrop(path=str(raw))}
    assert inputs_match_the_drop(**resources).passed
    changed = [{**records[0], "top1": 12.5}, *records[1:]]
    trainval_path(raw, "video").write_bytes(pickle.dumps(changed))
    result = inputs_match_the_drop(**resources)
    assert not result.passed and "reingest job" in result.metadata["fix"].value
    assert "video/trainval.pkl | changed since it was ingested" in str(
        result.metadata["offending_rows"].value
    )
    key = inputs_match_the_drop.check_key
    assert key in defs.resolve_job_def("refresh").asset_layer.asset_graph.asset_check_keys


def test_the_drop_check_names_a_file_that_can_no_longer_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file made unreadable after the build raised PermissionError out of the check."""
    _, _, raw = _video_drop(tmp_path, seed=5)
    out = tmp_path / "out"
    warehouse.ingest(raw, out, method="analytic")
    refuse_open(monkeypatch, trainval_path(raw, "video"))
    result = inputs_match_the_drop(
        build_dir=BuildDir(path=str(out)), raw_drop=RawDrop(path=str(raw))
    )
    assert not result.passed
    assert "video/trainval.pkl | can no longer be read" in str(
        result.metadata["offending_rows"].value
    )


def test_a_search_list_that_is_no_file_is_named_not_a_missing_drop(tmp_path: Path) -> None:
    """A directory in place of search_list.txt read 'raw drop not found at ... (no
    data/search_list.txt)'; the drop is found, and reading the list says what is wrong."""
    search_list_path(tmp_path).mkdir(parents=True)
    raw = RawDrop(path=str(tmp_path))
    assert raw.root() == tmp_path
    with pytest.raises(RawDropError, match=r"search_list\.txt: is a directory, not a file"):
        load_architectures(raw.root())


def test_search_evaluation_without_mr_predictors_is_skipped_not_failed(tmp_path: Path) -> None:
    drop = small_drop(tmp_path / "drop", clean_files())
    warehouse.ingest(drop, tmp_path / "build", ingested_at=WHEN)
    stale = tmp_path / "build" / "reports" / "search_report.md"
    stale.parent.mkdir()
    stale.write_text("from an earlier build\n")
    with dg.build_asset_context() as context:
        result = search_evaluation(
            context,
            build_dir=BuildDir(path=str(tmp_path / "build")),
            options=BuildOptions(predictor_settings=["nas-bench-201"]),
        )
    assert result.metadata["skipped"] == "no MR setting among the predictors' settings"
    assert not stale.exists()  # an earlier build's report must not reach the release
