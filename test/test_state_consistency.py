"""State-consistency pairing and loss (Nava et al., RA-L 2021) on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import torch

from ssl_robot.robot.consistency import (
    complete_labels_beyond_obstacles,
    consistency_partners,
    state_consistency_loss,
)


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


def test_label_completion_hand_computed() -> None:
    # Distances 0..0.5 m in 0.1 m steps, sensors (left, center, right), margin 0.13 m.
    d = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    labels = np.zeros((3, 6, 3), np.float32)
    mask = np.zeros((3, 6, 3), bool)
    # Frame 0: the centre sensor felt an obstacle at 0.1 m, free at 0 m; the robot never
    # stood further ahead, except a known free left label at 0.4 m (kept as it is).
    mask[0, :2] = True
    labels[0, 1, 1] = 1.0
    mask[0, 4, 0] = True
    # Frame 1: only the left sensor felt something: nothing is implied.
    mask[1, :3] = True
    labels[1, 2, 0] = 1.0
    # Frame 2: nothing felt at all.
    mask[2] = True
    out, out_mask = complete_labels_beyond_obstacles(labels, mask, distances_m=d,
                                                     sensor_index=1, margin_m=0.13)
    expected = np.zeros((6, 3), bool)
    expected[2:, 1] = True  # centre: everything beyond 0.1 m
    expected[3:, :] = True  # every sensor beyond 0.1 + 0.13 m: the way is blocked
    expected[4, 0] = False  # a known label stays
    added = out_mask[0] & ~mask[0]
    np.testing.assert_array_equal(added, expected)
    assert (out[0][added] == 1.0).all() and out[0, 4, 0] == 0.0 and out[0, 0, 1] == 0.0
    np.testing.assert_array_equal(out_mask[1:], mask[1:])
    np.testing.assert_array_equal(out[1:], labels[1:])
    # The inputs are not changed in place.
    assert mask[0, 5].sum() == 0


def test_label_completion_agrees_with_the_truth_of_a_wall_ahead() -> None:
    from ssl_robot.labelling.sim_truth import proximity_truth
    from ssl_robot.sim import ROBOT
    from ssl_robot.sim.world import Obstacle, World
    # A wall across the way, its face 0.29 m ahead: the robot facing it at 0.02 m steps
    # back from it. What the labeller could have labelled is what the robot can reach
    # (d up to where its front touches the wall); completion must fill the rest with
    # what the truth says.
    wall = Obstacle('box', 0.30, 0.0, 0.0, (0.01, 0.3), 0.2, (0.5, 0.5, 0.5))
    world = World(0, 2.0, 0.3, (wall,), (), (0.0, 0.0, 0.0))
    xs = -0.02 * np.arange(10)
    stamps = np.arange(10, dtype=np.int64) * 100_000_000
    poses = np.stack([xs, np.zeros(10), np.zeros(10)], 1)
    sensors = [ROBOT.proximity_poses[s] for s in ('left', 'center', 'right')]
    d = [round(0.05 * i, 2) for i in range(11)]
    truth, _ = proximity_truth(world, stamps, poses, stamps, d, sensors, 0.12)
    reachable = np.array([[dist <= 0.29 - ROBOT.body_half_size_m[0] - x for dist in d]
                          for x in xs])[:, :, None].repeat(3, 2)
    labels, mask = complete_labels_beyond_obstacles(
        truth.astype(np.float32), reachable, distances_m=d, sensor_index=1,
        margin_m=0.12 + ROBOT.proximity_poses['center'][0] - ROBOT.body_half_size_m[0])
    assert (mask & ~reachable).sum() > 0.5 * (~reachable).sum()
    np.testing.assert_array_equal(labels[mask] > 0.5, truth[mask])
