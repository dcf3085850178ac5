"""Releases: publishing a real build, its metadata, immutability, verification, versioning."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import nasmr.release.metadata as metadata_mod
import nasmr.release.publish as publish_mod
from nasmr import __version__, paths, quality
from nasmr.api import Benchmark
from nasmr.paths import ReleaseFolderError, outside_releases
from nasmr.rawdrop import load_pickle, read_search_list, trainval_path
from nasmr.release import (
    NothingToPublish,
    ReleaseError,
    archive_name,
    diff_releases,
    list_releases,
    load_manifest,
    propose_version,
    publish_release,
    published_versions,
    record_changes,
    resolve_release,
    verify_release,
    write_archive,
)
from nasmr.release.metadata import model_output_doc
from nasmr.space import Arch, sample
from nasmr.table_docs import COLUMN_DOCS
from nasmr.warehouse import ingest, warehouse_version, write_parquet, write_warehouse
from pipelines.assets.release import release_verifies
from pipelines.cli import main  # nasmr with its build command
from pipelines.resources import BuildDir, ReleaseDir
from schemas.release import SCHEMA_VERSION, Version
from schemas.settings import MR_SETTINGS
from tests.conftest import RELEASED_AT
from tests.drops import (
    CRASHED_WRITER,
    copy_release,
    det_drop,
    exact,
    mr_record,
    nb201_records,
    write_drop,
)

DATA_FILES = ("parquet/", "nasmr.duckdb", "predictors/", "ncp/", "reports/")


def copy_build(build: Path, target: Path) -> Path:
    """A writable copy of a build's tables and DuckDB file."""
    shutil.copytree(build / "parquet", target / "parquet")
    shutil.copyfile(build / "nasmr.duckdb", target / "nasmr.duckdb")
    return target


def sums(release: Path) -> dict[str, str]:
    lines = (release / "SHA256SUMS").read_text().splitlines()
    return {line[66:]: line[:64] for line in lines}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- manifest and metadata -------------------------------------------------------------------


def test_manifest_describes_the_build_and_its_inputs(releases: Path, raw_dir: Path) -> None:
    manifest = load_manifest(releases / "1.0.0")
    assert manifest.version == "1.0.0" and manifest.previous_version is None
    assert manifest.created_at == RELEASED_AT
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.code_version.package == __version__
    checkout = ["git", "-C", str(paths.REPO_ROOT)]
    head = subprocess.run([*checkout, "rev-parse", "HEAD"], capture_output=True, text=True)
    tracked = [*checkout, "status", "--porcelain", "--untracked-files=no"]
    dirty = bool(subprocess.run(tracked, capture_output=True, text=True, check=True).stdout)
    assert manifest.code_version.git_commit == head.stdout.strip()  # tests run in a checkout
    assert manifest.code_version.git_dirty is dirty

    recorded = {s.path: s.sha256 for s in manifest.sources}
    assert recorded == {
        p: sha256(raw_dir / p)
        for p in [
            "data/search_list.txt",
            *(trainval_path(Path(), s).as_posix() for s in [*MR_SETTINGS, "nas-bench-201"]),
        ]
        if (raw_dir / p).is_file()
    }
    listing = "".join(f"{recorded[p]}  {p}\n" for p in sorted(recorded))
    assert manifest.content_hash == hashlib.sha256(listing.encode()).hexdigest()

    assert manifest.settings_missing == ("3ddet",)
    assert set(manifest.settings_present) == set(MR_SETTINGS) - {"3ddet"} | {"nas-bench-201"}
    evaluated = {tuple(r["embedding"]) for r in load_pickle(trainval_path(raw_dir, "seg"))}
    codes = [line.text for line in read_search_list(raw_dir)]
    expected = [c for c in codes if tuple(Arch.from_code(c).embedding) not in evaluated]
    assert list(manifest.unevaluated_codes) == expected and len(expected) == 4

    assert manifest.row_counts["results"] == 2507 * (2 * 3 + 6 * 2)
    assert manifest.row_counts["architectures"] == 2511
    assert manifest.row_counts["nb201_results"] == 15625
    assert manifest.tables["results"].columns["value"] == "double"
    assert {"results_seg", "unevaluated"} <= set(manifest.views)
    for fact in ("0.0.31", "1x3x128x128", "50 classes", "/ 1e9"):
        assert fact in manifest.flops_convention
    assert manifest.predictor_metrics == () and manifest.extras == ()


