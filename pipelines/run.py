"""Run the main job in-process against the local Dagster instance kept in the repository."""

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from nasmr import paths
from nasmr.build_lock import build_lock
from nasmr.logs import refuse_to_clear_the_drop
from pipelines.assets.warehouse import WRITER_POOL
from pipelines.definitions import build_definitions
from pipelines.jobs import AUTOMATION_TAG
from pipelines.resources import BuildOptions


@dataclass(frozen=True)
class BuildOutcome:
    """What a build run did: its id, success, failures by asset and failed checks."""

    run_id: str
    success: bool
    failures: list[str]
    passed_checks: list[str]
    failed_checks: dict[str, str]
    """Failed check name -> its offending rows (markdown), as shown in the UI."""


NASMR_WROTE = "# Written by nasmr"
"""How the instance config nasmr writes begins: such a file is nasmr's to rewrite."""

INSTANCE_CONFIG = f"""\
{NASMR_WROTE}, which rewrites it when its settings change; delete this line to keep edits.
# Local, embedded SQLite storage under this folder.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1  # one writer of the DuckDB warehouse at a time (pool duckdb_writer)
    granularity: run  # held by runs in progress, not by steps: a killed step holds nothing
  runs:
    tag_concurrency_limits:  # the sensor's and the schedule's runs one at a time
      - key: {AUTOMATION_TAG[0]}
        value: {AUTOMATION_TAG[1]}
        limit: 1
"""


def local_instance() -> dg.DagsterInstance:
    """The persistent instance in ``DAGSTER_HOME`` (default ``.dagster/``): runs show in the UI.

    Its ``dagster.yaml`` is written when missing, and rewritten when an earlier nasmr wrote
    other settings (a file that does not begin with :data:`NASMR_WROTE` is left alone).
    """
    home = paths.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    written = config.read_text() if config.exists() else None
    if written is None or (written.startswith(NASMR_WROTE) and written != INSTANCE_CONFIG):
        config.write_text(INSTANCE_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    # the run queue counts a pool without a limit row as unlimited: create it before any run
    instance.event_log_storage.initialize_concurrency_limit_to_default(WRITER_POOL)
    fail_killed_runs(instance)
    return instance


PROCESS_TAGS = ("nasmr/host", "nasmr/pid")
"""Tags of a run ``nasmr build`` executes in its own process: that process's host and pid."""


def fail_killed_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report as failed, and return, the runs a nasmr process on this host started and did
    not outlive (killed with SIGKILL, say): left STARTED, each would hold the
    ``duckdb_writer`` pool against every queued run for good."""
    host, pid = PROCESS_TAGS
    started = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={host: socket.gethostname()}
    )
    killed = [run for run in instance.get_runs(started) if not _alive(int(run.tags[pid]))]
    for run in killed:
        message = f"the nasmr process {run.tags[pid]} that ran it has ended (killed)"
        instance.report_run_failed(run, message=message)
    return [run.run_id for run in killed]


def _alive(pid: int) -> bool:
    """Whether a process of that id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def run_job(
    job_name: str,
    raw_dir: Path | None = None,
    out_dir: Path | None = None,
    releases_dir: Path | None = None,
    log_dir: Path | None = None,
    partition: str | None = None,
    options: BuildOptions | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> BuildOutcome:
    """Execute one job of the code location in-process; all partitions unless one is named.

    Before anything runs, a partition the job does not have raises PartitionError, a
    build folder in a published release raises ``paths.ReleaseFolderError``, one that
    another run writes ``BuildFolderBusy`` and, for the logs job, one that overlaps the log
    drop ``LogOutputOverlap``.
    """
    out = paths.outside_releases(out_dir if out_dir is not None else paths.out_dir())
    defs = build_definitions(raw_dir, out_dir, releases_dir, log_dir, options, build_locked=True)
    job = defs.resolve_job_def(job_name)
    tags = _partition_tags(job, partition) | dict(
        zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid())), strict=True)
    )
    if job_name == "logs":  # before the lock file: the build folder may be the log drop
        drop = log_dir if log_dir is not None else paths.log_dir()
        refuse_to_clear_the_drop(out / "logs", drop / "logs")
    with build_lock(out, f"nasmr build {job_name}"):
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            instance=instance or local_instance(),
            tags=tags,
            raise_on_error=False,
        )
    failures = [
        f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
    ]
    passed, failed = [], {}
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        if evaluation.passed:
            passed.append(name)
        else:
            rows = evaluation.metadata.get("offending_rows")
            failed[name] = str(rows.value) if rows is not None else ""
    return BuildOutcome(result.run_id, result.success, failures, passed, failed)


class PartitionError(ValueError):
    """A partition a job cannot run: the job is not partitioned, or has no such key."""


def _partition_tags(job: dg.JobDefinition, partition: str | None) -> dict[str, str]:
    """Run tags for the one partition named, or for all of a partitioned job's partitions."""
    partitions = job.partitions_def
    if partitions is None:
        if partition is not None:
            raise PartitionError(
                f"job {job.name!r} is not partitioned by setting: run it without a partition"
            )
        return {}
    keys = partitions.get_partition_keys()
    if partition is None:
        return {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        }
    if partition not in keys:
        raise PartitionError(f"no setting {partition!r}: choose one of {', '.join(keys)}")
    return {"dagster/partition": partition}


def _root_cause(error: SerializableErrorInfo) -> str:
    """The user's exception's message: not Dagster's wrapper around it, nor the lower-level
    error it was raised from (which lacks the file or record it names)."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.message.strip()
