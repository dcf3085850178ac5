"""The Pareto front of cost vs value: one definition for the query API and the search report."""

from __future__ import annotations

import numpy as np


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices, by increasing cost, of the points no other beats on lower cost and higher value.

    Of equal points the first is kept; NaN values are never on the front.
    """
    order = np.lexsort((-value, cost))
    ranked = value[order]
    best_before = np.fmax.accumulate(np.concatenate(([-np.inf], ranked)))[:-1]
    return order[ranked > best_before]
