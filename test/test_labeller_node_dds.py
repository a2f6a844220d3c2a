"""The labeller as a real process over DDS: drive toward a wall, get labels and a dataset.

The test publishes a straight drive at 0.1 m/s toward a wall (odometry, IMU, three range
sensors, camera, camera info, commands), with malformed input mixed in: images of an
unknown encoding and of a wrong size, NaN and -inf ranges, a duplicate and an
out-of-order odometry message, and an odometry reset. The node must count all of it,
publish labeller/status, and on SIGINT write a dataset whose known labels agree with the
wall's geometry.
"""
from __future__ import annotations

import json
import math
import signal

import numpy as np

from ssl_robot.dataset import LabelledDataset

from ros_procs import copy_config, Probe, start_node

DOMAIN = 31
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
WALL_X = 0.9
STOP_X = WALL_X - 0.08   # where the robot stops, 8 cm from the wall
TOPICS = ('image_raw', 'camera_info', 'odom', 'imu', 'cmd_vel', 'range/left', 'range/center',
          'range/right')


def _stamp(msg, t_ns):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)


def _publish_drive(probe, seconds=9.0):
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, Imu, Range
    pubs = {t: probe.publisher('/' + t, cls, reliable=True) for t, cls in zip(
        TOPICS, (Image, CameraInfo, Odometry, Imu, Twist, Range, Range, Range))}
    for name in TOPICS:
        assert probe.wait_for_subscribers('/' + name, timeout=20), name
    events = []   # (t_ns, kind, extra)
    for k in range(int(seconds * 100)):
        t = k * 10 * MS
        events.append((t, 'imu', None))
        if k % 2 == 0:
            events.append((t, 'odom', None))
        if k % 5 == 0:
            events += [(t, 'range', s) for s in range(3)]
            events.append((t, 'cmd', None))
        if k % 10 == 0:
            events += [(t, 'image', None), (t, 'info', None)]
    bad = {'yuv': 0, 'size': 0}
    x_of = lambda t: min(0.1 * t / 1e9, STOP_X)  # noqa: E731
    reset_at = 8500 * MS
    for n, (t, kind, extra) in enumerate(events):
        stamp = T0 + t
        x = x_of(t)
        if kind == 'odom':
            odom = Odometry()
            _stamp(odom, stamp)
            # A reset near the end: odometry restarts from 0 (never bridged).
            odom.pose.pose.position.x = x - (x_of(reset_at) if t >= reset_at else 0.0)
            odom.pose.pose.orientation.w = 1.0
            odom.twist.twist.linear.x = 0.1
            pubs['odom'].publish(odom)
            if t == 2000 * MS:
                pubs['odom'].publish(odom)                         # duplicate
            if t == 3000 * MS:
                late = Odometry()
                _stamp(late, stamp - 30 * MS)
                late.pose.pose.position.x = x_of(t - 30 * MS)
                late.pose.pose.orientation.w = 1.0
                pubs['odom'].publish(late)                         # out of order
        elif kind == 'imu':
            imu = Imu()
            _stamp(imu, stamp)
            imu.linear_acceleration.z = 9.81 + 0.5 * math.sin(2 * math.pi * 15 * t / 1e9)
            pubs['imu'].publish(imu)
        elif kind == 'range':
            rng = Range(min_range=0.01, max_range=0.30, radiation_type=Range.INFRARED)
            _stamp(rng, stamp)
            wall = WALL_X - x
            rng.range = wall if wall <= 0.30 else math.inf
            if t == 1000 * MS and extra == 0:
                rng.range = math.nan
            if t == 1500 * MS and extra == 1:
                rng.range = -math.inf
            pubs[('range/left', 'range/center', 'range/right')[extra]].publish(rng)
        elif kind == 'cmd':
            twist = Twist()
            twist.linear.x = 0.1
            pubs['cmd_vel'].publish(twist)
        elif kind == 'info':
            info = CameraInfo(width=16, height=12, k=[20.0, 0, 7.5, 0, 20.0, 5.5, 0, 0, 1.0])
            _stamp(info, stamp)
            pubs['camera_info'].publish(info)
        else:
            pixels = np.full((12, 16, 3), int(x * 100) % 256, np.uint8)
            image = Image(height=12, width=16, encoding='rgb8', step=48,
                          data=pixels.tobytes())
            if t in (600 * MS, 800 * MS, 1000 * MS):
                image.encoding = 'yuv422'
                bad['yuv'] += 1
            elif t == 1200 * MS:
                image.data = bytes(10)
                bad['size'] += 1
            _stamp(image, stamp)
            pubs['image_raw'].publish(image)
        if n % 8 == 0:
            probe.spin(0.002)
    return bad


def test_labeller_node_labels_a_drive_and_writes_a_dataset(tmp_path):
    reliable = {f'qos_overrides./{t}.subscription.reliability': 'reliable' for t in TOPICS}
    config = copy_config(tmp_path, labeller={
        'dataset': str(tmp_path / 'ds'), 'frame_rate_hz': 5.0, 'label_horizon_s': 3.0,
        'terrain_horizon_s': 4.0, 'buffer_seconds': 10.0, 'flush_every_s': 1.0,
        'status_period_s': 0.2, 'label_period_s': 0.2, 'queue_depth': 5000,
        'label_distances': [0.0, 0.1, 0.2, 0.3], **reliable})
    node = start_node('labeller', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            from std_msgs.msg import String
            status = probe.subscribe('/labeller/status', String, reliable=True)
            assert probe.wait_for_node('labeller', timeout=30), node.output()
            bad = _publish_drive(probe)

            def settled():  # everything received, and something labelled and written
                if not status:
                    return False
                last = json.loads(status[-1].data)
                return last['received'].get('/odom') == 452 and last['frames_written'] > 0

            assert probe.spin_until(settled, 40), \
                status and json.loads(status[-1].data)['received']
            last = json.loads(status[-1].data)
        assert node.alive()
        node.signal(signal.SIGINT)
        assert node.wait(30) == 0, node.output()
    finally:
        node.stop()
    assert last['frames_bad_encoding'] == bad['yuv'] + bad['size'] == 4
    assert last['odom_duplicate'] == 1 and last['odom_out_of_order'] == 1
    assert last['odom_jumps'] == 1
    assert last['range_nan'] == 1 and last['range_too_close'] == 1
    assert last['incompatible_qos'] == 0 and last['messages_bad'] == 0
    assert last['received']['/odom'] == 452
    ds = LabelledDataset.open(tmp_path / 'ds')
    # 9 s at 5 Hz = 45 frame slots; a malformed image leaves its slot to the next frame.
    assert len(ds) == 45
    assert len(ds.meta['bags']) == 1 and ds.meta['bags'][0]['path'].startswith('live:')
    assert np.all(np.diff(ds.stamps_ns) > 0)
    x = np.minimum(0.1 * (ds.stamps_ns - T0) / 1e9, STOP_X)
    checked = 0
    for j, d in enumerate(ds.distances_m):
        wall = WALL_X - x - d
        clear = np.abs(wall - 0.12) > 0.03        # far from the threshold (tolerances)
        known = ds.proximity_mask[:, j, 1] & clear
        np.testing.assert_array_equal(ds.proximity[known, j, 1], (wall[known] < 0.12))
        checked += int(known.sum())
        # Never labelled past where the robot stopped, nor across the odometry reset.
        assert not ds.proximity_mask[x + d > STOP_X + 0.021, j].any()
    assert checked > 60
    assert ds.proximity[:, :, 1].sum() > 0          # some obstacle labels exist
    assert ds.terrain_mask.any()
