"""The bag player as a real process over DDS: bag -> bag_player -> test subscriber + /clock."""
from __future__ import annotations

from pathlib import Path
import signal

import pytest

from ssl_robot.bags.reader import stamp_to_ns

from bag_factory import write_sensor_bag
from ros_procs import copy_config, Probe, start_node

REAL_BAGS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real' / 'bags'
T0 = 1_000_000_000


def _start(tmp_path, domain, **params):
    # -p overrides are '/**' rules, which the file's bag_player: section wins over.
    config = copy_config(tmp_path, bag_player={'delay': 0.3, 'wait_for_subscribers': 1, **params})
    return start_node('bag_player', domain_id=domain, log_dir=tmp_path, params_file=config)


def _subscribe(probe):
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock
    odom = probe.subscribe('/odom', Odometry, reliable=True)
    clock = probe.subscribe('/clock', Clock, reliable=True)
    return odom, clock


def _ns(msgs, field='header'):
    return [stamp_to_ns(getattr(m, field).stamp if field == 'header' else m.clock)
            for m in msgs]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_player_plays_every_message_with_clock(tmp_path, storage):
    domain = 25 if storage == 'mcap' else 26
    bag = tmp_path / 'bag'
    counts = write_sensor_bag(bag, seconds=2.0, rate_hz=20.0, storage=storage,
                              topics={'/odom', '/imu'}, t0_ns=T0)
    from sensor_msgs.msg import Imu
    with Probe(domain) as probe:
        odom, clock = _subscribe(probe)
        imu = probe.subscribe('/imu', Imu, reliable=True)
        node = _start(tmp_path, domain, bag=str(bag), rate=4.0)
        try:
            assert probe.spin_until(lambda: not node.alive(), 30), node.output()
            assert node.wait(5) == 0, node.output()
            probe.spin(0.5)
        finally:
            node.stop()
    expected = [T0 + i * 50_000_000 for i in range(counts['/odom'])]
    assert _ns(odom) == expected
    assert len(imu) == counts['/imu']
    ticks = _ns(clock, 'clock')
    assert ticks == sorted(ticks)  # no loop: bag time never goes back
    assert ticks[0] == T0 and ticks[-1] == expected[-1]
    # One tick per message and ticks between messages (100 Hz of wall time): more ticks than
    # messages, however slowly a loaded machine plays them.
    assert len(ticks) > len(expected)
    assert set(expected) <= set(ticks)


def test_player_loop_jumps_back_and_offset_skips(tmp_path):
    domain = 27
    bag = tmp_path / 'bag'
    write_sensor_bag(bag, seconds=2.0, rate_hz=10.0, topics={'/odom'}, t0_ns=T0)
    offset_ns = 1_000_000_000
    with Probe(domain) as probe:
        odom, clock = _subscribe(probe)
        node = _start(tmp_path, domain, bag=str(bag), rate=4.0, loop=True,
                      start_offset=offset_ns / 1e9)
        try:
            def looped_twice():
                ticks = _ns(clock, 'clock')
                return sum(b < a for a, b in zip(ticks, ticks[1:])) >= 2
            assert probe.spin_until(looped_twice, 30), node.output()
            node.signal(signal.SIGINT)
            assert node.wait(10) == 0, node.output()
        finally:
            node.stop()
    stamps = _ns(odom)
    assert min(stamps) == T0 + offset_ns
    one_pass = [T0 + offset_ns + i * 100_000_000 for i in range(10)]
    assert stamps[:20] == one_pass + one_pass
    ticks = _ns(clock, 'clock')
    assert min(ticks) == T0 + offset_ns
    assert 'bag time jumps back' in node.log_path.read_text()


@pytest.mark.skipif(not REAL_BAGS.is_dir(), reason='real bags not present')
def test_player_converts_a_ros1_bag(tmp_path):
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Imu
    domain = 28
    bag = REAL_BAGS / 'husky_outdoor_imu_odom.bag'
    with Probe(domain) as probe:
        odom = probe.subscribe('/husky_velocity_controller/odom', Odometry, reliable=True)
        imu = probe.subscribe('/imu/data', Imu, reliable=True)
        # The last 3 s of the 395 s bag, 3x fast.
        node = _start(tmp_path, domain, bag=str(bag), rate=3.0, start_offset=392.0,
                      topics=['/husky_velocity_controller/odom', '/imu/data'])
        try:
            assert probe.spin_until(lambda: not node.alive(), 30), node.output()
            assert node.wait(5) == 0, node.output()
            probe.spin(0.5)
        finally:
            node.stop()
    assert 20 <= len(odom) <= 40 and 70 <= len(imu) <= 110  # 10 Hz and 30 Hz
    assert odom[0].header.frame_id == 'odom' and odom[0].child_frame_id == 'base_link'
    acc = imu[0].linear_acceleration
    assert 8.0 < (acc.x ** 2 + acc.y ** 2 + acc.z ** 2) ** 0.5 < 12.0  # gravity, m/s^2
    stamps = _ns(odom)
    assert stamps == sorted(stamps)


def test_player_waits_for_the_subscribers_named_per_topic(tmp_path):
    """`wait_for_topics`: nothing is played until /odom has 2 subscribers, then everything."""
    domain = 29
    bag = tmp_path / 'bag'
    counts = write_sensor_bag(bag, seconds=1.0, rate_hz=20.0, topics={'/odom', '/imu'},
                              t0_ns=T0)
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Imu
    with Probe(domain) as probe:
        odom = probe.subscribe('/odom', Odometry, reliable=True)
        imu = probe.subscribe('/imu', Imu, reliable=True)
        node = _start(tmp_path, domain, bag=str(bag), rate=4.0, wait_for_topics=['/odom:2'])
        try:
            assert node.wait_for_output('waiting for subscribers: /imu 1, /odom 2', 30), \
                node.output()
            probe.spin(2.0)
            assert not odom and not imu and node.alive()  # one /odom subscriber so far
            with Probe(domain, name='second_probe') as second:
                second.subscribe('/odom', Odometry, reliable=True)
                assert probe.spin_until(lambda: not node.alive(), 30), node.output()
            assert node.wait(5) == 0, node.output()
            probe.spin(0.5)
        finally:
            node.stop()
    assert len(odom) == counts['/odom'] and len(imu) == counts['/imu']


def test_player_wait_timeout_plays_anyway_and_bad_entries_are_refused(tmp_path):
    domain = 30
    bag = tmp_path / 'bag'
    counts = write_sensor_bag(bag, seconds=0.5, rate_hz=20.0, topics={'/odom'}, t0_ns=T0)
    from nav_msgs.msg import Odometry
    with Probe(domain) as probe:
        odom = probe.subscribe('/odom', Odometry, reliable=True)
        node = _start(tmp_path, domain, bag=str(bag), wait_for_topics=['/odom:5'],
                      wait_timeout=1.0)
        try:
            assert probe.spin_until(lambda: not node.alive(), 30), node.output()
            assert node.wait(5) == 0, node.output()
            probe.spin(0.5)
        finally:
            node.stop()
    assert 'without the subscribers asked for: /odom has 1 of 5' in node.log_path.read_text()
    assert len(odom) == counts['/odom']
    for entry, why in (('/odom', 'expected TOPIC:N'), ('/odom:0', 'expected TOPIC:N'),
                       ('/scan:1', 'which this bag does not play')):
        bad = _start(tmp_path, domain, bag=str(bag), wait_for_topics=[entry])
        try:
            assert bad.wait(30) not in (0, None), bad.output()
            assert why in bad.output(), bad.output()
        finally:
            bad.stop()
