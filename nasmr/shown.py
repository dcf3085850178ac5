"""Short reprs of untrusted values for error messages, bounded and never failing; and the
names a misspelt one resembles.

Python refuses ``repr`` of an int of more than 4,300 digits (a ValueError), a value nested
deep enough overflows ``repr``'s recursion, and NumPy prints every item of an array with
no axis longer than its summary threshold; a raw drop may hold any of them, and a small
file can list one record many times, so what one error prints must stay small.
"""

from __future__ import annotations

import difflib
import itertools
import reprlib
from collections.abc import Iterable
from typing import Any

import numpy as np


class _Shorten(reprlib.Repr):
    """reprlib's cut at ``limit`` items and characters, printing an int too long for text by
    its size."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        for name in ("maxdict", "maxlist", "maxtuple", "maxset", "maxstring", "maxother"):
            setattr(self, name, limit)
        self.maxlevel = 3

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        """In insertion order: reprlib sorts every key first, however many."""
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in itertools.islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(items) + (", ...}" if len(x) > self.maxdict else "}")

    def repr_bytes(self, x: bytes, level: int) -> str:
        return repr(x[: self.maxstring]) + ("..." if len(x) > self.maxstring else "")

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return f"bytearray({self.repr_bytes(bytes(x[: self.maxstring + 1]), level)})"

    def repr_ndarray(self, x: np.ndarray, level: int) -> str:
        """NumPy's repr for a small array of numbers; an object array's items go through this
        class (NumPy's repr of them has none of its guards)."""
        if x.dtype.hasobject:
            return f"array({self.repr1(x.tolist(), level)}, dtype=object)"
        if x.size <= self.maxlist:
            return repr(x)
        return f"array(shape={x.shape}, dtype={x.dtype})"

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than int-to-text conversion allows
            return f"<an integer of {x.bit_length()} bits>"


def shown(value: Any, limit: int = 80) -> str:
    """A short repr of ``value``: nesting cut at 3 levels, text at ``limit`` characters."""
    return cut(_Shorten(limit).repr(value), limit)


def cut(text: str, limit: int = 80) -> str:
    """``text`` itself (no quotes), cut after ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the known name ``name`` most resembles (case, ``_`` for
    ``-`` and small typos forgiven), or ``""``."""
    if not isinstance(name, str):
        return ""
    known = list(known)
    folded = {k.casefold().replace("_", "-"): k for k in known}
    key = name.casefold().replace("_", "-")
    if key in folded:
        return f"; did you mean {folded[key]!r}?"
    close = difflib.get_close_matches(key, folded, n=1, cutoff=0.6)
    return f"; did you mean {folded[close[0]]!r}?" if close else ""
