"""Shared fixtures: the real raw drop, which CI must have and a laptop may lack."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nasmr import paths
from nasmr.warehouse import ingest


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """The real NAS-Bench-MR drop; missing it fails under CI=true and skips elsewhere."""
    path = paths.raw_dir()
    if not (path / "data" / "search_list.txt").is_file():
        message = f"raw drop not found at {path}; set NASMR_RAW to its folder"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def build(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One analytic warehouse build of the real drop, shared by the whole session."""
    out = tmp_path_factory.mktemp("real-build")
    ingest(raw_dir, out, method="analytic", ingested_at=datetime(2025, 1, 1, tzinfo=UTC))
    return out
