"""`qos_policy: auto`: sensor subscriptions follow their publishers' reliability (domain 64).

The labeller runs as a real process; the test's publishers offer reliable or best-effort
QoS on its topics, before it starts and after; what the labeller subscribed with is read
from the ROS graph (get_subscriptions_info_by_topic), not from its log.
"""
from __future__ import annotations

import pytest

from ssl_robot.errors import ConfigError
from ssl_robot.qos import choose_reliability

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 64


@pytest.mark.parametrize('offered, policy, expected', [
    ([], 'auto', 'best_effort'),
    (['reliable'], 'auto', 'reliable'),
    (['reliable', 'reliable'], 'auto', 'reliable'),
    (['reliable', 'best_effort'], 'auto', 'best_effort'),
    (['best_effort'], 'auto', 'best_effort'),
    (['best_effort'], 'reliable', 'reliable'),
    (['reliable'], 'best_effort', 'best_effort'),
])
def test_choose_reliability(offered, policy, expected):
    assert choose_reliability(offered, policy)[0] == expected


def test_choose_reliability_refuses_an_unknown_policy():
    with pytest.raises(ConfigError, match='qos_policy'):
        choose_reliability([], 'fast')


def test_labeller_follows_publishers_and_an_explicit_override_wins(tmp_path):
    from nav_msgs.msg import Odometry
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, Imu

    config = copy_config(tmp_path, labeller={
        'dataset': str(tmp_path / 'ds'),
        'qos_overrides': {'/image_raw': {'subscription': {'reliability': 'best_effort'}}}})
    with Probe(DOMAIN_ID) as probe:
        probe.publisher('/camera_info', CameraInfo, reliable=True)
        probe.publisher('/image_raw', Image, reliable=True)
        probe.publisher('/odom', Odometry, reliable=False)
        with start_node('labeller', domain_id=DOMAIN_ID, log_dir=tmp_path,
                        params_file=config) as node:

            def reliability(topic: str) -> ReliabilityPolicy | None:
                # All of the labeller's subscriptions of the topic: while it subscribes
                # anew, the graph can still show the old one next to the new one.
                kinds = {i.qos_profile.reliability
                         for i in probe.node.get_subscriptions_info_by_topic(topic)
                         if i.node_name == 'labeller'}
                return kinds.pop() if len(kinds) == 1 else None

            # Bounded waits (the machine may be loaded): at start the graph may not show a
            # publisher yet, so a reliable choice can come one re-check later.
            # Each subscription shows in the probe's graph on its own time: wait for all four.
            topics = ('/camera_info', '/image_raw', '/odom', '/imu')
            assert probe.spin_until(
                lambda: all(reliability(t) is not None for t in topics), 60), node.output()
            assert probe.spin_until(
                lambda: reliability('/camera_info') == ReliabilityPolicy.RELIABLE, 30), \
                node.output()
            assert reliability('/odom') == ReliabilityPolicy.BEST_EFFORT
            # qos_overrides./image_raw.subscription.reliability beats the reliable publisher.
            assert reliability('/image_raw') == ReliabilityPolicy.BEST_EFFORT
            # No publisher yet: best-effort; a reliable one appears: reliable.
            assert reliability('/imu') == ReliabilityPolicy.BEST_EFFORT
            probe.publisher('/imu', Imu, reliable=True)
            assert probe.spin_until(
                lambda: reliability('/imu') == ReliabilityPolicy.RELIABLE, 30), node.output()
            # The log line follows the new subscription; wait for it rather than racing it.
            assert node.wait_for_output('/imu: subscribing reliable (was best_effort)', 30), \
                node.output()
            log = node.output()
    assert '/camera_info: subscribing reliable' in log
    assert 'qos_policy auto: 1 reliable publisher(s)' in log
    assert '/odom: subscribing best_effort, qos_policy auto' in log
    assert '/image_raw: subscribing best_effort, qos_policy best_effort' in log
    assert '/imu: subscribing reliable (was best_effort), qos_policy auto' in log
