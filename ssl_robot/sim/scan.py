"""A planar laser scanner on the simulated robot: MuJoCo rangefinder rays fanned out.

`LaserScanner` casts `ScanSpec.n_beams` horizontal rays from one point of the robot
(`mujoco.mj_multiRay`, the engine's batched rangefinder ray, restricted to the obstacle
geom group like the proximity sensors) and returns REP-117 ranges: +inf where nothing
lies within range_max, -inf closer than range_min, with a little Gaussian noise.
`laser_scan_msg` fills a `sensor_msgs/LaserScan` of them through a `MessageKit`.
"""
from __future__ import annotations

import array
from dataclasses import dataclass
import math
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.sim.messages import header, MessageKit
from ssl_robot.sim.model import OBSTACLE_GROUP
from ssl_robot.sim.simulator import mujoco

if TYPE_CHECKING:
    from ssl_robot.sim.simulator import Simulator

#: Frame id of the simulated scan.
SCAN_FRAME = 'laser_link'


@dataclass(frozen=True)
class ScanSpec:
    """Geometry of the simulated scanner (a small 240-degree lidar like a Hokuyo URG).

    Attributes:
        n_beams: Beams per scan, from angle_min to angle_max inclusive.
        angle_min_rad: First beam's angle in the scan frame (rad).
        angle_max_rad: Last beam's angle (rad).
        range_min_m: Closer returns read -inf.
        range_max_m: Beyond this a beam reads +inf.
        xyz_m: Scan frame origin in base_link (at the proximity sensors' height, at the
            front of the chassis: low obstacles are seen too).
        yaw_rad: Yaw of the scan frame in base_link.
        noise_m: Std of the range noise.
        rate_hz: Scans per second.
    """

    n_beams: int = 121
    angle_min_rad: float = -2.0944
    angle_max_rad: float = 2.0944
    range_min_m: float = 0.02
    range_max_m: float = 4.0
    xyz_m: tuple[float, float, float] = (0.03, 0.0, 0.035)
    yaw_rad: float = 0.0
    noise_m: float = 0.003
    rate_hz: float = 10.0

    @property
    def angle_increment_rad(self) -> float:
        """Angle between beams."""
        return (self.angle_max_rad - self.angle_min_rad) / max(self.n_beams - 1, 1)

    @property
    def angles_rad(self) -> np.ndarray:
        """Every beam's angle in the scan frame."""
        return self.angle_min_rad + self.angle_increment_rad * np.arange(self.n_beams)


#: The scanner `ssl-robot sim --scan` mounts.
SCAN = ScanSpec()


class LaserScanner:
    """The scanner of one simulator.

    Args:
        sim: The simulator (its model, data and noise seed).
        spec: Scanner geometry.
    """

    def __init__(self, sim: Simulator, spec: ScanSpec = SCAN) -> None:
        self.sim, self.spec = sim, spec
        self._body = sim.model.body('base_link').id
        self._groups = np.zeros(6, np.uint8)
        self._groups[OBSTACLE_GROUP] = 1
        angles = spec.angles_rad + spec.yaw_rad
        self._dirs = np.column_stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)])
        self._geomid = np.zeros(spec.n_beams, np.int32)
        self._dist = np.zeros(spec.n_beams, np.float64)
        self._rng = np.random.default_rng([sim.world.seed, 0x5CA])

    def scan(self) -> np.ndarray:
        """float32 [n_beams] ranges of the current state (REP-117)."""
        d, spec = self.sim.data, self.spec
        rot = d.xmat[self._body].reshape(3, 3)
        origin = d.xpos[self._body] + rot @ np.asarray(spec.xyz_m)
        # Level rays (a planar scan): the chassis rocks on its caster by a few degrees,
        # enough for tilted rays to hit the floor a metre ahead.
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        c, s = math.cos(yaw), math.sin(yaw)
        level = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        vec = (self._dirs @ level.T).ravel()
        mujoco.mj_multiRay(self.sim.model, d, origin, vec, self._groups, 1, self._body,
                           self._geomid, self._dist, None, spec.n_beams, spec.range_max_m)
        dist = self._dist + self._rng.normal(0.0, spec.noise_m, spec.n_beams)
        out = np.where((self._dist < 0.0) | (dist > spec.range_max_m), np.inf, dist)
        out = np.where(out < spec.range_min_m, -np.inf, out)
        return out.astype(np.float32)


def laser_scan_msg(kit: MessageKit, stamp_ns: int, frame_id: str, ranges: np.ndarray,
                   spec: ScanSpec = SCAN) -> Any:
    """sensor_msgs/LaserScan of one simulated scan (all beams at the stamp)."""
    cls = kit.resolve('sensor_msgs/msg/LaserScan')
    # rosbags dataclasses take numpy arrays for float32[]; rclpy messages array('f').
    floats = (lambda a: np.asarray(a, np.float32)) if hasattr(cls, '__msgtype__') else (
        lambda a: array.array('f', np.asarray(a, np.float32).tobytes()))
    return cls(
        header=header(kit, stamp_ns, frame_id), angle_min=float(spec.angle_min_rad),
        angle_max=float(spec.angle_max_rad), angle_increment=float(spec.angle_increment_rad),
        time_increment=0.0, scan_time=float(1.0 / spec.rate_hz),
        range_min=float(spec.range_min_m), range_max=float(spec.range_max_m),
        ranges=floats(ranges), intensities=floats(np.zeros(0)))


def scan_mount_param(spec: ScanSpec = SCAN) -> list[float]:
    """The labeller's `scan_pose` [x, y, yaw] of this scanner."""
    return [float(spec.xyz_m[0]), float(spec.xyz_m[1]), float(math.remainder(spec.yaw_rad,
                                                                               2 * math.pi))]
