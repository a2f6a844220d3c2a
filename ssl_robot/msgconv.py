"""The package's one conversion between ROS messages and numpy.

Every function takes either an rclpy message or a rosbags dataclass: both carry the ROS
field names. No rclpy import here.
"""
from __future__ import annotations

import math

import numpy as np

from ssl_robot.errors import SslRobotError

#: Encodings the camera path accepts, and how many 8-bit channels each has.
COLOR_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class MessageError(SslRobotError, ValueError):
    """A message cannot be converted (unknown encoding, wrong size); the text says why."""


def stamp_ns(header: object) -> int:
    """Return the header's stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _pixel_buffer(msg: object, bytes_per_pixel: int) -> np.ndarray:
    # rclpy: a view of the message's own array.array (no copy). rosbags: a copy, since its
    # numpy field may view a larger buffer (a chunk) that a kept frame would pin.
    data = np.frombuffer(msg.data.tobytes() if isinstance(msg.data, np.ndarray) else msg.data,
                         dtype=np.uint8)
    data.flags.writeable = False  # frames are read, never written through to the message
    if int(msg.width) <= 0 or int(msg.height) <= 0:  # nothing a model or label can use
        raise MessageError(f'empty image ({msg.width}x{msg.height} {msg.encoding})')
    row = int(msg.width) * bytes_per_pixel
    step = int(msg.step) or row
    # sensor_msgs/Image holds exactly height x step bytes; more is as malformed as less.
    if step < row or data.size != step * int(msg.height):
        raise MessageError(
            f'image of {msg.width}x{msg.height} {msg.encoding} needs {step * msg.height} bytes '
            f'(step {step}), got {data.size}')
    return data[:step * int(msg.height)].reshape(int(msg.height), step)[:, :row]


def image_to_rgb(msg: object) -> np.ndarray:
    """Convert a sensor_msgs/Image to an HxWx3 uint8 RGB array.

    Raises:
        MessageError: For an encoding other than rgb8/bgr8/rgba8/bgra8/mono8, or a
            buffer that does not hold exactly height x step bytes.
    """
    channels = COLOR_ENCODINGS.get(msg.encoding)
    if channels is None:
        raise MessageError(
            f'unknown image encoding {msg.encoding!r} (accepted: {", ".join(COLOR_ENCODINGS)})')
    pixels = _pixel_buffer(msg, channels).reshape(int(msg.height), int(msg.width), channels)
    if msg.encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        import cv2  # a channel swap in one pass (numpy's reversed-stride copy is ~20x slower)
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(pixels[:, :, :3])


def depth_to_metres(msg: object) -> np.ndarray:
    """Convert a depth sensor_msgs/Image (32FC1 metres or 16UC1 millimetres) to float32 m.

    Invalid pixels (16UC1 zero, non-finite 32FC1) become NaN.

    Raises:
        MessageError: For any other encoding or a wrong buffer size.
    """
    if msg.encoding == '32FC1':
        raw = _pixel_buffer(msg, 4).copy().view('>f4' if msg.is_bigendian else '<f4')
        depth = raw.reshape(int(msg.height), int(msg.width)).astype(np.float32)
        depth[~np.isfinite(depth)] = np.nan
        return depth
    if msg.encoding == '16UC1':
        raw = _pixel_buffer(msg, 2).copy().view('>u2' if msg.is_bigendian else '<u2')
        depth_mm = raw.reshape(int(msg.height), int(msg.width))
        depth = depth_mm.astype(np.float32) / 1000.0
        depth[depth_mm == 0] = np.nan
        return depth
    raise MessageError(f'unknown depth encoding {msg.encoding!r} (accepted: 32FC1, 16UC1)')


def range_reading(msg: object) -> float:
    """Return a sensor_msgs/Range reading with REP-117 semantics, as a float in metres.

    +inf means nothing in range, -inf an object closer than min_range, NaN an invalid
    reading; finite values outside [min_range, max_range] are invalid too (NaN).
    """
    value = float(msg.range)
    if math.isnan(value) or math.isinf(value):
        return value
    if value < float(msg.min_range) or value > float(msg.max_range):
        return math.nan
    return value


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a quaternion, in (-pi, pi]."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a rotation by `yaw` about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def odometry_to_pose2d(msg: object) -> tuple[float, float, float]:
    """Return (x, y, yaw) of a nav_msgs/Odometry pose."""
    p = msg.pose.pose.position
    q = msg.pose.pose.orientation
    return float(p.x), float(p.y), yaw_from_quaternion(q.x, q.y, q.z, q.w)


def imu_to_arrays(msg: object) -> tuple[np.ndarray, np.ndarray]:
    """Return (linear acceleration m/s^2, angular velocity rad/s) of a sensor_msgs/Imu."""
    a = msg.linear_acceleration
    w = msg.angular_velocity
    return (np.array([a.x, a.y, a.z], dtype=np.float64),
            np.array([w.x, w.y, w.z], dtype=np.float64))
