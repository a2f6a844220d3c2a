"""The `sim_robot` node as a real process over DDS (loopback, domains 10-19)."""
from __future__ import annotations

import json
import math
from pathlib import Path
import signal

import pytest

from ros_procs import copy_config, Probe, start_node


def test_sim_robot_publishes_sensors_clock_and_world(tmp_path: Path) -> None:
    from nav_msgs.msg import Odometry
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, Imu, Range
    from std_msgs.msg import String
    # Node-specific entries of a parameter file beat -p overrides: override in a copy.
    config = copy_config(tmp_path, sim_robot={'seed': 2, 'rate_hz': 10.0, 'extra_cameras': 1})
    with start_node('sim_robot', domain_id=13, log_dir=tmp_path,
                    params_file=config) as node, Probe(13) as probe:
        images = probe.subscribe('/image_raw', Image)
        images2 = probe.subscribe('/camera2/image_raw', Image)
        odom = probe.subscribe('/odom', Odometry)
        ranges = probe.subscribe('/range/center', Range)
        imu = probe.subscribe('/imu', Imu)
        clock = probe.subscribe('/clock', Clock, reliable=True)
        world: list[String] = []
        probe.node.create_subscription(String, '/sim/world', world.append, QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        assert probe.spin_until(lambda: images and images2 and odom and ranges and imu
                                and clock, 60), node.output()[-2000:]
        probe.spin(1.0)
        assert images[-1].encoding == 'rgb8' and (images[-1].width, images[-1].height) == (
            128, 96)
        assert images[-1].header.frame_id == 'camera_optical_frame'
        # The extra camera: its own frame, the main camera's stamps.
        assert images2[-1].header.frame_id == 'camera2_optical_frame'
        assert images2[-1].encoding == 'rgb8' and images2[-1].width == 128
        main_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images}
        assert main_stamps & {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images2}
        assert odom[-1].header.frame_id == 'odom' and odom[-1].child_frame_id == 'base_link'
        assert ranges[-1].header.frame_id == 'range_center_link'
        assert ranges[-1].max_range == pytest.approx(0.30)
        assert math.isinf(ranges[-1].range) or 0.01 <= ranges[-1].range <= 0.30
        stamps = [c.clock.sec * 10**9 + c.clock.nanosec for c in clock]
        assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
        # Sensor stamps are simulated time, on /clock's time line.
        image_ns = images[-1].header.stamp.sec * 10**9 + images[-1].header.stamp.nanosec
        assert abs(image_ns - stamps[-1]) < 2e9
        # The world description is latched (transient local): a late subscriber gets it.
        assert probe.spin_until(lambda: world, 10)
        assert json.loads(world[0].data)['seed'] == 2
        node.signal(signal.SIGINT)
        assert node.wait(20) == 0, node.output()[-2000:]
    assert 'Traceback' not in node.log_path.read_text()


def test_sim_robot_follows_cmd_vel_and_stops_after_duration(tmp_path: Path) -> None:
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    config = copy_config(tmp_path, sim_robot={
        'seed': 1, 'autopilot': False, 'rate_hz': 5.0, 'duration': 8.0,
        'real_time_factor': 1.0})
    with start_node('sim_robot', domain_id=14, log_dir=tmp_path,
                    params_file=config) as node, Probe(14) as probe:
        truth = probe.subscribe('/ground_truth/odom', Odometry)
        cmd = probe.publisher('/cmd_vel', Twist, reliable=True)
        assert probe.spin_until(lambda: truth, 60), node.output()[-2000:]
        start = truth[-1].pose.pose.position
        bad = Twist()
        bad.linear.x = math.nan
        cmd.publish(bad)  # dropped and counted, never applied
        go = Twist()
        go.linear.x = 0.1

        def moved() -> float:
            end = truth[-1].pose.pose.position
            return math.hypot(end.x - start.x, end.y - start.y)

        # Commanded at 0.1 m/s it moves; wait for it (bounded), not for a fixed wall time.
        for _ in range(10):
            cmd.publish(go)
            probe.spin(0.1)
        assert probe.spin_until(lambda: moved() > 0.05, 6), moved()
        assert node.wait(30) == 0, node.output()[-2000:]  # exits by itself after 8 s
        out = node.output()
    assert 'dropped command #1' in out
    assert 'done' in out and 'Traceback' not in out


def test_node_defaults_match_the_parameter_file() -> None:
    """The node declares every sim_robot key of the parameter file with its default.

    Every sim_robot (and shared '/**') key in config/robot.yaml is declared by the node
    with the same default, so the node behaves the same with or without the file.
    """
    import rclpy
    from rclpy.context import Context
    import yaml

    from ssl_robot.config import load_node_parameters
    from ssl_robot.nodes.sim_robot import SimRobot

    from ros_procs import CONFIG
    context = Context()
    rclpy.init(context=context, domain_id=15)
    try:
        node = SimRobot(context=context)
        try:
            names = node.list_parameters([], 0).names
            declared = {name: node.get_parameter(name).value
                        for name in names if name != 'use_sim_time'}
        finally:
            node.close()
            node.destroy_node()
    finally:
        context.try_shutdown()
    config = load_node_parameters('sim_robot')
    for name, value in config.items():
        if name in declared:
            assert declared[name] == value, name
    own = yaml.safe_load(CONFIG.read_text())['sim_robot']['ros__parameters']
    assert set(own) <= set(declared)
