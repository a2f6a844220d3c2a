"""The package's bag reader on real bags, broken copies, split recordings and recovery."""
from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

from ssl_robot.bags.reader import BagError, BagReader, kilted_cdr, stamp_to_ns, typestore
from ssl_robot.bags.recovery import needs_recovery, reindex
from ssl_robot.bags.split import SplitBagWriter
from ssl_robot.cli import main as cli_main

from bag_factory import default_msg, header

REAL = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real' / 'bags'
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason='real bags not present')

REAL_COUNTS = {
    'husky_outdoor_imu_odom.bag': {'/imu/data': 11865, '/husky_velocity_controller/odom': 3952,
                                   '/fix': 989},
    'hokuyo_scan_demo.bag': {'/scan': 360},
    'mcap_talker': {'/topic': 10, '/rosout': 10, '/parameter_events': 0},
    'sqlite3_talker': {'/topic': 10, '/rosout': 10, '/parameter_events': 0},
}


@needs_real
@pytest.mark.parametrize('name', sorted(REAL_COUNTS))
def test_real_bags_yield_their_messages(name):
    with BagReader(REAL / name) as bag:
        assert bag.message_counts == REAL_COUNTS[name]
        read: dict[str, int] = {}
        for m in bag.messages():
            read[m.topic] = read.get(m.topic, 0) + 1
    assert read == {t: n for t, n in REAL_COUNTS[name].items() if n}


@needs_real
@pytest.mark.parametrize('name', ['mcap_talker', 'sqlite3_talker'])
def test_talker_bags_decode_strings(name):
    # rosbags 0.11.9 alone yields 0 messages here (QoS metadata mismatch, see bagio).
    with BagReader(REAL / name) as bag:
        texts = [m.msg.data for m in bag.messages(['/topic'])]
        logs = [m.msg.msg for m in bag.messages(['/rosout'])]
    assert texts == [f'Hello, world! {i}' for i in range(10)]
    assert logs == [f"Publishing: 'Hello, world! {i}'" for i in range(10)]


