"""The ``nasmr`` command: one click group, one module per command family."""

from __future__ import annotations

import click

from nasmr import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nasmr")
def main() -> None:
    """Build, query and publish the curated NAS-Bench-MR benchmark."""
