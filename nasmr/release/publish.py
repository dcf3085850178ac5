"""Publishing a build as an immutable release: the checks it must pass, then every file
written into a temporary folder and renamed into place."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from nasmr import __version__, clock, paths
from nasmr.checksums import content_hash, sha256_file
from nasmr.quality import broken_rules
from nasmr.release.diff import ReleaseDiff, propose_version
from nasmr.release.metadata import changelog, croissant, datapackage, datasheet
from nasmr.release.store import (
    CHANGELOG,
    CROISSANT,
    DATAPACKAGE,
    DATASHEET,
    EXTRA_DIRS,
    MANIFEST,
    SUMS,
    ReleaseError,
    archive_name,
    load_manifest,
    model_files,
    published_versions,
    read_table,
    relative_files,
    require_verified,
    table_schemas,
)
from nasmr.table_docs import COLUMN_DOCS, TABLE_DOCS
from nasmr.warehouse import (
    PARQUET_DIR,
    STORAGE_FORMAT,
    WAREHOUSE_NAME,
    compare_inputs,
    connect,
    sql_identifier,
    storage_format,
    wal_path,
    warehouse_version,
    writer_pid,
)
from schemas.release import (
    FLOPS_CONVENTION,
    SCHEMA_VERSION,
    CodeVersion,
    FileDigest,
    ReleaseManifest,
    TableInfo,
    Version,
)

PREDICTOR_REPORT = "predictors/report.csv"

DATA_VERSION_LINE = re.compile(r"^Data version `([^`]+)`", re.MULTILINE)
"""How a markdown model output records its data version (``predictors/report.md``)."""


def check_publishable(
    build_dir: Path, releases_dir: Path, raw_dir: Path | None = None
) -> Version | None:
    """Refuse what no release may come from; return the latest release's version, if any.

    Refused: an incomplete build, broken data-quality rules, model outputs of other data,
    with ``raw_dir`` a build whose inputs changed since it was made, and a latest release
    that fails verification (the version and changelog are a diff against it).
    """
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    _check_build(build_dir)
    _check_rules(build_dir)
    _check_model_outputs(build_dir, releases_dir, raw_dir)
    if raw_dir is not None:
        _check_sources(build_dir, Path(raw_dir))
    published = published_versions(releases_dir)
    previous = published[-1] if published else None
    if previous is not None:
        why = "the diff a new release starts from cannot be trusted"
        require_verified(releases_dir / str(previous), why)
    return previous


class NothingToPublish(ReleaseError):
    """The build's data and model outputs are the latest release's (``latest``)."""

    def __init__(self, message: str, latest: Version) -> None:
        super().__init__(message)
        self.latest = latest


@dataclass(frozen=True)
class Publication:
    """A published release's folder and what changed since the release before it."""

    path: Path
    diff: ReleaseDiff


