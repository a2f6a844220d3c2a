"""Losses, metrics and transforms of the robot models against hand-written references."""
from __future__ import annotations

import math
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from ssl_robot.metrics import (
    bootstrap_ci,
    ridge_probe,
    roc_auc,
    spearman,
    temporal_retrieval_accuracy,
)
from ssl_robot.robot.losses import (
    masked_bce_with_logits,
    masked_smooth_l1,
    npairs_loss,
    triplet_loss,
)
from ssl_robot.robot.transforms import mirror_permutation

sys.path.insert(0, str(Path(__file__).parent))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_masked_bce_matches_loop_reference() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.0, -0.5]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    mask = torch.tensor([[True, False, True], [True, True, False]])
    total, count = 0.0, 0
    for i in range(2):
        for j in range(3):
            if mask[i, j]:
                p, y = _sigmoid(float(logits[i, j])), float(target[i, j])
                total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
                count += 1
    got = masked_bce_with_logits(logits, target, mask)
    assert float(got) == pytest.approx(total / count, rel=1e-6)
    # With pos_weight the positive terms are scaled.
    total_w = 0.0
    for i in range(2):
        for j in range(3):
            if mask[i, j]:
                p, y = _sigmoid(float(logits[i, j])), float(target[i, j])
                total_w += -(3.0 * y * math.log(p) + (1 - y) * math.log(1 - p))
    got_w = masked_bce_with_logits(logits, target, mask, pos_weight=3.0)
    assert float(got_w) == pytest.approx(total_w / count, rel=1e-6)


def test_masked_losses_ignore_unknown_labels_and_their_gradients() -> None:
    logits = torch.zeros(2, 2, requires_grad=True)
    target = torch.tensor([[1.0, float('nan')], [0.0, 5.0]])
    mask = torch.tensor([[True, False], [True, False]])
    loss = masked_bce_with_logits(logits, target, mask) + masked_smooth_l1(logits, target, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, 1].abs().sum() == 0
    empty = masked_bce_with_logits(logits, target, torch.zeros_like(mask))
    assert float(empty) == 0.0


def test_masked_smooth_l1_matches_reference() -> None:
    pred = torch.tensor([0.0, 1.0, 3.0, -2.0])
    target = torch.tensor([0.5, 3.0, 3.0, 10.0])
    mask = torch.tensor([True, True, True, False])
    beta = 1.0
    ref = []
    for p, t in zip([0.0, 1.0, 3.0], [0.5, 3.0, 3.0]):
        d = abs(p - t)
        ref.append(0.5 * d * d / beta if d < beta else d - 0.5 * beta)
    assert float(masked_smooth_l1(pred, target, mask)) == pytest.approx(sum(ref) / 3)


def test_triplet_loss_matches_reference() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    n = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    ref = []
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
        dp = sum((x - y) ** 2 for x, y in zip(ai, pi))
        dn = sum((x - y) ** 2 for x, y in zip(ai, ni))
        ref.append(max(0.0, dp - dn + 0.5))
    assert float(triplet_loss(a, p, n, margin=0.5)) == pytest.approx(sum(ref) / 2)


def test_npairs_loss_matches_reference_with_masked_negatives() -> None:
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    p = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    neg = torch.tensor([[True, False, True], [True, True, True], [True, True, True]])
    ref = 0.0
    for i in range(3):
        sims = {j: float(a[i] @ p[j]) / 0.1 for j in range(3) if j == i or neg[i, j]}
        ref += -sims[i] + math.log(sum(math.exp(v) for v in sims.values()))
    got = npairs_loss(a, p, negative_mask=neg, temperature=0.1)
    assert float(got) == pytest.approx(ref / 3, rel=1e-5)


def test_roc_auc_hand_computed() -> None:
    # Positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1) (0.35<0.4) (0.8>both) -> 3/4.
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    # Ties count one half.
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_bootstrap_ci_contains_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(0, 1.0, 300)
    low, high = bootstrap_ci(roc_auc, s, y, n_boot=200)
    assert low < roc_auc(s, y) < high and high - low < 0.2


