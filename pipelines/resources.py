"""Configuration of the pipeline as Dagster resources; defaults come from ``nasmr.paths``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, field_validator

from nasmr import paths
from nasmr.build_lock import build_lock
from nasmr.complexity import ComplexityMethod
from nasmr.ncp_defaults import DEFAULT_STARTS, DEFAULT_STEPS
from nasmr.rawdrop import require_drop
from nasmr.warehouse import replacing
from schemas.predictor import REPORT_SEEDS
from schemas.settings import check_predictor_settings


class RawDrop(dg.ConfigurableResource):
    """The raw NAS-Bench-MR drop (``NASMR_RAW``, default ``../shared/nasbench-mr``)."""

    path: str

    def root(self) -> Path:
        """The drop's folder; a missing drop is an error that says how to point at one."""
        return require_drop(Path(self.path))


class LogDrop(dg.ConfigurableResource):
    """A raw training-log drop: the folder holding ``logs/`` (``NASMR_LOGS``)."""

    path: str

    def root(self) -> Path:
        """The folder holding ``logs/``; missing, it is an error that says how to make one."""
        root = Path(self.path)
        if not (root / "logs").is_dir():
            raise FileNotFoundError(
                f"no log drop at {root} (no logs/ folder): set NASMR_LOGS to one, or make one "
                "with `nasmr mini --n 8 --out DIR`"
            )
        return root


PROCESS_TAGS = ("nasmr/host", "nasmr/pid")
"""Tags of a run ``nasmr build`` executes in its own process: that process's host and pid."""


def process_tags() -> dict[str, str]:
    """``PROCESS_TAGS`` with this process's values, for a run it executes in-process."""
    return dict(zip(PROCESS_TAGS, (paths.this_host(), str(os.getpid())), strict=True))


def launched_here(run: dg.DagsterRun) -> bool:
    """Whether this process is the ``nasmr build`` that launched ``run`` in-process (and so
    holds its build folder's lock); a re-execution elsewhere copies the tags, not the pid."""
    return all(run.tags.get(tag) == value for tag, value in process_tags().items())


class BuildDir(dg.ConfigurableResource):
    """Where a build writes staging Parquet, the warehouse and models (``NASMR_OUT``).

    A run's steps hold the folder's build lock shared (``nasmr.build_lock``; shared, since
    they may run in parallel processes) where a ``nasmr build`` or ``nasmr ingest`` left
    the lock file, so a run launched from the UI or by the daemon and ``nasmr build`` do
    not write it at once: the later one stops, naming the other. A folder no nasmr
    command locked gets no lock file, which keeps one out of a log drop the logs job then
    refuses to write into. The ``nasmr build`` that executes a run in its own process holds
    the lock exclusively already (:func:`launched_here`).
    """

    path: str

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[BuildDir]:
        """This resource, with the folder's lock held for a run's step, unless the process
        that launched the run holds it; outside a run (a sensor tick, a direct call) nothing
        is locked here."""
        if context.run is None or launched_here(context.run):
            yield self
            return
        with self.shared_lock(f"dagster run {context.run.run_id}"):
            yield self

    def shared_lock(self, what: str) -> AbstractContextManager[None]:
        """The folder's build lock, shared, as ``what``: held, no ``nasmr build`` starts, and
        none may be running (see the class docstring for where there is no lock file)."""
        elsewhere = "NASMR_OUT, or the build_dir resource's path"
        return build_lock(self.root(), what, elsewhere, shared=True)

    def root(self) -> Path:
        """The build folder; a published release is refused, since every step writes here."""
        return paths.outside_releases(Path(self.path))

    def warehouse(self) -> Path:
        """The build's DuckDB file; missing, an error naming the folder and the job that
        makes it (a run has no --warehouse to point elsewhere)."""
        path = self.root() / paths.WAREHOUSE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no warehouse in the build folder {self.root()} (NASMR_OUT, the build_dir "
                "resource's path): run the build or ingest job first"
            )
        return path

    @contextmanager
    def replacing(self, name: str) -> Iterator[Path]:
        """:func:`nasmr.warehouse.replacing` of ``<root>/<name>``, for a step that writes all
        of it: nothing of an earlier run (a setting no longer trained, a search now skipped)
        survives into a release, and a step that fails or is killed leaves the last
        complete outputs. A release is refused when the block starts."""
        with replacing(self.root() / name) as new:
            yield new

    def staging(self, *parts: str) -> Path:
        """Per-asset outputs that later steps read (one writer per file)."""
        return self.root().joinpath("staging", *parts)


class ReleaseDir(dg.ConfigurableResource):
    """Where releases are published (``NASMR_RELEASES``, default releases/)."""

    path: str

    def root(self) -> Path:
        """The releases folder."""
        return Path(self.path)


class BuildOptions(dg.ConfigurableResource):
    """Knobs of the expensive steps: complexity method, predictor seeds, NCP budget."""

    complexity_method: ComplexityMethod = "module"
    workers: int | None = Field(default=None, ge=1)
    """Processes for the parallel steps (module-built complexity, predictor training);
    None: the CPU count."""
    predictor_seeds: int = Field(default=REPORT_SEEDS, ge=1)
    predictor_settings: list[str] | None = None
    """Settings to train predictors and evaluate searches for; None: every available one."""
    predictor_epochs: int | None = Field(default=None, ge=1)
    ncp_steps: int = Field(default=DEFAULT_STEPS, ge=1)
    ncp_starts: int = Field(default=DEFAULT_STARTS, ge=1)
    seed: int = Field(default=0, ge=0)

    @field_validator("predictor_settings")
    @classmethod
    def _known_settings(cls, names: list[str] | None) -> list[str] | None:
        """Refuse an empty list or a setting that can have no predictor (None means all)."""
        return None if names is None else check_predictor_settings(names)


def resources_run_config(resources: dict[str, dg.ConfigurableResource]) -> dict[str, Any]:
    """The resources' folders and options as run config: the run records them (the UI shows
    them), and re-executing it from the UI writes where it did, not to the code location's
    folders."""
    return {name: {"config": resource.model_dump()} for name, resource in resources.items()}


def default_resources(
    raw_dir: Path | None = None,
    out_dir: Path | None = None,
    releases_dir: Path | None = None,
    log_dir: Path | None = None,
    options: BuildOptions | None = None,
) -> dict[str, dg.ConfigurableResource]:
    """Resources for a fresh clone (``nasmr.paths``, read from the environment at load time)."""

    def absolute(path: Path) -> str:  # a run's config must not depend on its working directory
        return str(Path(path).absolute())

    return {
        "raw_drop": RawDrop(path=absolute(raw_dir or paths.raw_dir())),
        "build_dir": BuildDir(path=absolute(out_dir or paths.out_dir())),
        "log_drop": LogDrop(path=absolute(log_dir or paths.log_dir())),
        "release_dir": ReleaseDir(path=absolute(releases_dir or paths.releases_dir())),
        "options": options or BuildOptions(),
    }
