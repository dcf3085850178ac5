"""Exact FLOPs (multiply-accumulates) and parameter counts of architectures, two ways.

The published ``flops`` (GMac) and ``params`` (M) of NAS-Bench-MR count the
classification-head supernet with 50 classes on a 1x3x128x128 input under the
convention of thop 0.0.31 (NASBENCH-MR.md, section 4). :func:`analytic_complexity`
evaluates that count in closed form from the :class:`~nasmr.space.Arch` (pure Python,
summing :func:`supernet_layers`, which ``nasmr.features`` also walks with polynomials);
:func:`module_complexity` builds the :class:`~nasmr.supernet.Supernet` and
counts it with thop. The two are independent and must agree with every record.
:func:`nb201_complexity` counts NAS-Bench-201's networks, to tell which of the drop's
nas-bench-201 costs belong to their cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from nasmr.parallel import pool_size
from nasmr.space import EMBEDDING_LENGTH, N_STAGES, Arch, as_arch, domain
from schemas.nb201 import NB201_OPS, parse_ops
from schemas.settings import half_unit

if TYPE_CHECKING:
    from torch import Tensor, nn

    from nasmr.features import Poly

ComplexityMethod = Literal["analytic", "module"]
"""How to count: by the closed form, or by building the supernet and counting it with thop."""

INPUT_SIZE = 128
NUM_CLASSES = 50
IN_CHANNELS = 3

Count: TypeAlias = "int | Poly"
"""A count: an exact int, or a polynomial of the embedding (``nasmr.features``)."""


@dataclass(frozen=True, slots=True)
class Complexity:
    """Exact multiply-accumulates and parameters of one network."""

    macs: int
    params: int

    @property
    def gmac(self) -> float:
        """FLOPs as the benchmark publishes them: multiply-accumulates / 1e9."""
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        """Parameters as the benchmark publishes them: count / 1e6."""
        return self.params / 1e6

    @classmethod
    def from_published(cls, flops_gmac: float, params_m: float) -> Complexity:
        """The exact integers behind a record's ``flops`` (GMac) and ``params`` (M) floats."""
        return cls(round(flops_gmac * 1e9), round(params_m * 1e6))


# -- closed form -------------------------------------------------------------------------


HALF = (INPUT_SIZE + 1) // 2
"""Feature-map side after the first stride-2 conv (a conv with padding (k-1)//2 rounds up)."""

