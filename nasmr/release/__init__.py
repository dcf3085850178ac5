"""Versioned, immutable data releases: publish, list, verify and diff them.

A release is a folder ``releases/<version>/`` made from a warehouse build dir.
It keeps the build's layout, so a release folder is also a valid warehouse:

* ``parquet/<table>.parquet`` and ``nasmr.duckdb``: the build's tables and its
  self-contained DuckDB file (tables and wide views), copied byte for byte;
* ``predictors/``, ``ncp/``, ``reports/``: copied when the build has them, and only
  when every model output that records its data version (predictor cards, the
  predictor report, NCP search cards, the search report) records the build's own, so no
  model trained, or search run, on other data ships;
* ``manifest.json`` (:class:`schemas.release.ReleaseManifest`), ``README.md`` (a
  datasheet), ``CHANGELOG.md`` (this release's entry, then every earlier one),
  ``datapackage.json`` (a Frictionless Data Package) and ``croissant.json`` (Croissant
  1.0 metadata, which ``mlcroissant`` validates and reads records through);
* ``nasmr-<version>.tar.gz``: every file above, one deterministic archive;
* ``SHA256SUMS``: sha256sum lines for every file of the folder. The copy inside
  the archive is the same minus the archive's own line.

Versions are semantic: a schema change is major, added or removed records (or rows of
any table) minor, corrected values (in any column but the build's times, e.g. the
search-list order or the input files' checksums) or changed model outputs (predictors,
NCP results, reports) patch.
A release is written in a temporary folder inside the releases dir and renamed into
place, so an interrupted publish leaves no partial release, and an existing version
is never overwritten. Its files and folders are read-only, and the writers of build
outputs refuse a release folder (:func:`nasmr.paths.outside_releases`).

Modules: :mod:`~nasmr.release.store` (the folder's file names; find, read and verify
releases), :mod:`~nasmr.release.diff` (what changed, which version),
:mod:`~nasmr.release.publish` (the checks, then the write) and
:mod:`~nasmr.release.metadata` (changelog, datasheet, Data Package, Croissant).
"""

from nasmr.release.diff import (
    ReleaseDiff,
    SettingChanges,
    TableChanges,
    diff_releases,
    propose_version,
    record_changes,
)
from nasmr.release.publish import (
    NothingToPublish,
    Publication,
    check_publishable,
    publish_release,
    write_archive,
)
from nasmr.release.store import (
    LATEST,
    MANIFEST,
    ReleaseError,
    VerifyReport,
    archive_name,
    list_releases,
    load_manifest,
    names_a_release,
    published_versions,
    require_verified,
    resolve_release,
    verify_release,
)

__all__ = [
    "LATEST",
    "MANIFEST",
    "NothingToPublish",
    "Publication",
    "ReleaseDiff",
    "ReleaseError",
    "SettingChanges",
    "TableChanges",
    "VerifyReport",
    "archive_name",
    "check_publishable",
    "diff_releases",
    "list_releases",
    "load_manifest",
    "names_a_release",
    "propose_version",
    "publish_release",
    "published_versions",
    "record_changes",
    "require_verified",
    "resolve_release",
    "verify_release",
    "write_archive",
]