@needs_real
def test_ros1_messages_convert_to_kilted_cdr():
    with BagReader(REAL / 'hokuyo_scan_demo.bag') as bag:
        conn, _, raw = next(bag.raw_messages(['/scan']))
        ros1 = bag.deserialize(raw, conn.msgtype)
        cdr = kilted_cdr(bag, conn, raw)
    scan = typestore().deserialize_cdr(cdr, 'sensor_msgs/msg/LaserScan')
    assert len(scan.ranges) == 681
    assert stamp_to_ns(scan.header.stamp) == stamp_to_ns(ros1.header.stamp)
    assert scan.header.frame_id == ros1.header.frame_id


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def _corrupt(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(range(256)) * 16
    dst.write_bytes(bytes(data))
    return dst


@needs_real
@pytest.mark.parametrize(('make', 'what'), [
    (lambda tmp: _cut(REAL / 'mcap_talker' / 'talker.mcap', tmp / 'talker.mcap', 0.5),
     'talker.mcap'),
    (lambda tmp: _cut(REAL / 'husky_outdoor_imu_odom.bag', tmp / 'husky.bag', 0.4),
     'husky.bag'),
    (lambda tmp: _corrupt(REAL / 'hokuyo_scan_demo.bag', tmp / 'hokuyo.bag'), 'hokuyo.bag'),
    (lambda tmp: _cut(REAL / 'sqlite3_talker' / 'talker.db3', tmp / 'talker.db3', 0.3),
     'talker.db3'),
])
def test_broken_bag_files_raise_bagerror_naming_the_file(tmp_path, make, what):
    path = make(tmp_path)
    with pytest.raises(BagError, match=what):
        with BagReader(path) as bag:
            for _ in bag.messages():
                pass


@needs_real
def test_truncated_file_inside_a_bag_directory_is_named(tmp_path):
    bag = tmp_path / 'talker'
    shutil.copytree(REAL / 'mcap_talker', bag)
    (bag / 'talker.mcap').chmod(0o644)
    _cut(REAL / 'mcap_talker' / 'talker.mcap', bag / 'talker.mcap', 0.6)
    with pytest.raises(BagError, match=r'talker\.mcap'):
        with BagReader(bag):
            pass


@pytest.mark.parametrize(('name', 'content', 'match'), [
    ('empty.mcap', b'', 'empty'),
    ('empty.bag', b'', 'empty'),
    ('notes.mcap', b'this is a text file, not a bag\n' * 10, 'notes.mcap'),
    ('notes.txt', b'hello', 'not a bag'),
])
def test_wrong_files_raise_bagerror(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BagError, match=match):
        with BagReader(path):
            pass


def test_directory_without_metadata_or_storage_is_not_a_bag(tmp_path):
    (tmp_path / 'readme.txt').write_text('nothing here')
    with pytest.raises(BagError, match='no metadata.yaml'):
        BagReader(tmp_path)
    with pytest.raises(BagError, match='no such bag'):
        BagReader(tmp_path / 'missing')


def _odom_cdr(t_ns: int) -> bytes:
    msg = default_msg('nav_msgs/msg/Odometry', header=header(t_ns, 'odom'))
    return bytes(typestore().serialize_cdr(msg, 'nav_msgs/msg/Odometry'))


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_split_writer_counts_what_is_durable(tmp_path, storage):
    with SplitBagWriter(tmp_path / 'bag', storage=storage, max_duration_s=1.0,
                        flush_period_s=0.5) as writer:
        for i in range(4):  # 0.0 .. 0.3 s: no flush period, no split yet
            writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(i * 10**8), i * 10**8)
        assert writer.durable_messages == 0
        writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(5 * 10**8), 5 * 10**8)
        assert writer.durable_messages == 5            # 0.5 s since the split opened: flushed
        writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(6 * 10**8), 6 * 10**8)
        assert writer.durable_messages == 5
        writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(10**9), 10**9)  # split
        assert writer.durable_messages == 6            # the closed split's six
        writer.flush()
        assert writer.durable_messages == 7


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_split_writer_splits_by_duration_and_size(tmp_path, storage):
    by_time = tmp_path / 'by_time'
    with SplitBagWriter(by_time, storage=storage, max_duration_s=1.0) as writer:
        for i in range(35):  # 3.4 s at 10 Hz -> splits at 1, 2, 3 s
            writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(i * 10**8), i * 10**8)
    assert len(writer.files) == 4
    size = len(_odom_cdr(0))
    by_size = tmp_path / 'by_size'
    with SplitBagWriter(by_size, storage=storage, max_size_bytes=10 * size) as writer:
        for i in range(25):
            writer.write_raw('/odom', 'nav_msgs/msg/Odometry', _odom_cdr(i), i)
    assert [f.count for f in writer.files] == [10, 10, 5]
    for bag, n in ((by_time, 35), (by_size, 25)):
        with BagReader(bag) as reader:
            assert reader.message_counts == {'/odom': n}
            assert len(list(reader.messages())) == n


_KILLED_WRITER = """
import os, sys
from ssl_robot.bags.split import SplitBagWriter
cdr = bytes.fromhex(sys.argv[3])
w = SplitBagWriter(sys.argv[1], storage=sys.argv[2], max_duration_s=1.0, flush_period_s=0.3)
w.open()
for i in range(250):  # 2.5 s of bag time at 100 Hz
    w.write_raw('/odom', 'nav_msgs/msg/Odometry', cdr, i * 10**7)
os.kill(os.getpid(), 9)  # no close: the last split is cut
"""


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_killed_writer_leaves_a_recoverable_bag(tmp_path, capsys, storage):
    bag = tmp_path / 'rec'
    proc = subprocess.run([sys.executable, '-c', _KILLED_WRITER, str(bag), storage,
                           _odom_cdr(0).hex()], check=False, timeout=60)
    assert proc.returncode == -9
    assert needs_recovery(bag)
    with BagReader(bag) as reader:  # recovered transparently, bag left as it was
        times = [t for _, t, _ in reader.raw_messages()]
    # Two closed splits (0-2 s) and the flushed part of the third: all but the last 0.3 s.
    assert times == [i * 10**7 for i in range(len(times))]
    assert 220 <= len(times) <= 250
    assert needs_recovery(bag)
    report = reindex(bag)
    assert report.message_count == len(times) and not needs_recovery(bag)
    with BagReader(bag, recover=False) as reader:
        assert reader.message_counts == {'/odom': len(times)}
    assert cli_main(['bag', 'info', str(bag)]) == 0
    assert f'messages:  {len(times)}' in capsys.readouterr().out
