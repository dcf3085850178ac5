"""Materialization metadata a maintainer reads at a glance: counts, previews, plots, timings."""

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of a frame as a markdown table, missing values as empty cells (pandas
    wrote ``nan``)."""
    head = frame.head(rows)
    shown = head.astype(object).where(head.notna(), None)  # tabulate types columns past None
    return dg.MetadataValue.md(
        shown.to_markdown(index=False, missingval="") if len(frame) else "_empty_"
    )


def table_metadata(frame: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """Row count and a preview of one table."""
    return {"dagster/row_count": dg.MetadataValue.int(len(frame)), "preview": preview(frame)}


def plots(folder: Path) -> dict[str, dg.MetadataValue]:
    """Every PNG in ``folder`` as markdown with the image inline (a data URI, as Dagster's own
    examples attach plots), keyed by file name: the UI shows them on the materialization."""
    return {
        path.stem: dg.MetadataValue.md(
            f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"
        )
        for path in sorted(folder.glob("*.png"))
    }


@contextmanager
def timed(metadata: dict[str, object]) -> Iterator[None]:
    """Record the wall time of a block as ``duration_s`` in ``metadata``."""
    start = time.perf_counter()
    yield
    metadata["duration_s"] = dg.MetadataValue.float(round(time.perf_counter() - start, 3))


def check_result(offending: pd.DataFrame, checked: int, **extra: object) -> dg.AssetCheckResult:
    """Pass when nothing offends; otherwise name the offending rows (first 20) in the metadata."""
    return dg.AssetCheckResult(
        passed=offending.empty,
        metadata={
            "checked": checked,
            "offending": len(offending),
            "offending_rows": preview(offending, rows=20),
            **extra,
        },
    )
