"""The `sim_robot` node with `scan` and `contacts`: LaserScan and contact wrench over DDS."""
from __future__ import annotations

import math
from pathlib import Path
import signal

import numpy as np
import pytest

from ssl_robot.sim.scan import SCAN

from ros_procs import copy_config, Probe, start_node


def test_sim_robot_publishes_scan_and_contacts(tmp_path: Path) -> None:
    from geometry_msgs.msg import WrenchStamped
    from sensor_msgs.msg import LaserScan
    config = copy_config(tmp_path, sim_robot={'seed': 3, 'rate_hz': 5.0, 'scan': True,
                                              'contacts': True, 'crash_rate': 0.5})
    with start_node('sim_robot', domain_id=15, log_dir=tmp_path,
                    params_file=config) as node, Probe(15) as probe:
        scans = probe.subscribe('/scan', LaserScan)
        contacts = probe.subscribe('/bumper', WrenchStamped)
        assert probe.spin_until(lambda: len(scans) >= 3 and contacts, 60), \
            node.output()[-2000:]
        node.signal(signal.SIGINT)
        assert node.wait(20) == 0, node.output()[-2000:]
    scan = scans[-1]
    assert scan.header.frame_id == 'laser_link'
    assert len(scan.ranges) == SCAN.n_beams
    assert scan.angle_min == pytest.approx(SCAN.angle_min_rad, abs=1e-6)
    assert scan.range_max == pytest.approx(SCAN.range_max_m)
    ranges = np.asarray(scan.ranges)
    finite = np.isfinite(ranges)
    assert finite.any()  # the arena's walls are within 4 m
    assert ((ranges[finite] >= SCAN.range_min_m) & (ranges[finite] <= SCAN.range_max_m)).all()
    assert contacts[-1].header.frame_id == 'base_link'
    assert math.isfinite(contacts[-1].wrench.force.x)
    assert 'Traceback' not in node.log_path.read_text()
