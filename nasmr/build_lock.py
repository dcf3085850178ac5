"""One writer per build folder: two runs would stage, validate and rebuild over each other.

The lock is an advisory ``flock`` on a file in the folder; the OS drops it when its
process ends, so a killed run never leaves the folder locked. Writers (``nasmr build``,
``nasmr ingest``) hold it exclusively; a reader that must not see a half-rebuilt folder
(``nasmr release publish``) holds it shared, and so do the steps of Dagster runs launched
from the UI or by the daemon (``pipelines.resources.BuildDir``), which may run in parallel
processes. Each holder writes its name into the file, so a refusal names the latest.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from nasmr import clock, paths

LOCK_NAME = ".nasmr-build.lock"
"""The lock file inside a build folder (it names its last holder)."""


class BuildFolderBusy(RuntimeError):
    """Another process holds the build folder's lock."""


@contextmanager
def build_lock(
    out_dir: Path, what: str, elsewhere: str | None = "--out or NASMR_OUT", shared: bool = False
) -> Iterator[None]:
    """Hold ``out_dir``'s lock while the block runs, as ``what`` (e.g. ``nasmr build ingest``).

    Another holder raises :class:`BuildFolderBusy` naming it, with ``elsewhere`` (the
    options that choose another folder; None for a reader) as advice. A writer's folder
    is created, and one in a release refused (``paths.ReleaseFolderError``) before the
    lock file is written, and the folders an interrupted writer left are deleted once it is
    held (:func:`remove_unfinished`); a ``shared`` (reading) lock is taken only where a writer
    left a lock file. Where the file system cannot lock, a warning says so and the block runs
    unlocked.
    """
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    if shared and not path.is_file():  # no nasmr writer ever ran here, none to wait for
        yield
        return
    if not shared:
        paths.outside_releases(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            advice = f", or build elsewhere ({elsewhere})" if elsewhere else ""
            raise BuildFolderBusy(
                f"{out_dir} is in use by {holder}; wait for it to finish{advice}"
            ) from None
        except OSError as err:  # e.g. NFS without a lock daemon: ENOLCK
            message = f"cannot lock {out_dir} ({err.strerror}): make sure no other run writes it"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            locked = False
        else:
            locked = True
            handle.truncate(0)
            handle.write(f"{what} (pid {os.getpid()}, since {clock.now().isoformat()})\n")
            handle.flush()
            if not shared:
                remove_unfinished(out_dir)
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def remove_unfinished(folder: Path) -> None:
    """Delete the unfinished folders (:func:`nasmr.paths.unfinished_folder`) in ``folder``
    whose writer, a process on this host, has ended: a killed step's leftovers. Those of a
    live process, or of another host, are left alone (a step of a UI run may write one
    without the lock: a folder no nasmr command locked has no lock file)."""
    for path in folder.glob(f"{paths.UNFINISHED}*@*@*"):
        pid, host, _ = path.name.removeprefix(paths.UNFINISHED).split("@", 2)
        if host == paths.this_host() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_of_enclosing_build(out: Path, what: str) -> AbstractContextManager[None]:
    """The lock of the build folder holding ``out`` (``predictors/`` or ``logs/`` beside its
    warehouse file or lock file, ``out`` given as ``.`` or a link included), taken as
    :func:`build_lock` does; no lock for a folder of no build. An ``out`` in a release is
    refused first, by name (``paths.ReleaseFolderError``)."""
    build = paths.outside_releases(Path(out)).resolve().parent
    if (build / paths.WAREHOUSE_NAME).is_file() or (build / LOCK_NAME).is_file():
        return build_lock(build, what)
    return nullcontext()
