"""Jobs and the schedule: build everything, ingest changed settings, refresh the models."""

import dagster as dg

from pipelines.assets import complexity, ingest, raw, release, warehouse
from pipelines.assets.logs import LOGS_GROUP
from pipelines.assets.models import MODELS_GROUP

AUTOMATION_TAG = ("nasmr/writer", "automation")
"""Tag of the runs the sensor and the schedule launch: the instance runs them one at a time
(each rewrites the build folder; see ``pipelines.run.INSTANCE_CONFIG``)."""

SEARCH_LIST = dg.AssetSelection.assets(raw.raw_search_list.key)
"""The search list, observed as a run's first step: ``architectures`` then records the
version it read, so observing the same file later does not mark it stale."""

build_job = dg.define_asset_job(
    "build",
    selection=(dg.AssetSelection.all() - dg.AssetSelection.groups(LOGS_GROUP)) | SEARCH_LIST,
    description="The main job: validate the drop, count complexity, build the warehouse, "
    "train predictors, run NCP and publish a release.",
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=SEARCH_LIST
    | dg.AssetSelection.assets(
        ingest.architectures, ingest.validated_records, complexity.complexity, warehouse.warehouse
    ),
    description="Validate the drop, recount complexity and rebuild the warehouse.",
)

reingest_job = dg.define_asset_job(
    "reingest",
    selection=dg.AssetSelection.assets(ingest.validated_records, warehouse.warehouse),
    description="Revalidate one changed trainval.pkl and rebuild the warehouse, keeping the "
    "last build's search list and complexity counts (what the sensor launches).",
)

refresh_job = dg.define_asset_job(
    "refresh",
    selection=dg.AssetSelection.groups(MODELS_GROUP)
    | dg.AssetSelection.assets(release.release)
    | dg.AssetSelection.checks_for_assets(warehouse.warehouse),
    description="Re-check the current warehouse, retrain the predictors, rerun NCP and publish "
    "a release when anything differs from the latest one.",
)

weekly_refresh = dg.ScheduleDefinition(
    name="weekly_refresh",
    job=refresh_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    tags=dict([AUTOMATION_TAG]),
    description="Refresh predictors and NCP results (and release them if they changed) every "
    "Monday at 03:00 UTC.",
)

logs_job = dg.define_asset_job(
    "logs",
    selection=dg.AssetSelection.groups(LOGS_GROUP),
    description="Regenerate results from a raw training-log drop and reconcile them (NASMR_LOGS).",
)
