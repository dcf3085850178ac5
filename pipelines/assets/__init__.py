"""Asset groups in data-flow order: raw -> ingest -> warehouse -> models -> release; and
logs (results regenerated from a raw training-log drop), beside them.

Two Dagster features used here are marked beta (observable source assets, the backfill
policy of the partitioned ingest); their warnings are silenced once, before any asset
module is imported.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
