"""Collision detection (bumper, proprioception) and crash labels on hand-made traces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_robot.dataset import DatasetWriter, LabelledDataset
from ssl_robot.labelling.collision import (
    CollisionParams,
    detect_collisions,
    event_precision_recall,
    label_collisions,
    merge_events,
)
from ssl_robot.labelling.poses import build_trajectory

S = 1_000_000_000


def _ns(seconds: np.ndarray | float) -> np.ndarray:
    return np.round(np.asarray(seconds) * S).astype(np.int64)


def _straight_run_into_wall() -> dict[str, np.ndarray]:
    """Forward at 0.15 m/s for 5 s into a wall (held 0.5 s), then backing off for 1 s.

    The IMU (100 Hz) shows the impact at 5.00 s as a -6 m/s^2 sample; the wheels slip on
    while pushing, so odometry keeps reading the commanded speed until the back-off.
    """
    imu_t = np.arange(0.0, 7.0, 0.01)
    accel = np.random.default_rng(0).normal(0.0, 0.05, len(imu_t))
    accel[500] = -6.0
    odom_t = np.arange(0.0, 7.0, 0.02)
    speed = np.where(odom_t < 5.5, 0.15, -0.08)
    x = np.where(odom_t <= 5.0, 0.15 * odom_t, 0.75)  # the body stops at the wall
    x = np.where(odom_t > 5.5, 0.75 - 0.08 * (odom_t - 5.5), x)
    cmd_t = np.arange(0.0, 7.0, 0.05)
    cmd = np.where(cmd_t < 5.5, 0.15, -0.08)
    bump_t = np.arange(0.0, 7.0, 0.02)
    force = np.where((bump_t >= 5.0) & (bump_t < 5.5), 2.0, 0.0)
    return {'imu_t': _ns(imu_t), 'accel': accel, 'odom_t': _ns(odom_t), 'speed': speed,
            'poses': np.column_stack([x, np.zeros_like(x), np.zeros_like(x)]),
            'cmd_t': _ns(cmd_t), 'cmd': cmd, 'bump_t': _ns(bump_t), 'force': force}


def test_merge_events_joins_flickering_contact() -> None:
    t = _ns([0.0, 0.1, 0.2, 0.3, 0.4, 2.0, 2.1])
    on, end = merge_events(t, [0, 1, 0, 1, 0, 1, 1], gap_ns=S)
    assert on.tolist() == _ns([0.1, 2.0]).tolist()
    assert end.tolist() == _ns([0.3, 2.1]).tolist()


def test_bumper_detection_wins_when_present() -> None:
    run = _straight_run_into_wall()
    found = detect_collisions(CollisionParams(), bumper_stamps_ns=run['bump_t'],
                              bumper_force_n=run['force'], imu_stamps_ns=run['imu_t'],
                              imu_forward_accel=run['accel'], cmd_stamps_ns=run['cmd_t'],
                              cmd_speed=run['cmd'])
    assert found.source == 'bumper'
    assert found.onsets_ns.tolist() == [5 * S]
    assert found.ends_ns.tolist() == [_ns(5.48)]


def test_proprioception_finds_the_impact() -> None:
    run = _straight_run_into_wall()
    found = detect_collisions(CollisionParams(), imu_stamps_ns=run['imu_t'],
                              imu_forward_accel=run['accel'], odom_stamps_ns=run['odom_t'],
                              odom_speed=run['speed'], cmd_stamps_ns=run['cmd_t'],
                              cmd_speed=run['cmd'])
    assert found.source == 'proprioception'
    assert len(found.onsets_ns) == 1
    assert abs(found.onsets_ns[0] - 5 * S) <= _ns(0.02)


def test_commanded_stop_and_bumps_are_no_collision() -> None:
    t = np.arange(0.0, 6.0, 0.01)
    accel = np.zeros(len(t))
    accel[300] = -6.0                       # braking hard: the command is already 0
    accel[100] = -1.5                       # a terrain bump while driving: below threshold
    cmd_t = np.arange(0.0, 6.0, 0.05)
    cmd = np.where(cmd_t < 2.98, 0.15, 0.0)
    found = detect_collisions(CollisionParams(), imu_stamps_ns=_ns(t), imu_forward_accel=accel,
                              cmd_stamps_ns=_ns(cmd_t), cmd_speed=cmd)
    assert found.onsets_ns.tolist() == []
    # The same impact while commanded forward is a collision.
    found = detect_collisions(CollisionParams(), imu_stamps_ns=_ns(t), imu_forward_accel=accel,
                              cmd_stamps_ns=_ns(cmd_t), cmd_speed=np.full(len(cmd_t), 0.15))
    assert found.onsets_ns.tolist() == [3 * S]


def test_stall_while_commanded_forward_is_a_collision() -> None:
    odom_t = np.arange(0.0, 4.0, 0.02)
    speed = np.where((odom_t >= 2.0) & (odom_t < 3.0), 0.01, 0.15)  # wheels blocked 1 s
    cmd_t = np.arange(0.0, 4.0, 0.05)
    params = CollisionParams()
    found = detect_collisions(params, odom_stamps_ns=_ns(odom_t), odom_speed=speed,
                              cmd_stamps_ns=_ns(cmd_t), cmd_speed=np.full(len(cmd_t), 0.15))
    assert len(found.onsets_ns) == 1
    assert found.onsets_ns[0] == _ns(2.0 + params.stall_s)
    assert found.counts['stall_samples'] > 0


def test_no_sources_no_collisions() -> None:
    found = detect_collisions(CollisionParams())
    assert found.source == 'none' and len(found.onsets_ns) == 0


def test_crash_labels_on_a_straight_run_into_a_wall() -> None:
    run = _straight_run_into_wall()
    params = CollisionParams(horizon_s=1.0, free_margin_s=1.0)
    found = detect_collisions(params, bumper_stamps_ns=run['bump_t'],
                              bumper_force_n=run['force'])
    traj = build_trajectory(run['odom_t'], run['poses'])
    frames = np.arange(0.0, 6.5, 0.1)
    crash = label_collisions(_ns(frames), found, traj, run['cmd_t'], run['cmd'], params)
    ahead = (frames >= 4.0 - 1e-9) & (frames < 5.0 - 1e-9)
    free = frames < 3.0 - 1e-9  # a collision 2.0 s later starts within horizon + margin
    assert crash.mask.tolist() == (ahead | free).tolist()
    assert crash.labels[ahead].tolist() == [1.0] * int(ahead.sum())
    assert crash.labels[free].tolist() == [0.0] * int(free.sum())
    np.testing.assert_allclose(crash.time_to_impact_ns[ahead] / S, 5.0 - frames[ahead],
                               atol=1e-6)
    np.testing.assert_allclose(crash.distance_to_impact_m[ahead],
                               0.15 * (5.0 - frames[ahead]), atol=1e-4)
    assert (crash.time_to_impact_ns[~ahead] == -1).all()
    assert np.isnan(crash.distance_to_impact_m[~ahead]).all()
    assert crash.counts == {'ahead': 10, 'free': 30, 'unknown': len(frames) - 40}


def test_a_collision_while_backing_labels_nothing_ahead() -> None:
    run = _straight_run_into_wall()
    params = CollisionParams()
    found = detect_collisions(params, bumper_stamps_ns=run['bump_t'],
                              bumper_force_n=np.where(run['bump_t'] >= _ns(6.0), 2.0, 0.0))
    traj = build_trajectory(run['odom_t'], run['poses'])
    crash = label_collisions(_ns(np.arange(5.2, 6.0, 0.1)), found, traj, run['cmd_t'],
                             run['cmd'], params)
    assert not crash.labels.any() and not crash.mask.any()


def test_event_precision_recall() -> None:
    scores = event_precision_recall(_ns([1.0, 5.1, 9.0]), _ns([1.1, 5.0, 7.0, 12.0]), 0.3)
    assert scores == {'precision': pytest.approx(2 / 3), 'recall': 0.5, 'detected': 3,
                      'true': 4, 'matched': 2}


def _rows(n: int) -> dict[str, np.ndarray]:
    return {'frames': np.zeros((n, 4, 6, 3), np.uint8), 'stamps_ns': np.arange(n) * S,
            'proximity': np.zeros((n, 1, 1)), 'proximity_mask': np.zeros((n, 1, 1), bool),
            'terrain': np.zeros((n, 1, 1)), 'terrain_mask': np.zeros((n, 1, 1), bool),
            'prov_t_future_ns': np.full((n, 1), -1), 'prov_pose_err': np.zeros((n, 1, 3)),
            'collision': np.arange(n) % 2, 'collision_mask': np.ones(n, bool),
            'prov_collision_tti_ns': np.full(n, 5), 'prov_collision_dist_m': np.full(n, 0.1)}


def test_dataset_stores_crash_labels_and_old_datasets_read_unknown(tmp_path: Path) -> None:
    layout = {'distances_m': [0.0], 'sensors': ['c'], 'terrain_grid': [1, 1],
              'image_hw': [4, 6]}
    with DatasetWriter(tmp_path / 'crash', collision=True, **layout) as writer:
        writer.add_bag('a', _rows(4))
    with DatasetWriter(tmp_path / 'crash', append=True) as writer:
        writer.add_bag('b', _rows(2))
    data = LabelledDataset.open(tmp_path / 'crash')
    assert data.collision.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.collision_mask.all() and data.prov_collision_tti_ns.tolist() == [5] * 6
    with DatasetWriter(tmp_path / 'plain', **layout) as writer:
        writer.add_bag('a', _rows(3))
    old = LabelledDataset.open(tmp_path / 'plain')
    assert not (tmp_path / 'plain' / 'collision.npy').exists()
    assert old.collision_mask.tolist() == [False] * 3
    assert old.prov_collision_tti_ns.tolist() == [-1] * 3
