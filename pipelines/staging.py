"""Persist the value types of a pipeline step between steps: frames as Parquet, the rest as JSON.

A pipeline step (a Dagster asset, possibly in another process) saves its
result in a folder; the next step loads it back as the same value type. Frames
go through :func:`nasmr.warehouse.write_parquet`, so equal results give equal
bytes.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from nasmr.warehouse import write_parquet

T = TypeVar("T")
_FIELDS = "fields.json"


def save(value: Any, folder: Path) -> Path:
    """Write a dataclass instance: each DataFrame field to ``<field>.parquet``, the rest as JSON."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plain = {}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if isinstance(item, pd.DataFrame):
            write_parquet(item, folder / f"{field.name}.parquet")
        else:
            plain[field.name] = dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item
    (folder / _FIELDS).write_text(json.dumps(plain, indent=1, sort_keys=True))
    return folder


def load(cls: type[T], folder: Path) -> T:
    """Read back what :func:`save` wrote for a value of type ``cls``."""
    folder = Path(folder)
    if not (folder / _FIELDS).is_file():
        raise FileNotFoundError(
            f"no saved {cls.__name__} in {folder}: materialize the step that writes it first"
        )
    plain = json.loads((folder / _FIELDS).read_text())
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if hints[field.name] is pd.DataFrame:
            kwargs[field.name] = pd.read_parquet(folder / f"{field.name}.parquet")
        elif field.name in plain:
            kwargs[field.name] = _revive(hints[field.name], plain[field.name])
        else:
            raise ValueError(
                f"{folder / _FIELDS}: no field {field.name!r} of {cls.__name__} "
                "(saved by another version? materialize the step that writes it again)"
            )
    return cls(**kwargs)


def _revive(hint: Any, value: Any) -> Any:
    """Rebuild a nested dataclass (``Source | None`` and the like) from its JSON dict."""
    if not isinstance(value, dict):
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option):
            return option(**value)
    return value
