"""One static partition per benchmark setting, 3ddet included (reported missing)."""

import dagster as dg

from schemas.settings import SETTINGS

settings_partitions = dg.StaticPartitionsDefinition(list(SETTINGS))
