"""`write_sim_bag`: simulate a world straight into a rosbag2 bag, faster than real time.

No DDS: the session's rosbags messages go to the package's `BagWriter`. The bag's log
time of every message is its header stamp (simulated time), and `/sim/world` (the world
as JSON) is its first message, so a bag alone is enough to rebuild and evaluate a run.
"""
from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import time
from typing import Any

from ssl_robot.bags.writer import BagWriter
from ssl_robot.sim.session import SimOptions, SimSession
from ssl_robot.sim.world import generate_world, SimError

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimBagSummary:
    """What `write_sim_bag` wrote.

    Attributes:
        path: The bag.
        message_counts: Messages per topic.
        sim_seconds: Simulated seconds.
        wall_seconds: Wall-clock seconds it took.
    """

    path: Path
    message_counts: dict[str, int]
    sim_seconds: float
    wall_seconds: float

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self.sim_seconds / max(self.wall_seconds, 1e-9)


def write_sim_bag(seed: int, duration_s: float, out: Path | str, *, width: int = 128,
                  height: int = 96, camera_rate_hz: float = 30.0,
                  range_rate_hz: float = 30.0, odom_rate_hz: float = 50.0,
                  imu_rate_hz: float = 100.0, clock_rate_hz: float = 100.0,
                  storage: str = 'mcap', world_params: dict[str, Any] | None = None,
                  progress_every_s: float = 10.0, extra_cameras: int = 0, scan: bool = False,
                  contacts: bool = False, crash_rate: float = 0.0) -> SimBagSummary:
    """Simulate world `seed` for `duration_s` and write every stream to the bag `out`.

    Topics are the generic names with a leading '/' (/image_raw, /odom, ...; see
    `ssl_robot.sim.session.STREAMS`); each extra camera adds /<name>/image_raw and
    /<name>/camera_info (rgb8, stamped like the main camera; see
    `ssl_robot.sim.session.sim_streams`).

    Args:
        seed: World (and noise, and driver) seed.
        duration_s: Simulated seconds.
        out: Output bag directory (must not exist).
        width: Camera width (px).
        height: Camera height (px).
        camera_rate_hz: Camera rate (rgb, camera_info, depth).
        range_rate_hz: Proximity rate.
        odom_rate_hz: Odometry and ground-truth rate.
        imu_rate_hz: IMU rate.
        clock_rate_hz: /clock rate.
        storage: 'mcap' or 'sqlite3'.
        world_params: Extra keyword arguments of `generate_world`.
        progress_every_s: Wall seconds between progress log lines.
        extra_cameras: Extra cameras (0 to the robot's mounts; 1 adds camera2).
        scan: Also write /scan, a planar sensor_msgs/LaserScan (`ssl_robot.sim.scan`).
        contacts: Also write /bumper, the obstacle contact force on the robot
            (geometry_msgs/WrenchStamped; `ssl_robot.sim.contact`).
        crash_rate: Chance that the driver does not stop for an obstacle (0 never).

    Returns:
        A summary (counts, speed).

    Raises:
        SimError: For a bad duration, size, rate or extra camera count.
        BagError: When the bag cannot be written.
    """
    if not 0.0 < duration_s <= 24 * 3600:
        raise SimError(f'duration {duration_s} s out of range (0, 86400]')
    options = SimOptions(width=width, height=height, camera_rate_hz=camera_rate_hz,
                         range_rate_hz=range_rate_hz, odom_rate_hz=odom_rate_hz,
                         imu_rate_hz=imu_rate_hz, clock_rate_hz=clock_rate_hz,
                         extra_cameras=extra_cameras, scan=scan, contacts=contacts,
                         crash_rate=crash_rate)
    world = generate_world(seed, **(world_params or {}))
    session = SimSession(world, options)
    out = Path(out)
    end_ns = int(round(duration_s * 1e9))
    chunk_ns = 1_000_000_000  # advance one simulated second at a time
    wall0 = last_log = time.monotonic()
    try:
        with BagWriter(out, storage=storage) as writer:
            streams = session.streams
            for topic, msgtype in streams.items():
                writer.add_topic('/' + topic, msgtype)
            topic, msg, stamp = session.world_message()
            writer.write('/' + topic, streams[topic], msg, stamp)
            while session.time_ns < end_ns:
                for topic, msg, stamp in session.advance(min(end_ns,
                                                             session.time_ns + chunk_ns)):
                    writer.write('/' + topic, streams[topic], msg, stamp)
                now = time.monotonic()
                if now - last_log >= progress_every_s:
                    last_log = now
                    done = session.time_ns / 1e9
                    rate = done / (now - wall0)
                    _LOG.info('sim seed %d: %.0f/%.0f s simulated, %.1fx real time, ETA %.0f s',
                              seed, done, duration_s, rate, (duration_s - done) / rate)
            counts = dict(writer.message_counts)
    finally:
        session.close()
    wall = time.monotonic() - wall0
    summary = SimBagSummary(out, counts, session.time_ns / 1e9, wall)
    _LOG.info('sim seed %d: wrote %s (%d messages, %.0f s simulated in %.1f s, %.1fx real '
              'time)', seed, out, sum(counts.values()), summary.sim_seconds, wall,
              summary.speed)
    return summary
