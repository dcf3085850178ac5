"""The build folder's lock: one writer, shared by readers, released with its holder."""

from __future__ import annotations

import errno
import fcntl
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from nasmr.build_lock import LOCK_NAME, BuildFolderBusy, build_lock, lock_of_enclosing_build
from nasmr.paths import ReleaseFolderError

HOLD = """
import sys, time
from nasmr.build_lock import build_lock
with build_lock(sys.argv[1], "a test holder"):
    print("held", flush=True)
    time.sleep(60)
"""

READ: dict[str, Any] = {"elsewhere": None, "shared": True}
"""A reader's lock, as ``nasmr release publish`` takes it."""


def _refused_by(lock: AbstractContextManager[None]) -> None:
    with pytest.raises(BuildFolderBusy, match=r"in use by nasmr build build \(pid"), lock:
        pass


def _refused(out: Path, match: str, **kwargs: Any) -> None:
    with pytest.raises(BuildFolderBusy, match=match), build_lock(out, "refused", **kwargs):
        pass


def test_a_writer_excludes_writers_and_readers_until_it_ends(tmp_path: Path) -> None:
    """In the same process too (flock locks an open file, not a process), and a killed
    holder leaves the folder free."""
    out = tmp_path / "build"
    with build_lock(out, "first"):
        _refused(out, r"is in use by first \(pid .*build elsewhere \(--out or NASMR_OUT\)$")
        _refused(out, r"is in use by first \(pid .*wait for it to finish$", **READ)
    with build_lock(out, "second"):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        _refused(out, rf"a test holder \(pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    with build_lock(out, "third"):
        pass


def test_readers_share_and_need_no_lock_where_no_writer_ran(tmp_path: Path) -> None:
    out = tmp_path / "build"
    out.mkdir()
    with build_lock(out, "r1", **READ):
        assert not (out / LOCK_NAME).exists()  # nothing written into a folder it only reads
    with build_lock(out, "w"):
        pass
    with build_lock(out, "r1", **READ), build_lock(out, "r2", **READ):
        _refused(out, r"in use by r2 \(pid")


def test_a_release_folder_gets_no_lock_file(tmp_path: Path) -> None:
    release = tmp_path / "1.0.0"
    release.mkdir()
    for marker in ("manifest.json", "SHA256SUMS"):
        (release / marker).write_text("{}")
    with pytest.raises(ReleaseFolderError), build_lock(release, "w"):
        pass
    assert not (release / LOCK_NAME).exists()


def test_a_file_system_without_locks_warns_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS without a lock daemon answers ENOLCK: a build there must still be possible."""

    def no_locks(handle: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = False
    warned = pytest.warns(RuntimeWarning, match="cannot lock .*No locks available.*no other run")
    with warned, build_lock(tmp_path / "build", "w"):
        ran = True
    assert ran


def test_a_folder_of_a_build_takes_the_builds_lock(tmp_path: Path) -> None:
    """predictor train and logs parse write predictors/ and logs/ of a build, as its runs do."""
    build = tmp_path / "build"
    with lock_of_enclosing_build(build / "predictors", "train"):
        assert not build.exists()  # no build there: nothing to lock, nothing written
    build.mkdir()
    (build / "nasmr.duckdb").touch()
    with build_lock(build, "nasmr build build"):
        _refused_by(lock_of_enclosing_build(build / "logs", "nasmr logs parse"))


def test_a_build_folder_is_found_through_dot_and_links_and_by_its_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--out .` inside a build's logs/, or a link to it, took no lock (Path('.').parent is
    '.'); nor did logs/ of a folder only the logs job had built (a lock file, no warehouse)."""
    build = tmp_path / "build"
    (build / "logs").mkdir(parents=True)
    (build / LOCK_NAME).touch()
    (tmp_path / "link").symlink_to(build / "logs")
    monkeypatch.chdir(build / "logs")
    with build_lock(build, "nasmr build build"):
        for out in (Path("."), tmp_path / "link", build / "logs"):
            _refused_by(lock_of_enclosing_build(out, "nasmr logs parse"))
