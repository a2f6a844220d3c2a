"""Fault suite: bad bags give one clear error naming the file.

Fault suite: bad bags give one clear error naming the file (and the topic where one is
at fault), through the bag reader and through `ssl-robot label`; nothing crashes.
"""
from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from ssl_robot.bags.reader import BagError, BagReader, typestore

from bag_factory import sensor_messages, write_sensor_bag

WEIRD_DEF = 'int32 a\nstring b\n'
SENSOR_TOPICS = ['/image_raw', '/camera_info', '/odom', '/imu', '/range/left',
                 '/range/center', '/range/right']


def _rihs01(msgdef: str, msgtype: str = 'my_pkg/msg/Weird') -> str:
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(msgdef, msgtype))
    return store.hash_rihs01(msgtype)


def _write_custom(path: Path, msgdef: str, payload: bytes, *, with_sensors: bool = False,
                  rihs01: str | None = None) -> None:
    """A bag with a custom message type on /weird (and a second of sensor topics)."""
    writer = Writer(path, version=9)
    writer.open()
    conn = writer.add_connection('/weird', 'my_pkg/msg/Weird', msgdef=msgdef,
                                 rihs01=rihs01 or _rihs01(msgdef))
    writer.write(conn, 1_000_000_000, payload)
    if with_sensors:
        store, sensor_conns = typestore(), {}
        for i in range(10):
            t = 1_000_000_000 + i * 100_000_000
            for topic, msgtype, msg in sensor_messages(t, x=0.02 * i):
                if topic not in sensor_conns:
                    sensor_conns[topic] = writer.add_connection(topic, msgtype,
                                                                typestore=store)
                writer.write(sensor_conns[topic], t, store.serialize_cdr(msg, msgtype))
    writer.close()


def _bag_file(bag: Path) -> Path:
    return next(bag.glob('*.mcap'))


def _damage(bag: Path, offset: int | None = None, *, truncate: float | None = None) -> None:
    f = _bag_file(bag)
    data = bytearray(f.read_bytes())
    if truncate is not None:
        del data[int(len(data) * truncate):]
    else:
        start = offset if offset >= 0 else len(data) + offset
        data[start:start + 48] = b'\xff' * 48
    f.write_bytes(bytes(data))


