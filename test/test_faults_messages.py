"""Fault suite: malformed messages fed over DDS to every node that subscribes to sensors.

NaN/inf/negative ranges, unknown image encodings, wrong sizes, timestamps out of order,
duplicated or jumping back (a bag loop), odometry resets, non-finite IMU and velocity
commands: each node must count the drop or handle the message — never crash, never
hang. After every batch each node process must still be alive, answer a service call
(its executor is not stuck) and have printed no traceback.

The nodes are started once for the module (one process each, like `ssl-robot up`);
sim_robot runs in a domain of its own, so its camera does not mix with the bad input.
"""
from __future__ import annotations

import math

import pytest

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 65
SIM_DOMAIN_ID = 66
#: Nodes that subscribe to sensor topics (bag_player subscribes to nothing).
SUBSCRIBERS = ('recorder', 'labeller', 'inference', 'trainer')
RANGES = ('/range/left', '/range/center', '/range/right')


def _stamp(t_ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _image(t_ns: int, *, encoding: str = 'rgb8', h: int = 24, w: int = 32,
           channels: int = 3, size: int | None = None, step: int | None = None,
           frame: str = 'camera_optical_frame'):
    from sensor_msgs.msg import Image
    msg = Image(height=h, width=w, encoding=encoding, step=w * channels if step is None else step)
    msg.header.stamp, msg.header.frame_id = _stamp(t_ns), frame
    msg.data = bytes([90]) * (h * w * channels if size is None else size)
    return msg


def _range(t_ns: int, value: float, *, side: str = 'center', min_range: float = 0.01,
           max_range: float = 0.30):
    from sensor_msgs.msg import Range
    msg = Range(radiation_type=Range.INFRARED, field_of_view=0.5, min_range=min_range,
                max_range=max_range, range=value)
    msg.header.stamp, msg.header.frame_id = _stamp(t_ns), f'range_{side}_link'
    return msg


def _odom(t_ns: int, x: float, *, yaw_w: float = 1.0, y: float = 0.0):
    from nav_msgs.msg import Odometry
    msg = Odometry(child_frame_id='base_link')
    msg.header.stamp, msg.header.frame_id = _stamp(t_ns), 'odom'
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.w = yaw_w
    return msg


def _imu(t_ns: int, az: float = 9.81, wz: float = 0.0):
    from sensor_msgs.msg import Imu
    msg = Imu()
    msg.header.stamp, msg.header.frame_id = _stamp(t_ns), 'imu_link'
    msg.orientation.w = 1.0
    msg.linear_acceleration.z, msg.angular_velocity.z = az, wz
    return msg


def _camera_info(t_ns: int, *, h: int = 24, w: int = 32, k: float = 30.0):
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo(height=h, width=w)
    msg.header.stamp, msg.header.frame_id = _stamp(t_ns), 'camera_optical_frame'
    msg.k = [k, 0.0, w / 2, 0.0, k, h / 2, 0.0, 0.0, 1.0]
    return msg


def _depth(t_ns: int, value: float, *, encoding: str = '32FC1', size: int | None = None):
    import numpy as np
    msg = _image(t_ns, encoding=encoding, channels=4 if encoding == '32FC1' else 2)
    pixels = np.full(24 * 32, value, np.float32 if encoding == '32FC1' else np.uint16)
    data = pixels.tobytes()
    msg.data = data if size is None else data[:size]
    return msg


def _instant(t_ns: int, x: float = 0.0) -> list[tuple[str, object]]:
    """Well-formed messages of one instant, on every sensor topic."""
    out = [('/image_raw', _image(t_ns)), ('/camera_info', _camera_info(t_ns)),
           ('/depth/image', _depth(t_ns, 1.0)), ('/odom', _odom(t_ns, x)),
           ('/imu', _imu(t_ns))]
    out += [(topic, _range(t_ns, 0.2, side=topic.rsplit('/', 1)[1])) for topic in RANGES]
    return out


S = 1_000_000_000
T0 = 100 * S


def _batches() -> dict[str, list[tuple[str, object]]]:
    nan, inf = math.nan, math.inf
    return {
        'ranges-nan-inf-negative': [
            (topic, _range(T0 + i * S // 10, v, side=topic.rsplit('/', 1)[1]))
            for i, v in enumerate([nan, inf, -inf, -1.0, 0.0, 1e9, -1e-9, 5.0])
            for topic in RANGES] + [
            ('/range/center', _range(T0, 0.1, min_range=0.5, max_range=0.1)),
            ('/range/center', _range(T0, 0.1, min_range=nan, max_range=inf))],
        'image-unknown-encoding': [
            ('/image_raw', _image(T0 + i * S // 10, encoding=e, channels=c))
            for i, (e, c) in enumerate([('yuv422_yuy2', 2), ('bayer_rggb8', 1), ('', 3),
                                        ('no-such-encoding', 3), ('16UC1', 2), ('32FC1', 4),
                                        ('rgba16', 8), ('jpeg', 1)])],
        'image-wrong-size': [
            ('/image_raw', _image(T0, size=10)),
            ('/image_raw', _image(T0 + S // 10, size=24 * 32 * 3 + 999)),
            ('/image_raw', _image(T0 + 2 * S // 10, h=0, w=0)),
            ('/image_raw', _image(T0 + 3 * S // 10, step=5)),
            ('/image_raw', _image(T0 + 4 * S // 10, h=100_000, w=100_000, size=300)),
            ('/image_raw', _image(T0 + 5 * S // 10, h=1, w=1)),
            ('/camera_info', _camera_info(T0, h=0, w=0, k=0.0)),
            ('/camera_info', _camera_info(T0, k=nan)),
            ('/depth/image', _depth(T0, 1.0, size=7)),
            ('/depth/image', _depth(T0, nan)),
            ('/depth/image', _depth(T0, -inf)),
            ('/depth/image', _depth(T0, 0.0, encoding='16UC1')),
            ('/depth/image', _image(T0, encoding='rgb8'))],
        'timestamps-out-of-order-duplicated': [
            m for t in (5, 3, 4, 4, 4, 1, 2, 2) for m in _instant(T0 + t * S // 10)],
        'timestamps-bag-loop': [
            m for t in [*range(20, 30), *range(0, 10)] for m in _instant(T0 + t * S // 10,
                                                                        x=0.02 * t)],
        'timestamps-zero-and-far-future': [
            m for t_ns in (0, 1, (2**31 - 1) * S, 0) for m in _instant(t_ns)],
        'odometry-reset-and-nan': [
            ('/odom', _odom(T0 + i * S // 10, x)) for i, x in enumerate(
                [4.0, 4.1, 4.2, 0.0, 0.0, 0.1, nan, inf, -inf])] + [
            ('/odom', _odom(T0 + S, 0.2, yaw_w=0.0)),
            ('/odom', _odom(T0 + S, 0.2, yaw_w=nan, y=nan))],
        'imu-non-finite': [
            ('/imu', _imu(T0 + i * S // 100, az, wz)) for i, (az, wz) in enumerate(
                [(nan, 0.0), (inf, -inf), (1e30, 1e30), (-inf, nan)])],
    }


BATCHES = _batches()


def _obstacle_model(path):
    """A small untrained obstacle model, exported as `ssl-robot export` does."""
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    torch.manual_seed(0)
    export_robot_onnx(build_robot_model(default_spec('obstacle', input_hw=[24, 32], width=4)),
                      path)
    return path


@pytest.fixture(scope='module')
def nodes(tmp_path_factory):
    """Every written subscriber node, started once, with outputs in a temporary dir."""
    tmp = tmp_path_factory.mktemp('faults_messages')
    present = list(SUBSCRIBERS)
    inference = {}
    if 'inference' in present:  # an active model, so bad frames reach its image path
        inference['model_path'] = str(_obstacle_model(tmp / 'obstacle.onnx'))
    config = copy_config(tmp, recorder={'output': str(tmp / 'recording')},
                         labeller={'dataset': str(tmp / 'dataset')},
                         trainer={'dataset': str(tmp / 'dataset'), 'run_dir': str(tmp / 'run')},
                         inference=inference)
    procs = {n: start_node(n, domain_id=DOMAIN_ID, log_dir=tmp / 'logs', params_file=config)
             for n in present}
    try:
        with Probe(DOMAIN_ID) as probe:
            if not probe.spin_until(lambda: set(present) <= set(probe.node_names()), 60):
                dead = {n: p.output()[-2000:] for n, p in procs.items()}
                pytest.fail(f'nodes did not come up: {dead}')
            publishers = {}
            for topic, msg in (m for batch in BATCHES.values() for m in batch):
                if topic not in publishers:
                    publishers[topic] = probe.publisher(topic, type(msg))
            probe.spin_until(lambda: all(probe.node.count_subscribers(t) > 0
                                         for t in ('/image_raw', '/odom')), 20)
            if 'inference' in present:
                probe.change_state('inference', 'configure')
                probe.change_state('inference', 'activate')
                assert probe.lifecycle_state('inference') == 'active', \
                    procs['inference'].output()[-2000:]
            from std_msgs.msg import String
            status = probe.subscribe('/labeller/status', String)
            probe.spin(1.0)  # let every subscription match before the first batch
            yield probe, publishers, procs, status
    finally:
        for proc in procs.values():
            proc.stop()


def _check_alive_and_responsive(probe, procs) -> list[str]:
    problems = []
    for name, proc in procs.items():
        if not proc.alive():
            problems.append(f'{name} died ({proc.proc.returncode}): {proc.output()[-1500:]}')
        elif not probe.responsive(name, timeout=15):
            problems.append(f'{name} does not answer a service call (hung)')
        elif 'Traceback' in proc.output():
            problems.append(f'{name} printed a traceback: {proc.output()[-1500:]}')
    return problems


#: What the labeller must count for each batch, by cause (deltas of labeller/status),
#: hand-computed from REP-117 and the batch contents: e.g. per range topic, NaN, -1.0, 0.0,
#: 1e9, -1e-9 and 5.0 m (outside [0.01, 0.30]) are invalid (NaN), +inf is "nothing",
#: -inf "too close"; one more invalid reading comes from min_range > max_range.
EXPECTED_COUNTS = {
    'ranges-nan-inf-negative': {'range_nan': 19, 'range_nothing': 3, 'range_too_close': 3},
    'image-unknown-encoding': {'frames_bad_encoding': 8, 'frames_bad_size': 0},
    'timestamps-out-of-order-duplicated': {'odom_out_of_order': 2, 'odom_duplicate': 3,
                                           'time_restarts': 0},
    'timestamps-bag-loop': {'time_restarts': 1},
}
#: Causes whose count must grow by at least this much (several causes may apply).
AT_LEAST = {
    'odometry-reset-and-nan': {'odom_jumps': 1},
    'image-wrong-size': {'frames_bad_size': 1},
}


def _latest(status: list) -> dict:
    import json
    return json.loads(status[-1].data) if status else {}


@pytest.mark.parametrize('batch', list(BATCHES))
def test_malformed_messages_are_dropped_or_handled(batch, nodes, fault_case):
    probe, publishers, procs, status = nodes
    assert probe.spin_until(lambda: status, 15), 'no labeller/status'
    received = _latest(status)['frames_received']
    probe.spin_until(lambda: _latest(status)['frames_received'] == received, 3)
    before = _latest(status)
    images = sum(1 for topic, _ in BATCHES[batch] if topic == '/image_raw')
    # Each batch on a timeline of its own, after the previous batch's (so that its counts
    # are its own: no restart from going back to an earlier batch's stamps).
    offset = 0 if batch == 'timestamps-zero-and-far-future' else \
        (1 + list(BATCHES).index(batch)) * 100 * S
    for topic, msg in BATCHES[batch]:
        if hasattr(msg, 'header'):
            t = msg.header.stamp.sec * S + msg.header.stamp.nanosec + offset
            msg.header.stamp = _stamp(t)
        publishers[topic].publish(msg)
        probe.spin(0.005)
    # Well-formed messages after the bad ones: the node must still take them.
    for topic, msg in _instant(T0 + offset + 50 * S):
        publishers[topic].publish(msg)
    assert probe.spin_until(
        lambda: _latest(status)['frames_received'] - before['frames_received'] == images + 1,
        15), (batch, _latest(status))
    probe.spin(1.2)  # one more status period: every count of the batch is in
    after = _latest(status)
    delta = {k: after[k] - before[k] for k in after if isinstance(after[k], int)
             and isinstance(before.get(k), int)}
    fault_case.notes.append('nodes: ' + ', '.join(procs))
    for cause, n in EXPECTED_COUNTS.get(batch, {}).items():
        assert delta[cause] == n, (batch, cause, delta)
    for cause, n in AT_LEAST.get(batch, {}).items():
        assert delta[cause] >= n, (batch, cause, delta)
    # Every bad image is counted by some cause, and the well-formed frame is not dropped.
    if batch.startswith('image-'):
        dropped = delta['frames_bad_encoding'] + delta['frames_bad_size']
        assert dropped + delta['frames_skipped_rate'] == images, (batch, delta)
    problems = _check_alive_and_responsive(probe, procs)
    assert not problems, '\n'.join(problems)


def test_sim_robot_survives_non_finite_velocity_commands(tmp_path, fault_case):
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Range
    config = copy_config(tmp_path, sim_robot={'rate_hz': 5.0})
    with start_node('sim_robot', domain_id=SIM_DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as sim, Probe(SIM_DOMAIN_ID) as probe:
        ranges = probe.subscribe('/range/center', Range)
        cmd = probe.publisher('/cmd_vel', Twist)
        assert probe.spin_until(lambda: ranges, 60), sim.output()[-2000:]
        for value in (math.nan, math.inf, -math.inf, 1e30, -1e30):
            twist = Twist()
            twist.linear.x = twist.angular.z = value
            cmd.publish(twist)
            probe.spin(0.05)
        ranges.clear()
        assert probe.spin_until(lambda: len(ranges) >= 2, 20), 'sim stopped publishing'
        assert sim.alive() and probe.responsive('sim_robot')
        assert 'Traceback' not in sim.output()
