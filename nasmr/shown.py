"""Short reprs of untrusted values for error messages: bounded, and never failing.

Python refuses ``repr`` of an int of more than 4,300 digits (a ValueError), a value nested
deep enough overflows ``repr``'s recursion, and NumPy prints every item of an array with
no axis longer than its summary threshold; a raw drop may hold any of them, and a small
file can list one record many times, so what one error prints must stay small.
"""

from __future__ import annotations

import reprlib
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

    def repr_ndarray(self, x: np.ndarray, level: int) -> str:
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
    text = _Shorten(limit).repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