def test_an_installed_copy_records_no_git_commit_of_the_repository_around_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nasmr installed inside another project's checkout (a .venv in it) is not that project's
    code: the manifest records no commit rather than the other repository's."""
    git = ["git", "-C", str(tmp_path), "-c", "user.name=u", "-c", "user.email=u@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "another project"], check=True)
    site = tmp_path / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", site)
    version = publish_mod._code_version()
    assert (version.git_commit, version.git_dirty) == (None, None)


def test_sha256sums_cover_every_file_and_the_archive_holds_the_rest(
    releases: Path, tmp_path: Path
) -> None:
    root = releases / "1.0.0"
    listed = sums(root)
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert set(listed) == files - {"SHA256SUMS"}
    assert all(sha256(root / name) == digest for name, digest in listed.items())
    assert all(not (root / name).stat().st_mode & 0o222 for name in files)

    with tarfile.open(root / archive_name("1.0.0")) as tar:
        members = {m.name: m for m in tar.getmembers()}
        inner_sums = tar.extractfile("1.0.0/SHA256SUMS").read().decode()  # type: ignore[union-attr]
        duckdb_bytes = tar.extractfile("1.0.0/nasmr.duckdb").read()  # type: ignore[union-attr]
    assert set(members) == {f"1.0.0/{n}" for n in files - {archive_name("1.0.0")}}
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    outer = (root / "SHA256SUMS").read_text().splitlines()
    assert inner_sums.splitlines() == [line for line in outer if "tar.gz" not in line]
    assert hashlib.sha256(duckdb_bytes).hexdigest() == listed["nasmr.duckdb"]
    with tarfile.open(root / archive_name("1.0.0")) as tar:  # unpacked: a release again
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert [m.version for m in list_releases(tmp_path / "unpacked")] == ["1.0.0"]
    assert verify_release("latest", tmp_path / "unpacked").ok


def test_archive_is_deterministic(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "b").mkdir(parents=True)
    (source / "z.txt").write_text("last")
    (source / "b" / "a.bin").write_bytes(bytes(range(256)))
    write_archive(source, tmp_path / "one.tar.gz", prefix="p")
    (source / "z.txt").touch()
    (source / "b" / "a.bin").chmod(0o600)
    write_archive(source, tmp_path / "two.tar.gz", prefix="p")
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        assert tar.getnames() == ["p/b/a.bin", "p/z.txt"]


def test_datapackage_is_valid_frictionless(releases: Path) -> None:
    """Out of the box: a consumer runs ``frictionless validate`` without options. Tables say
    so to version 1 readers (profile) and version 2 ones (type)."""
    from frictionless import validate

    root = releases / "1.0.0"
    package = json.loads((root / "datapackage.json").read_text())
    assert package["profile"] == "data-package"
    tables = {
        r["name"]: r for r in package["resources"] if r.get("profile") == "tabular-data-resource"
    }
    assert set(tables) == set(load_manifest(root).tables)
    assert {r["name"] for r in package["resources"] if r["type"] == "table"} == set(tables)
    assert tables["results"]["schema"]["primaryKey"] == ["setting", "code", "metric"]
    reference = {"resource": "architectures", "fields": ["code"]}
    for name in ("results", "complexity"):
        keys = tables[name]["schema"]["foreignKeys"]
        assert keys == [{"fields": ["code"], "reference": reference}]
    for table in tables.values():
        assert all(field["description"] for field in table["schema"]["fields"]), table["name"]
    value = next(f for f in tables["results"]["schema"]["fields"] if f["name"] == "value")
    assert "percent" in value["description"]
    for resource in package["resources"]:
        assert resource["hash"] == "sha256:" + sums(root)[resource["path"]]
        # frictionless reads a table through pyarrow, not its byte stream: it would report
        # any declared size as wrong, so tables declare none (plain files do)
        size = None if resource["name"] in tables else (root / resource["path"]).stat().st_size
        assert resource.get("bytes") == size
    # It checks rows in Python (~2 s per 10k): the first 3000 rows of each table cover every
    # row of all but results and nb201_results, whose column types Parquet fixes for every
    # row anyway (their keys are checked in full by the warehouse's rules).
    report = validate(root / "datapackage.json", limit_rows=3000)
    assert report.valid, report.flatten(["resourceName", "type", "note"])[:5]


def test_croissant_is_valid_and_reads_every_table(releases: Path) -> None:
    import mlcroissant as mlc

    root = releases / "1.0.0"
    manifest = load_manifest(root)
    dataset = mlc.Dataset(jsonld=root / "croissant.json")  # raises on a validation error
    metadata = dataset.metadata
    assert not metadata.ctx.issues.errors and not metadata.ctx.issues.warnings
    assert metadata.ctx.conforms_to.value == "http://mlcommons.org/croissant/1.0"
    assert metadata.description == (  # the real drop's, as before it was counted
        "Validated tables of NAS-Bench-MR (Ding et al., ICLR 2022): 2507 multi-resolution "
        "networks evaluated on segmentation, classification and video settings, with exact "
        "FLOPs/params. See README.md (datasheet) and manifest.json."
    )
    assert (metadata.version, metadata.date_published) == ("1.0.0", RELEASED_AT)
    assert metadata.url == "https://github.com/dingmyu/NCP"
    assert "@inproceedings{ding2022learning" in (metadata.cite_as or "")
    assert "@misc{nasmr_release_1_0_0" in (metadata.cite_as or "")  # the data, as released
    package = json.loads((root / "datapackage.json").read_text())
    croissant = json.loads((root / "croissant.json").read_text())
    (licence,) = croissant["license"]
    # not the bare SPDX id: the original README restricts the BSD-2-Clause text to academic use
    assert "name" not in package["licenses"][0] and "BSD-2-Clause" not in licence["name"]
    assert licence["url"] == package["licenses"][0]["path"]
    datasheet = (root / "README.md").read_text()  # clause 2 asks for the notice
    assert "Copyright (c) 2021, Mingyu Ding" in datasheet and "AS IS" in datasheet
    academic = "BSD 2-Clause License for academic use; for commercial use, contact the author"
    assert academic in datasheet and academic in package["licenses"][0]["title"]
    assert academic == licence["name"] and "academic use" in licence["description"]
    assert croissant["description"] == package["description"]

    listed = {d.content_url: d.sha256 for d in metadata.distribution}
    files = [f"parquet/{t}.parquet" for t in manifest.tables] + ["nasmr.duckdb"]
    assert listed == {name: sums(root)[name] for name in files}
    assert "croissant.json" in sums(root)

    record_sets = {r["name"]: r for r in croissant["recordSet"]}
    assert set(record_sets) == set(manifest.tables)
    for table in record_sets:
        fields = fields_of(record_sets, table)
        assert list(fields) == list(manifest.tables[table].columns)
        assert all(field["description"] for field in fields.values()), table
    assert "percent" in fields_of(record_sets, "results")["value"]["description"]
    assert fields_of(record_sets, "results")["value"]["dataType"] == "sc:Float"
    assert fields_of(record_sets, "sources")["ingested_at"]["dataType"] == "sc:DateTime"
    assert [k["@id"] for k in record_sets["results"]["key"]] == [
        "results/setting",
        "results/code",
        "results/metric",
    ]
    for table in ("results", "complexity"):  # the join key, as the Data Package declares it
        reference = fields_of(record_sets, table)["code"]["references"]
        assert reference == {"field": {"@id": "architectures/code"}}
    for table in ("results", "sources", "nb201_results", "architectures"):
        expected = pd.read_parquet(root / "parquet" / f"{table}.parquet").head(5)
        rows = [  # mlcroissant hands text as bytes and names a field <record set>/<column>
            {k.split("/", 1)[1]: v.decode() if isinstance(v, bytes) else v for k, v in r.items()}
            for r in itertools.islice(dataset.records(table), 5)
        ]
        pd.testing.assert_frame_equal(pd.DataFrame(rows), expected, check_dtype=False)


def fields_of(record_sets: dict[str, dict], table: str) -> dict[str, dict]:
    """The Croissant fields of one record set, by column name."""
    return {f["name"]: f for f in record_sets[table]["field"]}


def test_a_column_croissant_1_0_cannot_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "parquet").mkdir()
    pq.write_table(pa.table({"xs": [[1, 2]]}), tmp_path / "parquet" / "t.parquet")
    with pytest.raises(ReleaseError, match=r"t\.xs: Arrow type list<.*> has no Croissant 1\.0"):
        metadata_mod._record_set(tmp_path, "t")


def test_datasheet_has_every_section_gap_and_citation(releases: Path) -> None:
    text = (releases / "1.0.0" / "README.md").read_text()
    for section in (
        "Motivation",
        "Composition",
        "Collection process",
        "Preprocessing",
        "Uses",
        "Distribution",
        "Maintenance",
    ):
        assert f"\n## {section}" in text
    assert "`3ddet` has no results" in text
    unsuited = (
        "Not suited to: latency or energy claims (none were measured), comparisons with FLOPs "
        "counted under another convention, or 3D-detection claims (no results)."
    )
    assert unsuited in text
    assert "ImageNet16-120 network that `Acc` measures; 150 cells carry another cell's" in text
    for row in (  # which data each setting is, not only its task
        "| seg-4x | segmentation | Cityscapes segmentation, the '4x' variant |",
        "| cls-10-1000 | classification | ImageNet subset classification (10 classes x 1000",
        "| video-p | video | HMDB51 video recognition, pretrained variant |",
    ):
        assert row in text
    for code in load_manifest(releases / "1.0.0").unevaluated_codes:
        assert code in text
    # what the drop leaves open or the numbers show, measured on the release's own tables
    assert "seg-4x's mIoU is below seg's for 99.7% of architectures, by 10.38 points" in text
    assert "Distinct values of each primary metric: cls-10-1000 58, cls-10c 509," in text
    assert "The best value is shared by several architectures in: video-p (2)." in text
    assert "@inproceedings{ding2022learning" in text
    assert "Learning Versatile Neural Architectures by Propagating Network Codes" in text
    manifest = load_manifest(releases / "1.0.0")
    commit = manifest.code_version.git_commit or "unknown"
    assert (  # the release itself, named by its manifest's sha256 as SHA256SUMS lists it
        "```bibtex\n@misc{nasmr_release_1_0_0,\n"
        "  author = {{The nasmr project}},\n"
        "  title = {{NAS-Bench-MR, curated: release 1.0.0}},\n"
        f"  year = {{{RELEASED_AT.year}}},\n"
        "  version = {1.0.0},\n"
        f"  howpublished = {{nasmr {manifest.code_version.package} (git commit {commit}), "
        "from the\n"
        "                  NAS-Bench-MR data of Ding et al. (ICLR 2022), "
        "https://github.com/dingmyu/NCP},\n"
        f"  note = {{manifest.json sha256 {sums(releases / '1.0.0')['manifest.json']};\n"
        f"          input content hash {manifest.content_hash}}}\n"
        "}\n```"
    ) in text


def test_the_datasheet_of_a_drop_with_3ddet_results_claims_no_3d_gap(tmp_path: Path) -> None:
    """The authors publishing 3ddet's file: its results are released, yet the datasheet's
    Uses still warned off 3D-detection claims as having no results."""
    raw = det_drop(tmp_path / "raw", sample(3, seed=8))
    ingest(raw, tmp_path / "build", method="analytic")
    published = publish_release(tmp_path / "build", tmp_path / "releases", raw_dir=raw)
    text = (published.path / "README.md").read_text()
    assert "`3ddet` has no results" not in text
    assert "3D-detection" not in text
    unsuited = (
        "Not suited to: latency or energy claims (none were measured) or comparisons with "
        "FLOPs counted under another convention."
    )
    assert unsuited in text  # two reasons are not listed as 'A, or B'
    assert "| 3ddet | 3d-detection | KITTI 3D detection | moderate | ok | 3 | 3 | 0 |" in text


