"""Label weighting by uncertainty: hand-computed weights and the weighted loss."""
from __future__ import annotations

import math

import torch

from ssl_robot.robot.losses import masked_bce_with_logits
from ssl_robot.robot.tasks import ObstacleTask


def test_label_weights_hand_computed() -> None:
    task = ObstacleTask({'label_tolerances': [0.02, 0.02, 0.15], 'weight_drift_s': 5.0,
                         'label_weighting': True})
    t0 = 10**9
    batch = {'prov_pose_err': torch.tensor([[[0.0, 0.0, 0.0], [0.02, 0.0, 0.0],
                                             [0.0, 0.02, 0.15]]]),
             'prov_t_future_ns': torch.tensor([[t0, t0 + 5 * 10**9, t0 + 10 * 10**9]]),
             'stamps_ns': torch.tensor([t0])}
    w = task.label_weights(batch)
    assert w.shape == (1, 3, 1)
    expected = [1.0, math.exp(-0.5) / 2.0, math.exp(-1.0) / 5.0]
    assert torch.allclose(w[0, :, 0], torch.tensor(expected), atol=1e-6)


def test_weighted_bce_against_a_hand_written_reference() -> None:
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [False, True]])
    weight = torch.tensor([[1.0, 0.5], [3.0, 0.25]])

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    ref = (1.0 * bce(0.5, 1) + 0.5 * bce(-1.0, 0) + 0.25 * bce(0.0, 1)) / 1.75
    got = masked_bce_with_logits(logits, target, mask, weight=weight)
    assert abs(float(got) - ref) < 1e-6
    # All weights 1: the plain masked mean.
    plain = masked_bce_with_logits(logits, target, mask)
    assert abs(float(masked_bce_with_logits(logits, target, mask,
                                            weight=torch.ones(2, 2))) - float(plain)) < 1e-6


def test_unknown_labels_with_nan_provenance_do_not_poison_the_loss() -> None:
    task = ObstacleTask({'label_tolerances': [0.02, 0.02, 0.15], 'weight_drift_s': 5.0})
    batch = {'prov_pose_err': torch.tensor([[[float('nan')] * 3, [0.0, 0.0, 0.0]]]),
             'prov_t_future_ns': torch.tensor([[-1, 2 * 10**9]]),
             'stamps_ns': torch.tensor([10**9])}
    w = task.label_weights(batch)
    mask = torch.tensor([[[False], [True]]])
    loss = masked_bce_with_logits(torch.zeros(1, 2, 1), torch.ones(1, 2, 1), mask, weight=w)
    assert torch.isfinite(loss) and abs(float(loss) - math.log(2)) < 1e-6
