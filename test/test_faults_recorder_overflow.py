"""Fault suite, recorder overflow: a writer queue that overflows for real counts every drop.

The recorder (real process, domain 118) records images through a one-message writer queue
(`queue_size: 1`) onto a bag that splits after every message (`max_bag_size: 1`: each
write closes a split, scans it and rewrites metadata.yaml, milliseconds of work), while
the test publishes a burst of 40 kB images as fast as DDS takes them. The subscription
is reliable and as deep as the burst, so DDS loses nothing and every loss is the
recorder's own. Its drop count by cause (`queue_full` on recorder/status, in the final
counters it logs and on /diagnostics) must equal the images sent minus those in the bag,
counted independently with rosbags' own reader.
"""
from __future__ import annotations

import json
import signal

from rosbags.rosbag2 import Reader

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 118
BURST = 120
T0_NS = 1_800_000_000_000_000_000


def _image(t_ns: int):
    from sensor_msgs.msg import Image
    msg = Image(height=120, width=112, encoding='rgb8', step=336)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
    msg.header.frame_id = 'camera_optical_frame'
    msg.data = bytes(120 * 336)
    return msg


def _diagnosed_drops(box: list) -> dict[str, int]:
    """'dropped CAUSE' values of the recorder's last 'drops and latency' status."""
    for array in reversed(box):
        for status in array.status:
            if status.name == 'recorder: drops and latency':
                return {v.key[len('dropped '):]: int(v.value) for v in status.values
                        if v.key.startswith('dropped ')}
    return {}


def _bag_counts(path) -> tuple[int, list[int]]:
    """(messages, header stamps) of /image_raw, read with rosbags' Reader, not ours."""
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_KILTED)
    stamps = []
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == '/image_raw']
        for conn, _, raw in reader.messages(connections=conns):
            stamp = store.deserialize_cdr(raw, conn.msgtype).header.stamp
            stamps.append(stamp.sec * 1_000_000_000 + stamp.nanosec)
    return len(stamps), stamps


def test_recorder_queue_overflow_counts_every_drop(tmp_path, fault_case):
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    out = tmp_path / 'rec'
    config = copy_config(tmp_path, recorder={
        'output': str(out), 'topics': ['image_raw=sensor_msgs/msg/Image'], 'queue_size': 1,
        'queue_depth': BURST, 'max_bag_size': 1, 'max_bag_duration': 0.0,
        'status_period': 0.2, 'qos_overrides./image_raw.subscription.reliability': 'reliable'})
    with start_node('recorder', domain_id=DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as recorder, Probe(DOMAIN_ID) as probe:
        status = probe.subscribe('/recorder/status', String, reliable=True)
        diagnostics = probe.subscribe('/diagnostics', DiagnosticArray, reliable=True)
        pub = probe.publisher('/image_raw', type(_image(0)), reliable=True, depth=BURST)
        assert probe.wait_for_subscribers('/image_raw', 60), recorder.output()[-2000:]
        assert probe.spin_until(lambda: bool(status), 30), recorder.output()[-2000:]
        sent = [T0_NS + i * 10**8 for i in range(BURST)]
        for t_ns in sent:  # a burst: no spinning in between
            pub.publish(_image(t_ns))

        def last() -> dict:
            return json.loads(status[-1].data)

        # Bounded waits for conditions that do not depend on the drop count: every image
        # received and the queue empty; then a fresh status and a fresh /diagnostics.
        assert probe.spin_until(lambda: last()['received'] == BURST and last()['backlog'] == 0,
                                60), (last(), recorder.output()[-2000:])
        for box in (status, status, diagnostics):
            seen = len(box)
            assert probe.spin_until(lambda b=box, n=seen: len(b) > n, 20), recorder.output()
        live = last()
        recorder.signal(signal.SIGINT)
        assert recorder.wait(60) == 0, recorder.output()[-2000:]
        log = recorder.log_path.read_text()
    final = json.loads(log.split('bag finalised: ', 1)[1].splitlines()[0])
    in_bag, stamps = _bag_counts(out)
    lost = BURST - in_bag
    assert lost > 0, f'the queue never overflowed: {final}'
    assert set(stamps) <= set(sent) and stamps == sorted(set(stamps))  # no duplicate, in order
    assert final['received'] == BURST and final['lost_in_dds'] == 0, final
    assert final['write_errors'] == 0 and final['written'] == in_bag, final
    assert final['dropped'] == lost and final['topics']['/image_raw']['dropped'] == lost, \
        (final, in_bag)
    assert live['dropped'] == lost, (live, in_bag)
    diag = _diagnosed_drops(diagnostics)
    assert diag['queue_full'] == lost and diag['total'] == lost, diag
    assert 'writer queue full (1): dropped 1 messages so far' in log, log[-2000:]
    fault_case.lost = lost
    fault_case.notes.append(f'{lost}/{BURST} images dropped at a full queue, all counted')
