"""NAS-Bench-201's cell: its edges and ops, and the ways a cell may be written.

The drop's nas-bench-201 records name neither; :data:`NB201_OPS` says how the op indices
were inferred. Plain Python, so help texts and the closed-form count read it without
pydantic or torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from nasmr.shown import shown

NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The (to, from) nodes of the 6 cell edges, in the order of the embedding (NAS-Bench-201's)."""

NB201_OPS = ("avg_pool_3x3", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
"""The op of each one-hot index, inferred from the data (the drop does not name them).

Cells whose every input-to-output path crosses index 1 score chance accuracy, so 1 is
``none``; params grow most with 4, then 3 (the 3x3 and 1x1 convolutions). Record 0
(0|3|2|3|2|2) has the 15.65 MFLOPs that NATS-Bench issue #24 gives for NAS-Bench-201
architecture 0 at CIFAR size,
``|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|``,
which fixes 0 and 2.
"""

NB201_LEGEND = (
    "edges "
    + ", ".join(f"{to}<-{source}" for to, source in NB201_EDGES)
    + "; ops "
    + ", ".join(f"{i} {name}" for i, name in enumerate(NB201_OPS))
)
"""How to read a cell's op indices, for help texts, errors and column comments."""

NB201_NOTATION = (
    f"6 op indices joined by '|' ({NB201_LEGEND}; not the none-first order of "
    "NAS-Bench-201's code), e.g. 0|3|2|3|2|2, or "
    "NAS-Bench-201's arch string, e.g. |avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|"
    "nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)
"""The two ways a nas-bench-201 cell may be written, for help texts and errors."""


def parse_ops(cell: str | Sequence[int | str]) -> list[int]:
    """The 6 op indices of a nas-bench-201 cell, written as ingested (``0|3|2|3|2|2``), as
    NAS-Bench-201's arch string (``|avg_pool_3x3~0|+|...|``: see ``NB201_NOTATION``), or
    given as a sequence of 6 op indices or op names; a ValueError names anything else.
    """
    if isinstance(cell, str):
        ops = _ops_of_arch_str(cell) if "~" in cell else cell.split("|")
    else:
        try:
            ops = [_op_digit(op) for op in cell]
        except TypeError:  # not iterable
            ops = []
    digits = [str(i) for i in range(len(NB201_OPS))]
    if len(ops) != len(NB201_EDGES) or not all(op in digits for op in ops):
        raise ValueError(
            f"invalid nas-bench-201 cell {shown(cell)}: expected {NB201_NOTATION}, or a "
            f"sequence of 6 op indices or names ({', '.join(NB201_OPS)})"
        )
    return [int(op) for op in ops]


def _op_digit(op: object) -> str:
    """An op index or name as its index's digit; an empty string if it is neither."""
    if isinstance(op, str):
        return str(NB201_OPS.index(op)) if op in NB201_OPS else ""
    is_index = isinstance(op, numbers.Integral) and not isinstance(op, bool)
    return str(op) if is_index and 0 <= op < len(NB201_OPS) else ""


def _ops_of_arch_str(text: str) -> list[str]:
    """The op indices (as text) of an arch string; an empty list if it is malformed.

    Its nodes are '+'-separated, each ``|op~source|...|``; the (node, source) pairs must be
    ``NB201_EDGES`` in order.
    """
    edges, names = [], []
    for to, node in enumerate(text.split("+"), start=1):
        if len(node) < 2 or node[0] != "|" or node[-1] != "|":
            return []
        for item in node[1:-1].split("|"):
            name, _, source = item.partition("~")
            edges.append((to, source))
            names.append(name)
    if edges != [(to, str(source)) for to, source in NB201_EDGES]:
        return []
    return [_op_digit(name) for name in names]


def arch_str(cell: str | Sequence[int | str]) -> str:
    """A cell (any form :func:`parse_ops` reads) in NAS-Bench-201's notation, e.g.
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|...|``."""
    nodes: dict[int, list[str]] = {}
    for (to, source), op in zip(NB201_EDGES, parse_ops(cell), strict=True):
        nodes.setdefault(to, []).append(f"{NB201_OPS[op]}~{source}")
    return "+".join("|" + "|".join(inputs) + "|" for inputs in nodes.values())


def ops_text(ops: Sequence[int]) -> str:
    """A cell's op indices as ingested (the ``ops`` key of ``nb201_results``): ``0|3|2|3|2|2``."""
    return "|".join(map(str, ops))
