"""Validated inputs: the search list and one partition of records per setting."""

import dagster as dg

from nasmr.ingest import (
    SearchListLoad,
    SettingLoad,
    load_architectures,
    load_setting,
    unknown_settings,
    valid_schema,
)
from pipelines import staging
from pipelines.assets.raw import raw_search_list, raw_trainval
from pipelines.metadata import preview, table_metadata, timed
from pipelines.partitions import settings_partitions
from pipelines.resources import BuildDir, RawDrop


def load_validated(build_dir: BuildDir, setting: str) -> SettingLoad:
    """The saved validated records of one setting; records staged by a nasmr that made other
    columns (before an upgrade) are refused by name, since a one-setting run keeps them."""
    folder = build_dir.staging("records", setting)
    loaded = staging.load(SettingLoad, folder)
    expected = list(valid_schema(setting))
    if list(loaded.valid.columns) != expected:
        raise ValueError(
            f"{folder}: {setting}'s validated records have columns "
            f"{', '.join(loaded.valid.columns)}, this nasmr makes {', '.join(expected)} "
            "(staged by another version): run the ingest or build job once without --partition"
        )
    return loaded


def load_search_list(build_dir: BuildDir) -> SearchListLoad:
    """The search list as the ``architectures`` asset staged it."""
    return staging.load(SearchListLoad, build_dir.staging("search_list"))


@dg.asset(group_name="ingest", deps=[raw_search_list], kinds={"parquet"})
def architectures(
    context: dg.AssetExecutionContext, raw_drop: RawDrop, build_dir: BuildDir
) -> dg.MaterializeResult:
    """Every code of the search list, decoded by Arch; invalid codes are quarantined."""
    metadata: dict[str, object] = {}
    with timed(metadata):
        loaded = load_architectures(raw_drop.root())
        staging.save(loaded, build_dir.staging("search_list"))
        ignored = unknown_settings(raw_drop.root())
    context.log.info(f"search list: {loaded.read} codes, {len(loaded.quarantine)} quarantined")
    if ignored:
        context.log.warning(f"ignored: {', '.join(ignored)} under data/ are no settings")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **table_metadata(loaded.architectures),
            "read": loaded.read,
            "quarantined": len(loaded.quarantine),
            "quarantine": preview(loaded.quarantine),
            "sha256": loaded.source.sha256,
            "ignored_settings": dg.MetadataValue.json(ignored),
        }
    )


@dg.asset(
    group_name="ingest",
    deps=[raw_trainval],
    kinds={"pydantic", "parquet"},
    partitions_def=settings_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def validated_records(
    context: dg.AssetExecutionContext, raw_drop: RawDrop, build_dir: BuildDir
) -> None:
    """One setting's trainval.pkl validated record by record; a missing file reports 'missing'.

    The counts are the file's own: the warehouse step then quarantines records that other
    files contradict (FLOPs/params disputed across settings, codes outside the search
    list), so the final counts are the warehouse's ``ingest_report``.
    """
    if not (context.has_partition_key or context.has_partition_key_range):  # a run launched
        # from the UI may fail before this, in Dagster (README)
        raise ValueError(
            "validated_records is partitioned by setting: launch it for one setting, or "
            "backfill all of them (one run; what nasmr build does)"
        )
    root = raw_drop.root()
    for setting in context.partition_keys:
        metadata: dict[str, object] = {}
        with timed(metadata):
            loaded = load_setting(root, setting)
            staging.save(loaded, build_dir.staging("records", setting))
        summary = (
            f"{setting}: {loaded.status}, {loaded.read} read, {len(loaded.valid)} valid, "
            f"{len(loaded.quarantine)} quarantined by the file's own checks"
        )
        if loaded.status == "ok":
            context.log.info(summary)
        else:
            context.log.warning(f"{summary}: {loaded.reason}")
        context.add_asset_metadata(
            {
                **metadata,
                **table_metadata(loaded.valid),
                "status": loaded.status,
                "reason": loaded.reason or "",
                "read": loaded.read,
                "valid": len(loaded.valid),
                "quarantined": len(loaded.quarantine),
                "quarantine": preview(loaded.quarantine),
            },
            partition_key=setting,
        )
