"""The last asset of the build and refresh jobs: an immutable, checksummed, versioned release."""

import dagster as dg
import pandas as pd

from nasmr.release import NothingToPublish, publish_release, published_versions, verify_release
from pipelines.assets.models import ncp_results, predictors, search_evaluation
from pipelines.assets.warehouse import WRITER_POOL, warehouse
from pipelines.metadata import check_result
from pipelines.resources import BuildDir, RawDrop, ReleaseDir


@dg.asset(
    group_name="release",
    deps=[warehouse, predictors, ncp_results, search_evaluation],
    kinds={"duckdb", "parquet", "json"},
    pool=WRITER_POOL,
)
def release(
    context: dg.AssetExecutionContext,
    build_dir: BuildDir,
    release_dir: ReleaseDir,
    raw_drop: RawDrop,
) -> dg.MaterializeResult:
    """Publish the build as releases/<version>/ with the version proposed by diffing against
    the latest release (refusing a dropped setting); an unchanged build publishes nothing."""
    try:
        published = publish_release(build_dir.root(), release_dir.root(), raw_dir=raw_drop.root())
    except NothingToPublish as nothing:
        context.log.info(f"nothing changed since {nothing.latest}: nothing published")
        return dg.MaterializeResult(metadata={"version": str(nothing.latest), "published": False})
    version = published.path.name
    context.log.info(f"published release {version} at {published.path}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "published": True,
            "path": dg.MetadataValue.path(str(published.path)),
            "bump": published.diff.level,
            "changes": dg.MetadataValue.md(published.diff.to_markdown()),
        }
    )


@dg.asset_check(asset=release, description="Every file of the latest release matches SHA256SUMS.")
def release_verifies(release_dir: ReleaseDir) -> dg.AssetCheckResult:
    """The latest release is intact; the offending rows name each bad file and its problem."""
    published = published_versions(release_dir.root())
    if not published:
        offending = pd.DataFrame({"file": [str(release_dir.root())], "problem": ["no release"]})
        return check_result(offending, checked=0)
    latest = str(published[-1])
    report = verify_release(latest, release_dir.root())
    problems = {"checksum mismatch": report.mismatched, "missing": report.missing}
    problems["not in SHA256SUMS"] = report.unlisted
    offending = pd.DataFrame(
        [(name, problem) for problem, names in problems.items() for name in names],
        columns=["file", "problem"],
    )
    return check_result(offending, checked=report.checked, version=latest, summary=report.summary())
