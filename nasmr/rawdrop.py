"""Reading the raw drop safely: file layout and a restricted unpickler.

A ``trainval.pkl`` is untrusted input, and a pickle is a program. The loader
allows only the globals the real drop needs (numpy's array reconstruction for
nas-bench-201) and refuses everything else before anything runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

SEARCH_LIST = "search_list.txt"
TRAINVAL = "trainval.pkl"
MAX_PICKLE_BYTES = 256 * 1024 * 1024

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    (module, name)
    for prefix in ("numpy.core.multiarray", "numpy._core.multiarray")
    for module, name in [(prefix, "_reconstruct"), (prefix, "scalar")]
) | {("numpy", "ndarray"), ("numpy", "dtype")}
"""(module, name) pairs a raw-drop pickle may reference; NumPy 2 spells some ``numpy._core``."""


class RawDropError(Exception):
    """A raw-drop file could not be read; the message names the file and the reason."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise RawDropError(
                f"{self._path}: refused global {module}.{name} (not needed by the drop)"
            )
        return super().find_class(module, name)


def load_pickle(path: Path, max_bytes: int = MAX_PICKLE_BYTES) -> list[Any]:
    """Load a ``trainval.pkl`` as a list without executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise RawDropError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise RawDropError(f"{path}: file is empty")
    if size > max_bytes:
        raise RawDropError(f"{path}: {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        data = _RestrictedUnpickler(path.read_bytes(), path).load()
    except RawDropError:
        raise
    except Exception as err:  # any unpickling failure is a property of the file
        raise RawDropError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, list):
        raise RawDropError(f"{path}: expected a list of records, found {type(data).__name__}")
    return data


def trainval_path(raw_dir: Path, setting: str) -> Path:
    """Where a setting's results live in a raw drop."""
    return Path(raw_dir) / "data" / setting / TRAINVAL


def search_list_path(raw_dir: Path) -> Path:
    """``<raw_dir>/data/search_list.txt``, the architecture codes of the drop."""
    return Path(raw_dir) / "data" / SEARCH_LIST


def read_search_list(raw_dir: Path) -> list[str]:
    """The architecture codes of the search list, in file order, blank lines dropped."""
    path = search_list_path(raw_dir)
    if not path.is_file():
        raise RawDropError(f"{path}: file not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
