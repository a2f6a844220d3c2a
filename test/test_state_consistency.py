"""State-consistency pairing and loss (Nava et al., RA-L 2021) on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import torch

from ssl_robot.robot.consistency import consistency_partners, state_consistency_loss


def test_pairing_on_a_straight_run() -> None:
    # 0.125 m/s, frames at 5 Hz: 0.05 m ahead is reached 0.4 s (two frames) later.
    n, period = 12, 200_000_000
    stamps = np.arange(n, dtype=np.int64) * period
    distances = [0.0, 0.05, 0.10]
    t_future = np.full((n, 3), -1, np.int64)
    for i in range(n):
        for k, d in enumerate(distances):
            t = stamps[i] + int(round(d / 0.125 * 1e9))
            if t <= stamps[-1]:
                t_future[i, k] = t + 3_000_000  # the matched pose is 3 ms off a frame
    bags = np.zeros(n, np.int64)
    partners = consistency_partners(stamps, bags, t_future, np.ones(n, bool),
                                    tolerance_ns=50_000_000)
    expected = np.full((n, 3), -1)
    for i in range(n):
        if i + 2 < n:
            expected[i, 1] = i + 2
        if i + 4 < n:
            expected[i, 2] = i + 4
    np.testing.assert_array_equal(partners, expected)
    # Partners only among allowed frames (the training split), never across bags.
    allowed = np.ones(n, bool)
    allowed[6] = False
    p = consistency_partners(stamps, bags, t_future, allowed, tolerance_ns=50_000_000)
    assert p[4, 1] == -1 and p[2, 2] == -1 and p[3, 1] == 5
    other = consistency_partners(stamps, np.r_[np.zeros(6), np.ones(6)].astype(int), t_future,
                                 np.ones(n, bool), tolerance_ns=50_000_000)
    assert other[4, 1] == -1 and other[3, 1] == 5 and other[6, 1] == 8


def test_consistency_loss_hand_computed() -> None:
    logit = math.log(3.0)  # sigmoid = 0.75
    logits_t = torch.tensor([[[0.0], [logit], [0.0]]])  # p = 0.5, 0.75, 0.5
    later = torch.tensor([[[0.0], [-logit], [5.0]]])    # p = 0.5, 0.25, ~1
    # k = 1: p_t[1] vs p_later[0] (0.75 vs 0.5), p_t[2] vs p_later[1] (0.5 vs 0.25).
    loss = state_consistency_loss(logits_t, later, torch.tensor([1]))
    assert abs(float(loss) - (0.25 ** 2 + 0.25 ** 2) / 2) < 1e-6
    # k = 2: only p_t[2] vs p_later[0].
    assert float(state_consistency_loss(logits_t, later, torch.tensor([2]))) == 0.0
    assert float(state_consistency_loss(logits_t[:0], later[:0], torch.tensor([], dtype=int))) \
        == 0.0
