"""Fast extraction of the few fields the labeller needs from CDR bytes of high-rate messages.

At IMU, odometry and proximity rates, generic deserialisation of whole messages costs more
than all the labelling. These readers unpack only the fields used (stamp; Range: range,
min/max; Imu: angular velocity, linear acceleration; Odometry: pose x, y, yaw and forward
speed) straight from the little- or big-endian CDR (XCDR1) bytes of rosbag2 messages,
following the CDR alignment rules (relative to the payload after the 4-byte encapsulation).

They are only a shortcut: `FieldReader` checks its first messages against the full
deserialisation (bagio's), and falls back to it for a topic where they differ, or for any
message it cannot parse.
"""
from __future__ import annotations

import math
import struct
from typing import Any, Callable

from ssl_robot.bags.typestore import cdr_endian, cdr_header_end
from ssl_robot.msgconv import (
    MessageError,
    odometry_to_pose2d,
    range_reading,
    stamp_ns,
    yaw_from_quaternion,
)


def _align(offset: int, size: int) -> int:
    return (offset + size - 1) // size * size


def range_fields(raw: bytes) -> tuple[int, float]:
    """(stamp ns, REP-117 reading) of a sensor_msgs/Range."""
    end = cdr_endian(raw)
    stamp, off = cdr_header_end(raw, end)
    off = _align(off + 1, 4)  # after radiation_type
    _fov, min_range, max_range, value = struct.unpack_from(end + '4f', raw, 4 + off)
    if math.isnan(value) or math.isinf(value):
        return stamp, value
    return stamp, (value if min_range <= value <= max_range else math.nan)


def imu_fields(raw: bytes) -> tuple[int, tuple[float, float, float], tuple[float, float, float]]:
    """(stamp ns, linear acceleration, angular velocity) of a sensor_msgs/Imu."""
    end = cdr_endian(raw)
    stamp, off = cdr_header_end(raw, end)
    off = _align(off, 8)
    gyro = struct.unpack_from(end + '3d', raw, 4 + off + 104)
    accel = struct.unpack_from(end + '3d', raw, 4 + off + 200)
    return stamp, accel, gyro


def odometry_fields(raw: bytes) -> tuple[int, tuple[float, float, float], float]:
    """(stamp ns, (x, y, yaw), forward speed) of a nav_msgs/Odometry."""
    end = cdr_endian(raw)
    stamp, off = cdr_header_end(raw, end)
    off = _align(off, 4)
    (n,) = struct.unpack_from(end + 'I', raw, 4 + off)     # child_frame_id
    off = _align(off + 4 + n, 8)
    x, y, _z, qx, qy, qz, qw = struct.unpack_from(end + '7d', raw, 4 + off)
    (vx,) = struct.unpack_from(end + 'd', raw, 4 + off + 344)
    return stamp, (x, y, yaw_from_quaternion(qx, qy, qz, qw)), vx


def _full_range(msg: Any) -> tuple[int, float]:
    return stamp_ns(msg.header), range_reading(msg)


def _full_imu(msg: Any) -> tuple:
    a, g = msg.linear_acceleration, msg.angular_velocity
    return stamp_ns(msg.header), (a.x, a.y, a.z), (g.x, g.y, g.z)


def _full_odometry(msg: Any) -> tuple:
    return stamp_ns(msg.header), odometry_to_pose2d(msg), float(msg.twist.twist.linear.x)


#: message type -> (fast reader, the same fields from a deserialised message)
READERS: dict[str, tuple[Callable, Callable]] = {
    'sensor_msgs/msg/Range': (range_fields, _full_range),
    'sensor_msgs/msg/Imu': (imu_fields, _full_imu),
    'nav_msgs/msg/Odometry': (odometry_fields, _full_odometry),
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or (isinstance(a, float) and abs(a - b) <= 1e-12 * max(1.0, abs(b)))


class FieldReader:
    """Fields of one topic's messages: fast path, checked against full deserialisation.

    Args:
        msgtype: The topic's message type (a key of READERS).
        deserialize: Full deserialisation (raw, msgtype) -> message.
        cdr: Whether the bag holds CDR (rosbag2); ROS 1 bags always take the full path.
        checks: How many first messages are decoded both ways and compared.
    """

    def __init__(self, msgtype: str, deserialize: Callable[[bytes, str], Any], *, cdr: bool,
                 checks: int = 3) -> None:
        self.msgtype = msgtype
        self.fast, self.full = READERS[msgtype]
        self.deserialize = deserialize
        self.use_fast = cdr
        self.checks = checks

    def __call__(self, raw: bytes) -> Any:
        if self.use_fast:
            try:
                fields = self.fast(raw)
            except (struct.error, IndexError):
                fields = None
            if fields is not None and self.checks <= 0:
                return fields
            full = self._full(raw)
            if fields is None or not _same(fields, full):
                self.use_fast = False   # this topic's bytes are not what we expect
            self.checks -= 1
            return full
        return self._full(raw)

    def _full(self, raw: bytes) -> Any:
        try:
            msg = self.deserialize(raw, self.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for bad bytes
            self.use_fast = False
            raise MessageError(f'cannot decode a {self.msgtype}: {exc}') from exc
        return self.full(msg)
