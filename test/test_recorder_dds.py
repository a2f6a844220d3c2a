"""The recorder as a real process over DDS: publish -> recorder -> bag -> BagReader.

Counts and header stamps in the bag must equal what was published; SIGINT and SIGTERM
finalise the bag; after SIGKILL the bag still opens (recovered) with what was recorded.
"""
from __future__ import annotations

import json
import signal

import pytest

from ssl_robot.bags.reader import BagReader, stamp_to_ns
from ssl_robot.bags.recovery import needs_recovery, reindex

from ros_procs import copy_config, Probe, start_node

T0_NS = 1_700_000_000_000_000_000
RELIABLE = {f'qos_overrides./{t}.subscription.reliability': 'reliable'
            for t in ('odom', 'image_raw')}


def _start(tmp_path, domain, params):
    # -p overrides are '/**' rules, which the file's recorder: section wins over.
    config = copy_config(tmp_path, recorder=params)
    return start_node('recorder', domain_id=domain, log_dir=tmp_path, params_file=config)


def _params(tmp_path, storage, **extra):
    return {'output': str(tmp_path / 'rec'), 'storage': storage,
            'topics': ['odom=nav_msgs/msg/Odometry', 'image_raw=sensor_msgs/msg/Image'],
            'status_period': 0.2, **RELIABLE, **extra}


def _publish(probe, count, *, period_s=0.01, start=0):
    """Publish `count` odometry messages and one small image every 5th; their stamps."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image
    odom_pub = probe.publisher('/odom', Odometry, reliable=True)
    image_pub = probe.publisher('/image_raw', Image, reliable=True)
    stamps = {'/odom': [], '/image_raw': []}
    for i in range(start, start + count):
        t = T0_NS + i * 10_000_000
        odom = Odometry()
        odom.header.stamp.sec, odom.header.stamp.nanosec = divmod(t, 1_000_000_000)
        odom.header.frame_id = 'odom'
        odom.pose.pose.position.x = i * 0.01
        odom_pub.publish(odom)
        stamps['/odom'].append(t)
        if i % 5 == 0:
            image = Image(height=4, width=6, encoding='rgb8', step=18, data=bytes(72))
            image.header.stamp = odom.header.stamp
            image_pub.publish(image)
            stamps['/image_raw'].append(t)
        probe.spin(period_s)
    return stamps


def _status_box(probe):
    from std_msgs.msg import String
    return probe.subscribe('/recorder/status', String, reliable=True)


def _received(box):
    return json.loads(box[-1].data)['received'] if box else -1


def _bag_stamps(path):
    with BagReader(path) as bag:
        out = {}
        for m in bag.messages():
            out.setdefault(m.topic, []).append(stamp_to_ns(m.msg.header.stamp))
        return out


def _wait_ready(probe, node):
    assert probe.wait_for_subscribers('/odom', 30), node.output()
    assert probe.wait_for_subscribers('/image_raw', 30), node.output()


@pytest.mark.parametrize(('sig', 'storage', 'domain'), [
    (signal.SIGINT, 'mcap', 21), (signal.SIGTERM, 'sqlite3', 22)])
def test_recorder_signal_finalises_without_loss(tmp_path, sig, storage, domain):
    node = _start(tmp_path, domain, _params(tmp_path, storage, max_bag_duration=0.5))
    try:
        with Probe(domain) as probe:
            box = _status_box(probe)
            _wait_ready(probe, node)
            stamps = _publish(probe, 120)
            total = sum(len(v) for v in stamps.values())
            assert probe.spin_until(lambda: _received(box) == total, 20), (box[-1:], node.output())
            node.signal(sig)
            assert node.wait(30) == 0, node.output()
    finally:
        node.stop()
    bag = tmp_path / 'rec'
    assert not needs_recovery(bag)
    assert (bag / 'metadata.yaml').exists()
    assert len(list(bag.glob(f'rec_*.{"mcap" if storage == "mcap" else "db3"}'))) >= 2  # split
    assert _bag_stamps(bag) == stamps
    assert 'bag finalised' in node.log_path.read_text()


def test_recorder_sigkill_leaves_a_readable_bag(tmp_path):
    domain = 23
    node = _start(tmp_path, domain, _params(tmp_path, 'mcap', max_bag_duration=0.5,
                                            flush_period=0.2))
    try:
        with Probe(domain) as probe:
            box = _status_box(probe)
            _wait_ready(probe, node)
            stamps = _publish(probe, 100)
            total = sum(len(v) for v in stamps.values())
            assert probe.spin_until(lambda: _received(box) == total, 20), node.output()
            # Idle for more than flush_period, the writer makes everything durable: wait for
            # it to say so (recorder/status 'durable'), not for a fixed time.
            assert probe.spin_until(
                lambda: box and json.loads(box[-1].data)['durable'] == total, 20), node.output()
            more = _publish(probe, 30, start=100)  # the "last moment", may be lost
            node.signal(signal.SIGKILL)
            node.wait(10)
    finally:
        node.stop()
    bag = tmp_path / 'rec'
    assert needs_recovery(bag)
    recovered = _bag_stamps(bag)  # BagReader recovers transparently
    for topic, published in stamps.items():
        got = recovered[topic]
        # Everything before the idle period, then a gap-free prefix of the last moment.
        assert got[:len(published)] == published
        assert got[len(published):] == more[topic][:len(got) - len(published)]
    report = reindex(bag)
    assert not needs_recovery(bag)
    assert report.message_count == sum(len(v) for v in recovered.values())
    assert _bag_stamps(bag) == recovered


def test_recorder_discovers_type_and_publishes_status(tmp_path):
    domain = 24
    params = {'output': str(tmp_path / 'rec'), 'topics': ['chatter'], 'status_period': 0.2,
              'qos_overrides./chatter.subscription.reliability': 'reliable'}
    node = _start(tmp_path, domain, params)
    try:
        with Probe(domain) as probe:
            from std_msgs.msg import String
            box = _status_box(probe)
            pub = probe.publisher('/chatter', String, reliable=True)
            assert probe.wait_for_subscribers('/chatter', 30), node.output()
            for i in range(10):
                pub.publish(String(data=f'hello {i}'))
                probe.spin(0.02)
            assert probe.spin_until(lambda: _received(box) == 10, 20), node.output()
            status = json.loads(box[-1].data)
            assert status['dropped'] == 0 and status['topics']['/chatter']['received'] == 10
            node.signal(signal.SIGINT)
            assert node.wait(30) == 0, node.output()
    finally:
        node.stop()
    with BagReader(tmp_path / 'rec') as bag:
        assert bag.topics == {'/chatter': 'std_msgs/msg/String'}
        assert [m.msg.data for m in bag.messages()] == [f'hello {i}' for i in range(10)]
