"""The build clock: ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now (UTC)."""

from __future__ import annotations

import os
from datetime import UTC, datetime


def now() -> datetime:
    """Time stamp for ingested_at / created_at; SOURCE_DATE_EPOCH fixes it for rebuilds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC).replace(microsecond=0)
