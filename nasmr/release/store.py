"""Release folders: the names of their files, finding them, reading their tables, verifying
their checksums."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from nasmr import paths
from nasmr.checksums import sha256_file
from nasmr.warehouse import PARQUET_DIR
from schemas.release import ReleaseManifest, Version

MANIFEST = paths.RELEASE_MANIFEST
SUMS = paths.RELEASE_SUMS
DATASHEET = "README.md"
CHANGELOG = "CHANGELOG.md"
DATAPACKAGE = "datapackage.json"
CROISSANT = "croissant.json"
EXTRA_DIRS = ("predictors", "ncp", "reports")
LATEST = "latest"
COMPLEXITY = "complexity"
RECORD_KEY = ("setting", "code", "metric")

PRIMARY_KEYS: dict[str, list[str]] = {
    "architectures": ["code"],
    "results": list(RECORD_KEY),
    "complexity": ["code"],
    "sources": ["path"],
    "ingest_report": ["source_file"],
    "nb201_results": ["ops"],
}
"""Columns that identify a row of each keyed table (the Data Package declares them)."""


class ReleaseError(Exception):
    """A release cannot be published, found or read; the message says which and why."""


def archive_name(version: str) -> str:
    """File name of a release's archive."""
    return f"nasmr-{version}.tar.gz"


def load_manifest(release_dir: Path) -> ReleaseManifest:
    """The manifest of the release in ``release_dir``."""
    path = Path(release_dir) / MANIFEST
    if not path.is_file():
        raise ReleaseError(f"{release_dir}: not a release (no {MANIFEST})")
    try:
        return ReleaseManifest.model_validate_json(path.read_text())
    except ValueError as err:
        raise ReleaseError(f"{path}: invalid manifest ({err})") from err


def published_versions(releases_dir: Path | None = None) -> list[Version]:
    """Versions of the release folders (named as a version, see :func:`paths.holds_release`),
    lowest first; temporary ``.publishing-*`` folders are no version. No manifest is read,
    so one unreadable manifest does not hide the other releases."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    if not root.is_dir():
        return []
    return sorted(
        Version.parse(child.name)
        for child in root.iterdir()
        if Version.spells(child.name) and paths.holds_release(child)
    )


def list_releases(releases_dir: Path | None = None) -> list[ReleaseManifest]:
    """Manifests of the published releases, lowest version first; an unreadable one raises
    :class:`ReleaseError` naming its file."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    return [load_manifest(root / str(version)) for version in published_versions(root)]


def resolve_release(ref: str | Path, releases_dir: Path | None = None) -> Path:
    """The folder of a release given ``'latest'``, a version, or a path to a release folder
    (a ``Path`` is always a folder; see :func:`names_a_release`)."""
    root = Path(releases_dir) if releases_dir is not None else paths.releases_dir()
    published = [str(version) for version in published_versions(root)]
    choices = f"published in {root}: {', '.join(published) or 'none'}"
    if not names_a_release(ref):
        if paths.holds_release(Path(ref)):
            return Path(ref)
        if Path(ref).is_file():
            where = Path(ref).parent
            raise ReleaseError(
                f"{ref} is a file: open the folder holding it (a build or release), {where}"
            )
        raise ReleaseError(f"{ref}: neither 'latest', a version nor a release folder ({choices})")
    if Path(ref).is_dir():
        choices += f"; for the folder {ref} here, give ./{ref}"
    if ref == LATEST:
        if not published:
            raise ReleaseError(
                f"no release published yet ({choices}); releases kept elsewhere: set "
                "NASMR_RELEASES to their folder, or give a release folder's path"
            )
        return root / published[-1]
    if ref not in published:
        raise ReleaseError(f"release {ref} not found ({choices})")
    return root / str(ref)


def names_a_release(ref: str | Path) -> bool:
    """Whether ``ref`` is the string ``'latest'`` or a version: looked up among the
    releases, never as a folder of that name in the working directory (give such a folder
    as a ``Path``, or as ``'./latest'``)."""
    return isinstance(ref, str) and (ref == LATEST or Version.spells(ref))


def table_schemas(source: Path) -> dict[str, dict[str, str]]:
    """Column name -> Arrow type name of every Parquet table of a build or release."""
    return {
        path.stem: {field.name: str(field.type) for field in pq.read_schema(path)}
        for path in sorted((Path(source) / PARQUET_DIR).glob("*.parquet"))
    }


def read_table(source: Path, table: str) -> pd.DataFrame:
    """One Parquet table of a build or release; a missing one raises naming its file."""
    path = Path(source) / PARQUET_DIR / f"{table}.parquet"
    if not path.is_file():
        raise ReleaseError(f"{source}: table {table} is missing ({path})")
    return pd.read_parquet(path)


def model_files(root: Path) -> list[str]:
    """Every file of the model outputs (``EXTRA_DIRS``) in ``root``, relative to it."""
    return [
        f"{name}/{rel}"
        for name in EXTRA_DIRS
        if (root / name).is_dir()
        for rel in relative_files(root / name)
    ]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of re-checking a release folder against its ``SHA256SUMS``."""

    release: Path
    checked: int
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]
    unlisted: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every listed file exists with its recorded checksum, and no file is unlisted."""
        return not (self.mismatched or self.missing or self.unlisted)

    def summary(self) -> str:
        """One line per problem, or one line saying the release is intact."""
        if self.ok:
            return f"{self.release}: OK ({self.checked} files match {SUMS})"
        lines = [f"{self.release}: FAILED"]
        lines += [f"  checksum mismatch: {p}" for p in self.mismatched]
        lines += [f"  missing file: {p}" for p in self.missing]
        lines += [f"  file not in {SUMS}: {p}" for p in self.unlisted]
        return "\n".join(lines)


def _read_sums(path: Path) -> dict[str, str]:
    """Relative path -> sha256 from a sha256sum-format file."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:  # a damaged file, to be named as such
        raise ReleaseError(f"{path}: not a sha256sum list (byte {err.start} is not UTF-8)") from err
    sums = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ReleaseError(f"{path}: line {number} is not '<sha256>  <path>': {line!r}")
        sums[name] = digest
    return sums


def relative_files(root: Path) -> list[str]:
    """Every file under ``root`` as a sorted POSIX path relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def verify_release(ref: str | Path, releases_dir: Path | None = None) -> VerifyReport:
    """Re-check every checksum of a release, that no listed file is gone and none was added."""
    root = resolve_release(ref, releases_dir)
    if not (root / SUMS).is_file():  # a damaged release: nothing to check the files against
        return VerifyReport(root, 0, (), (SUMS,), ())
    sums = _read_sums(root / SUMS)
    present = set(relative_files(root))
    missing = sorted(name for name in sums if name not in present)
    mismatched = sorted(
        name for name in sums if name in present and sha256_file(root / name) != sums[name]
    )
    unlisted = sorted(present - set(sums) - {SUMS})
    return VerifyReport(root, len(sums), tuple(mismatched), tuple(missing), tuple(unlisted))


def require_verified(
    release: Path, why: str = "what is read from it would not be the published data"
) -> None:
    """Raise unless ``release`` matches its checksums; ``why`` says what a failure breaks."""
    check = verify_release(release, release.parent)
    if not check.ok:
        raise ReleaseError(
            f"release {release.name} fails verification, so {why}; restore it (`nasmr "
            f"release verify` lists the files):\n{check.summary()}"
        )