def test_spearman_hand_computed() -> None:
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3]), np.array([3, 1, 2])) == pytest.approx(-0.5)


def test_temporal_retrieval_hand_computed() -> None:
    emb = np.array([[0.0], [0.1], [5.0], [5.1], [0.05]])
    bags = np.array([0, 0, 0, 0, 1])
    t = np.array([0, 1, 10, 11, 0]) * 1_000_000_000
    # 0 -> nearest 4 (other bag): miss; 1 -> 4: miss; 2 -> 3: hit; 3 -> 2: hit;
    # 4 has no temporal neighbour in its bag: skipped.
    assert temporal_retrieval_accuracy(emb, bags, t, radius_s=1.5) == pytest.approx(0.5)


def test_ridge_probe_separates_linear_labels() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, :1] > 0).astype(float)
    scores = ridge_probe(x[:150], y[:150], np.ones_like(y[:150], bool), x[150:])
    assert roc_auc(scores[:, 0], y[150:, 0]) > 0.95


@pytest.mark.parametrize('sensors, perm', [
    (['left', 'center', 'right'], [2, 1, 0]),
    (['range_left', 'range_right'], [1, 0]),
    (['center'], [0]),
    (['front_left', 'front_right', 'rear_left', 'rear_right'], [1, 0, 3, 2]),
])
def test_mirror_permutation(sensors: list[str], perm: list[int]) -> None:
    assert mirror_permutation(sensors) == perm


def test_mirror_permutation_unknown_layout_is_an_error() -> None:
    with pytest.raises(ValueError):
        mirror_permutation(['a', 'b'])


class _FixedLogits(torch.nn.Module):
    """Returns fixed logits (left high, right low) and records its input."""

    def __init__(self, d: int, s: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.linspace(2.0, -2.0, s).repeat(d, 1))
        self.seen = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return self.bias.expand(x.shape[0], -1, -1)


def test_obstacle_flip_mirrors_image_and_sensor_order(tmp_path: Path) -> None:
    from ssl_robot.robot.tasks import ObstacleTask

    from robot_data import write_synthetic_dataset
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=8)
    base = {'dataset': str(data), 'jitter': 0.0, 'input_hw': [48, 64]}
    flipped, plain = ObstacleTask({**base, 'flip_p': 1.0}), ObstacleTask({**base, 'flip_p': 0.0})
    train, _ = flipped.datasets()
    batch = torch.utils.data.default_collate([train[i] for i in range(4)])
    batch['proximity'][:, :, 0] = 1.0  # obstacle on the left only
    batch['proximity'][:, :, 1:] = 0.0
    batch['proximity_mask'][:] = True
    model = _FixedLogits(4, 3).train()
    loss_f, _ = flipped.loss(model, batch)
    x_flipped = model.seen
    loss_p, _ = plain.loss(model, batch)
    x_plain = model.seen
    torch.testing.assert_close(x_flipped, torch.flip(x_plain, dims=(-1,)))
    logits = model.bias.expand(4, -1, -1)
    mirrored = batch['proximity'][..., [2, 1, 0]]  # the obstacle is now on the right
    ref = masked_bce_with_logits(logits, mirrored, batch['proximity_mask'])
    assert float(loss_f) == pytest.approx(float(ref))
    assert float(loss_p) != pytest.approx(float(loss_f))


def test_block_bootstrap_widens_ci_for_correlated_frames() -> None:
    # 12 blocks of 40 identical frames each: really 12 samples, not 480.
    rng = np.random.default_rng(1)
    y_blocks = np.array([0, 1] * 6)
    s_blocks = y_blocks * 0.5 + rng.normal(0, 0.6, 12)
    y, s = np.repeat(y_blocks, 40), np.repeat(s_blocks, 40)
    groups = np.repeat(np.arange(12), 40)
    low_r, high_r = bootstrap_ci(roc_auc, s, y, n_boot=300)
    low_g, high_g = bootstrap_ci(roc_auc, s, y, n_boot=300, groups=groups)
    assert high_g - low_g > 2 * (high_r - low_r)
    assert low_g <= roc_auc(s, y) <= high_g
