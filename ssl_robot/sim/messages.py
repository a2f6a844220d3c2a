"""ROS messages of the simulated robot's readings: one builder per message kind.

Builders take a `MessageKit`, which says which message classes to fill: rosbags
dataclasses (`ROSBAGS_KIT`, for writing bags without DDS) or rclpy messages (the
`sim_robot` node builds a kit from the rclpy message modules). Both have the ROS field
names, so each message is filled in exactly one place. Builders pass every field, since
rosbags dataclasses have no defaults.

Conventions: REP-103 (SI units, x forward), REP-105 (odom -> base_link), REP-117 (Range
+inf when nothing is in range), REP-118 (depth 32FC1 in metres along the optical axis),
camera images in the optical frame (z forward, x right, y down).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Callable

import numpy as np

from ssl_robot.bags.typestore import msg_class
from ssl_robot.sim.simulator import GroundTruth, Odometry2D, RANGE_NOISE_M, Simulator
from ssl_robot.sim.world import RobotGeometry


@dataclass(frozen=True)
class MessageKit:
    """Which message classes the builders fill.

    Attributes:
        resolve: Message type name ('sensor_msgs/msg/Image') -> message class.
        pack_bytes: uint8 numpy array -> what the class's uint8[] fields take.
    """

    resolve: Callable[[str], type]
    pack_bytes: Callable[[np.ndarray], Any]


#: Kit for rosbags dataclasses (bags written without DDS).
ROSBAGS_KIT = MessageKit(resolve=msg_class,
                         pack_bytes=lambda a: np.frombuffer(a.tobytes(), np.uint8))


@dataclass(frozen=True)
class Frames:
    """Frame ids of the simulated robot's messages.

    Attributes:
        odom: Odometry frame (REP-105).
        base: Robot body frame.
        camera: Camera optical frame.
        imu: IMU frame.
        world: Frame of the ground truth and of the world description.
    """

    odom: str = 'odom'
    base: str = 'base_link'
    camera: str = 'camera_optical_frame'
    imu: str = 'imu_link'
    world: str = 'world'

    @staticmethod
    def range(name: str) -> str:
        """Frame of the proximity sensor `name` (left/center/right)."""
        return f'range_{name}_link'


def _time(kit: MessageKit, stamp_ns: int) -> Any:
    return kit.resolve('builtin_interfaces/msg/Time')(
        sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def header(kit: MessageKit, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header."""
    return kit.resolve('std_msgs/msg/Header')(stamp=_time(kit, stamp_ns), frame_id=frame_id)