def _make(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """Build a bad bag; returns (path to open, text the error must contain)."""
    bag = tmp_path / 'bag'
    if kind.startswith(('corrupt', 'truncated')):
        write_sensor_bag(bag, seconds=2.0)
        {'corrupt-header': lambda: _damage(bag, 8),
         'corrupt-first-chunk': lambda: _damage(bag, 40),
         'corrupt-summary': lambda: _damage(bag, -1500),
         'truncated-half': lambda: _damage(bag, truncate=0.5),
         'truncated-end': lambda: _damage(bag, truncate=0.999)}[kind]()
        return bag, str(bag)
    if kind == 'empty-dir':
        bag.mkdir()
        return bag, str(bag)
    if kind == 'empty-file':
        path = tmp_path / 'empty.mcap'
        path.write_bytes(b'')
        return path, str(path)
    if kind == 'wrong-format-metadata':  # before the other wrong formats: its own case
        bag.mkdir()
        (bag / 'metadata.yaml').write_text('title: my holiday photos\n')
        return bag, str(bag)
    if kind.startswith('wrong-format'):
        suffix = kind.rsplit('-', 1)[1]
        path = tmp_path / f'notes.{suffix}'
        path.write_text('this is a text file, not a bag\n')
        assert path.suffix == f'.{suffix}'
        return path, str(path)
    if kind == 'missing-dir':
        return tmp_path / 'no_such_bag', str(tmp_path / 'no_such_bag')
    raise AssertionError(kind)


BAD_BAGS = ['corrupt-header', 'corrupt-first-chunk', 'corrupt-summary', 'truncated-half',
            'truncated-end', 'empty-dir', 'empty-file', 'wrong-format-mcap', 'wrong-format-db3',
            'wrong-format-bag', 'wrong-format-txt', 'wrong-format-metadata', 'missing-dir']


def _read_all(path: Path, topics: list[str] | None = None) -> int:
    with BagReader(path) as bag:
        if topics:
            bag.require_topics(topics)
        return sum(1 for _ in bag.messages(topics))


@pytest.mark.parametrize('kind', BAD_BAGS)
def test_bad_bag_gives_a_bag_error_naming_the_file(kind, tmp_path, fault_case):
    path, name = _make(kind, tmp_path)
    with pytest.raises(BagError) as info:
        _read_all(path)
    assert name in str(info.value)


def test_bag_without_a_needed_topic_names_file_and_topic(tmp_path, fault_case):
    bag = tmp_path / 'no_odom'
    write_sensor_bag(bag, seconds=1.0, topics=set(SENSOR_TOPICS) - {'/odom'})
    with pytest.raises(BagError, match=r'no topic /odom \(the bag has /camera_info') as info:
        _read_all(bag, SENSOR_TOPICS)
    assert str(bag) in str(info.value)


def test_bag_with_no_messages_names_every_missing_topic(tmp_path, fault_case):
    bag = tmp_path / 'nothing'
    write_sensor_bag(bag, seconds=0.0)
    with pytest.raises(BagError, match='no topic /image_raw, /camera_info, /odom') as info:
        _read_all(bag, SENSOR_TOPICS)
    assert 'no topics' in str(info.value) and str(bag) in str(info.value)


def test_custom_type_with_its_definition_is_read(tmp_path, fault_case):
    bag = tmp_path / 'custom'
    payload = b'\x00\x01\x00\x00' + (7).to_bytes(4, 'little') + (3).to_bytes(4, 'little') \
        + b'hi\x00'
    _write_custom(bag, WEIRD_DEF, payload)
    with BagReader(bag) as reader:
        (message,) = list(reader.messages(['/weird']))
    assert (message.msgtype, message.msg.a, message.msg.b) == ('my_pkg/msg/Weird', 7, 'hi')


def test_custom_type_with_a_bad_payload_names_file_topic_and_type(tmp_path, fault_case):
    bag = tmp_path / 'custom'
    _write_custom(bag, WEIRD_DEF, b'\x00\x01')
    with pytest.raises(BagError, match='cannot decode a my_pkg/msg/Weird message on /weird') \
            as info:
        _read_all(bag)
    assert str(bag) in str(info.value)


def test_custom_type_whose_hash_does_not_match_names_the_type(tmp_path, fault_case):
    bag = tmp_path / 'custom'
    _write_custom(bag, WEIRD_DEF, b'\x00\x01\x00\x00', rihs01='RIHS01_' + '0' * 64)
    with pytest.raises(BagError, match='my_pkg/msg/Weird') as info:
        _read_all(bag)
    assert str(bag) in str(info.value)


def test_custom_type_beside_sensor_topics_does_not_stop_reading_them(tmp_path, fault_case):
    """A robot's bag often holds its own message types next to the sensors we need."""
    bag = tmp_path / 'robot_bag'
    _write_custom(bag, WEIRD_DEF, b'\x00\x01', with_sensors=True)
    assert _read_all(bag, SENSOR_TOPICS) == 10 * len(SENSOR_TOPICS)


# ---------------------------------------------------------------- `ssl-robot label`
@pytest.mark.parametrize('kind', ['corrupt-header', 'truncated-half', 'empty-dir',
                                  'wrong-format-txt', 'missing-topic', 'custom-bad-payload'])
def test_label_reports_a_bad_bag_in_one_line(kind, tmp_path, fault_case):
    if kind == 'missing-topic':
        path = tmp_path / 'no_odom'
        write_sensor_bag(path, seconds=1.0, topics=set(SENSOR_TOPICS) - {'/odom'})
        must = [str(path), '/odom']
    elif kind == 'custom-bad-payload':
        path = tmp_path / 'custom'
        _write_custom(path, WEIRD_DEF, b'\x00\x01')
        must = [str(path)]
    else:
        path, name = _make(kind, tmp_path)
        must = [name]
    out = tmp_path / 'dataset'
    proc = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'label', str(path), '--out',
                           str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(error) == 1, proc.stderr
    for text in must:
        assert text in error[0]
    assert not out.exists(), 'a failed label run left a dataset behind'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.dataset')]
