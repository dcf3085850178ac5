"""The ``nasmr`` command: one click group, one module per command family.

``nasmr build`` runs Dagster, so it is added by ``pipelines.cli``, the console script's entry.
"""

from __future__ import annotations

import click

from nasmr import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nasmr")
def main() -> None:
    """Build, query and publish the curated NAS-Bench-MR benchmark."""


from nasmr.cli.warehouse import ingest, sql  # noqa: E402

main.add_command(ingest)
main.add_command(sql)

from nasmr.cli.release import export, release  # noqa: E402

main.add_command(release)
main.add_command(export)

from nasmr.cli.complexity import complexity  # noqa: E402

main.add_command(complexity)

from nasmr.cli.logs import logs, mini, train  # noqa: E402

main.add_command(train)
main.add_command(mini)
main.add_command(logs)

from nasmr.cli.models import predict, predictor, search  # noqa: E402

main.add_command(predictor)
main.add_command(predict)
main.add_command(search)
