"""Shared fixtures: the real raw drop, which CI must have and a laptop may lack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nasmr import paths
from nasmr.predictor import torch_threads
from nasmr.release import publish_release
from nasmr.train_config import TrainConfig
from nasmr.training import mini
from nasmr.warehouse import ingest

RELEASED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
"""When the ``releases`` fixture's release says it was published."""

LOG_SEED = 97  # sample(2, 97) draws two small architectures, so the drop trains in seconds
LOG_CONFIG = TrainConfig(
    epochs=2, train_images=32, val_images=32, batch_size=16, log_interval=1, seed=LOG_SEED
)


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


@pytest.fixture(scope="session")
def releases(build: Path, raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A releases folder holding 1.0.0, published from ``build`` with the drop re-checked;
    read-only, so tests that change a release work on a copy."""
    root = tmp_path_factory.mktemp("releases")
    publish_release(build, root, raw_dir=raw_dir, created_at=RELEASED_AT)
    return root


@pytest.fixture(scope="session")
def log_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real raw-log drop: 2 architectures x {digits-cls, digits-seg}, 2 epochs each."""
    root = tmp_path_factory.mktemp("log-drop")
    mini(2, root, LOG_CONFIG)
    return root


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One intra-op thread: two spin-waiting threads on a shared 2-core machine run 10x slower."""
    with torch_threads(1):
        yield
