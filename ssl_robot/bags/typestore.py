"""The leaf of `ssl_robot.bags`: the Kilted typestore, the error class, stamp helpers.

Every other bag module imports from here, and this module imports no other bag module, so
nothing circles; importing `BagError` loads only `rosbags.typesys` (lazily, when a
typestore is first asked for).
"""
from __future__ import annotations

from dataclasses import dataclass
import struct
from typing import TYPE_CHECKING

from ssl_robot.errors import SslRobotError

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

#: The message types of the ROS 2 distro the package targets (Kilted).
_TYPESTORE: Typestore | None = None


def typestore() -> Typestore:
    """Return the shared ROS 2 Kilted typestore (built once, it is slow to build)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import get_typestore, Stores
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def msg_class(msgtype: str) -> type:
    """Return the rosbags dataclass for a ROS message type such as 'sensor_msgs/msg/Image'."""
    return typestore().types[msgtype]


class BagError(SslRobotError):
    """A bag could not be opened, read or written; the message names the file."""


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message of a bag.

    Attributes:
        topic: Topic name.
        msgtype: ROS message type, e.g. 'sensor_msgs/msg/Image'.
        log_time_ns: When the recorder received it (bag time).
        msg: The message (a rosbags dataclass with the ROS field names).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    msg: object


def stamp_to_ns(stamp: object) -> int:
    """Convert a builtin_interfaces/Time (rclpy or rosbags) to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(time_ns: int, stamp_cls: type | None = None) -> object:
    """Build a builtin_interfaces/Time from nanoseconds (rosbags class unless given)."""
    cls = stamp_cls or msg_class('builtin_interfaces/msg/Time')
    return cls(sec=int(time_ns // 1_000_000_000), nanosec=int(time_ns % 1_000_000_000))


def cdr_endian(raw: bytes | memoryview) -> str:
    """The struct byte-order character of a CDR buffer, read from its encapsulation header."""
    return '<' if bytes(raw[1:2]) in (b'\x01', b'\x03') else '>'


def cdr_header_end(raw: bytes | memoryview, end: str | None = None) -> tuple[int, int]:
    """(stamp ns, payload offset after the header) of CDR bytes whose first field is a Header.

    Args:
        raw: The serialised message, encapsulation header included.
        end: Byte order ('<' or '>'); read from `raw` when not given.
    """
    end = end or cdr_endian(raw)
    sec, nsec, n = struct.unpack_from(end + 'iII', raw, 4)
    return sec * 1_000_000_000 + nsec, 12 + n


def cdr_header_stamp_ns(raw: bytes | memoryview) -> int:
    """Header stamp of a CDR-serialised message whose first field is a std_msgs/Header."""
    return cdr_header_end(raw)[0]
