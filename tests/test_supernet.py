"""The supernet runs for every corner of the space, with both heads, and can be trained."""

from __future__ import annotations

import pytest
import torch

from nasmr.space import EMBEDDING_FIELDS, Arch
from nasmr.supernet import Supernet


def _extreme(channels: int, count: int) -> Arch:
    return Arch.from_embedding(
        [channels if kind == "channels" else count for _, kind in EMBEDDING_FIELDS]
    )


LARGEST = _extreme(128, 4)
SMALLEST = _extreme(8, 1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", [LARGEST, SMALLEST], ids=["largest", "smallest"])
def test_forward_shapes_of_both_heads(arch: Arch) -> None:
    x = torch.randn(2, 3, 32, 32)
    cls_net = Supernet(arch, num_classes=19).eval()
    seg_net = Supernet(arch, num_classes=19, head="seg", init_weights=False).eval()
    seg_net.load_state_dict(cls_net.state_dict())  # the heads share their layers' shapes
    with torch.no_grad():
        cls, seg = cls_net(x), seg_net(x)
    assert cls.shape == (2, 19)
    assert seg.shape == (2, 19, 8, 8)
    assert torch.isfinite(cls).all() and torch.isfinite(seg).all()


def test_seg_head_is_a_quarter_of_an_odd_sized_input() -> None:
    with torch.no_grad():
        out = Supernet(SMALLEST, num_classes=7, head="seg").eval()(torch.randn(1, 3, 65, 47))
    assert out.shape == (1, 7, 17, 12)


def test_initialisation_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same weights, and another seed other weights (weights that
    ignored the generator would pass the first half alone)."""
    first, second, other = (_weights_after_seed(seed) for seed in (3, 3, 4))
    assert first.keys() == second.keys() == other.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    convs = [k for k in first if k.endswith("conv.weight")]
    assert convs and not any(torch.equal(first[k], other[k]) for k in convs)


def _weights_after_seed(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Supernet(SMALLEST).state_dict()


def test_uninitialised_network_loads_a_state_dict_and_computes_the_same() -> None:
    torch.manual_seed(0)
    trained = Supernet(SMALLEST).eval()
    blank = Supernet(SMALLEST, init_weights=False)
    blank.load_state_dict(trained.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(blank.eval()(x), trained(x))


def test_built_under_meta_device_stays_on_meta() -> None:
    with torch.device("meta"):
        net = Supernet(LARGEST, init_weights=False)
    assert {p.device.type for p in net.parameters()} == {"meta"}


def test_a_training_step_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = Supernet(SMALLEST, num_classes=5)
    loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 3, 32, 32)), torch.arange(4))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="head must be"):
        Supernet(SMALLEST, head="det")  # type: ignore[arg-type]