def _vector3(kit: MessageKit, v: Any) -> Any:
    return kit.resolve('geometry_msgs/msg/Vector3')(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _quaternion(kit: MessageKit, q: Any) -> Any:
    return kit.resolve('geometry_msgs/msg/Quaternion')(
        x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _diag(values: list[float]) -> np.ndarray:
    return np.diag(np.asarray(values, dtype=np.float64)).ravel()


def image_msg(kit: MessageKit, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> Any:
    """sensor_msgs/Image, rgb8, from an HxWx3 uint8 array."""
    h, w = rgb.shape[:2]
    return kit.resolve('sensor_msgs/msg/Image')(
        header=header(kit, stamp_ns, frame_id), height=h, width=w, encoding='rgb8',
        is_bigendian=0, step=3 * w, data=kit.pack_bytes(np.ascontiguousarray(rgb)))


def depth_msg(kit: MessageKit, stamp_ns: int, frame_id: str, depth_m: np.ndarray) -> Any:
    """sensor_msgs/Image, 32FC1 metres (little-endian), from an HxW float array."""
    h, w = depth_m.shape
    data = np.ascontiguousarray(depth_m, dtype='<f4').view(np.uint8).ravel()
    return kit.resolve('sensor_msgs/msg/Image')(
        header=header(kit, stamp_ns, frame_id), height=h, width=w, encoding='32FC1',
        is_bigendian=0, step=4 * w, data=kit.pack_bytes(data))


def camera_info_msg(kit: MessageKit, stamp_ns: int, frame_id: str, width: int, height: int,
                    robot: RobotGeometry) -> Any:
    """sensor_msgs/CameraInfo of the ideal pinhole camera (no distortion)."""
    fx, fy, cx, cy = robot.camera_intrinsics(width, height)
    roi = kit.resolve('sensor_msgs/msg/RegionOfInterest')(
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return kit.resolve('sensor_msgs/msg/CameraInfo')(
        header=header(kit, stamp_ns, frame_id), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).ravel(),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0, binning_y=0, roi=roi)


def range_msg(kit: MessageKit, stamp_ns: int, frame_id: str, value: float,
              robot: RobotGeometry) -> Any:
    """sensor_msgs/Range of an infrared proximity sensor (REP-117 values)."""
    cls = kit.resolve('sensor_msgs/msg/Range')
    return cls(header=header(kit, stamp_ns, frame_id), radiation_type=cls.INFRARED,
               field_of_view=0.05, min_range=robot.range_min_m, max_range=robot.range_max_m,
               range=float(value), variance=RANGE_NOISE_M ** 2)


def odometry_msg(kit: MessageKit, stamp_ns: int, frame_id: str, child_frame_id: str, *,
                 position: Any, quaternion: Any, linear: Any, angular: Any,
                 pose_variance: list[float], twist_variance: list[float]) -> Any:
    """nav_msgs/Odometry (twist in the child frame)."""
    pose = kit.resolve('geometry_msgs/msg/Pose')(
        position=kit.resolve('geometry_msgs/msg/Point')(
            x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=_quaternion(kit, quaternion))
    twist = kit.resolve('geometry_msgs/msg/Twist')(
        linear=_vector3(kit, linear), angular=_vector3(kit, angular))
    return kit.resolve('nav_msgs/msg/Odometry')(
        header=header(kit, stamp_ns, frame_id), child_frame_id=child_frame_id,
        pose=kit.resolve('geometry_msgs/msg/PoseWithCovariance')(
            pose=pose, covariance=_diag(pose_variance)),
        twist=kit.resolve('geometry_msgs/msg/TwistWithCovariance')(
            twist=twist, covariance=_diag(twist_variance)))


def wheel_odometry_msg(kit: MessageKit, stamp_ns: int, frames: Frames,
                       odom: Odometry2D) -> Any:
    """nav_msgs/Odometry odom -> base_link of the planar wheel odometry."""
    # Planar odometry knows nothing of z, roll, pitch: huge variances say so.
    return odometry_msg(
        kit, stamp_ns, frames.odom, frames.base, position=(odom.x, odom.y, 0.0),
        quaternion=(0.0, 0.0, math.sin(odom.yaw / 2), math.cos(odom.yaw / 2)),
        linear=(odom.v, 0.0, 0.0), angular=(0.0, 0.0, odom.w),
        pose_variance=[0.01, 0.01, 1e6, 1e6, 1e6, 0.03],
        twist_variance=[1e-4, 1e-4, 1e6, 1e6, 1e6, 1e-3])


def ground_truth_msg(kit: MessageKit, stamp_ns: int, frames: Frames,
                     truth: GroundTruth) -> Any:
    """nav_msgs/Odometry world -> base_link of the true pose (evaluation only)."""
    return odometry_msg(
        kit, stamp_ns, frames.world, frames.base, position=truth.position,
        quaternion=truth.quaternion, linear=truth.linear_velocity,
        angular=truth.angular_velocity, pose_variance=[0.0] * 6, twist_variance=[0.0] * 6)


def imu_msg(kit: MessageKit, stamp_ns: int, frame_id: str, accel: Any, gyro: Any,
            accel_variance: float, gyro_variance: float) -> Any:
    """sensor_msgs/Imu without orientation (covariance[0] = -1, as REP-145 says)."""
    orientation_cov = np.zeros(9)
    orientation_cov[0] = -1.0
    return kit.resolve('sensor_msgs/msg/Imu')(
        header=header(kit, stamp_ns, frame_id),
        orientation=_quaternion(kit, (0.0, 0.0, 0.0, 1.0)),
        orientation_covariance=orientation_cov,
        angular_velocity=_vector3(kit, gyro),
        angular_velocity_covariance=_diag([gyro_variance] * 3),
        linear_acceleration=_vector3(kit, accel),
        linear_acceleration_covariance=_diag([accel_variance] * 3))


def clock_msg(kit: MessageKit, stamp_ns: int) -> Any:
    """rosgraph_msgs/Clock."""
    return kit.resolve('rosgraph_msgs/msg/Clock')(clock=_time(kit, stamp_ns))


def string_msg(kit: MessageKit, text: str) -> Any:
    """std_msgs/String."""
    return kit.resolve('std_msgs/msg/String')(data=text)


def twist_msg(kit: MessageKit, v: float, w: float) -> Any:
    """geometry_msgs/Twist of a planar velocity command."""
    return kit.resolve('geometry_msgs/msg/Twist')(
        linear=_vector3(kit, (v, 0.0, 0.0)), angular=_vector3(kit, (0.0, 0.0, w)))


def imu_variances(sim: Simulator) -> tuple[float, float]:
    """(accelerometer, gyro) white-noise variances of a simulator's IMU."""
    noise = sim.imu_noise
    return noise.accel_sigma ** 2, noise.gyro_sigma ** 2
