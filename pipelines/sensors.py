"""A sensor on the raw drop: ingest exactly the settings whose trainval.pkl changed."""

import json

import dagster as dg

from pipelines.assets.raw import MISSING, trainval_versions
from pipelines.jobs import ingest_job
from pipelines.resources import RawDrop


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=300,
    description="Compares each trainval.pkl's sha256 with the last tick's and ingests changes.",
)
def raw_drop_sensor(context: dg.SensorEvaluationContext, raw_drop: RawDrop) -> dg.SensorResult:
    """One run per changed setting, keyed by its count of changes (kept in the cursor with the
    checksums): Dagster launches a key once, so a file back at earlier bytes still runs."""
    cursor = json.loads(context.cursor) if context.cursor else {"checksums": {}}
    if "checksums" not in cursor:  # written before run keys counted changes: checksums only
        cursor = {"checksums": cursor}
    seen: dict[str, str] = cursor["checksums"]
    changes: dict[str, int] = cursor.get("changes", {})
    current = trainval_versions(raw_drop)
    changed = [s for s, version in current.items() if seen.get(s, MISSING) != version]
    changes = {**changes, **{s: changes.get(s, 0) + 1 for s in changed}}
    requests = [
        dg.RunRequest(
            run_key=f"{setting}:{changes[setting]}:{current[setting]}", partition_key=setting
        )
        for setting in changed
    ]
    skip = None if requests else dg.SkipReason("no trainval.pkl changed since the last tick")
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=skip,
        cursor=json.dumps({"checksums": current, "changes": changes}),
    )
