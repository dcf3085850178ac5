"""``nasmr release publish|list|verify|diff`` and ``nasmr export trainval``."""

from __future__ import annotations

from pathlib import Path

import click

from nasmr import paths
from nasmr.cli.options import existing_drop, releases_option


@click.group()
def release() -> None:
    """Publish, list, verify and compare versioned, immutable data releases."""


@release.command()
@click.option(
    "--build",
    "build_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=paths.out_dir,
    show_default="NASMR_OUT or warehouse/build",
    help="The build dir to publish (parquet/ and nasmr.duckdb, plus optional model outputs).",
)
@click.option("--version", "version", default=None, help="X.Y.Z; default: proposed from the diff.")
@click.option(
    "--raw",
    "raw_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Re-check the build's input checksums against this drop (default: NASMR_RAW, else "
    "../shared/nasbench-mr, when it holds a drop).",
)
@releases_option
def publish(build_dir: Path, version: str | None, raw_dir: Path | None, releases_dir: Path) -> None:
    """Publish a build as a new release; refuses an existing version, a stale build, or model
    outputs made from other data than the build's."""
    from nasmr.build_lock import BuildFolderBusy, build_lock
    from nasmr.rawdrop import search_list_path
    from nasmr.release import ReleaseError, load_manifest, publish_release

    if raw_dir is None and search_list_path(paths.raw_dir()).is_file():
        raw_dir = paths.raw_dir()
    elif raw_dir is not None:
        existing_drop(raw_dir)
    try:  # shared: no nasmr build may rebuild the folder while it is copied
        with build_lock(build_dir, "nasmr release publish", elsewhere=None, shared=True):
            published = publish_release(build_dir, releases_dir, version=version, raw_dir=raw_dir)
    except (ReleaseError, ValueError, BuildFolderBusy) as err:
        raise click.ClickException(str(err)) from err
    target = published.path
    previous = load_manifest(target).previous_version
    click.echo(f"published {target.name} at {target}")
    if previous is not None:
        click.echo(f"changes since {previous}:")
        click.echo(published.diff.to_markdown())


@release.command(name="list")
@releases_option
def list_(releases_dir: Path) -> None:
    """List the published releases, lowest version first; exit 1 if a manifest is unreadable."""
    from nasmr.release import ReleaseError, load_manifest, published_versions

    versions = published_versions(releases_dir)
    if not versions:
        click.echo(f"no release in {releases_dir}")
        return
    click.echo("version  created               previous  schema  inputs        settings")
    unreadable = []
    for version in versions:
        try:
            m = load_manifest(releases_dir / str(version))
        except ReleaseError as err:
            unreadable.append(str(version))
            click.echo(f"{version!s:<8} unreadable: {err}")
            continue
        click.echo(
            f"{m.version:<8} {m.created_at:%Y-%m-%d %H:%M:%S}   {m.previous_version or '-':<9} "
            f"{m.schema_version:<7} {m.content_hash[:12]}  {', '.join(m.settings_present)}"
        )
    if unreadable:
        raise click.ClickException(
            f"unreadable manifest in release(s) {', '.join(unreadable)}: "
            f"`nasmr release verify {unreadable[0]}` tells whether its files changed"
        )


@release.command()
@click.argument("ref")
@releases_option
def verify(ref: str, releases_dir: Path) -> None:
    """Re-check every checksum of release REF (a version, 'latest' or a folder); exit 1 if not."""
    from nasmr.release import ReleaseError, verify_release

    try:
        report = verify_release(ref, releases_dir)
    except ReleaseError as err:
        raise click.ClickException(str(err)) from err
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@release.command()
@click.argument("old")
@click.argument("new")
@click.option(
    "--records",
    is_flag=True,
    help="Instead of the counts, name every record value added, removed or changed, as CSV "
    "(change, setting, code, metric, old, new).",
)
@releases_option
def diff(old: str, new: str, records: bool, releases_dir: Path) -> None:
    """Show what changed from release OLD to release NEW, and the version level it needs."""
    from nasmr.release import ReleaseError, diff_releases, record_changes

    try:
        if records:
            click.echo(record_changes(old, new, releases_dir).to_csv(index=False), nl=False)
            return
        changes = diff_releases(old, new, releases_dir)
    except ReleaseError as err:
        raise click.ClickException(str(err)) from err
    level = "no changes" if changes.unchanged else f"{changes.level} changes"
    click.echo(f"{old} -> {new}: {level}")
    click.echo(changes.to_markdown())


@click.group()
def export() -> None:
    """Write a release's data back in other formats."""


@export.command()
@click.option("--release", "ref", default="latest", show_default=True, help="Version or folder.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write data/search_list.txt and data/<setting>/trainval.pkl into.",
)
@releases_option
def trainval(ref: str, out_dir: Path, releases_dir: Path) -> None:
    """Export a release as a raw drop: its search list and a trainval.pkl per setting with
    results (MR and nas-bench-201), in the published format and record order. A release
    must match its checksums first."""
    import duckdb

    from nasmr.api import Benchmark
    from nasmr.release import ReleaseError

    try:
        with Benchmark.open(ref, releases_dir, verify=True) as bench:
            written = bench.export_trainval(out_dir)
    except (ReleaseError, paths.ReleaseFolderError, OSError, duckdb.Error) as err:
        raise click.ClickException(str(err)) from err
    for path in written:
        click.echo(path)