def publish_release(
    build_dir: Path,
    releases_dir: Path,
    version: str | None = None,
    raw_dir: Path | None = None,
    created_at: datetime | None = None,
) -> Publication:
    """Publish a build as ``releases_dir/<version>/``; return that folder and its diff.

    ``version`` defaults to :func:`propose_version` against the latest release. A
    given version must not exist and must be at least that proposal, so versions
    only grow; with no release yet any version is accepted (a first release may be
    0.1.0). With ``raw_dir`` the build's recorded input checksums are re-checked
    against the drop (a stale build is refused). The latest release must verify, since
    the version and changelog are a diff against it. Without a version, a build that has
    no results of a setting the latest release has is refused: a file gone from the
    drop is more likely an accident than a setting withdrawn on purpose. So is a build
    with no model outputs when the latest release has some (a build of the data alone),
    and one whose data and model outputs are the latest release's (:class:`NothingToPublish`).
    """
    build_dir, releases_dir = Path(build_dir), Path(releases_dir)
    previous = check_publishable(build_dir, releases_dir, raw_dir)
    published = published_versions(releases_dir)
    if version is None and previous is not None:  # before the diff: quick refusals
        _check_settings_kept(build_dir, releases_dir / str(previous))
        _check_models_kept(build_dir, releases_dir, previous, raw_dir)
    proposed, diff = propose_version(build_dir, _ref(previous), releases_dir)
    if version is None and previous is not None and diff.unchanged:
        raise NothingToPublish(
            f"{build_dir}: no data or model output changed since release {previous}, so "
            "there is nothing to publish; give a version to publish it anyway",
            previous,
        )
    if version is None:
        version = proposed
    elif Version.parse(version) in published:
        raise ReleaseError(
            f"release {version} already exists in {releases_dir}; releases are immutable, "
            "publish a new version"
        )
    elif previous is not None and Version.parse(version) < Version.parse(proposed):
        need = (
            "nothing changed since it, and a version must still be above it"
            if diff.unchanged
            else f"the changes since it need a {diff.level} bump"
        )
        raise ReleaseError(
            f"version {version} is too low: the latest release is {previous}, and {need} "
            f"(at least {proposed}); publish {proposed} or higher"
            + (
                ", or leave out --version"
                if not diff.unchanged and _publishes_unversioned(build_dir, releases_dir, raw_dir)
                else ""
            )
        )
    target = releases_dir / version
    if target.exists():
        raise ReleaseError(f"{target} already exists; releases are immutable")
    releases_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".publishing-{version}-", dir=releases_dir))
    try:
        previous_dir = releases_dir / str(previous) if previous is not None else None
        _write_release(staging, build_dir, version, previous_dir, diff, created_at)
        os.rename(staging, target)
    except OSError as err:
        _discard(staging)
        if target.exists():
            raise ReleaseError(f"{target} appeared while publishing; not overwritten") from err
        raise
    except BaseException:
        _discard(staging)
        raise
    return Publication(target, diff)


def _discard(folder: Path) -> None:
    """Delete an unfinished release, read-only folders included (best effort: the error that
    stopped the publish is the one to report)."""
    with contextlib.suppress(OSError):
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _ref(version: Version | None) -> str | None:
    return None if version is None else str(version)


def _check_build(build_dir: Path) -> None:
    """A build must hold every warehouse table as Parquet and a checkpointed DuckDB file that
    no process is writing."""
    missing = [t for t in TABLE_DOCS if not (build_dir / PARQUET_DIR / f"{t}.parquet").is_file()]
    if missing:
        raise ReleaseError(
            f"{build_dir}: not a complete build, missing tables in {PARQUET_DIR}/: "
            + ", ".join(missing)
        )
    for table, docs in COLUMN_DOCS.items():
        columns = pq.read_schema(build_dir / PARQUET_DIR / f"{table}.parquet").names
        if columns != list(docs):
            raise ReleaseError(
                f"{build_dir}: {PARQUET_DIR}/{table}.parquet has columns {columns}, this nasmr "
                f"writes {list(docs)}: the build was made by another version; rebuild it "
                "(`nasmr build`, or `nasmr ingest` for the data alone)"
            )
    database = build_dir / WAREHOUSE_NAME
    if not database.is_file():
        raise ReleaseError(f"{build_dir}: not a complete build, {WAREHOUSE_NAME} is missing")
    holder = writer_pid(database)
    if holder is not None:
        raise ReleaseError(f"{database}: open for writing by process {holder}; close it first")
    if wal_path(database).exists():
        raise ReleaseError(
            f"{database}: has the write-ahead log of a read-write session that did not close, "
            "with changes that are not in parquet/; rebuild the warehouse (`nasmr ingest "
            f"--warehouse {database}`) before publishing"
        )
    written_as = storage_format(database)
    if written_as not in (None, STORAGE_FORMAT):
        raise ReleaseError(
            f"{database}: DuckDB storage format {written_as}, which DuckDB 1.x cannot open; "
            f"releases ship {STORAGE_FORMAT}: rebuild the warehouse (`nasmr ingest --warehouse "
            f"{database}`, or `nasmr build`) before publishing"
        )


def _check_rules(build_dir: Path) -> None:
    """A build must keep every data-quality rule, also when it was not made by Dagster."""
    with connect(build_dir / WAREHOUSE_NAME) as con:
        broken = broken_rules(con)
    if broken:
        found = "; ".join(
            f"{name}: {len(rows)} offending row(s), first {rows.iloc[0].to_dict()}"
            for name, rows in broken.items()
        )
        raise ReleaseError(f"{build_dir / WAREHOUSE_NAME}: breaks data-quality rules: {found}")


