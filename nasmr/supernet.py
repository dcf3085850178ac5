"""The NAS-Bench-MR supernet: a PyTorch network built from an :class:`~nasmr.space.Arch`.

The layout follows the benchmark's supernet exactly (NASBENCH-MR.md, section 3),
so counting this module reproduces the published FLOPs and params to the last
digit: a two-convolution stem, one module per entry of the network setting
(fuse neighbouring branches, then run each branch's basic blocks) and a head.
ReLU and nearest upsampling are functional (they have no parameters and count
zero operations); every convolution and BatchNorm is a module.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasmr.complexity import IN_CHANNELS, NUM_CLASSES
from nasmr.space import Arch

Head = Literal["cls", "seg"]


class ConvBN(nn.Module):
    """A bias-free convolution (padding ``(k-1)//2``) and BatchNorm, then ReLU if ``relu``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        relu: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel, stride, (kernel - 1) // 2, bias=False, device=device
        )
        self.bn = nn.BatchNorm2d(out_ch, device=device)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y, inplace=True) if self.relu else y


def _resize(x: Tensor, like: Tensor) -> Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``like`` (a no-op when equal)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    """Residual basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, add the input, ReLU."""

    def __init__(self, channels: int, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, channels, 3, device=device)
        self.conv2 = ConvBN(channels, channels, 3, relu=False, device=device)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x, inplace=True)


class Fuse(nn.Module):
    """Exchange information between neighbouring branches and open at most one new branch.

    Output branch ``i`` sums contributions of input branches ``i-1`` (3x3 stride 2),
    ``i`` (3x3) and ``i+1`` (1x1, then nearest upsampling by 2), each resized to the
    first one's shape; a new branch is a 3x3 stride-2 conv-BN-ReLU of the last fused one.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: tuple[int, ...],
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        n_in, n_out = len(in_channels), len(out_channels)
        if not n_in <= n_out <= n_in + 1:
            raise ValueError(
                f"a module goes from {n_in} to {n_in} or {n_in + 1} branches, not {n_out}"
            )
        self.sources: list[tuple[int, ...]] = []
        self.paths = nn.ModuleList()
        for i in range(n_in):  # every input branch keeps its output; a new one follows
            sources = tuple(j for j in (i - 1, i, i + 1) if 0 <= j < n_in)
            self.sources.append(sources)
            self.paths.append(
                nn.ModuleList(
                    ConvBN(
                        in_channels[j],
                        out_channels[i],
                        kernel=1 if j > i else 3,
                        stride=2 if j < i else 1,
                        device=device,
                    )
                    for j in sources
                )
            )
        self.new_branch = (
            ConvBN(out_channels[n_in - 1], out_channels[n_in], 3, 2, device=device)
            if n_out > n_in
            else None
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        out = []
        for i, (sources, paths) in enumerate(zip(self.sources, self.paths, strict=True)):
            parts = [path(xs[j]) for j, path in zip(sources, paths, strict=True)]
            if sources[-1] > i:  # the lower-resolution neighbour is upsampled by 2
                parts[-1] = F.interpolate(parts[-1], scale_factor=2.0, mode="nearest")
            total = parts[0]
            for part in parts[1:]:
                total = total + _resize(part, total)
            out.append(F.relu(total))  # not in place: total may be a ReLU output autograd needs
        if self.new_branch is not None:
            out.append(self.new_branch(out[-1]))
        return out


class MRModule(nn.Module):
    """One entry of the network setting: a fuse step, then each branch's basic blocks."""

    def __init__(
        self,
        in_channels: tuple[int, ...],
        convs: tuple[int, ...],
        channels: tuple[int, ...],
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.fuse = Fuse(in_channels, channels, device=device)
        self.branches = nn.ModuleList(
            nn.ModuleList(BasicBlock(ch, device=device) for _ in range(n))
            for n, ch in zip(convs, channels, strict=True)
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        out = []
        for blocks, x in zip(self.branches, self.fuse(xs), strict=True):
            for block in blocks:
                x = block(x)
            out.append(x)
        return out


class Supernet(nn.Module):
    """The network of one architecture, with a classification or segmentation head.

    ``head="cls"`` (the form the published FLOPs/params count) resizes every branch to
    the lowest resolution, concatenates, applies a 1x1 conv-BN-ReLU to ``last_channel``,
    global-average-pools and classifies with a biased 1x1 conv: output ``(N, num_classes)``.
    ``head="seg"`` resizes every branch to the highest resolution (1/4 of the input) and
    classifies per pixel: output ``(N, num_classes, ceil(H/4), ceil(W/4))``; upsample it to
    the input size for a full-resolution mask. Tensors live on the default device.
    ``init_weights=False`` skips initialisation (parameters and buffers hold arbitrary
    values, as after ``torch.empty``): for counting, or before loading a state dict.
    """

    def __init__(
        self,
        arch: Arch,
        num_classes: int = NUM_CLASSES,
        head: Head = "cls",
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        if head not in ("cls", "seg"):
            raise ValueError(f"head must be 'cls' or 'seg', got {head!r}")
        self.arch = arch
        self.head_kind: Head = head
        meta = torch.device("meta")  # no storage and no default init until materialised below
        c0, c1 = arch.stem
        self.stem = nn.Sequential(
            ConvBN(IN_CHANNELS, c0, 3, 2, device=meta), ConvBN(c0, c1, 3, 2, device=meta)
        )
        body, channels = [], (c1,)
        for stage in arch.stages:
            for _ in range(stage.repeats):
                body.append(MRModule(channels, stage.convs, stage.channels, device=meta))
                channels = stage.channels
        self.body = nn.ModuleList(body)
        self.neck = ConvBN(sum(channels), arch.last_channel, 1, device=meta)
        self.classifier = nn.Conv2d(arch.last_channel, num_classes, 1, bias=True, device=meta)
        device = torch.get_default_device()
        # What to_empty() does, but torch.empty skips empty_like's slow path for meta tensors
        # (measured 4x faster), which matters when thousands of networks are counted.
        self._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))
        if init_weights:
            self._initialise()

    def _initialise(self) -> None:
        """Kaiming-normal (fan-out) convolutions, zero biases, identity BatchNorms."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        xs = [self.stem(x)]
        for module in self.body:
            xs = module(xs)
        target = xs[-1] if self.head_kind == "cls" else xs[0]
        y = self.neck(torch.cat([_resize(b, target) for b in xs], dim=1))
        if self.head_kind == "cls":
            return self.classifier(F.adaptive_avg_pool2d(y, 1)).flatten(1)
        return self.classifier(y)
