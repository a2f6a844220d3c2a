"""Build messages and small bags for tests, from the Kilted typestore's definitions.

`default_msg('sensor_msgs/msg/Range', range=0.2)` gives a rosbags message with every
field at its zero value except the ones given; `write_sensor_bag` writes a few seconds
of the package's sensor topics (camera, ranges, odometry, IMU) at a fixed rate.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype

from ssl_robot.bags.typestore import msg_class, ns_to_stamp, typestore
from ssl_robot.bags.writer import BagWriter

_ZERO = {'bool': False, 'string': '', 'float32': 0.0, 'float64': 0.0}


def _default(node: tuple) -> Any:
    kind, detail = node
    if kind == Nodetype.BASE:
        return _ZERO.get(detail[0], 0)
    if kind == Nodetype.NAME:
        return default_msg(detail)
    if kind == Nodetype.ARRAY:
        sub, length = detail
        if sub[0] == Nodetype.BASE and sub[1][0] not in ('string',):
            dtype = {'float32': np.float32, 'float64': np.float64, 'bool': np.bool_}.get(
                sub[1][0], np.dtype(sub[1][0]) if sub[1][0] != 'char' else np.uint8)
            return np.zeros(length, dtype=dtype)
        return [_default(sub) for _ in range(length)]
    sub, _ = detail  # SEQUENCE
    if sub[0] == Nodetype.BASE and sub[1][0] not in ('string',):
        dtype = {'float32': np.float32, 'float64': np.float64, 'bool': np.bool_}.get(
            sub[1][0], np.dtype(sub[1][0]) if sub[1][0] != 'char' else np.uint8)
        return np.zeros(0, dtype=dtype)
    return []


def default_msg(msgtype: str, **fields: Any) -> Any:
    """A rosbags message of `msgtype` with zero values except `fields`."""
    _, defs = typestore().fielddefs[msgtype]
    values = {name: _default(node) for name, node in defs}
    values.update(fields)
    return msg_class(msgtype)(**values)


def header(time_ns: int, frame_id: str) -> Any:
    return default_msg('std_msgs/msg/Header', stamp=ns_to_stamp(time_ns), frame_id=frame_id)


def sensor_messages(t_ns: int, *, x: float = 0.0, h: int = 24, w: int = 32,
                    range_m: float = math.inf) -> list[tuple[str, str, Any]]:
    """One instant of every sensor topic: (topic, msgtype, message)."""
    image = default_msg('sensor_msgs/msg/Image', header=header(t_ns, 'camera_optical_frame'),
                        height=h, width=w, encoding='rgb8', step=w * 3,
                        data=np.full(h * w * 3, 100, np.uint8))
    info = default_msg('sensor_msgs/msg/CameraInfo', header=header(t_ns, 'camera_optical_frame'),
                       height=h, width=w)
    odom = default_msg('nav_msgs/msg/Odometry', header=header(t_ns, 'odom'),
                       child_frame_id='base_link')
    odom.pose.pose.position.x = x
    odom.pose.pose.orientation.w = 1.0
    imu = default_msg('sensor_msgs/msg/Imu', header=header(t_ns, 'imu_link'))
    imu.orientation.w = 1.0
    imu.linear_acceleration.z = 9.81
    out = [('/image_raw', 'sensor_msgs/msg/Image', image),
           ('/camera_info', 'sensor_msgs/msg/CameraInfo', info),
           ('/odom', 'nav_msgs/msg/Odometry', odom),
           ('/imu', 'sensor_msgs/msg/Imu', imu)]
    for side in ('left', 'center', 'right'):
        out.append((f'/range/{side}', 'sensor_msgs/msg/Range', default_msg(
            'sensor_msgs/msg/Range', header=header(t_ns, f'range_{side}_link'),
            radiation_type=1, field_of_view=0.5, min_range=0.01, max_range=0.30,
            range=range_m)))
    return out


def write_sensor_bag(path: Path, *, seconds: float = 2.0, rate_hz: float = 10.0,
                     storage: str = 'mcap', topics: set[str] | None = None,
                     t0_ns: int = 1_000_000_000) -> dict[str, int]:
    """Write `seconds` of sensor topics (the robot drives forward at 0.2 m/s).

    Returns:
        Message count per topic.
    """
    with BagWriter(path, storage=storage) as writer:
        for i in range(int(seconds * rate_hz)):
            t = t0_ns + int(i * 1e9 / rate_hz)
            for topic, msgtype, msg in sensor_messages(t, x=0.2 * i / rate_hz):
                if topics is None or topic in topics:
                    writer.write(topic, msgtype, msg, t)
        return dict(writer.message_counts)
