"""`write_sim_bag` and `ssl-robot sim`: topics, counts, stamps, frames, determinism."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.bags.reader import BagReader
from ssl_robot.cli import main as cli_main
from ssl_robot.msgconv import depth_to_metres, image_to_rgb, range_reading, stamp_ns
from ssl_robot.sim import generate_world, SIM_EPOCH_NS, STREAMS, World, write_sim_bag

DURATION_S = 4.0
RATES = {'/image_raw': 10, '/camera_info': 10, '/depth/image': 10, '/range/left': 30,
         '/range/center': 30, '/range/right': 30, '/odom': 50, '/ground_truth/odom': 50,
         '/imu': 100, '/clock': 100, '/cmd_vel': 20}
FRAMES = {'/image_raw': 'camera_optical_frame', '/depth/image': 'camera_optical_frame',
          '/camera_info': 'camera_optical_frame', '/range/left': 'range_left_link',
          '/range/center': 'range_center_link', '/range/right': 'range_right_link',
          '/odom': 'odom', '/ground_truth/odom': 'world', '/imu': 'imu_link'}


@pytest.fixture(scope='module')
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two bags of seed 5 and one of seed 6, 4 s each, camera at 10 Hz."""
    root = tmp_path_factory.mktemp('simbags')
    out = {}
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        out[name] = root / name
        write_sim_bag(seed, DURATION_S, out[name], camera_rate_hz=10.0)
    return out


def test_bag_has_every_topic_at_its_rate(bags: dict[str, Path]) -> None:
    with BagReader(bags['a']) as bag:
        assert bag.topics == {'/' + t: mt for t, mt in STREAMS.items()}
        counts = bag.message_counts
    assert counts['/sim/world'] == 1
    for topic, rate in RATES.items():
        assert abs(counts[topic] - rate * DURATION_S) <= 1, topic


def test_world_first_then_monotonic_stamps_equal_to_log_time(bags: dict[str, Path]) -> None:
    last: dict[str, int] = {}
    with BagReader(bags['a']) as bag:
        messages = list(bag.messages())
    assert messages[0].topic == '/sim/world'
    assert messages[0].log_time_ns == SIM_EPOCH_NS < messages[1].log_time_ns
    assert World.from_json(messages[0].msg.data) == generate_world(5)
    for m in messages[1:]:
        stamp = (stamp_ns(m.msg.header) if hasattr(m.msg, 'header')
                 else m.msg.clock.sec * 10**9 + m.msg.clock.nanosec if m.topic == '/clock'
                 else m.log_time_ns)
        assert stamp == m.log_time_ns, m.topic
        assert stamp > last.get(m.topic, SIM_EPOCH_NS - 1), m.topic
        last[m.topic] = stamp
        if m.topic in FRAMES:
            assert m.msg.header.frame_id == FRAMES[m.topic], m.topic
    assert max(last.values()) - SIM_EPOCH_NS <= DURATION_S * 1e9


def test_sensor_messages_decode(bags: dict[str, Path]) -> None:
    with BagReader(bags['a']) as bag:
        image = next(bag.messages(['/image_raw'])).msg
        depth = next(bag.messages(['/depth/image'])).msg
        info = next(bag.messages(['/camera_info'])).msg
        ranges = [range_reading(m.msg) for m in bag.messages(['/range/center'])]
        odom = next(bag.messages(['/odom'])).msg
    rgb = image_to_rgb(image)
    assert rgb.shape == (96, 128, 3) and image.encoding == 'rgb8'
    metres = depth_to_metres(depth)
    assert depth.encoding == '32FC1' and metres.shape == (96, 128)
    assert 0.1 < np.nanmin(metres) < 1.0
    assert (info.width, info.height) == (128, 96)
    assert info.k[0] == pytest.approx(48 / math.tan(math.radians(30)))
    assert all(r == math.inf or 0.01 <= r <= 0.30 or r == -math.inf for r in ranges)
    assert odom.child_frame_id == 'base_link'


def test_same_seed_same_bag_different_seed_different(bags: dict[str, Path]) -> None:
    def raw(path: Path) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        with BagReader(path) as bag:
            for conn, _, data in bag.raw_messages():
                out.setdefault(conn.topic, []).append(bytes(data))
        return out

    a, b, c = raw(bags['a']), raw(bags['b']), raw(bags['c'])
    assert a == b
    assert a['/sim/world'] != c['/sim/world']
    assert a['/odom'] != c['/odom']
    assert a['/image_raw'] != c['/image_raw']


def test_extra_camera_topics_share_the_main_camera_stamps(tmp_path: Path) -> None:
    out = tmp_path / 'two_cameras'
    summary = write_sim_bag(5, 1.0, out, camera_rate_hz=10.0, width=64, height=48,
                            extra_cameras=1)
    assert summary.message_counts['/camera2/image_raw'] == 10
    assert summary.message_counts['/camera2/camera_info'] == 10
    assert '/camera3/image_raw' not in summary.message_counts
    with BagReader(out) as bag:
        assert bag.topics['/camera2/image_raw'] == 'sensor_msgs/msg/Image'
        main = [m.msg for m in bag.messages(['/image_raw'])]
        extra = [m.msg for m in bag.messages(['/camera2/image_raw'])]
        info = next(bag.messages(['/camera2/camera_info'])).msg
    assert [stamp_ns(m.header) for m in extra] == [stamp_ns(m.header) for m in main]
    assert {m.header.frame_id for m in extra} == {'camera2_optical_frame'}
    assert info.header.frame_id == 'camera2_optical_frame' and info.width == 64
    assert extra[0].encoding == 'rgb8'
    assert image_to_rgb(extra[0]).shape == (48, 64, 3)
    assert not np.array_equal(image_to_rgb(extra[0]), image_to_rgb(main[0]))


def test_cli_writes_a_bag_and_reports_bad_input(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'cli_bag'
    assert cli_main(['sim', '--seed', '2', '--duration', '1', '--out', str(out),
                     '--camera-rate', '5', '--width', '64', '--height', '48']) == 0
    with BagReader(out) as bag:
        assert bag.message_counts['/image_raw'] == 5
        assert next(bag.messages(['/image_raw'])).msg.width == 64
    assert cli_main(['sim', '--duration', '1', '--out', str(out)]) == 2  # exists
    assert 'already exists' in capsys.readouterr().err
    assert cli_main(['sim', '--duration', '1', '--out', str(tmp_path / 'x'),
                     '--width', '2000']) == 2
    assert 'camera size' in capsys.readouterr().err