def test_the_metadata_describe_the_networks_and_tasks_the_release_holds(tmp_path: Path) -> None:
    """datapackage.json and croissant.json described every release as '2507 ... networks
    evaluated on segmentation, classification and video settings', whatever its drop held:
    untrue once the authors add architectures or publish 3ddet. A search-list architecture
    without results is no evaluated network (the real drop lists 2511, 4 of them so)."""
    *evaluated, unevaluated = sample(4, seed=8)
    raw = det_drop(tmp_path / "raw", evaluated, det=2)
    with (raw / "data" / "search_list.txt").open("a") as search_list:
        search_list.write(f"{unevaluated.code}\n")
    ingest(raw, tmp_path / "build", method="analytic")
    root = publish_release(tmp_path / "build", tmp_path / "releases", raw_dir=raw).path
    said = "3 multi-resolution networks evaluated on video and 3D-detection settings"
    for name in ("datapackage.json", "croissant.json"):
        assert said in json.loads((root / name).read_text())["description"], name


# -- immutability and atomicity --------------------------------------------------------------


def test_release_folders_are_read_only_and_never_rebuilt(
    releases: Path, raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = releases / "1.0.0"
    assert all(not path.stat().st_mode & 0o222 for path in [published, *published.rglob("*")])
    copy = copy_release(published, tmp_path / "1.0.0")
    monkeypatch.setenv("NASMR_OUT", str(copy))
    monkeypatch.delenv("NASMR_WAREHOUSE", raising=False)
    runner = CliRunner()

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("a command did its work before refusing the release")

    monkeypatch.setattr("nasmr.warehouse.load_architectures", work)
    ingest_into_release = runner.invoke(main, ["ingest", "--raw", str(raw_dir)])
    assert ingest_into_release.exit_code == 1
    assert f"{copy} is a published release" in ingest_into_release.output
    monkeypatch.setattr("nasmr.logs.parse_log_drop", work)
    monkeypatch.setattr("pipelines.run.build_definitions", work)
    build_into_release = runner.invoke(main, ["build", "--job", "ingest"])
    assert build_into_release.exit_code == 1, build_into_release.output
    assert f"{copy} is a published release" in build_into_release.output
    no_logs = tmp_path / "no-logs"
    no_logs.mkdir()
    for logs_command in (["parse"], ["export", "--out", str(copy / "trainval")]):
        into_release = runner.invoke(
            main, ["logs", logs_command[0], str(no_logs), *logs_command[1:]]
        )
        assert into_release.exit_code == 1, into_release.output
        assert f"lies inside the published release {copy}" in into_release.output
    train = ["predictor", "train", "--settings", "seg", "--seeds", "1", "--epochs", "1"]
    train_into_release = runner.invoke(main, train)
    assert train_into_release.exit_code == 1
    assert f"lies inside the published release {copy}" in train_into_release.output
    step = BuildDir(path=str(copy)).replacing("predictors")
    with pytest.raises(ReleaseFolderError, match="releases are immutable"), step:
        pass
    assert verify_release(copy).ok


def test_publishing_an_existing_version_is_refused(build: Path, releases: Path) -> None:
    before = sums(releases / "1.0.0")
    with pytest.raises(ReleaseError, match=r"release 1\.0\.0 already exists.*immutable"):
        publish_release(build, releases, version="1.0.0")
    assert sums(releases / "1.0.0") == before


def test_interrupted_publish_leaves_nothing(
    build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(publish_mod, "write_archive", crash)
    with pytest.raises(OSError, match="disk full"):
        publish_release(build, tmp_path, version="1.0.0")
    assert list(tmp_path.iterdir()) == []
    assert list_releases(tmp_path) == []


def test_stale_build_is_refused(build: Path, tmp_path: Path) -> None:
    fake = tmp_path / "drop"
    for row in pd.read_parquet(build / "parquet" / "sources.parquet").itertuples():
        (fake / row.path).parent.mkdir(parents=True, exist_ok=True)
        (fake / row.path).write_text("not the ingested bytes")
    with pytest.raises(
        ReleaseError, match=r"stale build .*data/cls-10-1000/trainval\.pkl changed"
    ) as e:
        publish_release(build, tmp_path / "releases", raw_dir=fake)
    assert f"if the build was ingested from another drop than {fake}, give that one" in str(e.value)
    assert not (tmp_path / "releases" / "1.0.0").exists()


def test_a_build_that_lacks_an_input_of_the_drop_is_refused(
    build: Path, raw_dir: Path, tmp_path: Path
) -> None:
    """A setting whose file was missing when the build read the drop (3ddet here) and is in
    it now: publishing the build would release a drop without that setting's results."""
    drop = tmp_path / "drop"
    for row in pd.read_parquet(build / "parquet" / "sources.parquet").itertuples():
        (drop / row.path).parent.mkdir(parents=True, exist_ok=True)
        (drop / row.path).symlink_to(raw_dir / row.path)  # the very bytes the build read
    publish_release(build, tmp_path / "releases", raw_dir=drop, version="1.0.0")
    (drop / "data" / "3ddet").mkdir()
    (drop / "data" / "3ddet" / "trainval.pkl").write_bytes(pickle.dumps([]))
    arrived = r"stale build .*3ddet/trainval\.pkl is in the drop but not in the build"
    with pytest.raises(ReleaseError, match=arrived):
        publish_release(build, tmp_path / "releases", raw_dir=drop, version="2.0.0")
    assert [m.version for m in list_releases(tmp_path / "releases")] == ["1.0.0"]


def test_incomplete_build_is_refused(build: Path, tmp_path: Path) -> None:
    partial = copy_build(build, tmp_path / "build")
    (partial / "parquet" / "sources.parquet").unlink()
    with pytest.raises(ReleaseError, match="missing tables in parquet/: sources"):
        publish_release(partial, tmp_path / "releases")


def test_a_build_of_another_table_layout_is_refused(build: Path, tmp_path: Path) -> None:
    """A build made by a nasmr that wrote other columns is named, not a KeyError mid-publish."""
    old = copy_build(build, tmp_path / "build")
    table = old / "parquet" / "nb201_results.parquet"
    write_parquet(pd.read_parquet(table).drop(columns="cost_matches_cell"), table)
    with pytest.raises(ReleaseError, match=r"nb201_results.parquet has columns .*another version"):
        publish_release(old, tmp_path / "releases")


def test_a_build_with_a_crashed_writers_log_is_refused(build: Path, tmp_path: Path) -> None:
    copy = copy_build(build, tmp_path / "build")
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(copy / "nasmr.duckdb")], check=True)
    with pytest.raises(ReleaseError, match=r"did not close.*rebuild the warehouse \(`nasmr ingest"):
        publish_release(copy, tmp_path / "releases")


@pytest.mark.skipif(
    int(duckdb.__version__.split(".")[0]) < 2, reason="DuckDB 1.x writes no later format"
)
def test_a_build_whose_duckdb_file_duckdb_1_cannot_open_is_refused(
    build: Path, tmp_path: Path
) -> None:
    """A build made before the warehouse was written as v1.0.0 holds DuckDB 2's format; the
    refresh job publishes builds without rewriting them."""
    copy = copy_build(build, tmp_path / "build")
    (copy / "nasmr.duckdb").unlink()
    with duckdb.connect(str(copy / "nasmr.duckdb")) as con:  # DuckDB 2's own default format
        con.execute(f"ATTACH '{build / 'nasmr.duckdb'}' AS built (READ_ONLY)")
        con.execute("COPY FROM DATABASE built TO nasmr")
    with pytest.raises(ReleaseError, match=r"storage format v2\.0\.0, which DuckDB 1\.x cannot"):
        publish_release(copy, tmp_path / "releases")
    assert list_releases(tmp_path / "releases") == []


def test_a_build_whose_duckdb_file_was_edited_is_refused(build: Path, tmp_path: Path) -> None:
    """A value changed in the DuckDB file after the build wrote it (a session that ran an
    UPDATE, checkpointed on close) would ship other numbers than the Parquet tables'."""
    copy = copy_build(build, tmp_path / "build")
    with duckdb.connect(str(copy / "nasmr.duckdb")) as con:
        con.execute("UPDATE results SET value = 99.99 WHERE record_index = 10 AND metric = 'mIoU'")
    edited = r"disagrees with parquet/ .*results: 2 row\(s\) only in nasmr.duckdb, 2 only in"
    with pytest.raises(ReleaseError, match=edited):
        publish_release(copy, tmp_path / "releases")
    assert list_releases(tmp_path / "releases") == []