def _settings_present(root: Path) -> tuple[str, ...]:
    """The settings whose results file a build or release loaded (``ingest_report``)."""
    report = read_table(root, "ingest_report").dropna(subset=["setting"])
    return tuple(report.loc[report["status"] == "ok", "setting"])


def _check_settings_kept(build_dir: Path, previous: Path) -> None:
    """The build has results of every setting the ``previous`` release has."""
    kept = set(_settings_present(build_dir))
    lost = [s for s in load_manifest(previous).settings_present if s not in kept]
    if lost:
        raise ReleaseError(
            f"{build_dir}: no results of {', '.join(lost)}, which release {previous.name} "
            "has (its file missing from the drop, or unreadable: see the build's "
            "ingest_report); mend the drop and rebuild, or give a version to publish a "
            "release without them"
        )


def _publishes_unversioned(build_dir: Path, releases_dir: Path, raw_dir: Path | None) -> bool:
    """Whether the build passes the checks a publish without a version adds (no setting and
    no model outputs of the latest release lost), so that leaving out the version works."""
    previous = published_versions(releases_dir)[-1]
    try:
        _check_settings_kept(build_dir, releases_dir / str(previous))
        _check_models_kept(build_dir, releases_dir, previous, raw_dir)
    except ReleaseError:
        return False
    return True


def _check_models_kept(
    build_dir: Path, releases_dir: Path, previous: Version, raw_dir: Path | None
) -> None:
    """The build has model outputs (``predictors/``, ``ncp/``, ``reports/``) if the
    ``previous`` release has some: a build of the data alone would withdraw them as a patch.
    One with fewer of them (other predictor settings, say) is a build's deliberate choice."""
    had = _model_folders(releases_dir / str(previous))
    if had and not _model_folders(build_dir):
        raise ReleaseError(
            f"{build_dir}: no model outputs, and release {previous} has "
            f"{', '.join(f'{name}/' for name in EXTRA_DIRS if name in had)} (a build of the "
            "data alone, as `nasmr ingest` makes); train and "
            f"publish them with `{_refresh_command(build_dir, releases_dir, raw_dir)}`, "
            "or give a version to publish a release without them"
        )


def _model_folders(root: Path) -> set[str]:
    """The model-output folders of a build or release that hold at least one file."""
    return {rel.split("/", 1)[0] for rel in model_files(root)}


def _refresh_command(build_dir: Path, releases_dir: Path, raw_dir: Path | None) -> str:
    """The command that trains a build's model outputs again, then publishes it."""
    raw = f" --raw {raw_dir}" if raw_dir is not None else ""
    return f"nasmr build --job refresh{raw} --out {build_dir} --releases {releases_dir}"


def _sources(root: Path) -> tuple[FileDigest, ...]:
    """The input files a build or release was made from (its ``sources`` table)."""
    return tuple(
        FileDigest(path=row.path, bytes=row.bytes, sha256=row.sha256)
        for row in read_table(root, "sources").itertuples(index=False)
    )


def _recorded_data_versions(root: Path) -> dict[str, str]:
    """Relative path -> data version of each model output that records one: JSON with a
    ``data_version`` (predictor cards) or markdown with a ``DATA_VERSION_LINE`` (reports)."""
    found = {}
    for rel in model_files(root):
        path = root / rel
        version = None
        if path.suffix == ".json":
            try:
                data = json.loads(path.read_bytes())
            except ValueError:
                continue
            version = data.get("data_version") if isinstance(data, dict) else None
        elif path.suffix == ".md":
            match = DATA_VERSION_LINE.search(path.read_text(errors="replace"))
            version = match.group(1) if match else None
        if isinstance(version, str):
            found[rel] = version
    return found


