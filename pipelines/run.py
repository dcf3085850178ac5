"""Run a job in-process against the local Dagster instance kept in the repository, and say
what it did."""

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from nasmr import paths
from nasmr.build_lock import build_lock, process_alive
from nasmr.checksums import sha256_file
from nasmr.logs import refuse_to_clear_the_drop
from nasmr.rawdrop import require_drop
from pipelines.assets.warehouse import WRITER_POOL
from pipelines.definitions import build_definitions
from pipelines.jobs import AUTOMATION_TAG
from pipelines.resources import PROCESS_TAGS, BuildOptions, process_tags, resources_run_config


@dataclass(frozen=True)
class BuildOutcome:
    """What a build run did: its id, success, failures by asset and failed checks."""

    run_id: str
    success: bool
    failures: list[str]
    passed_checks: list[str]
    failed_checks: dict[str, str]
    """Failed check name -> its offending rows (markdown), as shown in the UI."""
    release: str | None = None
    """What the release step did, in words (None: the job has none, or it did not run)."""


INSTANCE_CONFIG = f"""\
# Written by nasmr. Local, embedded SQLite storage under this folder. A newer nasmr
# replaces this file with its own settings unless it has been edited.
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

EARLIER_CONFIGS = frozenset(
    {
        "8abfa15656178b0ae2782131114865118062de445e9f5c64b0a74961908b783a",  # to 2026-11-24
        "526c3c94062c731a82e3aba55776521a7471949b21f47537ae213bc0938ce4e1",  # to 2026-12-06
        "89f45b68ff80e06edadd2ce59cfc6f82862eddae83f30ed3fc237ca217de754e",  # to 2026-12-07
        "77a9e416b21f0ff223b0f9ee1e1016be76cd1d08e50617d8309996a96867880f",  # 2026-12-07, f7c3534
        "1798ee8efb82fd1607f56b9c25460496173579006346bdac3829112e6c01dda8",  # 2026-12-07, 44483cf
    }
)
"""sha256 of each ``dagster.yaml`` an earlier nasmr wrote, unedited: replaced by
:data:`INSTANCE_CONFIG`. Add the current text's here when changing it."""


def local_instance() -> dg.DagsterInstance:
    """The persistent instance in ``DAGSTER_HOME`` (default ``.dagster/``): runs show in the UI.

    Its ``dagster.yaml`` is written when missing and replaced when it is the unedited file
    of an earlier nasmr; any other file is kept. Runs of killed nasmr builds are failed.
    """
    home = paths.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or sha256_file(config) in EARLIER_CONFIGS:
        staged = config.with_name(f".{config.name}.{os.getpid()}")
        staged.write_text(INSTANCE_CONFIG)
        staged.replace(config)  # atomic: no reader sees a half-written file
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    _limit_writer_pool(instance)
    fail_killed_runs(instance)
    return instance


def _limit_writer_pool(instance: dg.DagsterInstance) -> None:
    """Create the ``duckdb_writer`` pool's row from the instance's default limit, as Dagster
    does on a step's first claim: with run granularity no step claims, and the run queue
    takes a pool without a row for unlimited. A limit set by hand is left alone."""
    storage = instance.event_log_storage
    info = storage.get_concurrency_info(WRITER_POOL)
    if info.using_default_limit and info.limit is not None and info.slot_count != info.limit:
        storage.initialize_concurrency_limit_to_default(WRITER_POOL)


def fail_killed_runs(instance: dg.DagsterInstance) -> None:
    """Report as failed the runs a nasmr process on this host executed in
    itself and did not outlive (killed with SIGKILL, say): left STARTED, each would hold the
    ``duckdb_writer`` pool against every queued run for good.

    Only in-process runs (no code-location origin) count: a run re-executed from the UI
    copies its parent's tags, but a Dagster worker runs it.
    """
    host, pid = PROCESS_TAGS
    started = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={host: process_tags()[host]}
    )
    for run in instance.get_runs(started):
        owner = run.tags.get(pid, "")
        if run.remote_job_origin is None and owner.isdigit() and not process_alive(int(owner)):
            current = instance.get_run_by_id(run.run_id)  # it may have ended meanwhile
            if current is not None and current.status == dg.DagsterRunStatus.STARTED:
                message = f"the nasmr process {owner} that ran it has ended (killed)"
                instance.report_run_failed(current, message=message)


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
    missing raw drop (for a job that reads it) ``rawdrop.NotInDropError``, a
    build folder in a published release raises ``paths.ReleaseFolderError``, one that
    another run writes ``BuildFolderBusy`` and, for the logs job, one that overlaps the log
    drop ``LogOutputOverlap``.
    """
    out = paths.outside_releases(out_dir if out_dir is not None else paths.out_dir())
    defs = build_definitions(raw_dir, out_dir, releases_dir, log_dir, options)
    job = defs.resolve_job_def(job_name)
    tags = _partition_tags(job, partition) | process_tags()
    if "raw_drop" in job.required_resource_keys:  # before the build folder is made
        require_drop(raw_dir if raw_dir is not None else paths.raw_dir())
    if job_name == "logs":  # before the lock file: the build folder may be the log drop
        drop = log_dir if log_dir is not None else paths.log_dir()
        refuse_to_clear_the_drop(out / "logs", drop / "logs")
    with build_lock(out, f"nasmr build {job_name}"):
        result = job.execute_in_process(
            run_config={
                "loggers": {"console": {"config": {"log_level": log_level}}},
                "resources": resources_run_config(defs.resources),
            },
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
            rows, fix = (evaluation.metadata.get(key) for key in ("offending_rows", "fix"))
            failed[name] = (str(rows.value) if rows is not None else "") + (
                f"\nfix: {fix.value}" if fix is not None else ""
            )
    return BuildOutcome(result.run_id, result.success, failures, passed, failed, _release(result))


def _release(result: dg.ExecuteInProcessResult) -> str | None:
    """``published 1.0.1 (patch release)`` or ``nothing published: ...``, from the release step."""
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey("release"):
            metadata = event.step_materialization_data.materialization.metadata
            version = metadata["version"].value
            if metadata["published"].value:
                return f"published {version} ({metadata['bump'].value} release)"
            return f"nothing published: nothing changed since {version}"
    return None


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
