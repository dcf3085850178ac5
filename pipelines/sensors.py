"""A sensor on the raw drop: ingest exactly the settings whose trainval.pkl changed."""

import json

import dagster as dg

from nasmr.rawdrop import MISSING, UNREADABLE
from pipelines.assets.ingest import load_validated
from pipelines.assets.raw import trainval_versions
from pipelines.jobs import AUTOMATION_TAG, reingest_job
from pipelines.partitions import settings_partitions
from pipelines.resources import BuildDir, RawDrop


def staged_versions(build_dir: BuildDir) -> dict[str, str]:
    """Each setting's file version (:func:`~nasmr.rawdrop.file_version`) as the build last
    validated it; settings never staged are left out."""
    versions = {}
    for setting in settings_partitions.get_partition_keys():
        try:
            loaded = load_validated(build_dir, setting)
        except (FileNotFoundError, ValueError):
            continue
        if loaded.source is not None:
            versions[setting] = loaded.source.sha256
        else:  # read, no source: the file was not in the drop, or could not be read
            versions[setting] = MISSING if loaded.status == "missing" else UNREADABLE
    return versions


def launched_changes(context: dg.SensorEvaluationContext) -> dict[str, int]:
    """The highest change count in the run keys of this sensor's runs, per setting: what a
    new or reset cursor counts on from. Counting from 0 again would reuse a run key, and
    Dagster skips a key it has launched."""
    counts = {}
    for setting in settings_partitions.get_partition_keys():
        runs = context.instance.get_runs(
            dg.RunsFilter(
                tags={"dagster/sensor_name": context.sensor_name, "dagster/partition": setting}
            )
        )
        keys = [run.tags.get("dagster/run_key", "").split(":") for run in runs]
        counts[setting] = max(
            (int(k[1]) for k in keys if len(k) == 3 and k[1].isdigit()), default=0
        )
    return counts


@dg.sensor(
    job=reingest_job,
    minimum_interval_seconds=300,
    description="Compares each trainval.pkl's sha256 with the last tick's and ingests changes.",
)
def raw_drop_sensor(
    context: dg.SensorEvaluationContext, raw_drop: RawDrop, build_dir: BuildDir
) -> dg.SensorResult:
    """One run per changed setting, keyed by its count of changes (kept in the cursor with the
    checksums, and counted on from the keys of the runs it launched): Dagster launches a key
    once, so a file back at earlier bytes still runs. The first tick (or the first after a
    cursor reset) compares with what the build validated, so switching the sensor on after a
    build re-ingests nothing that build already did, read under the build's lock (a tick
    during a ``nasmr build`` fails naming it, and the next one reads). Before any build it
    skips, keeping no cursor: a reingest run rebuilds the warehouse on a build's staging."""
    if context.cursor:
        cursor = json.loads(context.cursor)
    else:
        with build_dir.shared_lock("the raw_drop sensor's first tick"):
            staged = staged_versions(build_dir)
        if not staged:  # each reingest would fail: it rebuilds on a build's staging
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no records staged by a build in {build_dir.root()} (`nasmr build` stages "
                    "them; `nasmr ingest` does not): run it first, this sensor re-ingests the "
                    "settings that change after it"
                )
            )
        cursor = {"checksums": staged, "changes": launched_changes(context)}
    if "checksums" not in cursor:  # written before run keys counted changes: checksums only
        cursor = {"checksums": cursor}
    seen: dict[str, str] = cursor["checksums"]
    changes: dict[str, int] = cursor.get("changes", {})
    current = trainval_versions(raw_drop)
    changed = [s for s, version in current.items() if seen.get(s, MISSING) != version]
    changes = {**changes, **{s: changes.get(s, 0) + 1 for s in changed}}
    requests = [
        dg.RunRequest(
            run_key=f"{setting}:{changes[setting]}:{current[setting]}",
            partition_key=setting,
            tags=dict([AUTOMATION_TAG]),
        )
        for setting in changed
    ]
    since = "the last tick" if context.cursor else "the build validated them"
    skip = None if requests else dg.SkipReason(f"no trainval.pkl changed since {since}")
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=skip,
        cursor=json.dumps({"checksums": current, "changes": changes}),
    )
