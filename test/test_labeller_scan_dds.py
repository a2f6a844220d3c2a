"""The live labeller with a laser scan and a bumper, as a real process over DDS.

A robot with a lidar and a bumper (its IR range topics silent) drives at 0.1 m/s toward
a wall and into it: the front scan sector's labels must follow the wall's geometry, and
the bumper's contact must label the second before it 'collision ahead'.
"""
from __future__ import annotations

import json
import math
import signal
import time

import numpy as np

from ssl_robot.dataset import LabelledDataset

from ros_procs import copy_config, Probe, start_node

DOMAIN = 34
MS = 1_000_000
WALL_X = 0.9
HIT_X = 0.5            # the bumper touches the wall here (at 5 s)
TOPICS = ('image_raw', 'camera_info', 'odom', 'imu', 'cmd_vel', 'scan', 'bumper')


def _stamp(msg, t_ns):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)


def _publish_drive(probe, seconds=7.0):
    """Publish the drive in real time from now; returns the start stamp.

    The node stamps header-less cmd_vel on receipt, so header stamps follow the wall
    clock too.
    """
    from geometry_msgs.msg import Twist, WrenchStamped
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan
    pubs = {t: probe.publisher('/' + t, cls, reliable=True) for t, cls in zip(
        TOPICS, (Image, CameraInfo, Odometry, Imu, Twist, LaserScan, WrenchStamped))}
    for name in TOPICS:
        assert probe.wait_for_subscribers('/' + name, timeout=20), name
    angles = np.linspace(-0.5, 0.5, 61)
    t0 = time.time_ns()
    for k in range(int(seconds * 100)):
        t = k * 10 * MS
        stamp = t0 + t
        ahead_s = (stamp - time.time_ns()) / 1e9
        if ahead_s > 0:
            probe.spin(ahead_s)
        x = min(0.1 * t / 1e9, HIT_X)
        imu = Imu()
        _stamp(imu, stamp)
        imu.linear_acceleration.z = 9.81
        pubs['imu'].publish(imu)
        if k % 2 == 0:
            odom = Odometry()
            _stamp(odom, stamp)
            odom.pose.pose.position.x = x
            odom.pose.pose.orientation.w = 1.0
            odom.twist.twist.linear.x = 0.1
            pubs['odom'].publish(odom)
            bump = WrenchStamped()
            _stamp(bump, stamp)
            bump.header.frame_id = 'base_link'
            bump.wrench.force.x = -2.0 if t >= 5000 * MS else 0.0
            pubs['bumper'].publish(bump)
        if k % 5 == 0:
            twist = Twist()
            twist.linear.x = 0.1  # commanded forward throughout: it drives into the wall
            pubs['cmd_vel'].publish(twist)
        if k % 10 == 0:
            scan = LaserScan(angle_min=-0.5, angle_max=0.5, angle_increment=1.0 / 60,
                             range_min=0.02, range_max=4.0)
            _stamp(scan, stamp)
            ranges = (WALL_X - x) / np.cos(angles)
            ranges[30] = math.nan            # an erroneous beam in the middle is ignored
            scan.ranges = ranges.astype(np.float32).tolist()
            pubs['scan'].publish(scan)
            info = CameraInfo(width=16, height=12, k=[20.0, 0, 7.5, 0, 20.0, 5.5, 0, 0, 1.0])
            _stamp(info, stamp)
            pubs['camera_info'].publish(info)
            image = Image(height=12, width=16, encoding='rgb8', step=48,
                          data=np.full((12, 16, 3), int(x * 100) % 256, np.uint8).tobytes())
            _stamp(image, stamp)
            pubs['image_raw'].publish(image)
    return t0


def test_labeller_labels_scan_sectors_and_collisions_live(tmp_path):
    reliable = {f'qos_overrides./{t}.subscription.reliability': 'reliable' for t in TOPICS}
    config = copy_config(tmp_path, labeller={
        'dataset': str(tmp_path / 'ds'), 'frame_rate_hz': 5.0, 'label_horizon_s': 3.0,
        'terrain_horizon_s': 3.0, 'buffer_seconds': 10.0, 'flush_every_s': 1.0,
        'status_period_s': 0.2, 'label_period_s': 0.2, 'queue_depth': 200,
        'label_distances': [0.0, 0.1, 0.2, 0.3], 'scan_topic': 'scan',
        'scan_sectors': ['front:-0.2:0.2'], **reliable})
    node = start_node('labeller', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            from std_msgs.msg import String
            status = probe.subscribe('/labeller/status', String, reliable=True)
            assert probe.wait_for_node('labeller', timeout=30), node.output()
            t0 = _publish_drive(probe)

            def settled():
                if not status:
                    return False
                last = json.loads(status[-1].data)
                return last['received'].get('/scan') == 70 and last['frames_written'] > 0

            assert probe.spin_until(settled, 40), node.output()
        node.signal(signal.SIGINT)
        assert node.wait(30) == 0, node.output()
    finally:
        node.stop()
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.sensors == ['left', 'center', 'right', 'front']
    assert not ds.proximity_mask[:, :, :3].any()      # the silent IR topics: unknown
    x = np.minimum(0.1 * (ds.stamps_ns - t0) / 1e9, HIT_X)
    checked = 0
    for j, d in enumerate(ds.distances_m):
        wall = WALL_X - x - d
        known = ds.proximity_mask[:, j, 3] & (np.abs(wall - 0.12) > 0.03)
        np.testing.assert_array_equal(ds.proximity[known, j, 3], wall[known] < 0.12)
        checked += int(known.sum())
    assert checked > 30
    # Crash labels from the bumper: the second before the hit at 5 s is 'collision ahead'.
    t = (ds.stamps_ns - t0) / 1e9
    assert ds.meta['collision'] is True
    ahead = ds.collision_mask & (ds.collision > 0.5)
    assert ahead.sum() == 5 and (t[ahead] >= 4.0).all() and (t[ahead] < 5.0).all()
    np.testing.assert_allclose(ds.prov_collision_tti_ns[ahead] / 1e9, 5.0 - t[ahead],
                               atol=0.021)  # the bumper's 50 Hz sampling
    np.testing.assert_allclose(ds.prov_collision_dist_m[ahead], 0.1 * (5.0 - t[ahead]),
                               atol=0.01)
    free = ds.collision_mask & (ds.collision < 0.5)
    assert free.any() and (t[free] < 3.0).all()
