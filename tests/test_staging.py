"""Values handed between pipeline steps: saved and loaded back equal, or a clear error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pipelines import staging


@dataclass(frozen=True)
class Origin:
    path: str
    sha256: str


@dataclass(frozen=True, eq=False)
class StepResult:
    frame: pd.DataFrame
    status: str
    origin: Origin | None
    counts: dict[str, int]


def _value(origin: Origin | None) -> StepResult:
    frame = pd.DataFrame({"code": ["a", "b"], "value": [1.5, float("nan")]})
    return StepResult(frame, "ok", origin, {"read": 2, "valid": 2})


@pytest.mark.parametrize("origin", [Origin("data/seg/trainval.pkl", "ab" * 32), None])
def test_a_saved_value_loads_back_equal(tmp_path: Path, origin: Origin | None) -> None:
    staging.save(_value(origin), tmp_path / "step")
    loaded = staging.load(StepResult, tmp_path / "step")
    pd.testing.assert_frame_equal(loaded.frame, _value(origin).frame)
    assert (loaded.status, loaded.origin, loaded.counts) == ("ok", origin, {"read": 2, "valid": 2})


def test_saving_twice_gives_identical_bytes(tmp_path: Path) -> None:
    for name in ("one", "two"):
        staging.save(_value(None), tmp_path / name)
    for file in ("frame.parquet", "fields.json"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_nothing_saved_says_which_step_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no saved StepResult in .*materialize"):
        staging.load(StepResult, tmp_path)


def test_a_field_missing_from_the_saved_json_is_named(tmp_path: Path) -> None:
    folder = staging.save(_value(None), tmp_path / "step")
    fields = json.loads((folder / "fields.json").read_text())
    del fields["counts"]
    (folder / "fields.json").write_text(json.dumps(fields))
    with pytest.raises(ValueError, match=r"fields\.json: no field 'counts' of StepResult"):
        staging.load(StepResult, folder)
