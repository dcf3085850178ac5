"""Predictor inputs as differentiable functions of a relaxed (real-valued) embedding.

NCP ascends a predictor's gradient with respect to the embedding, so every input
feature is a torch function of the normalised embedding ``z`` (each of the 27
positions mapped linearly from its domain to [0, 1]). Besides ``z`` itself, the
MR features include the exact FLOPs and parameter counts per branch resolution:
the count of ``nasmr.complexity.analytic_complexity`` is a polynomial in the
embedding (linear in repeats and block counts, quadratic in channels), so
:func:`relaxed_complexity` evaluates that polynomial on tensors. On valid
architectures it equals the analytic counter exactly; between them it
interpolates smoothly, which is what a gradient needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
from torch import Tensor

from nasmr.complexity import supernet_layers
from nasmr.space import (
    EMBEDDING_COLUMNS,
    EMBEDDING_LENGTH,
    N_STAGES,
    STAGE_POSITIONS,
    Arch,
    domain,
)
from schemas.nb201 import NB201_EDGES, NB201_OPS, parse_ops

EMBEDDING_LOW: tuple[float, ...] = tuple(float(domain(p)[0]) for p in range(EMBEDDING_LENGTH))
"""Smallest allowed value of each embedding position (normalised to 0)."""

EMBEDDING_HIGH: tuple[float, ...] = tuple(float(domain(p)[-1]) for p in range(EMBEDDING_LENGTH))
"""Largest allowed value of each embedding position (normalised to 1)."""

EMBEDDING_STEPS: tuple[int, ...] = tuple(len(domain(p)) - 1 for p in range(EMBEDDING_LENGTH))
"""Number of grid steps between the smallest and largest value of each position."""

RESOLUTIONS = (4, 8, 16, 32)
"""Downsampling factor of each branch (branch b runs at 1/RESOLUTIONS[b] of the input)."""

COMPLEXITY_FEATURES: tuple[str, ...] = (
    *(f"log_macs_r{r}" for r in RESOLUTIONS),
    *(f"log_params_r{r}" for r in RESOLUTIONS),
    "log_macs",
    "log_params",
)
"""Names of the complexity features of :func:`mr_features`."""

STRUCTURE_FEATURES: tuple[str, ...] = (
    *(f"log_blocks_r{r}" for r in RESOLUTIONS),
    *(f"log2_width_r{r}" for r in RESOLUTIONS),
    "log_path",
    "log_modules",
    "log_head_width",
)
"""Names of the structure features of :func:`mr_features`: depth and width per resolution.

