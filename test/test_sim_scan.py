"""The simulated laser scan and contact sensor, and the driver that sometimes does not stop."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.bags.reader import BagReader
from ssl_robot.sim import generate_world, SimError
from ssl_robot.sim.bag import write_sim_bag
from ssl_robot.sim.messages import ROSBAGS_KIT
from ssl_robot.sim.scan import laser_scan_msg, LaserScanner, SCAN
from ssl_robot.sim.session import SimOptions, SimSession
from ssl_robot.sim.simulator import Simulator


def test_scan_matches_the_world_geometry() -> None:
    world = generate_world(5, style='plain')
    with Simulator(world, render=False) as sim:
        ranges = LaserScanner(sim).scan()
        truth = sim.ground_truth()
    x, y, yaw = float(truth.position[0]), float(truth.position[1]), truth.yaw
    ox, oy = x + SCAN.xyz_m[0] * math.cos(yaw), y + SCAN.xyz_m[0] * math.sin(yaw)
    expected = np.array([world.obstacle_distance(ox, oy, yaw + a) for a in SCAN.angles_rad])
    expected[expected > SCAN.range_max_m] = np.inf
    assert ranges.shape == (SCAN.n_beams,)
    finite = np.isfinite(expected)
    assert (np.isinf(ranges) == ~finite).mean() > 0.95
    both = finite & np.isfinite(ranges)
    assert np.median(np.abs(ranges[both] - expected[both])) < 0.01


def test_laser_scan_message_fields() -> None:
    msg = laser_scan_msg(ROSBAGS_KIT, 1_000_000_007, 'laser_link',
                         np.array([1.0, np.inf, -np.inf], np.float32))
    assert msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 7
    assert msg.angle_min == pytest.approx(SCAN.angle_min_rad)
    assert msg.angle_increment == pytest.approx(SCAN.angle_increment_rad)
    assert msg.range_max == pytest.approx(SCAN.range_max_m)
    assert msg.ranges.tolist() == [1.0, math.inf, -math.inf]


def test_crash_rate_drives_into_obstacles_and_contacts_show_it() -> None:
    world = generate_world(1, style='plain')
    session = SimSession(world, SimOptions(render=False, contacts=True, crash_rate=1.0))
    try:
        out = session.advance(int(25e9))
    finally:
        session.close()
    assert session.policy.mode_counts.get('crash', 0) >= 1
    assert 'stop' not in session.policy.mode_counts  # with rate 1 it never stops
    forces = np.array([(msg.wrench.force.x, msg.wrench.force.y) for topic, msg, _ in out
                       if topic == 'bumper'])
    assert len(forces) == 25 * 50
    pushing = np.hypot(forces[:, 0], forces[:, 1]) > 0.3
    assert pushing.any()
    # Driving forward into an obstacle: the obstacle pushes the robot back (-x).
    assert np.median(forces[pushing, 0]) < 0


def test_default_driver_never_crashes_on_purpose() -> None:
    world = generate_world(1, style='plain')
    session = SimSession(world, SimOptions(render=False))
    try:
        session.advance(int(12e9))
    finally:
        session.close()
    assert 'crash' not in session.policy.mode_counts
    assert 'bumper' not in session.streams and 'scan' not in session.streams
    with pytest.raises(SimError, match='crash rate'):
        SimOptions(crash_rate=1.5).periods_ns()


def test_sim_bag_with_scan(tmp_path: Path) -> None:
    out = tmp_path / 'scan_bag'
    summary = write_sim_bag(4, 2.0, out, width=32, height=24, scan=True, contacts=True,
                            camera_rate_hz=5.0)
    assert summary.message_counts['/scan'] == 20
    assert summary.message_counts['/bumper'] == 100
    with BagReader(out) as bag:
        assert bag.topics['/scan'] == 'sensor_msgs/msg/LaserScan'
        msg = next(iter(bag.messages(['/scan']))).msg
    assert len(msg.ranges) == SCAN.n_beams
    assert msg.header.frame_id == 'laser_link'
