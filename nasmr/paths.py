"""Default locations, each overridable by an environment variable.

The defaults work on a fresh clone: the raw drop sits beside the checkout
(``../shared/nasbench-mr``) and every output lands inside the (git-ignored)
``warehouse/`` and ``releases/`` folders of the repository.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from schemas.release import Version

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env_path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default


def raw_dir() -> Path:
    """The raw NAS-Bench-MR drop (``NASMR_RAW``)."""
    return _env_path("NASMR_RAW", REPO_ROOT.parent / "shared" / "nasbench-mr")


def log_dir() -> Path:
    """The folder holding a raw-log drop's ``logs/`` (``NASMR_LOGS``, default: the raw drop)."""
    return _env_path("NASMR_LOGS", raw_dir())


WAREHOUSE_NAME = "nasmr.duckdb"
"""File name of the DuckDB warehouse inside a build folder (and a release)."""

UNFINISHED = ".unfinished-"
"""Prefix of the temporary folders a writer fills inside a build folder and renames into
place (see :func:`unfinished_folder`)."""


def this_host() -> str:
    """This machine's name as an unfinished folder's name holds it (no '@', the separator)."""
    return socket.gethostname().replace("@", "_")


def unfinished_folder(parent: Path, what: str) -> Path:
    """A new folder in ``parent`` for ``what`` (e.g. ``predictors-new``) to fill, then rename.

    Its name carries this process's pid and host, so that one left by a killed writer can
    be told from one still being written (:func:`nasmr.build_lock.remove_unfinished`); it is
    made with the usual permissions (``tempfile.mkdtemp`` would make it owner-only).
    """
    folder = parent / f"{UNFINISHED}{os.getpid()}@{this_host()}@{what}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


RELEASE_MANIFEST = "manifest.json"
RELEASE_SUMS = "SHA256SUMS"
"""The two files that mark a folder as a published release."""


class ReleaseFolderError(Exception):
    """Build outputs were about to be written into a published release, which is immutable."""


def holds_release(folder: Path) -> bool:
    """Whether ``folder`` is a published release: it holds the manifest and the checksums,
    or, named as a version, one of them. Publishing writes both before naming the folder,
    so a version folder with one left is a damaged release, which must still be found
    (verifying it reports the loss) and not written; either file alone elsewhere is
    someone else's (a project's manifest.json, a user's sha256sum list)."""
    manifest = (folder / RELEASE_MANIFEST).is_file()
    sums = (folder / RELEASE_SUMS).is_file()
    return (manifest and sums) or ((manifest or sums) and Version.spells(folder.name))


def outside_releases(folder: Path, advice: str | None = None) -> Path:
    """``folder``, checked for writing build outputs into: a published release, or a folder
    inside one, is refused (its read-only folders stop other writers, but not root), with
    ``advice`` on where to write instead (default: a build's)."""
    folder = Path(folder)
    resolved = folder.resolve()
    for parent in (resolved, *resolved.parents):
        if holds_release(parent):
            where = (
                "is a published release"
                if parent == resolved
                else f"lies inside the published release {parent}"
            )
            raise ReleaseFolderError(
                f"{folder} {where}, and releases are immutable: "
                + (
                    advice
                    or "write the build elsewhere (--out or NASMR_OUT, --warehouse or "
                    "NASMR_WAREHOUSE) and publish it as a new version with `nasmr release publish`"
                )
            )
    return folder


def out_dir() -> Path:
    """Where a build writes Parquet tables, the DuckDB file and models (``NASMR_OUT``)."""
    return _env_path("NASMR_OUT", REPO_ROOT / "warehouse" / "build")


def warehouse_file() -> Path:
    """The DuckDB warehouse that queries read by default (``NASMR_WAREHOUSE``)."""
    return _env_path("NASMR_WAREHOUSE", out_dir() / WAREHOUSE_NAME)


def releases_dir() -> Path:
    """Where releases are published (``NASMR_RELEASES``)."""
    return _env_path("NASMR_RELEASES", REPO_ROOT / "releases")


def dagster_home() -> Path:
    """The local Dagster instance kept in the repository (``DAGSTER_HOME``), made absolute
    (a relative one is relative to the working directory), as Dagster requires."""
    return _env_path("DAGSTER_HOME", REPO_ROOT / ".dagster").absolute()