def _check_model_outputs(build_dir: Path, releases_dir: Path, raw_dir: Path | None) -> None:
    """Model outputs recording a data version (predictor cards and report, NCP search
    cards, the search report) must record the build's: a predictor trained, or a search
    run, before the drop changed must not ship with the new data."""
    current = warehouse_version(build_dir / WAREHOUSE_NAME)  # what stamped the cards
    stale: dict[str, list[str]] = {}
    for rel, version in _recorded_data_versions(build_dir).items():
        if version != current:
            stale.setdefault(version, []).append(rel)
    if stale:
        listing = "\n".join(
            f"  made from data version {version}: {', '.join(files)}"
            for version, files in sorted(stale.items())
        )
        refresh = _refresh_command(build_dir, releases_dir, raw_dir)
        raise ReleaseError(
            f"{build_dir}: model outputs made from other data than the build's "
            f"(data version {current}):\n{listing}\n"
            f"Retrain them on this build: `{refresh}` "
            "(predictors, NCP, reports, then the release); or move "
            f"{', '.join(f'{name}/' for name in EXTRA_DIRS)} out of the build to publish its "
            "data alone."
        )


def _check_sources(build_dir: Path, raw_dir: Path) -> None:
    """Every input file recorded in the build's ``sources`` table still has its checksum, and
    the drop has no input the build lacks (a setting's file missing when it was built)."""
    stale = compare_inputs(build_dir, raw_dir).dropna(subset=["problem"])
    if not stale.empty:
        path, problem = stale.iloc[0]
        other = (
            f" (if the build was ingested from another drop than {raw_dir}, give that one: --raw)"
        )
        advice = "" if "not in the build" in problem else other
        raise ReleaseError(f"stale build {build_dir}: input {raw_dir / path} {problem}{advice}")


def _write_release(
    root: Path,
    build_dir: Path,
    version: str,
    previous: Path | None,
    diff: ReleaseDiff,
    created_at: datetime | None,
) -> None:
    """Write every file of a release into the (empty) folder ``root``."""
    (root / PARQUET_DIR).mkdir()
    for path in sorted((build_dir / PARQUET_DIR).glob("*.parquet")):
        shutil.copyfile(path, root / PARQUET_DIR / path.name)
    shutil.copyfile(build_dir / WAREHOUSE_NAME, root / WAREHOUSE_NAME)
    extras = tuple(name for name in EXTRA_DIRS if (build_dir / name).is_dir())
    for name in extras:
        shutil.copytree(build_dir / name, root / name, copy_function=shutil.copyfile)
    views = _check_database(root, build_dir)
    manifest = _manifest(root, version, previous, created_at, views, extras)
    (root / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    (root / CHANGELOG).write_text(changelog(manifest, diff, previous))
    (root / DATASHEET).write_text(datasheet(root, manifest))
    (root / DATAPACKAGE).write_text(json.dumps(datapackage(root, manifest), indent=2) + "\n")
    (root / CROISSANT).write_text(json.dumps(croissant(root, manifest), indent=2) + "\n")
    _write_sums(root, relative_files(root))
    archive = root / archive_name(version)
    write_archive(root, archive, prefix=version)  # unpacked into a releases folder, a release
    _write_sums(root, relative_files(root))
    for path in root.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o555)
    root.chmod(0o555)


def _check_database(root: Path, build_dir: Path) -> tuple[str, ...]:
    """The DuckDB file copied into ``root`` must hold exactly the Parquet tables, row for row
    and value for value (a build's file edited after it was written is refused), and no
    file reader.

    Returns the names of its views.
    """
    parquet = {p.stem: p for p in (root / PARQUET_DIR).glob("*.parquet")}
    with duckdb.connect(str(root / WAREHOUSE_NAME), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal")
        names = sorted(name for (name,) in tables.fetchall())
        if names != sorted(parquet):
            raise ReleaseError(
                f"{WAREHOUSE_NAME} disagrees with {PARQUET_DIR}/: DuckDB tables {names}, "
                f"Parquet tables {sorted(parquet)}"
            )
        differ = []
        for name in names:
            table, path = sql_identifier(name), [parquet[name].as_posix()]
            only = [
                con.execute(f"SELECT count(*) FROM ({query})", path).fetchone()[0]  # type: ignore[index]
                for query in (
                    f"FROM {table} EXCEPT ALL FROM read_parquet(?)",
                    f"FROM read_parquet(?) EXCEPT ALL FROM {table}",
                )
            ]
            if any(only):
                differ.append(
                    f"{name}: {only[0]} row(s) only in {WAREHOUSE_NAME}, {only[1]} only in "
                    f"{PARQUET_DIR}/{name}.parquet"
                )
        views = con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
        ).fetchall()
    if differ:
        raise ReleaseError(
            f"{build_dir / WAREHOUSE_NAME} disagrees with {PARQUET_DIR}/ beside it, edited "
            f"since the build wrote them? ({'; '.join(differ)}); rebuild the warehouse: "
            f"`nasmr ingest --warehouse {build_dir / WAREHOUSE_NAME}`"
        )
    for name, sql in views:
        if any(reader in sql.lower() for reader in ("read_parquet", "read_csv", "read_json")):
            raise ReleaseError(f"{WAREHOUSE_NAME}: view {name} reads files, not self-contained")
    return tuple(name for name, _ in views)


