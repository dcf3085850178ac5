"""Reading the raw drop safely: file layout and a restricted unpickler.

A ``trainval.pkl`` is untrusted input, and a pickle is a program. The loader
allows only NumPy's array and scalar reconstruction (the real drop's nas-bench-201
embeddings are arrays) and refuses every other global before anything runs. Even
those run none of NumPy's own unpickling code: stand-ins accept plain numeric dtypes
only and build each value from bytes the file holds, so a forged dtype cannot corrupt
memory and a claimed shape cannot allocate more than the file's size.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

SEARCH_LIST = "search_list.txt"
TRAINVAL = "trainval.pkl"
MAX_PICKLE_BYTES = 256 * 1024 * 1024

PLAIN_KINDS = "biuf"
"""NumPy dtype kinds an array in the drop may have: bool, signed and unsigned int, float."""


class RawDropError(Exception):
    """A raw-drop file could not be read; the message names the file and the reason."""


class _NDArray:
    """Stand-in for ``numpy.ndarray``: only marks what ``_reconstruct`` is asked to build."""


class _DType:
    """Stand-in for ``numpy.dtype``: a plain numeric type code and its byte order."""

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        dtype = np.dtype(code) if isinstance(code, str) and len(code) <= 4 else None
        if dtype is None or dtype.kind not in PLAIN_KINDS or dtype.fields is not None:
            raise ValueError(f"array dtype {code!r} is not a plain numeric type")
        self.dtype = dtype

    def __setstate__(self, state: object) -> None:
        # (version, byte order, subarray, names, fields, item size, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or state[2:5] != (None, None, None):
            raise ValueError("array dtype with fields or subarrays")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Stand-in for an unpickled ``numpy.ndarray``, built by ``__setstate__`` from raw bytes."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        # (version, shape, dtype, Fortran order, data)
        if not isinstance(state, tuple) or len(state) != 5:
            raise ValueError("array state is not (version, shape, dtype, order, data)")
        _, shape, dtype, fortran, data = state
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise ValueError(f"array shape {shape!r} is not a tuple of sizes")
        if not isinstance(dtype, _DType) or not isinstance(fortran, bool):
            raise ValueError("array state without a plain dtype and order flag")
        expected = math.prod(shape) * dtype.dtype.itemsize
        if not isinstance(data, bytes) or len(data) != expected:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise ValueError(
                f"array of shape {shape} {dtype.dtype} needs {expected} bytes, got {size}"
            )
        order = "F" if fortran else "C"
        self.array = np.frombuffer(data, dtype.dtype).reshape(shape, order=order).copy()

    def __repr__(self) -> str:
        return repr(self.array)  # quarantine reasons quote it: the same text on every run


def _scalar(dtype: object, data: object) -> np.generic:
    """Stand-in for NumPy's ``scalar``: one value of a plain dtype from its bytes."""
    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise ValueError("scalar state without a plain dtype and its bytes")
    if len(data) != dtype.dtype.itemsize:
        raise ValueError(
            f"{dtype.dtype} scalar needs {dtype.dtype.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype.dtype)[0]


def _reconstruct(cls: object, shape: object, code: object) -> _Array:
    """Stand-in for NumPy's ``_reconstruct``: an empty array whose state comes next."""
    if cls is not _NDArray:
        raise ValueError("_reconstruct called on something other than numpy.ndarray")
    return _Array()


STAND_INS: dict[tuple[str, str], object] = {
    **{
        (prefix, name): function
        for prefix in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name, function in (("_reconstruct", _reconstruct), ("scalar", _scalar))
    },
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _DType,
}
"""The only globals a raw-drop pickle may reference, and the stand-in each resolves to.

NumPy 2 pickles spell the module of ``_reconstruct`` and ``scalar`` ``numpy._core``, older
ones ``numpy.core``.
"""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(io.BytesIO(data))
        self._name = name

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in STAND_INS:
            raise RawDropError(
                f"{self._name}: refused global {module}.{name} (not needed by the drop)"
            )
        return STAND_INS[module, name]


def _arrays(records: list[Any], name: str) -> list[Any]:
    """Records with each array stand-in among their fields replaced by its NumPy array."""
    for record in records:
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            if isinstance(value, _Array):
                if value.array is None:
                    raise RawDropError(f"{name}: not a readable pickle (array {key!r} has no data)")
                record[key] = value.array
    return records


def load_pickle(
    path: Path, max_bytes: int = MAX_PICKLE_BYTES, name: str | None = None
) -> list[Any]:
    """Load a ``trainval.pkl`` as a list without executing code from it.

    Errors begin with ``name`` (default: the path), e.g. the file's place in its drop.
    """
    path = Path(path)
    name = str(path) if name is None else name
    if not path.is_file():
        raise RawDropError(f"{name}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise RawDropError(f"{name}: file is empty")
    if size > max_bytes:
        raise RawDropError(f"{name}: {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        data = _RestrictedUnpickler(path.read_bytes(), name).load()
    except RawDropError:
        raise
    except Exception as err:  # any unpickling failure is a property of the file
        raise RawDropError(f"{name}: not a readable pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, list):
        raise RawDropError(f"{name}: expected a list of records, found {type(data).__name__}")
    return _arrays(data, name)


def trainval_path(raw_dir: Path, setting: str) -> Path:
    """Where a setting's results live in a raw drop."""
    return Path(raw_dir) / "data" / setting / TRAINVAL


def search_list_path(raw_dir: Path) -> Path:
    """``<raw_dir>/data/search_list.txt``, the architecture codes of the drop."""
    return Path(raw_dir) / "data" / SEARCH_LIST


class SearchLine(NamedTuple):
    """A non-blank line of the search list: its 0-based line number, its stripped text and,
    for a line that is not UTF-8, why (its text then shows bad bytes as U+FFFD)."""

    index: int
    text: str
    problem: str | None = None


def read_search_list(raw_dir: Path) -> list[SearchLine]:
    """The non-blank lines of the search list in file order, numbered as in the file.

    Blank lines are skipped after numbering, so ``index`` stays the line an editor shows
    (minus one) and a rejected code can be found in the file. A line that is not UTF-8
    comes with a ``problem`` instead of stopping the read: one bad line loses no others.
    """
    path = search_list_path(raw_dir)
    if not path.is_file():
        raise RawDropError(f"{path}: file not found")
    lines = [_search_line(i, line) for i, line in enumerate(path.read_bytes().splitlines())]
    return [line for line in lines if line.text]


def _search_line(index: int, line: bytes) -> SearchLine:
    """One line of the search list decoded as UTF-8, or why it cannot be."""
    try:
        return SearchLine(index, line.decode("utf-8").strip())
    except UnicodeDecodeError as err:
        problem = f"not valid UTF-8: byte {err.start + 1} of the line"
        return SearchLine(index, line.decode("utf-8", errors="replace").strip(), problem)