SIDES = tuple(-(-HALF // 2 ** (b + 1)) for b in range(N_STAGES))
"""Feature-map side of each branch, 1/4 to 1/32 of the input (each stride-2 step rounds up)."""


def supernet_layers(
    stem: Sequence[Count],
    stages: Iterable[tuple[Count, Sequence[Count], Sequence[Count]]],
    last: Count,
) -> Iterator[tuple[int, int, Count]]:
    """(branch, output area, parameters) of every layer with weights of the supernet.

    Under the benchmark's convention a conv-BN costs its parameters at each output pixel
    and the classifier its parameters once (area 1), so these give both counts. A
    stage's first module and its other ``repeats - 1`` come as one layer each, their
    parameters multiplied by the copies. Generic in the number type: ints for
    :func:`analytic_complexity`, polynomials of the embedding for ``nasmr.features``.
    ``stages`` holds (repeats, convs per branch, channels per branch).
    """
    c0, c1 = stem
    yield 0, HALF * HALF, _conv_bn(IN_CHANNELS, c0, 3)
    yield 0, SIDES[0] ** 2, _conv_bn(c0, c1, 3)
    previous: Sequence[Count] = [c1]
    for repeats, convs, channels in stages:
        for inputs, copies in ((previous, 1), (channels, repeats - 1)):
            for o in range(min(len(inputs), len(channels))):
                for j in (o - 1, o, o + 1):  # the 1x1 from branch o+1 runs before upsampling
                    if 0 <= j < len(inputs):
                        kernel = 1 if j > o else 3
                        at = max(o, j)
                        yield at, SIDES[at] ** 2, copies * _conv_bn(inputs[j], channels[o], kernel)
            if len(channels) > len(inputs):
                new = len(inputs)
                conv = _conv_bn(channels[new - 1], channels[new], 3)
                yield new, SIDES[new] ** 2, copies * conv
            for b, (blocks, width) in enumerate(zip(convs, channels, strict=True)):
                yield b, SIDES[b] ** 2, copies * (blocks * 2) * _conv_bn(width, width, 3)
        previous = channels
    head = len(previous) - 1
    yield head, SIDES[head] ** 2, _conv_bn(sum(previous), last, 1)
    yield head, 1, (last + 1) * NUM_CLASSES


def _conv_bn(in_ch: Count, out_ch: Count, kernel: int) -> Count:
    """Parameters of a bias-free convolution plus its BatchNorm (weight and bias)."""
    return out_ch * (in_ch * (kernel * kernel) + 2)


def analytic_complexity(arch: Arch | str) -> Complexity:
    """The published count of an architecture (or code string) in closed form: the sum over
    :func:`supernet_layers`."""
    arch = as_arch(arch)
    stages = [(stage.repeats, stage.convs, stage.channels) for stage in arch.stages]
    macs = params = 0
    for _, area, count in supernet_layers(arch.stem, stages, arch.last_channel):
        params += count
        macs += count * area
    return Complexity(macs, params)


def _corner(end: int) -> Complexity:
    """The count of the architecture taking end ``end`` (0 or -1) of every position's domain."""
    return analytic_complexity(
        Arch.from_embedding([domain(p)[end] for p in range(EMBEDDING_LENGTH)])
    )


SMALLEST = _corner(0)
"""The count of the space's smallest architecture (every count 1, every width 8): the
count grows with every embedding position, so no budget below it can be met."""

LARGEST = _corner(-1)
"""The count of the space's largest architecture: no MR record can publish more."""


# -- NAS-Bench-201 ------------------------------------------------------------------------

NB201_CONV_KERNELS = {NB201_OPS.index("nor_conv_1x1"): 1, NB201_OPS.index("nor_conv_3x3"): 3}
"""Kernel of each NAS-Bench-201 op (by index) with weights; its other ops (none, skip, pool)
cost nothing."""


def nb201_complexity(
    cell: str | Sequence[int | str], classes: int = 100, side: int = 32
) -> Complexity:
    """MACs and parameters of NAS-Bench-201's network with ``cell`` (any form
    :func:`~schemas.nb201.parse_ops` reads; a ValueError for anything else).

    The macro network: a 3x3 stem of 16 channels, three stages of 5 cells at 16, 32 and 64
    channels joined by stride-2 residual blocks, BatchNorm and a linear classifier. Counted as
    NAS-Bench-201 counts: convolutions and the classifier cost MACs, BatchNorm and pooling
    none. The drop's costs are this count for CIFAR-100 (the defaults), in M.
    """
    ops = parse_ops(cell)
    macs = params = 0

    def conv(in_ch: int, out_ch: int, kernel: int, out_side: int, bn: bool = True) -> None:
        nonlocal macs, params
        weights = out_ch * in_ch * kernel * kernel
        macs += weights * out_side * out_side
        params += weights + (2 * out_ch if bn else 0)

    width = 16
    conv(3, width, 3, side)
    for stage in range(3):
        if stage:  # residual reduction block: two 3x3 conv-BNs, a pooled 1x1 shortcut
            side, width = side // 2, width * 2
            conv(width // 2, width, 3, side)
            conv(width, width, 3, side)
            conv(width // 2, width, 1, side, bn=False)
        for _ in range(5):
            for op in ops:
                if op in NB201_CONV_KERNELS:
                    conv(width, width, NB201_CONV_KERNELS[op], side)
    params += 2 * width  # the last BatchNorm
    macs += width * classes
    params += (width + 1) * classes
    return Complexity(macs, params)


def nb201_cost_matches(ops: Sequence[int], mflops: float, mparams: float) -> bool:
    """Whether a record's costs (MFLOPs to 2 decimals, M params to 3) are its cell's count."""
    exact = nb201_complexity(ops)
    return abs(mflops - exact.macs / 1e6) <= half_unit(2) and (
        abs(mparams - exact.params / 1e6) <= half_unit(3)
    )


# -- counting the built module with thop -------------------------------------------------


def _count_conv(m: nn.Conv2d, x: tuple[Tensor, ...], y: Tensor) -> None:
    """thop 0.0.31 convolution rule: output elements x (in/groups x kernel area + bias)."""
    kh, kw = m.kernel_size
    per_output = m.in_channels // m.groups * kh * kw + (1 if m.bias is not None else 0)
    m.total_ops += y.numel() * per_output


def _count_bn(m: nn.BatchNorm2d, x: tuple[Tensor, ...], y: Tensor) -> None:
    """thop 0.0.31 BatchNorm rule: 2 x input elements."""
    m.total_ops += 2 * x[0].numel()


def _custom_ops() -> dict[type, Callable[..., None]]:
    from torch import nn

    return {nn.Conv2d: _count_conv, nn.BatchNorm2d: _count_bn}


def _import_thop() -> Any:
    """Import thop, which warns about its own use of the deprecated distutils."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import thop
    return thop


def module_complexity(arch: Arch | str) -> Complexity:
    """Count the built supernet of an architecture (or code string) with thop (cls head, 50
    classes, 1x3x128x128 input).

    Only convolutions and BatchNorms are modules with rules; ReLU, upsampling, resizes and
    the pooling are functional in the supernet, so they count 0, as the convention wants.
    Weights are not initialised but zeroed: values do not change the count, and zeros
    keep the forward pass free of NaNs and slow denormals (10x slower when left as is).
    A channels-last input makes the CPU forward pass about 1.7x faster; inference mode (a
    stricter ``no_grad``) saves another 7%.
    """
    import torch

    from nasmr.supernet import Supernet

    thop = _import_thop()
    net = Supernet(as_arch(arch), num_classes=NUM_CLASSES, head="cls", init_weights=False)
    with torch.inference_mode():
        for tensor in [*net.parameters(), *net.buffers()]:
            tensor.zero_()
        x = torch.zeros(1, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE).to(
            memory_format=torch.channels_last
        )
        macs, params = thop.profile(net, (x,), custom_ops=_custom_ops(), verbose=False)
    return Complexity(round(macs), round(params))


def _worker_init() -> None:
    """One compute thread per worker process: the pool provides the parallelism."""
    import torch

    torch.set_num_threads(1)
    _import_thop()


def _module_complexity_of(embedding: list[int]) -> Complexity:
    return module_complexity(Arch.from_embedding(embedding))


def module_complexity_many(
    archs: Sequence[Arch],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Complexity]:
    """:func:`module_complexity` of many architectures on a process pool, in input order.

    ``workers`` defaults to the CPU count; 1 runs in this process. ``progress(done, total)``
    is called after each result.
    """
    total = len(archs)
    workers = pool_size(workers, total)
    if workers == 1:
        return _collect(map(module_complexity, archs), total, progress)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init
    ) as pool:
        embeddings = [arch.embedding for arch in archs]
        results = pool.map(_module_complexity_of, embeddings, chunksize=4)
        return _collect(results, total, progress)


def _collect(
    results: Iterable[Complexity], total: int, progress: Callable[[int, int], None] | None
) -> list[Complexity]:
    out = []
    for result in results:
        out.append(result)
        if progress is not None:
            progress(len(out), total)
    return out