def _code_version() -> CodeVersion:
    """The package version, plus the git commit and dirtiness when run from a checkout of nasmr
    (not from an installed copy inside some other repository)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(paths.REPO_ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
                env=env,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    top = git("rev-parse", "--show-toplevel")
    checkout = top is not None and Path(top).resolve() == paths.REPO_ROOT.resolve()
    commit = git("rev-parse", "HEAD") if checkout else None
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return CodeVersion(
        package=__version__,
        git_commit=commit or None,
        git_dirty=None if status is None else bool(status),
    )


def _predictor_metrics(root: Path) -> tuple[dict[str, str | bool | int | float | None], ...]:
    """The rows of ``predictors/report.csv``, when the build trained predictors."""
    path = root / PREDICTOR_REPORT
    if not path.is_file():
        return ()
    frame = pd.read_csv(path)
    return tuple(
        {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    )


def _manifest(
    root: Path,
    version: str,
    previous: Path | None,
    created_at: datetime | None,
    views: tuple[str, ...],
    extras: tuple[str, ...],
) -> ReleaseManifest:
    """``manifest.json`` of the release being written in ``root``: provenance (inputs, code),
    contents (settings, tables, views, model outputs) and the FLOPs convention."""
    sources = _sources(root)
    report = read_table(root, "ingest_report").dropna(subset=["setting"])
    present = _settings_present(root)
    architectures = read_table(root, "architectures")
    unevaluated = architectures.loc[~architectures["evaluated"]].sort_values("search_index")
    tables = {
        name: TableInfo(rows=pq.read_metadata(path).num_rows, columns=columns)
        for name, columns in table_schemas(root).items()
        for path in [root / PARQUET_DIR / f"{name}.parquet"]
    }
    when = (created_at or clock.now()).astimezone(UTC).replace(microsecond=0)
    return ReleaseManifest(
        version=version,
        previous_version=load_manifest(previous).version if previous is not None else None,
        created_at=when,
        schema_version=SCHEMA_VERSION,
        code_version=_code_version(),
        content_hash=content_hash((s.path, s.sha256) for s in sources),
        sources=sources,
        settings_present=present,
        settings_missing=tuple(s for s in report["setting"] if s not in present),
        unevaluated_codes=tuple(unevaluated["code"]),
        tables=tables,
        views=views,
        flops_convention=FLOPS_CONVENTION,
        predictor_metrics=_predictor_metrics(root),
        extras=extras,
    )


def _write_sums(root: Path, names: Iterable[str]) -> None:
    """Write ``SHA256SUMS`` (sha256sum format) for ``names``, relative to ``root``."""
    lines = [f"{sha256_file(root / n)}  {n}\n" for n in names if n != SUMS]
    (root / SUMS).write_text("".join(lines))


def write_archive(source: Path, target: Path, prefix: str) -> None:
    """Pack every file under ``source`` into a gzip tarball, byte-identical for identical files.

    Entries are sorted, stored under ``prefix/``, with mtime 0, uid/gid 0, no
    owner names and mode 0644; the gzip header carries no name and no time.
    """
    names = [n for n in relative_files(source) if (source / n) != target]
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = (source / name).stat().st_size
            info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
            info.uname = info.gname = ""
            with (source / name).open("rb") as handle:
                tar.addfile(info, handle)
