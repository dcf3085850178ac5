"""The Dagster code location of nasmr: ``dagster dev -m pipelines`` loads ``defs``."""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from pipelines.definitions import build_definitions  # noqa: E402

defs = build_definitions()
