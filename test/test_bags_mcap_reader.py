"""The bags we write, read by a reader that is not ours: `mcap` + `mcap-ros2-support`.

The simulator's bags and the recorder's (stopped cleanly, or SIGKILLed and then
`ssl-robot bag reindex`ed) must be plain rosbag2 mcap files for any tool: every message
decodes with mcap_ros2's own decoder from the message definition in the file, every
channel has a ros2msg schema named after its type, and the messages per topic equal
metadata.yaml's counts. Header stamps decoded there equal the ones rosbags reads.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
import signal

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import pytest
from test_recorder_dds import _params, _publish, _received, _start, _status_box, _wait_ready
import yaml

from ssl_robot.bags.reader import BagReader, stamp_to_ns
from ssl_robot.bags.recovery import needs_recovery, unfinished_splits
from ssl_robot.cli import main as cli_main
from ssl_robot.sim.bag import write_sim_bag

from ros_procs import Probe


def read_with_mcap(bag: Path) -> dict[str, list[int | None]]:
    """Check `bag` with the mcap library alone; header stamps (None: no header) per topic.

    Raises AssertionError where the bag is not what any mcap/rosbag2 reader expects.
    """
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap'
    expected = {t['topic_metadata']['name']: (t['topic_metadata']['type'], t['message_count'])
                for t in info['topics_with_message_count']}
    files = [bag / p for p in info['relative_file_paths']]
    assert files and all(f.is_file() for f in files), files
    stamps: dict[str, list[int | None]] = {}
    counts: Counter[str] = Counter()
    for path in files:
        with open(path, 'rb') as f:
            reader = make_reader(f, validate_crcs=True, decoder_factories=[DecoderFactory()])
            summary = reader.get_summary()
            assert summary is not None, f'{path}: no summary section (unfinished file)'
            for channel in summary.channels.values():
                schema = summary.schemas[channel.schema_id]
                assert channel.message_encoding == 'cdr', channel
                assert schema.encoding == 'ros2msg' and schema.data, (path, channel.topic)
                assert schema.name == expected[channel.topic][0], (schema.name, channel.topic)
            for _, channel, message, decoded in reader.iter_decoded_messages():
                counts[channel.topic] += 1
                header = getattr(decoded, 'header', None)
                stamps.setdefault(channel.topic, []).append(
                    None if header is None
                    else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec)
                assert message.log_time > 0
    assert dict(counts) == {t: n for t, (_, n) in expected.items() if n}, (counts, expected)
    assert sum(counts.values()) == info['message_count']
    return stamps


def read_with_rosbags(bag: Path) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    with BagReader(bag) as reader:
        for m in reader.messages():
            header = getattr(m.msg, 'header', None)
            out.setdefault(m.topic, []).append(
                None if header is None else stamp_to_ns(header.stamp))
    return out


def same_stamps(a: dict[str, list[int | None]], b: dict[str, list[int | None]]) -> bool:
    """Equal per topic as multisets (files are read in their own order by each reader)."""
    key = lambda v: -1 if v is None else v  # noqa: E731
    return a.keys() == b.keys() and all(sorted(a[t], key=key) == sorted(b[t], key=key)
                                        for t in a)


def test_simulator_bag_reads_with_mcap(tmp_path: Path) -> None:
    bag = tmp_path / 'sim'
    summary = write_sim_bag(3, 1.5, bag, width=32, height=24, camera_rate_hz=10.0,
                            extra_cameras=1)
    stamps = read_with_mcap(bag)
    assert {t: len(v) for t, v in stamps.items()} == {
        t: n for t, n in summary.message_counts.items() if n}
    assert {'/image_raw', '/camera_info', '/odom', '/imu', '/camera2/image_raw'} <= set(stamps)
    assert same_stamps(stamps, read_with_rosbags(bag))


@pytest.mark.parametrize(('kill', 'domain'), [(False, 57), (True, 58)],
                         ids=['stopped', 'sigkill+reindex'])
def test_recorder_bag_reads_with_mcap(tmp_path: Path, kill: bool, domain: int) -> None:
    node = _start(tmp_path, domain, _params(tmp_path, 'mcap', max_bag_duration=0.4,
                                            flush_period=0.2))
    try:
        with Probe(domain) as probe:
            box = _status_box(probe)
            _wait_ready(probe, node)
            stamps = _publish(probe, 80)
            total = sum(len(v) for v in stamps.values())
            assert probe.spin_until(lambda: _received(box) == total, 20), node.output()
            probe.spin(0.6)
            _publish(probe, 20, start=80)  # the last moment: a kill cuts the open split
            node.signal(signal.SIGKILL if kill else signal.SIGINT)
            code = node.wait(30)
    finally:
        node.stop()
    bag = tmp_path / 'rec'
    before = None
    if kill:
        assert needs_recovery(bag)
        cut = [f for d in unfinished_splits(bag) for f in d.glob('*.mcap')]
        assert cut and not any(complete_mcap(f) for f in cut)  # no summary: cut short
        before = read_with_mcap(bag)  # the closed splits metadata.yaml lists are whole
        assert cli_main(['bag', 'reindex', str(bag)]) == 0
    else:
        assert code == 0, node.output()
    assert not needs_recovery(bag)
    assert len(list(bag.glob('*.mcap'))) >= 2  # split: closed splits and the last one
    got = read_with_mcap(bag)
    assert same_stamps(got, read_with_rosbags(bag))
    for topic, published in stamps.items():
        assert sorted(got[topic])[:len(published)] == published
    if before is not None:  # reindex kept the closed splits and salvaged the cut one
        assert sum(map(len, got.values())) >= sum(map(len, before.values()))


def complete_mcap(path: Path) -> bool:
    """Whether the mcap library finds the file finished (a summary section)."""
    try:
        with open(path, 'rb') as f:
            return make_reader(f).get_summary() is not None
    except Exception:  # noqa: BLE001 - the library's own errors for a cut file
        return False
