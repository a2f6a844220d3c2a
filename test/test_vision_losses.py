"""Vision losses and MoCo's queue/momentum updates against reference implementations."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ssl_robot.vision.losses import info_nce_queue, masked_mse, nt_xent
from ssl_robot.vision.pretext.moco import enqueue, momentum_update


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written as the paper's double loop over anchors."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / denom)
    return total / n2


@pytest.mark.parametrize('temperature', [0.1, 0.5, 1.0])
def test_nt_xent_matches_loop_reference_and_is_symmetric(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    loss = float(nt_xent(z1, z2, temperature=temperature))
    assert loss == pytest.approx(nt_xent_reference(z1, z2, temperature), rel=1e-5)
    assert loss == pytest.approx(float(nt_xent(z2, z1, temperature=temperature)), rel=1e-6)


def test_nt_xent_is_low_for_matching_views() -> None:
    z = torch.eye(4)
    assert float(nt_xent(z, z, temperature=0.1)) < 0.01
    assert float(nt_xent(z, z.roll(1, 0), temperature=0.1)) > 5


def test_info_nce_queue_matches_reference() -> None:
    g = torch.Generator().manual_seed(1)

    def unit(*shape: int) -> torch.Tensor:
        x = torch.randn(*shape, generator=g)
        return x / x.norm(dim=1, keepdim=True)

    q, k, queue = unit(3, 4), unit(3, 4), unit(6, 4)
    loss, logits = info_nce_queue(q, k, queue, temperature=0.2)
    ref = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / 0.2)
        neg = sum(math.exp(float(q[i] @ queue[j]) / 0.2) for j in range(6))
        ref += -math.log(pos / (pos + neg))
    assert float(loss) == pytest.approx(ref / 3, rel=1e-5)
    assert logits.shape == (3, 7)


def test_queue_is_fifo_and_wraps() -> None:
    queue = torch.zeros(5, 1)
    ptr = torch.zeros((), dtype=torch.long)
    enqueue(queue, ptr, torch.tensor([[1.], [2.], [3.]]))
    assert queue[:, 0].tolist() == [1, 2, 3, 0, 0] and int(ptr) == 3
    enqueue(queue, ptr, torch.tensor([[4.], [5.], [6.]]))
    # 6 overwrites the oldest entry (1); the queue holds the 5 newest keys.
    assert queue[:, 0].tolist() == [6, 2, 3, 4, 5] and int(ptr) == 1
    enqueue(queue, ptr, torch.tensor([[7.]]))
    assert queue[:, 0].tolist() == [6, 7, 3, 4, 5] and int(ptr) == 2
    assert sorted(queue[:, 0].tolist()) == [3, 4, 5, 6, 7]


def test_momentum_update_formula() -> None:
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0)
        online.bias.fill_(2.0)
        target.weight.fill_(0.0)
        target.bias.fill_(10.0)
    momentum_update(online, target, 0.9)
    # target <- 0.9 * target + 0.1 * online
    assert target.weight.flatten().tolist() == pytest.approx([0.1, 0.1])
    assert target.bias.tolist() == pytest.approx([0.9 * 10 + 0.1 * 2])
    assert online.weight.tolist() == [[1.0, 1.0]]  # the online side is untouched


def test_masked_mse_counts_only_the_hole() -> None:
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1., 2.], [3., 4.]]]])
    mask = torch.tensor([[[[True, False], [False, True]]]])
    assert float(masked_mse(pred, target, mask)) == pytest.approx((1 + 16) / 2)
    both = masked_mse(pred, target, mask, outside_weight=0.5)
    assert float(both) == pytest.approx(8.5 + 0.5 * (4 + 9) / 2)
