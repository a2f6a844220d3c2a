"""Fault suite: the recorder node killed mid-recording with SIGINT, SIGTERM or SIGKILL.

The bag must open afterwards; no message may be lost on SIGINT/SIGTERM, and on SIGKILL
only messages of the last second before the kill. Unlike test_recorder_dds.py (one
segment), the recording here is split every second, so the kill lands after several
closed segments and inside an open one. Messages are counted by header stamp
per topic: what the test published vs what the bag holds.
"""
from __future__ import annotations

import signal

import pytest
from test_faults_messages import _instant

from ssl_robot.bags.reader import BagError, BagReader, stamp_to_ns

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 67
RATE_HZ = 10.0
SECONDS = 4.0
S = 1_000_000_000


def _recorded(bag) -> tuple[dict[str, set[int]], list[str]]:
    """Header stamps per topic in the recording (BagReader recovers a killed one)."""
    stamps: dict[str, set[int]] = {}
    try:
        with BagReader(bag) as reader:
            for m in reader.messages():
                header = getattr(m.msg, 'header', None)
                if header is not None:
                    stamps.setdefault(m.topic, set()).add(stamp_to_ns(header.stamp))
    except BagError as exc:
        return stamps, [str(exc)]
    return stamps, []


# SIGTERM on one segment (sqlite3) is in test_recorder_dds.py; SIGINT and SIGKILL here.
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGKILL], ids=['SIGINT', 'SIGKILL'])
def test_recorder_killed_mid_recording_keeps_the_bag(sig, tmp_path, fault_case):
    out = tmp_path / 'rec' / 'recording'
    config = copy_config(tmp_path, recorder={'output': str(out), 'max_bag_duration': 1.0})
    published: dict[str, list[int]] = {}
    with start_node('recorder', domain_id=DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as recorder, Probe(DOMAIN_ID) as probe:
        publishers = {}
        for topic, msg in _instant(0):
            publishers[topic] = probe.publisher(topic, type(msg), reliable=True)
        assert probe.spin_until(lambda: all(probe.node.count_subscribers(t) > 0
                                            for t in publishers), 60), recorder.output()[-2000:]
        probe.spin(1.0)  # discovery settles both ways before the first message
        t0 = 1000 * S
        n = int(SECONDS * RATE_HZ)
        for i in range(n):
            t = t0 + int(i * S / RATE_HZ)
            for topic, msg in _instant(t, x=0.02 * i):
                publishers[topic].publish(msg)
                published.setdefault(topic, []).append(t)
            probe.spin(1.0 / RATE_HZ)
        if sig != signal.SIGKILL:
            probe.spin(1.0)  # SIGINT/SIGTERM: everything sent before must be in the bag
        recorder.signal(sig)
        code = recorder.wait(30)
        assert code is not None, 'recorder did not exit'
        log = recorder.output()
    stamps, unreadable = _recorded(out)
    assert stamps, f'no readable bag under {tmp_path / "rec"}: {unreadable}\n{log[-2000:]}'
    lost = {topic: sorted(set(ts) - stamps.get(topic, set())) for topic, ts in published.items()}
    fault_case.lost = sum(len(v) for v in lost.values())
    if sig == signal.SIGKILL:
        fault_case.notes.append('SIGKILL may lose the last second')
        # The last second of data: stamps within 1 s of the newest one published (the
        # instants went out at RATE_HZ, the kill right after the newest).
        newest = max(max(ts) for ts in published.values())
        too_old = {topic: [t for t in ts if newest - t >= S] for topic, ts in lost.items()}
        assert not any(too_old.values()), f'lost more than the last second: {too_old}'
    else:
        assert code in (0, 130, -sig), log[-2000:]
        assert not unreadable, unreadable
        assert not any(lost.values()), f'lost on {sig.name}: {lost}'
        assert 'Traceback' not in log
