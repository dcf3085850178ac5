"""The code location: every asset, check, job, schedule, sensor and resource in one place.

``dagster dev -m pipelines.definitions`` loads ``defs``.
"""

from pathlib import Path

import dagster as dg

from pipelines.assets import complexity, ingest, logs, models, raw, release, warehouse
from pipelines.jobs import (
    build_job,
    ingest_job,
    logs_job,
    refresh_job,
    reingest_job,
    weekly_refresh,
)
from pipelines.resources import BuildOptions, default_resources
from pipelines.sensors import raw_drop_sensor

ASSET_MODULES = [raw, ingest, complexity, warehouse, models, logs, release]


def build_definitions(
    raw_dir: Path | None = None,
    out_dir: Path | None = None,
    releases_dir: Path | None = None,
    log_dir: Path | None = None,
    options: BuildOptions | None = None,
) -> dg.Definitions:
    """The Definitions; folders and options overridable (defaults: ``nasmr.paths``)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[build_job, ingest_job, reingest_job, refresh_job, logs_job],
        schedules=[weekly_refresh],
        sensors=[raw_drop_sensor],
        resources=default_resources(raw_dir, out_dir, releases_dir, log_dir, options),
    )


defs = build_definitions()
