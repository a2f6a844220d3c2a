"""Frame-sized buffers reused by the heap once `keep_freed_buffers` ran (no fresh pages)."""
from __future__ import annotations

import subprocess
import sys

# A frame's worth of buffers allocated, filled and freed 100 times; prints the page faults.
LOOP = """
import resource, sys
from ssl_robot.nodes._memory import keep_freed_buffers
if sys.argv[1] == 'keep':
    assert keep_freed_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(100):
    frame = bytearray(640 * 480 * 3 + 4096 * (k % 5))
    copy = bytes(frame)
    del frame, copy
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', LOOP, mode], capture_output=True, text=True,
                         check=True, timeout=60)
    return int(out.stdout.split()[-1])


def test_keep_freed_buffers_stops_page_faults_per_frame() -> None:
    default, kept = _faults('default'), _faults('keep')
    # Default glibc: fresh pages for most frames (225 pages per 0.9 MB buffer).
    assert default > 100 * 225
    assert kept < default / 20