``blocks``: basic blocks run at that resolution; ``width``: their block-weighted mean
log2 channel count; ``path``: modules plus convolutions on the longest path through the
stages; ``head_width``: channels the head concatenates (stage 4's branches).
"""

MR_FEATURES: tuple[str, ...] = (*EMBEDDING_COLUMNS, *COMPLEXITY_FEATURES, *STRUCTURE_FEATURES)
"""Names of the columns of :func:`mr_features`."""

_EDGES, _OPS = len(NB201_EDGES), len(NB201_OPS)
NB201_FEATURES: tuple[str, ...] = tuple(
    f"edge{e}_op{o}" for e in range(_EDGES) for o in range(_OPS)
)
"""Names of the one-hot columns of :func:`nb201_features` (edge-major, as in the drop)."""


def _bounds(like: Tensor) -> tuple[Tensor, Tensor]:
    low = torch.tensor(EMBEDDING_LOW, dtype=like.dtype, device=like.device)
    high = torch.tensor(EMBEDDING_HIGH, dtype=like.dtype, device=like.device)
    return low, high


def embedding_tensor(archs: Sequence[Arch], dtype: torch.dtype = torch.float32) -> Tensor:
    """The raw 27-int embeddings of ``archs`` as an ``(n, 27)`` float tensor."""
    return torch.tensor([a.embedding for a in archs], dtype=dtype).reshape(-1, EMBEDDING_LENGTH)


def normalise(embeddings: Tensor) -> Tensor:
    """Map raw embedding values to [0, 1] per position (the space NCP searches in)."""
    low, high = _bounds(embeddings)
    return (embeddings - low) / (high - low)


def denormalise(z: Tensor) -> Tensor:
    """Inverse of :func:`normalise`: raw (possibly fractional) embedding values."""
    low, high = _bounds(z)
    return low + z * (high - low)


def snap_normalised(z: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the grid, vectorised: ``nasmr.space.snap`` on a batch.

    Returns the normalised values of the nearest valid architectures; a value exactly
    halfway between two grid points goes to the smaller one, as ``snap`` does.
    """
    steps = torch.tensor(EMBEDDING_STEPS, dtype=z.dtype, device=z.device)
    index = torch.ceil(z.clamp(0.0, 1.0) * steps - 0.5).clamp_min(0.0)
    return index / steps


def archs_from_normalised(z: Tensor) -> list[Arch]:
    """The architectures of already snapped normalised embeddings (see :func:`snap_normalised`)."""
    raw = torch.round(denormalise(z.detach())).to(torch.int64).tolist()
    return [Arch.from_embedding(row) for row in raw]


class Poly:
    """A polynomial in named factors: monomial (sorted factor indices) -> coefficient.

    The complexity counts are built once symbolically by the analytic counter's own walk
    (``nasmr.complexity.supernet_layers``), the structure counts alike, then evaluated on a
    batch as gather, product and one matrix product: a small autograd graph, fast to
    differentiate.
    """

    __slots__ = ("terms",)

    def __init__(self, terms: dict[tuple[int, ...], float]) -> None:
        self.terms = terms

    @classmethod
    def var(cls, factor: int) -> Poly:
        return cls({(factor,): 1.0})

    def __add__(self, other: Poly | float) -> Poly:
        other = other if isinstance(other, Poly) else Poly({(): float(other)})
        terms = dict(self.terms)
        for monomial, coef in other.terms.items():
            terms[monomial] = terms.get(monomial, 0.0) + coef
        return Poly(terms)

    __radd__ = __add__

    def __sub__(self, other: float) -> Poly:
        return self + (-other)

    def __mul__(self, other: Poly | float) -> Poly:
        other = other if isinstance(other, Poly) else Poly({(): float(other)})
        terms: dict[tuple[int, ...], float] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                monomial = tuple(sorted(m1 + m2))
                terms[monomial] = terms.get(monomial, 0.0) + c1 * c2
        return Poly(terms)

    __rmul__ = __mul__


_LOG2 = 1 + EMBEDDING_LENGTH
"""Factor columns: 0 is the constant 1, 1 + i is position i, _LOG2 + i is log2 of position i."""


def _compile(polys: Sequence[Poly]) -> tuple[Tensor, Tensor]:
    """(monomials x degree) factor indices padded with the constant, (monomials x polys) coefs."""
    monomials = sorted({m for p in polys for m in p.terms})
    degree = max(len(m) for m in monomials)
    index = torch.tensor([(*m, *([0] * (degree - len(m)))) for m in monomials])
    position = {m: t for t, m in enumerate(monomials)}
    coefs = torch.zeros(len(monomials), len(polys), dtype=torch.float64)
    for j, poly in enumerate(polys):
        for monomial, coef in poly.terms.items():
            coefs[position[monomial], j] = coef
    return index, coefs


def _evaluate(program: tuple[Tensor, Tensor], embeddings: Tensor) -> Tensor:
    """Every compiled polynomial on a batch of raw embeddings, ``(n, polys)``."""
    index, coefs = program
    ones = embeddings.new_ones(embeddings.shape[0], 1)
    factors = torch.cat([ones, embeddings, embeddings.log2()], dim=1)
    return factors[:, index].prod(dim=2) @ coefs.to(embeddings)


def _stages(e: Sequence[Poly]) -> list[tuple[Poly, list[Poly], list[Poly]]]:
    """(repeats, convs per branch, channels per branch) of each stage, from embedding factors."""
    return [
        (e[r], [e[p] for p in convs], [e[p] for p in chans]) for r, convs, chans in STAGE_POSITIONS
    ]


@cache
def _complexity_program() -> tuple[Tensor, Tensor]:
    """MACs then params per branch resolution as compiled polynomials of the embedding."""
    e = [Poly.var(1 + i) for i in range(EMBEDDING_LENGTH)]
    macs = [Poly({}) for _ in RESOLUTIONS]
    params = [Poly({}) for _ in RESOLUTIONS]
    for branch, area, count in supernet_layers(e[:2], _stages(e), e[-1]):
        params[branch] = params[branch] + count
        macs[branch] = macs[branch] + count * area
    return _compile([*macs, *params])


@cache
def _structure_program() -> tuple[Tensor, Tensor]:
    """Blocks and block-weighted log2 channels per resolution, modules, head width."""
    e = [Poly.var(1 + i) for i in range(EMBEDDING_LENGTH)]
    log2 = [Poly.var(_LOG2 + i) for i in range(EMBEDDING_LENGTH)]
    blocks = [Poly({}) for _ in RESOLUTIONS]
    width = [Poly({}) for _ in RESOLUTIONS]
    for r, convs, chans in STAGE_POSITIONS:
        for b, (c, h) in enumerate(zip(convs, chans, strict=True)):
            blocks[b] = blocks[b] + e[r] * e[c]
            width[b] = width[b] + e[r] * e[c] * log2[h]
    modules = sum((r for r, _, _ in _stages(e)), Poly({}))
    head = sum(_stages(e)[-1][2], Poly({}))
    return _compile([*blocks, *width, modules, head])


def relaxed_complexity(embeddings: Tensor) -> tuple[Tensor, Tensor]:
    """Multiply-accumulates and parameters per branch resolution, ``(n, 4)`` each.

    ``embeddings`` holds raw (denormalised) values, possibly fractional. On a valid
    architecture the row sums equal ``analytic_complexity`` (MACs, params) exactly
    (in float64); the head is counted at the lowest resolution, the stem at the highest.
    """
    values = _evaluate(_complexity_program(), embeddings)
    return values[:, : len(RESOLUTIONS)], values[:, len(RESOLUTIONS) :]


def relaxed_structure(embeddings: Tensor) -> Tensor:
    """Depth and width of the network per resolution, ``(n, 11)`` (see STRUCTURE_FEATURES)."""
    values = _evaluate(_structure_program(), embeddings)
    n_res = len(RESOLUTIONS)
    blocks, width = values[:, :n_res], values[:, n_res : 2 * n_res]
    path = embeddings.new_zeros(embeddings.shape[0])
    for r, convs, _ in STAGE_POSITIONS:
        path = path + embeddings[:, r] * (1 + 2 * embeddings[:, list(convs)].amax(dim=1))
    return torch.cat(
        [blocks.log(), width / blocks, torch.stack([path, values[:, -2], values[:, -1]], 1).log()],
        dim=1,
    )


def mr_features(z: Tensor) -> Tensor:
    """The default MR predictor input for normalised embeddings ``z`` (:data:`MR_FEATURES`).

    The 27 normalised positions, the natural log of MACs and params per branch
    resolution and in total, then the structure features; all differentiable in ``z``.
    """
    raw = denormalise(z)
    macs, params = relaxed_complexity(raw)
    totals = torch.stack([macs.sum(dim=1), params.sum(dim=1)], dim=1)
    return torch.cat([z, macs.log(), params.log(), totals.log(), relaxed_structure(raw)], dim=1)


BRANCH_TOKENS = 2 + N_STAGES * (N_STAGES + 1) // 2
"""Tokens of :func:`branch_tokens`: the stem, each branch of stages 1..4 (1+2+3+4), the head."""

TOKEN_FIELDS = 3
"""Fields of a branch token: the stage's repeats, the branch's conv count, its channels."""


def branch_tokens(z: Tensor) -> Tensor:
    """``(n, BRANCH_TOKENS, TOKEN_FIELDS)`` tokens of normalised embeddings ``z`` ``(n, 27)``.

    One token per branch of every stage (the stage's repeats, the branch's conv count
    and channels), a stem token (its two channel positions) and a head token (its
    width); absent fields are 0. Differentiable in ``z``, like every predictor input.
    """
    zero = torch.zeros_like(z[:, 0])
    tokens = [torch.stack([z[:, 0], z[:, 1], zero], 1)]
    for r, convs, chans in STAGE_POSITIONS:
        tokens += [
            torch.stack([z[:, r], z[:, c], z[:, h]], 1) for c, h in zip(convs, chans, strict=True)
        ]
    tokens.append(torch.stack([z[:, -1], zero, zero], 1))
    return torch.stack(tokens, 1)


def nb201_features(cells: Sequence[str], dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot ``(n, 30)`` inputs of nas-bench-201 cells given as ``ops`` strings."""
    index = torch.tensor([parse_ops(c) for c in cells], dtype=torch.int64).reshape(-1, _EDGES)
    return torch.nn.functional.one_hot(index, _OPS).reshape(len(cells), _EDGES * _OPS).to(dtype)
