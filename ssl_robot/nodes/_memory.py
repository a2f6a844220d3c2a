"""Keep freed message buffers in the process instead of handing them back to the kernel.

glibc's malloc serves every buffer above its mmap threshold (128 KiB at start) with fresh
pages from the kernel and unmaps them when freed, so a node taking 640x480 frames at
30 Hz faults in and zeroes every page of every ~1 MB buffer that DDS, rclpy and numpy
allocate per frame: in `perf` that was half of a do-nothing subscriber's CPU (page
faults, clear_page). Raising the mmap and trim thresholds lets the heap keep and reuse
those buffers (`benchmarks/bench_inference.py`, transport floor, measured both ways).
"""
from __future__ import annotations

import ctypes
import ctypes.util

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Buffers up to this size come from the heap (glibc's upper limit on 64-bit: 32 MiB).
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory the heap keeps at its top before returning it to the kernel.
TRIM_THRESHOLD_BYTES = 64 * 2**20


def keep_freed_buffers(*, mmap_threshold_bytes: int = MMAP_THRESHOLD_BYTES,
                       trim_threshold_bytes: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (before rclpy starts).

    Returns:
        Whether both were set (False where the C library is not glibc: nothing changes).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes)))
