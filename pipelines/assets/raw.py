"""The raw drop as observable source assets: a file's data version is its sha256."""

import dagster as dg

from nasmr.checksums import sha256_file
from nasmr.rawdrop import search_list_path, trainval_path
from pipelines.partitions import settings_partitions
from pipelines.resources import RawDrop

MISSING = "missing"


def _kind(name: str) -> dict[str, str]:
    """The tag of a kind in the UI (observable source assets take no ``kinds`` argument)."""
    return {f"dagster/kind/{name}": ""}


@dg.observable_source_asset(
    group_name="raw", tags=_kind("text"), description="search_list.txt: the 2511 codes."
)
def raw_search_list(raw_drop: RawDrop) -> dg.DataVersion:
    return dg.DataVersion(sha256_file(search_list_path(raw_drop.root())))


@dg.observable_source_asset(
    group_name="raw",
    tags=_kind("pickle"),
    partitions_def=settings_partitions,
    description="<setting>/trainval.pkl, one per setting; 'missing' when the drop lacks it.",
)
def raw_trainval(raw_drop: RawDrop) -> dg.DataVersionsByPartition:
    return dg.DataVersionsByPartition(
        {setting: dg.DataVersion(v) for setting, v in trainval_versions(raw_drop).items()}
    )


def trainval_versions(raw_drop: RawDrop) -> dict[str, str]:
    """sha256 of every setting's trainval.pkl, or 'missing'; the sensor compares these."""
    root = raw_drop.root()
    versions = {}
    for setting in settings_partitions.get_partition_keys():
        path = trainval_path(root, setting)
        versions[setting] = sha256_file(path) if path.is_file() else MISSING
    return versions
