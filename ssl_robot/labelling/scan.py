"""Laser-scan sectors as virtual proximity sensors.

Most ROS 2 mobile robots carry a planar lidar (`sensor_msgs/LaserScan`) rather than
infrared range sensors. A `ScanSector` maps an angular interval of the scan, in the
frame of the scan (REP-103: angles counter-clockwise from x forward), to one virtual
proximity sensor whose reading is the nearest valid beam of the interval. The readings
then go through the same proximity labelling as `sensor_msgs/Range` readings: the same
distances, tolerances, masks and provenance.

REP-117 semantics, beam by beam and then per sector:

* a beam of -inf (an object closer than the scanner can measure) makes the sector -inf:
  it is nearer than any finite beam;
* otherwise the sector reads its smallest valid finite beam, valid meaning within
  [range_min, range_max] of the scan;
* otherwise (no finite valid beam) +inf when some beam reads +inf (nothing in range);
* otherwise NaN: every beam is NaN or a finite value outside [range_min, range_max]
  (REP-117: such values are to be discarded, never read as "free"), or no beam of the
  scan falls inside the sector.

The virtual sensor sits where the scanner sits (`ScanMount`, the pose of the scan frame
in base_link, a labeller parameter) and looks along the middle of its sector: that pose
(`sensor_poses`) is what the simulator's truth and an occupancy grid of predictions use.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np

from ssl_robot.labelling.errors import LabelError

if TYPE_CHECKING:
    from collections.abc import Sequence

_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class ScanSector:
    """An angular interval of a scan read as one proximity sensor.

    Attributes:
        name: The virtual sensor's name (a dataset sensor, like 'left' of 'range/left').
        angle_min_rad: Start of the interval in the scan frame (rad).
        angle_max_rad: End of the interval (rad, > angle_min_rad, at most 2 pi wider).
    """

    name: str
    angle_min_rad: float
    angle_max_rad: float

    @property
    def centre_rad(self) -> float:
        """Direction of the middle of the sector in the scan frame (rad)."""
        return 0.5 * (self.angle_min_rad + self.angle_max_rad)

    def contains(self, angles_rad: np.ndarray) -> np.ndarray:
        """Which of the angles (any turn: wrapped) lie in [angle_min, angle_max]."""
        width = self.angle_max_rad - self.angle_min_rad
        offset = np.mod(np.asarray(angles_rad, np.float64) - self.angle_min_rad, _TWO_PI)
        # A beam exactly at angle_max (offset == width up to rounding) belongs to the sector.
        return (offset <= width + 1e-9) | (offset >= _TWO_PI - 1e-9)


@dataclass(frozen=True)
class ScanMount:
    """Pose of the scan frame in base_link (planar: x, y forward/left in m, yaw in rad)."""

    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0


def parse_sectors(specs: Sequence[str]) -> tuple[ScanSector, ...]:
    """Sectors from parameter strings 'name:angle_min:angle_max' (radians, scan frame).

    Raises:
        LabelError: For a malformed entry, an empty or reversed interval, one wider than
            a full turn, or a repeated name.
    """
    sectors = []
    for spec in specs:
        parts = str(spec).split(':')
        if len(parts) != 3 or not parts[0]:
            raise LabelError(f'scan sector {spec!r}: expected name:angle_min:angle_max '
                             f'(radians in the scan frame, e.g. center:-0.2:0.2)')
        try:
            lo, hi = float(parts[1]), float(parts[2])
        except ValueError:
            raise LabelError(f'scan sector {spec!r}: angles must be numbers (radians)') \
                from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi <= lo + _TWO_PI):
            raise LabelError(f'scan sector {spec!r}: needs angle_min < angle_max <= '
                             f'angle_min + 2 pi')
        sectors.append(ScanSector(parts[0], lo, hi))
    names = [s.name for s in sectors]
    if len(set(names)) != len(names):
        raise LabelError(f'scan sectors: repeated name in {names}')
    return tuple(sectors)


def beam_angles(n_beams: int, angle_min_rad: float, angle_increment_rad: float) -> np.ndarray:
    """Angle of every beam in the scan frame: angle_min + i * angle_increment."""
    return angle_min_rad + angle_increment_rad * np.arange(int(n_beams), dtype=np.float64)


def sector_masks(sectors: Sequence[ScanSector], n_beams: int, angle_min_rad: float,
                 angle_increment_rad: float) -> np.ndarray:
    """Bool [S, B]: which beams of a scan of this geometry fall in each sector."""
    angles = beam_angles(n_beams, angle_min_rad, angle_increment_rad)
    if not len(sectors):
        return np.zeros((0, len(angles)), bool)
    return np.stack([s.contains(angles) for s in sectors])


def sector_readings(ranges: np.ndarray, masks: np.ndarray, range_min_m: float,
                    range_max_m: float) -> np.ndarray:
    """REP-117 reading of each sector for one or more scans of one geometry.

    Args:
        ranges: [B] or [T, B] beam ranges (m; +inf, -inf, NaN as REP-117 says).
        masks: bool [S, B] from `sector_masks`.
        range_min_m: The scans' range_min.
        range_max_m: The scans' range_max.

    Returns:
        float64 [S] or [T, S] (see the module docstring for the rules).
    """
    r = np.asarray(ranges, np.float64)
    single = r.ndim == 1
    r = r.reshape(1, -1) if single else r
    masks = np.asarray(masks, bool)
    if masks.shape[1:] != r.shape[1:]:
        raise LabelError(f'scan of {r.shape[1]} beams, sector masks of {masks.shape[1]}')
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(r) & (r >= range_min_m) & (r <= range_max_m)
    near = np.where(valid, r, np.inf)
    out = np.full((len(r), len(masks)), np.nan)
    for k, mask in enumerate(masks):
        if not mask.any():
            continue
        sector = r[:, mask]
        nearest = near[:, mask].min(axis=1)
        has_valid = valid[:, mask].any(axis=1)
        too_close = np.isneginf(sector).any(axis=1)
        nothing = np.isposinf(sector).any(axis=1)
        value = np.where(has_valid, nearest, np.where(nothing, np.inf, np.nan))
        out[:, k] = np.where(too_close, -np.inf, value)
    return out[0] if single else out


def sensor_poses(sectors: Sequence[ScanSector], mount: ScanMount
                 ) -> list[tuple[float, float, float]]:
    """(x, y, yaw) in base_link of each virtual sensor: at the scanner, along its sector."""
    return [(mount.x_m, mount.y_m, math.remainder(mount.yaw_rad + s.centre_rad, _TWO_PI))
            for s in sectors]


class ScanSectorReader:
    """Sector readings of a stream of scans whose geometry may change (masks cached).

    Args:
        sectors: The virtual sensors.
    """

    def __init__(self, sectors: Sequence[ScanSector]) -> None:
        self.sectors = tuple(sectors)
        self._masks: dict[tuple[int, float, float], np.ndarray] = {}
        self.counts = {'scans': 0, 'scan_beams_invalid': 0, 'scan_sector_empty': 0}

    def __call__(self, ranges: np.ndarray, *, angle_min_rad: float,
                 angle_increment_rad: float, range_min_m: float, range_max_m: float
                 ) -> np.ndarray:
        """float64 [S] readings of one scan (see `sector_readings`)."""
        r = np.asarray(ranges, np.float64).reshape(-1)
        key = (len(r), float(angle_min_rad), float(angle_increment_rad))
        masks = self._masks.get(key)
        if masks is None:
            masks = sector_masks(self.sectors, *key)
            self._masks[key] = masks
        self.counts['scans'] += 1
        with np.errstate(invalid='ignore'):
            self.counts['scan_beams_invalid'] += int(
                (np.isnan(r) | (np.isfinite(r) & ((r < range_min_m) | (r > range_max_m))))
                .sum())
        self.counts['scan_sector_empty'] += int((~masks.any(axis=1)).sum())
        return sector_readings(r, masks, range_min_m, range_max_m)


def scan_fields(msg: object) -> tuple[np.ndarray, dict[str, float]]:
    """Ranges and geometry of a sensor_msgs/LaserScan (rclpy message or rosbags dataclass).

    Returns:
        (ranges float64 [B], the geometry keyword arguments of `ScanSectorReader`).
    """
    return np.asarray(msg.ranges, np.float64), {
        'angle_min_rad': float(msg.angle_min), 'angle_increment_rad': float(msg.angle_increment),
        'range_min_m': float(msg.range_min), 'range_max_m': float(msg.range_max)}