def _comment_acc(build: Path, text: str) -> None:
    with duckdb.connect(str(build / "nasmr.duckdb")) as con:
        con.execute(f"COMMENT ON COLUMN nb201_results.Acc IS '{text}'")


def test_a_build_with_another_nasmrs_descriptions_is_refused(build: Path, tmp_path: Path) -> None:
    """Refresh keeps the warehouse; after an upgrade that reworded a column, its DuckDB
    comments would contradict the metadata files, which this nasmr writes."""
    copy = copy_build(build, tmp_path / "build")
    _comment_acc(copy, "accuracy (an older nasmr wrote this)")
    stale = r"tables_have_this_nasmrs_columns: 1 offending.*'Acc'.*'differs': 'description'"
    with pytest.raises(ReleaseError, match=stale):
        publish_release(copy, tmp_path / "releases")


def test_reworded_descriptions_are_a_patch_release(
    build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A documentation-only change is published as a patch whose changelog names it."""
    copy = copy_build(build, tmp_path / "build")
    releases = tmp_path / "releases"
    publish_release(copy, releases, created_at=RELEASED_AT)
    monkeypatch.setitem(COLUMN_DOCS["nb201_results"], "Acc", "accuracy, reworded")
    rules = [
        quality._layout_rule() if r.name == "tables_have_this_nasmrs_columns" else r
        for r in quality.RULES
    ]
    monkeypatch.setattr(quality, "RULES", tuple(rules))  # the rule reads the docs once
    _comment_acc(copy, "accuracy, reworded")
    version, diff = propose_version(copy, "1.0.0", releases)
    assert version == "1.0.1" and not diff.unchanged
    assert diff.descriptions == ("nb201_results.Acc",)
    publish_release(copy, releases, created_at=RELEASED_AT)
    changelog = (releases / "1.0.1" / "CHANGELOG.md").read_text()
    assert "Descriptions changed: nb201_results.Acc." in changelog
    # a view's own description counts too, as its columns' do
    with duckdb.connect(str(copy / "nasmr.duckdb")) as con:
        con.execute("COMMENT ON VIEW unevaluated IS 'reworded'")
    assert propose_version(copy, "1.0.1", releases)[1].descriptions == ("unevaluated",)


def test_a_build_breaking_a_data_quality_rule_is_refused(tmp_path: Path) -> None:
    """Made without Dagster (``nasmr ingest``), a build whose seg file failed to load is not
    published: the rules the pipeline's blocking checks enforce hold for every build."""
    archs = sample(3, seed=8)
    video = [mr_record(a, *exact(a), top1=50.0, top5=80.0) for a in archs]
    files = {"video": pickle.dumps(video), "seg": b"not a pickle"}
    raw = write_drop(tmp_path / "raw", files, [a.code for a in archs])
    ingest(raw, tmp_path / "build", method="analytic")
    with pytest.raises(ReleaseError, match=r"breaks data-quality rules: counts_reconcile: 1 "):
        publish_release(tmp_path / "build", tmp_path / "releases")
    assert not (tmp_path / "releases").exists()


# -- verification ----------------------------------------------------------------------------


def test_verify_passes_an_intact_release(releases: Path) -> None:
    report = verify_release("1.0.0", releases)
    assert report.ok and report.checked == len(sums(releases / "1.0.0"))
    result = CliRunner().invoke(main, ["release", "verify", "latest", "--releases", str(releases)])
    assert result.exit_code == 0 and "OK" in result.output


@pytest.mark.parametrize("tamper", ["byte", "missing", "extra"])
def test_verify_detects_tampering(releases: Path, tmp_path: Path, tamper: str) -> None:
    copy = copy_release(releases / "1.0.0", tmp_path / "1.0.0")
    if tamper == "byte":
        data = bytearray((copy / "parquet" / "results.parquet").read_bytes())
        data[len(data) // 2] ^= 1
        (copy / "parquet" / "results.parquet").write_bytes(bytes(data))
    elif tamper == "missing":
        (copy / "nasmr.duckdb").unlink()
    else:
        (copy / "parquet" / "extra.parquet").write_bytes(b"PAR1")
    report = verify_release(copy)
    assert not report.ok
    expected = {
        "byte": ("mismatched", "parquet/results.parquet"),
        "missing": ("missing", "nasmr.duckdb"),
        "extra": ("unlisted", "parquet/extra.parquet"),
    }[tamper]
    assert getattr(report, expected[0]) == (expected[1],)
    result = CliRunner().invoke(main, ["release", "verify", str(copy)])
    assert result.exit_code == 1 and expected[1] in result.output
    check = release_verifies(ReleaseDir(path=str(tmp_path)))
    assert not check.passed and check.metadata["offending"].value == 1
    assert expected[1] in check.metadata["offending_rows"].value


def test_release_check_fails_when_nothing_is_published(tmp_path: Path) -> None:
    check = release_verifies(ReleaseDir(path=str(tmp_path)))
    assert not check.passed and "no release" in check.metadata["offending_rows"].value


@pytest.mark.parametrize("lost", ["manifest.json", "SHA256SUMS"])
def test_a_release_that_lost_its_manifest_or_sums_is_still_found(
    releases: Path, tmp_path: Path, lost: str
) -> None:
    """Without its manifest, 1.0.1 vanished: 'latest' fell back to 1.0.0, which verified OK,
    and publishing proposed 1.0.1 again. It is found, and verifying it fails."""
    root = copy_release(releases, tmp_path / "releases")
    (root / "1.0.0" / lost).unlink()
    assert published_versions(root) == [Version.parse("1.0.0")]
    listed = CliRunner().invoke(main, ["release", "list", "--releases", str(root)])
    verified = CliRunner().invoke(main, ["release", "verify", "latest", "--releases", str(root)])
    assert verified.exit_code == 1, verified.output
    if lost == "manifest.json":
        assert listed.exit_code == 1 and "1.0.0    unreadable:" in listed.output
        assert "missing file: manifest.json" in verified.output
    else:
        assert "missing file: SHA256SUMS" in verified.output
    assert not release_verifies(ReleaseDir(path=str(root))).passed
    with pytest.raises(ReleaseFolderError, match="is a published release"):
        outside_releases(root / "1.0.0")


def test_one_of_the_two_files_outside_a_version_folder_is_no_release(
    build: Path, tmp_path: Path
) -> None:
    """A project's own manifest.json, or a user's sha256sum list in a build, made the folder
    (and every folder below it) a release that no build could be written into."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "manifest.json").write_text('{"name": "my-project"}')
    assert outside_releases(project / "build") == project / "build"
    copy = copy_build(build, tmp_path / "build")
    (copy / "SHA256SUMS").write_text(f"{'0' * 64}  nasmr.duckdb\n")
    with Benchmark.open(copy) as bench:
        assert len(bench) > 0 and bench.manifest is None


def test_an_unreadable_manifest_spoils_only_its_own_release(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    """One release's manifest edited or truncated: the others still open, list and verify,
    and that one is named where it is read (verify reports its changed bytes)."""
    root = copy_release(releases, tmp_path / "releases")
    patched = edited_build(build, tmp_path / "patched", "value")
    publish_release(patched, root, created_at=RELEASED_AT)
    (root / "1.0.0" / "manifest.json").write_text("{")
    assert verify_release("1.0.1", root).ok
    assert verify_release("1.0.0", root).mismatched == ("manifest.json",)
    assert resolve_release("latest", root) == root / "1.0.1"
    result = CliRunner().invoke(main, ["release", "list", "--releases", str(root)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert "1.0.0    unreadable:" in result.output and "\n1.0.1    " in result.output
    assert "unreadable manifest in release(s) 1.0.0" in result.output
    with pytest.raises(ReleaseError, match=r"1\.0\.0/manifest\.json: invalid manifest"):
        list_releases(root)


def test_unknown_release_lists_the_published_ones(releases: Path, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"release 9\.9\.9 not found .*published in .*1\.0\.0"):
        verify_release("9.9.9", releases)
    with pytest.raises(ReleaseError, match=r"none\); releases kept elsewhere: set NASMR_RELEASES"):
        resolve_release("latest", tmp_path)


# -- versioning ------------------------------------------------------------------------------


def edited_build(build: Path, target: Path, edit: str) -> Path:
    """A copy of the build with one kind of change to its tables (Parquet and DuckDB alike)."""
    tables = {p.stem: pd.read_parquet(p) for p in (build / "parquet").glob("*.parquet")}
    results = tables["results"]
    if edit == "value":
        row = results.index[(results["setting"] == "video") & (results["metric"] == "top5")][7]
        results.loc[row, "value"] += 0.01
    elif edit == "removed":
        gone = results["code"] == results.loc[results["setting"] == "seg", "code"].iloc[0]
        tables["results"] = results[~(gone & (results["setting"] == "seg"))]
    elif edit == "column":
        tables["complexity"] = tables["complexity"].assign(latency_ms=1.0)
    elif edit == "reason":  # ingest_report.reason reworded (nasmr 0.1's named the drop's path)
        report = tables["ingest_report"]
        report.loc[report["status"] == "missing", "reason"] += " at /somewhere"
    elif edit == "lost":  # video's file gone from the drop
        tables["results"] = results[results["setting"] != "video"]
        report = tables["ingest_report"]
        report.loc[report["setting"] == "video", ["status", "read", "valid"]] = ["missing", 0, 0]
    elif edit == "order":  # lines 0 and 1 of search_list.txt, records 0 and 1 of seg swapped
        archs = tables["architectures"]
        archs.loc[[0, 1], "search_index"] = archs.loc[[1, 0], "search_index"].to_numpy()
        seg = results.index[(results["setting"] == "seg") & (results["record_index"] < 2)]
        results.loc[seg, "record_index"] = 1 - results.loc[seg, "record_index"]
        sources = tables["sources"].assign(ingested_at=pd.Timestamp("2030-01-01", tz="UTC"))
        sources.loc[sources["setting"] == "seg", "sha256"] = "0" * 64
        tables["sources"] = sources
    write_warehouse(tables, target)
    if edit == "model":
        (target / "predictors").mkdir()
        (target / "predictors" / "report.csv").write_text("setting,model\nseg,default\n")
    return target


@pytest.mark.parametrize(
    ("edit", "version", "level", "changes"),
    [
        ("none", "1.0.1", "patch", {}),
        ("value", "1.0.1", "patch", {"video": (0, 0, 1)}),
        ("removed", "1.1.0", "minor", {"seg": (0, 3, 0)}),
        ("column", "2.0.0", "major", {}),
        ("model", "1.0.1", "patch", {}),
        ("order", "1.0.1", "patch", {}),
        ("reason", "1.0.1", "patch", {}),
    ],
)
def test_propose_version_bumps_by_kind_of_change(
    build: Path,
    releases: Path,
    tmp_path: Path,
    edit: str,
    version: str,
    level: str,
    changes: dict[str, tuple[int, int, int]],
) -> None:
    proposed, diff = propose_version(edited_build(build, tmp_path, edit), "1.0.0", releases)
    assert (proposed, diff.level) == (version, level)
    found = {
        s.setting: (s.added, s.removed, s.changed)
        for s in diff.settings
        if s.added or s.removed or s.changed
    }
    assert found == changes
    assert diff.schema_changes == (
        ("column complexity.latency_ms added",) if edit == "column" else ()
    )
    assert diff.model_changes == (("added predictors/report.csv",) if edit == "model" else ())
    assert diff.unchanged == (edit == "none")
    if edit == "model":
        listed = "Model outputs: 1 file(s) differ.\n- added predictors/report.csv"
        assert listed in diff.to_markdown()
    # a reordered drop changes what users read (arch(0), export) without changing a record;
    # when a build ran is no change
    found_tables = {t.table: (t.added, t.removed, t.changed, t.columns) for t in diff.tables}
    assert found_tables == {
        "order": {
            "architectures": (0, 0, 2, ("search_index",)),
            "results": (0, 0, 6, ("record_index",)),
            "sources": (0, 0, 1, ("sha256",)),
        },
        "reason": {"ingest_report": (0, 0, 1, ("reason",))},  # a changed row, not a new one
    }.get(edit, {})
    if edit == "order":
        assert "| architectures | 0 | 0 | 2 | search_index |" in diff.to_markdown()


def test_rows_added_to_a_table_without_records_are_a_minor_change(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    """An input file that appears (3ddet's, holding no record) or a newly quarantined record
    adds rows outside the records: more data, a minor release."""
    copy = copy_build(build, tmp_path / "build")
    path = copy / "parquet" / "sources.parquet"
    sources = pd.read_parquet(path)
    extra = sources.iloc[[0]].assign(setting="3ddet", path="data/3ddet/trainval.pkl")
    write_parquet(pd.concat([sources, extra], ignore_index=True), path)
    path = copy / "parquet" / "quarantine.parquet"
    quarantine = pd.read_parquet(path)
    row = {"setting": "seg", "source_file": "data/seg/trainval.pkl", "record_index": 3}
    row |= {"field": "mIoU", "reason": "not a number"}
    write_parquet(pd.concat([quarantine, pd.DataFrame([row])], ignore_index=True), path)
    version, diff = propose_version(copy, "1.0.0", releases)
    assert (version, diff.level) == ("1.1.0", "minor")
    assert {t.table: (t.added, t.removed, t.changed) for t in diff.tables} == {
        "sources": (1, 0, 0),
        "quarantine": (1, 0, 0),
    }


def test_model_outputs_are_compared_file_by_file(build: Path, tmp_path: Path) -> None:
    first = copy_build(build, tmp_path / "first")
    (first / "predictors").mkdir()
    (first / "predictors" / "seg.json").write_text("{}")
    (first / "predictors" / "video.json").write_text("{}")
    releases = tmp_path / "releases"
    publish_release(first, releases, created_at=RELEASED_AT)
    listed = "Model outputs: 2 file(s) differ.\n- added predictors/seg.json\n"
    assert listed in (releases / "1.0.0" / "CHANGELOG.md").read_text()
    assert propose_version(first, "1.0.0", releases)[1].unchanged
    (first / "predictors" / "seg.json").write_text('{"retrained": true}')
    (first / "predictors" / "video.json").unlink()
    version, diff = propose_version(first, "1.0.0", releases)
    assert version == "1.0.1" and not diff.unchanged
    assert diff.model_changes == ("changed predictors/seg.json", "removed predictors/video.json")


def test_models_trained_on_other_data_are_refused(
    build: Path, raw_dir: Path, tmp_path: Path
) -> None:
    """Predictors trained before the drop changed must not ship with the re-ingested data."""
    drop = Path(shutil.copytree(raw_dir, tmp_path / "drop"))
    out = copy_build(build, tmp_path / "build")
    runner = CliRunner()
    warehouse = ["--warehouse", str(out / "nasmr.duckdb")]
    train = ["predictor", "train", *warehouse, "--out", str(out / "predictors")]
    train += ["--settings", "seg", "--seeds", "1", "--epochs", "1", "--workers", "1"]
    assert runner.invoke(main, train).exit_code == 0
    old = json.loads((out / "predictors" / "seg.json").read_text())["data_version"]

    seg = trainval_path(drop, "seg")
    records = load_pickle(seg)
    records[0]["mIoU"] += 0.01
    seg.write_bytes(pickle.dumps(records))
    assert runner.invoke(main, ["ingest", "--raw", str(drop), *warehouse]).exit_code == 0
    publish = ["release", "publish", "--build", str(out), "--raw", str(drop)]
    publish += ["--releases", str(tmp_path / "releases")]
    refused = runner.invoke(main, publish)
    assert refused.exit_code == 1
    new = warehouse_version(out / "nasmr.duckdb")
    assert f"data version {new}" in refused.output and f"data version {old}:" in refused.output
    assert "predictors/report.md" in refused.output and "predictors/seg.json" in refused.output
    refresh = f"--job refresh --raw {drop} --out {out} --releases {tmp_path / 'releases'}"
    assert f"nasmr build {refresh}`" in refused.output  # the drop and releases of this publish
    assert list_releases(tmp_path / "releases") == []

    assert runner.invoke(main, train).exit_code == 0
    assert runner.invoke(main, publish).exit_code == 0
    manifest = load_manifest(tmp_path / "releases" / "1.0.0")
    card = json.loads((tmp_path / "releases" / "1.0.0" / "predictors" / "seg.json").read_text())
    assert card["data_version"] == new != old
    assert manifest.predictor_metrics


def test_the_data_version_follows_what_models_read_not_only_the_inputs(
    build: Path, tmp_path: Path
) -> None:
    """Another nasmr's ingest rules can quarantine records of the same drop: the inputs'
    hash stays, so predictors trained on the earlier rows passed as current. How complexity
    was counted, which no model reads, leaves the version as it is."""
    copy = copy_build(build, tmp_path / "build")
    before = warehouse_version(copy / "nasmr.duckdb")
    with duckdb.connect(str(copy / "nasmr.duckdb")) as con:
        con.execute("UPDATE complexity SET method = 'module' WHERE method <> 'module'")
    assert warehouse_version(copy / "nasmr.duckdb") == before
    with duckdb.connect(str(copy / "nasmr.duckdb")) as con:
        sources = con.execute("FROM sources ORDER BY path").fetchall()
        seg = "setting = 'seg' AND code = (SELECT min(code) FROM results WHERE setting = 'seg')"
        con.execute(f"DELETE FROM results WHERE {seg}")
        assert con.execute("FROM sources ORDER BY path").fetchall() == sources
    assert warehouse_version(copy / "nasmr.duckdb") != before


def test_searches_run_on_other_data_are_refused(build: Path, tmp_path: Path) -> None:
    """NCP results and the search report hold true metrics of the data they ran on: after a
    re-ingest they are as stale as the predictors, and named as such."""
    copy = copy_build(build, tmp_path / "build")
    current = warehouse_version(copy / "nasmr.duckdb")
    (copy / "ncp").mkdir()
    (copy / "ncp" / "seg_1gflops.json").write_text(json.dumps({"data_version": "old"}))
    (copy / "reports").mkdir()
    (copy / "reports" / "search_report.md").write_text(f"# x\n\nData version `{current}`.\n")
    with pytest.raises(ReleaseError, match=r"data version old: ncp/seg_1gflops\.json\n") as err:
        publish_release(copy, tmp_path / "releases")
    assert "search_report.md" not in str(err.value)  # it records this build's version
    assert "move predictors/, ncp/, reports/ out of the build" in str(err.value)


def test_first_release_is_1_0_0_with_every_table_added(build: Path) -> None:
    version, diff = propose_version(build, None)
    assert version == "1.0.0"
    assert "table results added" in diff.schema_changes
    seg = next(s for s in diff.settings if s.setting == "seg")
    assert (seg.added, seg.removed, seg.changed) == (2507 * 3, 0, 0)


def test_next_release_records_its_changes(build: Path, releases: Path, tmp_path: Path) -> None:
    root = copy_release(releases, tmp_path / "releases")
    patched = edited_build(build, tmp_path / "patched", "value")
    with pytest.raises(ReleaseError, match="already exists"):
        publish_release(patched, root, version="1.0.0")
    published = publish_release(patched, root, created_at=RELEASED_AT)
    new = published.path
    assert new.name == "1.0.1" and load_manifest(new).previous_version == "1.0.0"
    changelog = (new / "CHANGELOG.md").read_text()
    assert changelog.index("## 1.0.1") < changelog.index("## 1.0.0")
    assert "| video | 0 | 0 | 1 |" in changelog
    diff = diff_releases("1.0.0", "1.0.1", root)
    assert diff.level == "patch" and published.diff == diff  # what publish returns is the diff
    assert [Version.parse(m.version) for m in list_releases(root)] == [(1, 0, 0), (1, 0, 1)]

    removed = edited_build(build, tmp_path / "removed", "removed")
    too_low = r"1\.0\.2 is too low.*minor bump \(at least 1\.1\.0\).*, or leave out --version$"
    with pytest.raises(ReleaseError, match=too_low):
        publish_release(removed, root, version="1.0.2")


def test_publishing_on_top_of_a_tampered_release_is_refused(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    """The next version and its changelog are a diff against the latest release: against
    edited files they would record changes nobody made."""
    root = copy_release(releases, tmp_path / "releases")
    table = root / "1.0.0" / "parquet" / "results.parquet"
    write_parquet(pd.read_parquet(table).iloc[1:], table)
    patched = edited_build(build, tmp_path / "patched", "value")
    tampered = r"(?s)release 1\.0\.0 fails verification, so the diff a new release .*mismatch"
    with pytest.raises(ReleaseError, match=tampered):
        publish_release(patched, root)
    assert [m.version for m in list_releases(root)] == ["1.0.0"]


def test_a_build_without_a_setting_of_the_latest_release_needs_a_version(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    """A vanished file would otherwise be released as a minor release without its setting,
    by the pipeline's release step too; given a version, the withdrawal is deliberate."""
    root = copy_release(releases, tmp_path / "releases")
    lost = edited_build(build, tmp_path / "lost", "lost")
    with pytest.raises(ReleaseError, match=r"no results of video, which release 1\.0\.0 has"):
        publish_release(lost, root)
    assert [m.version for m in list_releases(root)] == ["1.0.0"]
    # too low a version: the advice to leave it out led back to the refusal above
    with pytest.raises(ReleaseError, match=r"need a minor bump") as refused:
        publish_release(lost, root, "1.0.1")
    assert str(refused.value).endswith("publish 1.1.0 or higher")
    assert "video" not in load_manifest(publish_release(lost, root, "1.1.0").path).settings_present


def test_a_build_without_the_model_outputs_of_the_latest_release_needs_a_version(
    build: Path, tmp_path: Path
) -> None:
    """A build of the data alone (``nasmr ingest``) would otherwise be published as a patch
    that withdraws the predictors from ``latest``; given a version, that is deliberate. A
    build with fewer model outputs (other options) is published as it is."""
    source = copy_build(build, tmp_path / "build")
    for folder in ("predictors", "ncp"):
        (source / folder).mkdir()
        (source / folder / "seg.safetensors").write_bytes(bytes(range(64)))
    root = tmp_path / "releases"
    publish_release(source, root, created_at=RELEASED_AT)
    alone = copy_build(build, tmp_path / "alone")
    refused = r"alone: no model outputs, and release 1\.0\.0 has predictors/, ncp/ .*`nasmr "
    with pytest.raises(ReleaseError, match=refused + r"build --job refresh "):
        publish_release(alone, root)
    assert [m.version for m in list_releases(root)] == ["1.0.0"]
    shutil.rmtree(source / "ncp")
    assert load_manifest(publish_release(source, root).path).extras == ("predictors",)
    assert load_manifest(publish_release(alone, root, "1.0.2").path).extras == ()


def test_a_version_not_above_the_latest_release_is_refused(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    root = copy_release(releases, tmp_path / "releases")
    publish_release(build, root, version="2.0.0", created_at=RELEASED_AT)
    for low in ("0.9.0", "1.5.0"):
        with pytest.raises(
            ReleaseError,
            match=rf"{low} is too low: the latest release is 2\.0\.0.*at least 2\.0\.1",
        ):
            publish_release(build, root, version=low)
    args = ["--build", str(build), "--version", "0.9.0", "--releases", str(root)]
    refused = CliRunner().invoke(main, ["release", "publish", *args])
    assert refused.exit_code == 1 and "the latest release is 2.0.0" in refused.output
    assert [m.version for m in list_releases(root)] == ["1.0.0", "2.0.0"]


def test_a_version_that_is_not_exactly_major_minor_patch_is_refused(
    build: Path, releases: Path, tmp_path: Path
) -> None:
    """A version read from a file ('2.0.0\\n') once passed, named the folder with its
    newline, and left a release that nothing could open and that blocked the next one."""
    root = copy_release(releases, tmp_path / "releases")
    for text in ("2.0.0\n", " 2.0.0", "2.0", "02.0.0", "2.0.0-rc1", "2\u0661.0.0"):
        with pytest.raises(ValueError, match=r"expected MAJOR\.MINOR\.PATCH"):
            publish_release(build, root, version=text)
        assert not Version.spells(text)
    assert sorted(p.name for p in root.iterdir()) == ["1.0.0"]


def test_same_build_twice_gives_identical_data_files(build: Path, tmp_path: Path) -> None:
    source = copy_build(build, tmp_path / "build")
    (source / "predictors").mkdir()
    (source / "predictors" / "seg-mIoU.safetensors").write_bytes(bytes(range(64)))
    (source / "predictors" / "report.csv").write_text(
        "setting,metric,primary,seeds,kendall_tau,mae\nseg,mIoU,True,5,0.776298630533369,0.71\n"
    )
    (source / "ncp" / "plots").mkdir(parents=True)
    (source / "ncp" / "plots" / "seg.png").write_bytes(b"\x89PNG fake")
    first = publish_release(source, tmp_path / "releases", created_at=RELEASED_AT).path
    with pytest.raises(NothingToPublish, match=r"no data or model output changed since rel") as e:
        publish_release(source, tmp_path / "releases", created_at=RELEASED_AT)
    assert e.value.latest == Version.parse("1.0.0")
    unchanged = r"0\.9\.0 is too low: .* 1\.0\.0, and nothing changed since it.*1\.0\.1 or higher$"
    with pytest.raises(ReleaseError, match=unchanged):  # not "the changes since it need..."
        publish_release(source, tmp_path / "releases", "0.9.0")
    second = publish_release(source, tmp_path / "releases", "1.0.1", created_at=RELEASED_AT).path
    assert (first.name, second.name) == ("1.0.0", "1.0.1")
    data = {n: d for n, d in sums(first).items() if n.startswith(DATA_FILES)}
    assert "ncp/plots/seg.png" in data and "predictors/seg-mIoU.safetensors" in data
    assert data == {n: d for n, d in sums(second).items() if n.startswith(DATA_FILES)}

    manifest = load_manifest(second)
    assert manifest.extras == ("predictors", "ncp")
    row = {"setting": "seg", "metric": "mIoU", "primary": True, "seeds": 5}
    row |= {"kendall_tau": 0.776298630533369, "mae": 0.71}
    assert manifest.predictor_metrics == (row,)
    recorded = json.loads((second / "manifest.json").read_text())["predictor_metrics"]
    assert [{k: type(v) for k, v in r.items()} for r in recorded] == [
        {k: type(v) for k, v in row.items()}
    ]  # a flag stays a boolean and a count an integer, not 1.0 and 5.0
    resources = json.loads((second / "datapackage.json").read_text())["resources"]
    described = {r["path"]: r.get("description") for r in resources}
    assert {"ncp/plots/seg.png", "predictors/report.csv"} <= set(described)
    assert described["predictors/report.csv"] == model_output_doc("predictors/report.csv")
    assert "predictor weights" in described["predictors/seg-mIoU.safetensors"]
    assert "DuckDB" in described["nasmr.duckdb"]
    datasheet = (second / "README.md").read_text()
    assert "| seg | mIoU | True | 5 | 0.776 | 0.71 |" in datasheet
    # a reader can tell what the model outputs are, and match their data version to the data
    outputs = datasheet[datasheet.index("## Model outputs") : datasheet.index("## Distribution")]
    assert "`predictors/*.safetensors`: predictor weights" in outputs
    assert f"`{warehouse_version(second / 'nasmr.duckdb')}`" in outputs


# -- CLI and export --------------------------------------------------------------------------


def test_cli_reads_a_release_by_version(
    releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--release queries what Benchmark.open queries: 'latest', a version or a folder."""
    monkeypatch.setenv("NASMR_RELEASES", str(releases))
    monkeypatch.setenv("NASMR_OUT", str(tmp_path / "no-build"))
    runner = CliRunner()
    query = ["sql", "SELECT count(*) AS n FROM results_seg", "--format", "csv"]
    for ref in ("latest", "1.0.0", str(releases / "1.0.0")):
        result = runner.invoke(main, [*query, "--release", ref])
        assert result.exit_code == 0 and result.output == "n\n2507\n", result.output
    result = runner.invoke(main, [*query, "--release", "9.9.9"])
    assert result.exit_code == 2 and "release 9.9.9 not found" in result.output
    result = runner.invoke(main, [*query, "--release", "latest", "--warehouse", "x.duckdb"])
    assert result.exit_code == 2 and "give --release or --warehouse, not both" in result.output
    predict = ["predict", sample(1, 0)[0].code, "--setting", "seg", "--release", "latest"]
    result = runner.invoke(main, [*predict, "--predictors", str(tmp_path)])
    assert result.exit_code == 2 and "give --release or --predictors, not both" in result.output
    result = runner.invoke(main, predict)  # this release has no predictors: said so, by path
    assert result.exit_code == 1 and str(releases / "1.0.0" / "predictors") in result.output
    assert "a release published without models has none" in result.output
    damaged = copy_release(releases, tmp_path / "damaged")
    (damaged / "1.0.0" / "nasmr.duckdb").write_bytes(b"one byte flipped, or worse")
    result = runner.invoke(main, [*query, "--release", str(damaged / "1.0.0")])
    assert result.exit_code == 1 and "release 1.0.0 fails verification" in result.output
    assert "checksum mismatch: nasmr.duckdb" in result.output  # not its answer to the query
    sums_file = damaged / "1.0.0" / "SHA256SUMS"
    sums_file.write_bytes(b"\xe1" + sums_file.read_bytes()[1:])  # a flipped byte, not UTF-8
    result = runner.invoke(main, [*query, "--release", str(damaged / "1.0.0")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "SHA256SUMS: not a sha256sum list (byte 0 is not UTF-8)" in result.output


def test_cli_search_and_predict_read_the_releases_models_and_warehouse(
    build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--release REF`` stands for --predictors and --warehouse: with no build folder left,
    the release's seg predictor searches its own architectures, and the measured values
    printed are the release's."""
    out = copy_build(build, tmp_path / "build")
    train = ["predictor", "train", "--warehouse", str(out / "nasmr.duckdb"), "--out"]
    train += [str(out / "predictors"), "--settings", "seg", "--seeds", "1", "--epochs", "1"]
    runner = CliRunner()
    trained = runner.invoke(main, [*train, "--workers", "1"])
    assert trained.exit_code == 0, trained.output
    publish_release(out, tmp_path / "releases", created_at=RELEASED_AT)
    shutil.rmtree(out)
    monkeypatch.setenv("NASMR_RELEASES", str(tmp_path / "releases"))
    monkeypatch.setenv("NASMR_OUT", str(tmp_path / "no-build"))
    monkeypatch.delenv("NASMR_WAREHOUSE", raising=False)
    search = ["search", "--setting", "seg", "--steps", "2", "--starts", "3", "--evaluated-only"]
    result = runner.invoke(main, [*search, "--release", "latest"])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    rows = [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]
    with Benchmark.open("latest", tmp_path / "releases") as bench:
        measured = [bench.metric(row["code"], "seg", "mIoU") for row in rows]
    assert len(rows) == 3 and [row["true:seg.mIoU"] for row in rows] == [
        f"{value:.2f}" for value in measured
    ]
    predicted = runner.invoke(
        main, ["predict", rows[0]["code"], "--setting", "seg", "--release", "1.0.0"]
    )
    assert predicted.exit_code == 0, predicted.output
    [miou] = [line for line in predicted.output.splitlines() if line.startswith("seg.mIoU ")]
    assert f"predicted   {measured[0]:.2f} measured (" in miou


def test_record_changes_name_added_removed_and_changed_values_in_setting_order(
    tmp_path: Path,
) -> None:
    """Between releases whose settings differ (3ddet published, an architecture and a
    nas-bench-201 cell dropped, a value corrected): every value is named once, by the kind
    of change, settings in the benchmark's order and then complexity, codes sorted. The CLI
    test's one corrected value could not tell a missing sort or a wrong kind."""
    archs = sample(3, seed=8)
    codes = [a.code for a in archs]
    video = [mr_record(a, *exact(a), top1=50.0 + i, top5=80.0) for i, a in enumerate(archs)]
    cells = nb201_records()

    def release(version: str, files: dict[str, list[dict[str, object]]], kept: list[str]) -> None:
        pickled = {name: pickle.dumps(records) for name, records in files.items()}
        raw = write_drop(tmp_path / f"raw-{version}", pickled, kept)
        ingest(raw, tmp_path / f"build-{version}", method="analytic")
        publish_release(tmp_path / f"build-{version}", tmp_path / "rel", version, raw_dir=raw)

    release("1.0.0", {"video": video, "nas-bench-201": cells}, codes)
    corrected = [dict(video[0], top1=55.5), video[1]]
    det = [mr_record(a, *exact(a), moderate=60.0 + i) for i, a in enumerate(archs[:2])]
    files = {"video": corrected, "3ddet": det, "nas-bench-201": cells[:-1]}
    release("2.0.0", files, codes[:2])

    found = record_changes("1.0.0", "2.0.0", tmp_path / "rel")
    assert list(found.columns) == ["change", "setting", "code", "metric", "old", "new"]
    assert found["setting"].tolist() == (
        ["video"] * 3 + ["3ddet"] * 2 + ["nas-bench-201"] * 3 + ["complexity"] * 4
    )
    by_kind = found.groupby(["setting", "change"]).size().to_dict()
    assert by_kind == {
        ("video", "changed"): 1,
        ("video", "removed"): 2,
        ("3ddet", "added"): 2,
        ("nas-bench-201", "removed"): 3,
        ("complexity", "removed"): 4,
    }
    for setting, rows in found.groupby("setting", sort=False):
        keys = list(zip(rows["code"], rows["metric"], strict=True))
        assert keys == sorted(keys), setting
    changed = found[found["change"] == "changed"].iloc[0]
    assert (changed["code"], changed["metric"], changed["old"], changed["new"]) == (
        codes[0],
        "top1",
        50.0,
        55.5,
    )
    assert found.loc[found["change"] == "added", "old"].isna().all()
    assert found.loc[found["change"] == "removed", "new"].isna().all()
    assert set(found.loc[found["setting"] == "complexity", "code"]) == {codes[2]}
    assert record_changes("2.0.0", "2.0.0", tmp_path / "rel").empty


def test_cli_publish_list_and_diff(build: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    root = ["--releases", str(tmp_path)]
    published = runner.invoke(main, ["release", "publish", "--build", str(build), *root])
    assert published.exit_code == 0, published.output
    assert "published 1.0.0" in published.output
    patched = edited_build(build, tmp_path / "patched", "value")
    again = runner.invoke(main, ["release", "publish", "--build", str(patched), *root])
    assert again.exit_code == 0 and "| video | 0 | 0 | 1 |" in again.output
    refused = runner.invoke(
        main, ["release", "publish", "--build", str(build), "--version", "1.0.1", *root]
    )
    assert refused.exit_code == 1 and "already exists" in refused.output
    listed = runner.invoke(main, ["release", "list", *root])
    assert [line.split()[0] for line in listed.output.splitlines()[1:]] == ["1.0.0", "1.0.1"]
    diff = runner.invoke(main, ["release", "diff", "1.0.0", "latest", *root])
    assert diff.exit_code == 0 and "patch changes" in diff.output
    # which values a correction changed, not only how many (the counts could not say)
    records = runner.invoke(main, ["release", "diff", "1.0.0", "latest", "--records", *root])
    assert records.exit_code == 0, records.output
    found = pd.read_csv(io.StringIO(records.output))
    results = pd.read_parquet(build / "parquet" / "results.parquet")
    row = results[(results["setting"] == "video") & (results["metric"] == "top5")].iloc[7]
    assert found[["change", "setting", "code", "metric"]].values.tolist() == [
        ["changed", "video", row["code"], "top5"]
    ]
    assert found["old"].tolist() == [row["value"]]
    assert found["new"].tolist() == pytest.approx([row["value"] + 0.01])
    table = tmp_path / "1.0.0" / "parquet" / "results.parquet"
    table.chmod(0o644)
    table.write_bytes(table.read_bytes() + b"x")  # pyarrow's error used to be the answer
    damaged = runner.invoke(main, ["release", "diff", "1.0.0", "latest", *root])
    assert damaged.exit_code == 1 and isinstance(damaged.exception, SystemExit)
    assert "release 1.0.0 fails verification, so a diff with it would report" in damaged.output
    assert "checksum mismatch: parquet/results.parquet" in damaged.output


def test_export_refuses_to_write_into_a_release(releases: Path, tmp_path: Path) -> None:
    """Root passes the read-only modes: the export must not add files to a release."""
    root = copy_release(releases, tmp_path / "releases")
    args = ["export", "trainval", "--release", "1.0.0", "--releases", str(root), "--out"]
    inside = CliRunner().invoke(main, [*args, str(root / "1.0.0" / "x")])
    assert inside.exit_code == 1 and "lies inside the published release" in inside.output
    assert "export elsewhere (--out)" in inside.output and "release publish" not in inside.output
    assert verify_release("1.0.0", root).ok
    (tmp_path / "afile").write_text("")
    blocked = CliRunner().invoke(main, [*args, str(tmp_path / "afile" / "sub")])
    assert blocked.exit_code == 1 and isinstance(blocked.exception, SystemExit)
    assert "afile" in blocked.output


def test_export_refuses_a_damaged_release_or_warehouse(releases: Path, tmp_path: Path) -> None:
    """A tampered release is not exported as if published; a DuckDB file that cannot be read
    (truncated, or locked by a writer) is an error message, not a traceback."""
    root = copy_release(releases, tmp_path / "releases")
    table = root / "1.0.0" / "parquet" / "results.parquet"
    table.write_bytes(table.read_bytes() + b"x")
    args = ["export", "trainval", "--releases", str(root), "--out", str(tmp_path / "out")]
    tampered = CliRunner().invoke(main, [*args, "--release", "1.0.0"])
    assert tampered.exit_code == 1 and isinstance(tampered.exception, SystemExit)
    assert "release 1.0.0 fails verification, so what is read from it" in tampered.output
    assert not (tmp_path / "out").exists()
    (root / "1.0.0" / "nasmr.duckdb").write_bytes(b"truncated")  # checked before it is read
    damaged = CliRunner().invoke(main, [*args, "--release", "latest"])
    assert "checksum mismatch: nasmr.duckdb" in damaged.output, damaged.output
    build = tmp_path / "build"
    build.mkdir()
    (build / "nasmr.duckdb").write_bytes((releases / "1.0.0" / "nasmr.duckdb").read_bytes()[:20000])
    truncated = CliRunner().invoke(main, [*args, "--release", str(build)])
    assert truncated.exit_code == 1 and isinstance(truncated.exception, SystemExit)
    assert "Error: " in truncated.output and "nasmr.duckdb" in truncated.output


def test_export_trainval_round_trips_through_ingest(releases: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(
        main,
        [
            "export",
            "trainval",
            "--release",
            "1.0.0",
            "--out",
            str(out),
            "--releases",
            str(releases),
        ],
    )
    assert result.exit_code == 0, result.output
    inputs = {s.path: s.sha256 for s in load_manifest(releases / "1.0.0").sources}
    exported = {p.relative_to(out).as_posix(): sha256(p) for p in out.rglob("*") if p.is_file()}
    assert exported == inputs  # every input file of the drop, byte for byte
    rebuilt = ingest(out, tmp_path / "rebuilt", method="analytic")
    for table in ("ingest_report", "quarantine", "nb201_results"):
        released = pd.read_parquet(releases / "1.0.0" / "parquet" / f"{table}.parquet")
        pd.testing.assert_frame_equal(rebuilt.tables[table], released, obj=table)
    published = pd.read_parquet(releases / "1.0.0" / "parquet" / "results.parquet")
    pd.testing.assert_frame_equal(rebuilt.tables["results"], published)
    architectures = pd.read_parquet(releases / "1.0.0" / "parquet" / "architectures.parquet")
    pd.testing.assert_frame_equal(rebuilt.tables["architectures"], architectures)
    complexity = pd.read_parquet(releases / "1.0.0" / "parquet" / "complexity.parquet")
    pd.testing.assert_frame_equal(rebuilt.tables["complexity"], complexity)
