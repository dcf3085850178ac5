"""The raw drop as observable source assets: a file's data version is its sha256."""

import dagster as dg

from nasmr.rawdrop import file_version, search_list_path, trainval_path
from pipelines.partitions import settings_partitions
from pipelines.resources import RawDrop


def _kind(name: str) -> dict[str, str]:
    """The tag of a kind in the UI (observable source assets take no ``kinds`` argument)."""
    return {f"dagster/kind/{name}": ""}


@dg.observable_source_asset(
    group_name="raw", tags=_kind("text"), description="search_list.txt: the 2511 codes."
)
def raw_search_list(raw_drop: RawDrop) -> dg.DataVersion:
    return dg.DataVersion(file_version(search_list_path(raw_drop.root())))


@dg.observable_source_asset(
    group_name="raw",
    tags=_kind("pickle"),
    partitions_def=settings_partitions,
    description="<setting>/trainval.pkl, one per setting; 'missing' when the drop lacks it, "
    "'unreadable' when it cannot be read.",
)
def raw_trainval(raw_drop: RawDrop) -> dg.DataVersionsByPartition:
    return dg.DataVersionsByPartition(
        {setting: dg.DataVersion(v) for setting, v in trainval_versions(raw_drop).items()}
    )


def trainval_versions(raw_drop: RawDrop) -> dict[str, str]:
    """Every setting's :func:`~nasmr.rawdrop.file_version`; the sensor compares these, so a file
    that becomes unreadable is re-ingested (failing its setting by name), not a failed tick."""
    root = raw_drop.root()
    keys = settings_partitions.get_partition_keys()
    return {setting: file_version(trainval_path(root, setting)) for setting in keys}
