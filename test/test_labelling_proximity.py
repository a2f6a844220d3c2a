"""Proximity self-labels and odometry trajectories against hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.labelling import (
    build_trajectory,
    interpolate_poses,
    label_proximity_at_distances,
    label_proximity_naive,
    ProximityParams,
    se2_interpolate,
    wrap_angle,
)
from ssl_robot.labelling.proximity import match_readings, reading_labels

MS = 1_000_000
S = 1_000_000_000
PARAMS = ProximityParams(distances_m=(0.0, 0.1, 0.2, 0.3), obstacle_range_m=0.12,
                         tol_x_m=0.02, tol_y_m=0.02, tol_yaw_rad=0.15,
                         max_path_slack_m=0.05, horizon_s=10.0, range_tolerance_s=0.05)


def straight_run(heading: float = 0.0):
    """0.1 m/s along `heading` for 9 s (x 0 -> 0.9), then still until 10 s; 50 Hz odometry.

    A wall stands 1.0 m ahead of the start; the centre sensor (at the robot origin) reads
    the distance to it when within 0.30 m, +inf beyond.
    """
    t = np.arange(0, 501) * 20 * MS
    s = np.minimum(t / S * 0.1, 0.9)
    poses = np.column_stack([s * math.cos(heading), s * math.sin(heading),
                             np.full(len(t), heading)])
    wall = 1.0 - s
    reading = np.where(wall <= 0.30, wall, np.inf)
    return t, poses, s, reading


def test_straight_run_toward_a_wall_gives_exactly_the_expected_labels():
    t, poses, s, reading = straight_run()
    traj = build_trajectory(t, poses)
    frames = np.arange(0, 20) * 500 * MS          # every 0.5 s: x = 0, 0.05, ..., 0.95
    out = label_proximity_at_distances(frames, traj, [t + 3 * MS], [reading], PARAMS)
    for i, tf in enumerate(frames):
        x = min(tf / S * 0.1, 0.9)
        for j, d in enumerate(PARAMS.distances_m):
            target = x + d
            if target > 0.9 + 1e-9:
                # The robot never got there (it stopped at 0.9): unknown, not guessed.
                assert not out.mask[i, j, 0], (tf, d)
                assert out.t_future_ns[i, j] == -1
                continue
            assert out.mask[i, j, 0], (tf, d)
            wall_distance = 1.0 - target
            assert out.labels[i, j, 0] == (1.0 if wall_distance < 0.12 else 0.0), (tf, d)
            # t' is the first instant, not before t, the robot stood exactly at x + d.
            assert out.t_future_ns[i, j] == max(tf, round(target / 0.1 * 1000) * MS)
            np.testing.assert_allclose(out.pose_err[i, j], 0.0, atol=1e-6)
    # Frames at x = 0.9 (t >= 9 s) are labelled only at d = 0.
    assert out.mask[18:, 1:].sum() == 0 and out.mask[18:, 0].all()
    # Positives: exactly the (frame, d) with x + d = 0.9 (wall 0.10 m away).
    expected = sum(1 for i in range(20) for d in PARAMS.distances_m
                   if abs(min(i * 0.05, 0.9) + d - 0.9) < 1e-9)
    assert out.labels.sum() == expected


def test_nan_reading_and_missing_reading_are_unknown():
    t, poses, s, reading = straight_run()
    reading = reading.copy()
    reading[t == 8000 * MS] = np.nan              # invalid reading at x = 0.8
    keep = t != 7000 * MS                          # no reading at all near x = 0.7 ...
    keep &= np.abs(t - 7000 * MS) > 60 * MS        # ... within the 50 ms tolerance
    traj = build_trajectory(t, poses)
    frames = np.array([6000, 7000]) * MS           # x = 0.6, 0.7
    out = label_proximity_at_distances(frames, traj, [t[keep]], [reading[keep]], PARAMS)
    assert not out.mask[0, 2, 0]                   # 0.6 + 0.2 -> NaN at x = 0.8
    assert not out.mask[0, 1, 0]                   # 0.6 + 0.1 -> no reading near x = 0.7
    assert not out.mask[1, 0, 0]
    assert out.mask[0, 3, 0] and out.labels[0, 3, 0] == 1.0   # 0.9: wall at 0.10
    assert out.t_future_ns[0, 2] == 8000 * MS      # the pose matched; only the reading is bad


@pytest.mark.parametrize('reading,label,known', [
    (0.05, 1.0, True), (0.1199, 1.0, True), (0.12, 0.0, True), (0.25, 0.0, True),
    (-math.inf, 1.0, True), (math.inf, 0.0, True), (math.nan, 0.0, False)])
def test_rep117_readings(reading, label, known):
    lab, ok = reading_labels(np.array([reading]), 0.12)
    assert ok[0] == known
    if known:
        assert lab[0] == label


def test_turn_in_place_gives_no_forward_labels():
    t = np.arange(0, 301) * 20 * MS
    yaw = wrap_angle(1.0 * t / S)                  # 1 rad/s for 6 s, never moving
    poses = np.column_stack([np.zeros(len(t)), np.zeros(len(t)), yaw])
    traj = build_trajectory(t, poses)
    frames = np.arange(0, 10) * 500 * MS
    out = label_proximity_at_distances(frames, traj, [t], [np.full(len(t), 0.05)], PARAMS)
    assert out.mask[:, 1:].sum() == 0
    assert out.mask[:, 0].all()                    # d = 0 is the reading at t itself
    assert (out.t_future_ns[:, 0] == frames).all()


@pytest.mark.parametrize('heading', [math.pi, -math.pi, math.pi - 1e-4])
def test_heading_wrap_at_pi(heading):
    t, poses, s, reading = straight_run(heading)
    # Odometry reports the heading alternately just below +pi and just above -pi.
    poses[:, 2] = wrap_angle(heading + np.where(np.arange(len(t)) % 2, 1e-3, -1e-3))
    frames = np.arange(0, 20) * 500 * MS
    traj = build_trajectory(t, poses)
    assert traj.n_segments == 1 and traj.counts['jump'] == 0
    out = label_proximity_at_distances(frames, traj, [t + 3 * MS], [reading], PARAMS)
    t0, p0, _, r0 = straight_run(0.0)
    ref = label_proximity_at_distances(frames, build_trajectory(t0, p0), [t0 + 3 * MS], [r0],
                                       PARAMS)
    np.testing.assert_array_equal(out.mask, ref.mask)
    np.testing.assert_array_equal(out.labels, ref.labels)
    np.testing.assert_array_equal(out.t_future_ns, ref.t_future_ns)


def test_interpolation_across_the_wrap_and_on_an_arc():
    mid = se2_interpolate(np.array([0.0, 0.0, math.pi - 0.1]),
                          np.array([0.0, 0.0, -math.pi + 0.1]), np.array(0.5))
    assert abs(wrap_angle(mid[2]) - (-math.pi)) < 1e-9   # through pi, not through 0
    # On a circle of radius 1 (constant twist) the SE(2) midpoint lies on the circle.
    p0 = np.array([1.0, 0.0, math.pi / 2])
    p1 = np.array([0.0, 1.0, math.pi])
    mid = se2_interpolate(p0, p1, np.array(0.5))
    np.testing.assert_allclose(mid, [math.cos(math.pi / 4), math.sin(math.pi / 4),
                                     3 * math.pi / 4], atol=1e-12)


def test_interpolation_tolerance_and_counts():
    t = np.array([0, 100, 200, 200, 150, 1200, 1300]) * MS   # out of order, duplicate, gap
    poses = np.column_stack([0.1 * t / S, np.zeros(7), np.zeros(7)])
    traj = build_trajectory(t, poses, max_gap_s=0.5)
    assert traj.counts['duplicate'] == 1 and traj.counts['out_of_order'] == 1
    assert traj.counts['gaps'] == 1 and traj.n_segments == 1
    q = interpolate_poses(traj, np.array([50, 175, 700, 1250, 1300, 1400, -5]) * MS)
    np.testing.assert_array_equal(q.known, [True, True, False, True, True, False, False])
    np.testing.assert_allclose(q.poses[[0, 1, 3], 0], [0.005, 0.0175, 0.125])


def test_odometry_reset_is_not_bridged():
    t = np.arange(0, 1001) * 10 * MS               # 10 s at 100 Hz, 0.1 m/s
    x = 0.1 * t / S
    x[t >= 5 * S] += 0.25                          # odometry jumps 0.25 m ahead at 5 s
    poses = np.column_stack([x, np.zeros(len(t)), np.zeros(len(t))])
    frames = np.array([4.9, 4.95]) * S
    frames = frames.astype(np.int64)
    ranges = [t], [np.full(len(t), np.inf)]
    cut = build_trajectory(t, poses, max_jump_m=0.2)
    assert cut.n_segments == 2 and cut.counts['jump'] == 1
    out = label_proximity_at_distances(frames, cut, *ranges, PARAMS)
    # Only 0.1 / 0.05 m of the first segment remain: d = 0.2 and 0.3 are unknown ...
    assert not out.mask[:, 2:].any()
    assert (out.t_future_ns[out.t_future_ns >= 0] < 5 * S).all()
    # ... where bridging the jump would have matched x + 0.3 just after it.
    bridged = label_proximity_at_distances(frames, build_trajectory(t, poses, max_jump_m=1.0),
                                           *ranges, PARAMS)
    assert bridged.mask[0, 3, 0] and bridged.t_future_ns[0, 3] > 5 * S


def test_time_going_back_is_a_restart_and_overlap_is_ambiguous():
    t = np.concatenate([np.arange(0, 300), np.arange(100, 400)]) * 20 * MS  # back by 4 s
    poses = np.column_stack([np.arange(600) * 0.001, np.zeros(600), np.zeros(600)])
    traj = build_trajectory(t, poses)
    assert traj.counts['backstep'] == 1 and traj.n_segments == 2
    q = interpolate_poses(traj, np.array([1, 3, 7]) * S)
    np.testing.assert_array_equal(q.known, [True, False, True])
    assert q.ambiguous == 1


def test_closest_candidate_is_chosen_not_the_first():
    t = np.arange(6) * 100 * MS
    x = np.array([0.0, 0.04, 0.085, 0.099, 0.113, 0.2])
    poses = np.column_stack([x, np.zeros(6), np.zeros(6)])
    params = ProximityParams(distances_m=(0.1,), tol_x_m=0.02, max_path_slack_m=0.05)
    out = label_proximity_at_distances(np.array([0]), build_trajectory(t, poses), [t],
                                       [np.full(6, 0.2)], params)
    assert out.t_future_ns[0, 0] == 300 * MS
    np.testing.assert_allclose(out.pose_err[0, 0], [-0.001, 0.0, 0.0], atol=1e-7)


def test_lateral_offset_and_heading_outside_tolerance_are_rejected():
    t = np.arange(3) * 100 * MS
    poses = np.array([[0.0, 0.0, 0.0], [0.1, 0.03, 0.0], [0.2, 0.0, 0.3]])
    params = ProximityParams(distances_m=(0.1, 0.2), tol_y_m=0.02, tol_yaw_rad=0.15,
                             max_path_slack_m=0.1)
    out = label_proximity_at_distances(np.array([0]), build_trajectory(t, poses), [t],
                                       [np.full(3, 0.2)], params)
    assert (out.t_future_ns == -1).all()


def test_match_readings_tolerance():
    stamps = np.array([0, 100, 200]) * MS
    got = match_readings(stamps, np.array([1.0, 2.0, 3.0]), np.array([40, 160, 260, 251]) * MS,
                         50 * MS)
    np.testing.assert_array_equal(got[:3], [1.0, 3.0, np.nan][:2] + [np.nan])
    assert np.isnan(got[3])


def random_drive(seed: int, m: int = 400):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(15, 40, m)) * MS
    v = rng.choice([0.0, 0.1, 0.2], m, p=[0.2, 0.4, 0.4])
    w = rng.choice([0.0, 0.0, 0.5, -0.5], m)
    dt = np.diff(t, prepend=t[0]) / S
    yaw = np.cumsum(w * dt) + 3.0
    x = np.cumsum(v * np.cos(yaw) * dt)
    y = np.cumsum(v * np.sin(yaw) * dt)
    poses = np.column_stack([x, y, wrap_angle(yaw)])
    poses[m // 2:, 0] += 2.0                       # a reset half way
    ranges = [rng.uniform(0.0, 0.3, m), np.where(rng.random(m) < 0.1, np.nan,
                                                 rng.choice([0.05, np.inf, -np.inf], m))]
    frames = np.sort(rng.integers(t[0] - 100 * MS, t[-1], 60))
    return t, poses, ranges, frames


@pytest.mark.parametrize('seed', range(4))
def test_vectorised_equals_naive(seed):
    t, poses, ranges, frames = random_drive(seed)
    traj = build_trajectory(t, poses)
    params = ProximityParams(distances_m=(0.0, 0.05, 0.1, 0.2, 0.3), tol_x_m=0.03,
                             tol_y_m=0.03, tol_yaw_rad=0.3, max_path_slack_m=0.1,
                             horizon_s=5.0)
    fast = label_proximity_at_distances(frames, traj, [t, t + 7 * MS], ranges, params,
                                        chunk_candidates=97)
    slow = label_proximity_naive(frames, traj, [t, t + 7 * MS], ranges, params)
    assert (fast.t_future_ns >= 0).sum() > 20      # the case is not trivially empty
    np.testing.assert_array_equal(fast.t_future_ns, slow.t_future_ns)
    np.testing.assert_array_equal(fast.mask, slow.mask)
    np.testing.assert_array_equal(fast.labels, slow.labels)
    np.testing.assert_allclose(fast.pose_err, slow.pose_err, atol=1e-9)
    assert fast.counts == slow.counts
