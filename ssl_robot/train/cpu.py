"""The trainer's CPU threads, and whether other processes leave them the cores.

torch runs one intra-op thread per core by default. On a robot computer where other
processes (ROS nodes, the simulator) keep cores busy, those threads wait on each other at
every parallel region, and a training step ran ~8x slower on 2 cores with one of them
taken (`benchmarks/bench_trainer.py --busy`). The trainer measures, at its start, how many
cores other processes keep busy and warns when its threads and theirs do not fit.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
import time

log = logging.getLogger('ssl_robot.train.cpu')


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    values = [int(v) for v in Path('/proc/stat').read_text().split('\n', 1)[0].split()[1:9]]
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait (guest is in user)
    return busy / os.sysconf('SC_CLK_TCK')


def busy_cores_of_others(seconds: float = 0.1) -> float | None:
    """Cores kept busy by other processes over the next `seconds` (None off Linux)."""
    try:
        busy0, own0, start = machine_busy_seconds(), time.process_time(), time.monotonic()
        time.sleep(seconds)
        busy1, own1 = machine_busy_seconds(), time.process_time()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = time.monotonic() - start
    return max(0.0, (busy1 - busy0 - (own1 - own0)) / elapsed)


def warn_if_oversubscribed(threads: int, busy: float | None, cores: int) -> bool:
    """Log a warning when `threads` and the cores others keep `busy` exceed `cores`.

    Returns:
        Whether it warned.
    """
    if busy is None or busy < 0.5 or threads + busy <= cores + 0.25:
        return False
    idle = max(1, round(cores - busy))
    log.warning('other processes keep %.1f of %d cores busy; training on %d CPU threads can '
                'run several times slower (threads waiting on each other). Use the idle '
                'cores: ssl-robot train --threads %d (trainer node: threads)', busy, cores,
                threads, idle)
    return True
