"""A real process SIGKILLed at each point of a dataset append or swap loses no committed row.

The child process writes a dataset, then appends to it (or replaces it) with a hook that
stops at one named point inside `DatasetWriter` and tells the parent, which SIGKILLs it
there. The dataset must then open with exactly the rows committed before the kill (or,
past the commit point, after it), and a later append must still work.
"""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ssl_robot.dataset import DatasetWriter, LabelledDataset

HERE = Path(__file__).resolve().parent

CHILD = r"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import ssl_robot.dataset as dataset
from ssl_robot.dataset import DatasetWriter
from test_dataset_format import make_rows, SHAPE

path, point, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
marker = Path(sys.argv[4])


def stop_here():
    marker.write_text(point)
    while True:
        time.sleep(1)


real_replace = os.replace


def replace(src, dst):
    src, dst = Path(src), Path(dst)
    if point == 'before-meta-replace' and dst.name == 'meta.json':
        stop_here()
    if point == 'between-swap-renames' and dst.name.endswith('.replaced'):
        real_replace(src, dst)
        stop_here()
    return real_replace(src, dst)


dataset.os.replace = replace


def hook(name):
    real = getattr(DatasetWriter, name)

    def wrapped(self, *args, **kwargs):
        if point == name:
            stop_here()
        return real(self, *args, **kwargs)
    setattr(DatasetWriter, name, wrapped)


for name in ('add_rows', '_finish_array', '_update_headers'):
    hook(name)
if mode == 'append':
    with DatasetWriter(path, append=True) as writer:
        writer.add_bag('second.mcap', make_rows(7, t0_ns=10**12, seed=1))
else:
    with DatasetWriter(path, overwrite=True, **SHAPE) as writer:
        writer.add_bag('replacement.mcap', make_rows(3, seed=2))
print('finished without being stopped', point)
"""

#: (point, mode, rows expected after the kill): before the commit point the dataset is as it
#: was (20 rows), past it (headers update) the append is in (27); a swap cut between its two
#: renames is undone (the old 20 rows).
POINTS = [('add_rows', 'append', 20), ('_finish_array', 'append', 20),
          ('before-meta-replace', 'append', 20), ('_update_headers', 'append', 27),
          ('between-swap-renames', 'overwrite', 20)]


@pytest.mark.parametrize('point,mode,expected', POINTS, ids=[p[0] for p in POINTS])
def test_sigkill_at_each_point_keeps_exactly_the_committed_rows(point, mode, expected,
                                                                tmp_path):
    sys.path.insert(0, str(HERE))
    from test_dataset_format import make_rows, SHAPE
    path = tmp_path / 'ds'
    first = make_rows(20)
    with DatasetWriter(path, **SHAPE) as writer:
        writer.add_bag('first.mcap', first)
    marker = tmp_path / 'stopped'
    script = tmp_path / 'child.py'
    script.write_text(CHILD.format(here=str(HERE)))
    child = subprocess.Popen([sys.executable, str(script), str(path), point, mode, str(marker)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.stdout.read()
            assert time.monotonic() < deadline, 'the child never reached the kill point'
            time.sleep(0.02)
        assert marker.read_text() == point
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    ds = LabelledDataset.open(path)
    assert len(ds) == expected
    np.testing.assert_array_equal(ds.frames[:20], first['frames'])
    np.testing.assert_array_equal(ds.stamps_ns[:20], first['stamps_ns'])
    if expected > 20:
        assert ds.stamps_ns[20] == 10**12
    # The dataset stays usable: a later append sees exactly those rows and adds its own.
    with DatasetWriter(path, append=True) as writer:
        writer.add_bag('third.mcap', make_rows(2, t0_ns=2 * 10**12, seed=3))
    again = LabelledDataset.open(path)
    assert len(again) == expected + 2
    np.testing.assert_array_equal(again.frames[:20], first['frames'])
