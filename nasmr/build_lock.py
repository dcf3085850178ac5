"""One writer per build folder: two runs would stage, validate and rebuild over each other.

The lock is an advisory ``flock`` on a file in the folder; the OS drops it when its
process ends, so a killed run never leaves the folder locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nasmr import clock, paths

LOCK_NAME = ".nasmr-build.lock"
"""The lock file inside a build folder (it names its holder)."""


class BuildFolderBusy(RuntimeError):
    """Another process holds the build folder's lock."""


@contextmanager
def build_lock(out_dir: Path, what: str) -> Iterator[None]:
    """Hold ``out_dir``'s lock while the block runs, as ``what`` (e.g. ``nasmr build ingest``);
    raise :class:`BuildFolderBusy`, naming the holder, if another process has it (and
    ``paths.ReleaseFolderError`` for a folder in a release, before writing the lock there)."""
    out_dir = paths.outside_releases(Path(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / LOCK_NAME).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BuildFolderBusy(
                f"{out_dir} is being written by {holder}; wait for it to finish, or build "
                "elsewhere (--out or NASMR_OUT)"
            ) from None
        handle.truncate(0)
        handle.write(f"{what} (pid {os.getpid()}, since {clock.now().isoformat()})\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
