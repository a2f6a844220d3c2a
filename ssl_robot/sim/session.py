"""One simulation run: physics, driver and sensor rates, as a stream of timed readings.

`SimSession` is the one loop shared by `write_sim_bag` (straight to a bag, as fast as
the CPU goes) and the `sim_robot` node (paced by a wall timer): each asks it to advance
to a time and gets the readings that came due, already as ROS messages of its kit
(rosbags dataclasses or rclpy messages), keyed by their generic topic names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any

from ssl_robot.sim import messages as m
from ssl_robot.sim.contact import contact_msg, ContactSensor
from ssl_robot.sim.policy import DrivingPolicy, PolicyParams
from ssl_robot.sim.scan import laser_scan_msg, LaserScanner, SCAN, SCAN_FRAME
from ssl_robot.sim.simulator import Simulator
from ssl_robot.sim.world import ROBOT, SimError, World

#: Header stamp of simulated time zero (2001-09-09): a fixed epoch, so runs are repeatable.
SIM_EPOCH_NS = 1_000_000_000 * 1_000_000_000

#: Generic topic name -> message type of every stream the simulated robot produces.
STREAMS: dict[str, str] = {
    'sim/world': 'std_msgs/msg/String',
    'clock': 'rosgraph_msgs/msg/Clock',
    'image_raw': 'sensor_msgs/msg/Image',
    'camera_info': 'sensor_msgs/msg/CameraInfo',
    'depth/image': 'sensor_msgs/msg/Image',
    **{f'range/{name}': 'sensor_msgs/msg/Range' for name in ROBOT.proximity_poses},
    'odom': 'nav_msgs/msg/Odometry',
    'ground_truth/odom': 'nav_msgs/msg/Odometry',
    'imu': 'sensor_msgs/msg/Imu',
    'cmd_vel': 'geometry_msgs/msg/Twist',
}


def sim_streams(extra_cameras: int = 0, *, scan: bool = False,
                contacts: bool = False) -> dict[str, str]:
    """STREAMS plus the optional streams of a run.

    Those are `<name>/image_raw` and `<name>/camera_info` of each extra camera, `scan`
    (sensor_msgs/LaserScan) with the scanner and `bumper` (the obstacle contact force,
    geometry_msgs/WrenchStamped) with contacts.

    Raises:
        SimError: For more extra cameras than the robot has mounts.
    """
    streams = dict(STREAMS)
    for mount in ROBOT.extra_camera_mounts(extra_cameras):
        streams[f'{mount.name}/image_raw'] = 'sensor_msgs/msg/Image'
        streams[f'{mount.name}/camera_info'] = 'sensor_msgs/msg/CameraInfo'
    if scan:
        streams['scan'] = 'sensor_msgs/msg/LaserScan'
    if contacts:
        streams['bumper'] = 'geometry_msgs/msg/WrenchStamped'
    return streams


@dataclass(frozen=True)
class SimOptions:
    """Image size and sensor rates of a run.

    Attributes:
        width: Camera image width (px).
        height: Camera image height (px).
        camera_rate_hz: Camera (rgb, camera_info, depth) rate.
        range_rate_hz: Proximity sensors' rate.
        odom_rate_hz: Odometry and ground-truth rate.
        imu_rate_hz: IMU rate.
        clock_rate_hz: /clock rate.
        policy_rate_hz: Driver (and /cmd_vel) rate.
        render: Render the camera (False: no image topics, physics only).
        extra_cameras: Extra cameras (the first k of `ROBOT.extra_cameras`), each
            publishing rgb8 images and camera info with the main camera's stamps.
        scan: Publish a planar laser scan (`ssl_robot.sim.scan.SCAN`, at its rate).
        contacts: Publish the obstacle contact force on the robot (`bumper`, at the
            odometry rate; see `ssl_robot.sim.contact`).
        crash_rate: Chance that the driver does not stop for an obstacle (see
            `PolicyParams.crash_rate`); 0 never.
        antialias: Render the cameras with 4x multisampling (MSAA; off renders about
            twice as fast on software GL, with aliased edges).
    """

    width: int = 128
    height: int = 96
    camera_rate_hz: float = 30.0
    range_rate_hz: float = 30.0
    odom_rate_hz: float = 50.0
    imu_rate_hz: float = 100.0
    clock_rate_hz: float = 100.0
    policy_rate_hz: float = 20.0
    render: bool = True
    extra_cameras: int = 0
    scan: bool = False
    contacts: bool = False
    crash_rate: float = 0.0
    antialias: bool = True

    def periods_ns(self) -> dict[str, int]:
        """Sampling period (ns) of every periodic reading.

        Raises:
            SimError: For a rate that is not positive or above the physics rate.
        """
        rates = {'clock': self.clock_rate_hz, 'policy': self.policy_rate_hz,
                 'imu': self.imu_rate_hz, 'odom': self.odom_rate_hz,
                 'range': self.range_rate_hz}
        if self.render:
            rates['camera'] = self.camera_rate_hz
        if self.scan:
            rates['scan'] = SCAN.rate_hz
        if not 0.0 <= self.crash_rate <= 1.0:
            raise SimError(f'crash rate {self.crash_rate} out of range [0, 1]')
        for name, rate in rates.items():
            if not 0.0 < rate <= 500.0:
                raise SimError(f'{name} rate {rate} Hz out of range (0, 500]')
        return {name: int(round(1e9 / rate)) for name, rate in rates.items()}


@dataclass
class SimSession:
    """A world, its simulator and driver, and the sensor schedule.

    `streams` holds the generic topic -> message type of everything the session
    produces (STREAMS, plus the extra cameras' topics when enabled).

    Args:
        world: The world.
        options: Image size and rates.
        autopilot: Drive with the built-in policy (else follow `set_cmd_vel`).
        epoch_ns: Header stamp of simulated time zero.
        kit: Message classes to produce.
        frames: Frame ids of the messages.
    """

    world: World
    options: SimOptions = field(default_factory=SimOptions)
    autopilot: bool = True
    epoch_ns: int = SIM_EPOCH_NS
    kit: m.MessageKit = m.ROSBAGS_KIT
    frames: m.Frames = field(default_factory=m.Frames)

    def __post_init__(self) -> None:
        opts = self.options
        self.sim = Simulator(self.world, width=opts.width, height=opts.height,
                             render=opts.render, antialias=opts.antialias,
                             extra_cameras=opts.extra_cameras if opts.render else 0)
        self.streams = sim_streams(len(self.sim.extra_cameras), scan=opts.scan,
                                   contacts=opts.contacts)
        self.policy = DrivingPolicy(self.world, seed=self.world.seed,
                                    params=PolicyParams(crash_rate=opts.crash_rate))
        self._scanner = self._contact = None
        if opts.scan:
            self._scanner = LaserScanner(self.sim)
        if opts.contacts:
            self._contact = ContactSensor(self.sim)
        self._periods = self.options.periods_ns()
        self._due = dict(self._periods)  # samples at k * period, k = 1, 2, ...
        self._cmd = (0.0, 0.0)
        self._ranges = {name: float('inf') for name in ROBOT.proximity_poses}
        self._imu_var = m.imu_variances(self.sim)

    @property
    def time_ns(self) -> int:
        """Simulated time since the start (ns)."""
        return self.sim.time_ns

    def world_message(self) -> tuple[str, Any, int]:
        """('sim/world', std_msgs/String JSON, stamp) — the first message of a run."""
        return 'sim/world', m.string_msg(self.kit, self.world.to_json()), self.epoch_ns

    def set_cmd_vel(self, v: float, w: float) -> None:
        """Velocity command from outside (used when autopilot is off).

        Raises:
            SimError: For a non-finite command (the robot keeps its previous one).
        """
        if not (math.isfinite(v) and math.isfinite(w)):
            raise SimError(f'non-finite velocity command v={v} w={w}')
        self._cmd = (float(v), float(w))
        if not self.autopilot:
            self.sim.set_cmd_vel(v, w)

    def advance(self, until_ns: int) -> list[tuple[str, Any, int]]:
        """Step the physics to simulated time `until_ns` (since start).

        Returns:
            (generic topic, message, stamp ns) of every reading that came due, in time order.
        """
        out: list[tuple[str, Any, int]] = []
        step_ns = int(round(self.sim.timestep_s * 1e9))
        # Bounded: exactly the steps needed to reach until_ns. Readings follow a step, so
        # none shares time zero with the world message.
        for _ in range(max(0, -(-(int(until_ns) - self.sim.time_ns) // step_ns))):
            self.sim.step()
            self._emit_due(out)
        return out

    def _emit_due(self, out: list[tuple[str, Any, int]]) -> None:
        t = self.sim.time_ns
        stamp = self.epoch_ns + t
        kit, frames, sim = self.kit, self.frames, self.sim
        due = [k for k, when in self._due.items() if t >= when]
        if not due:
            return
        for kind in due:
            # Next sample on the fixed grid; skip samples missed (never happens stepwise).
            period = self._periods[kind]
            self._due[kind] += period * max(1, (t - self._due[kind]) // period + 1)
        if 'clock' in due:
            out.append(('clock', m.clock_msg(kit, stamp), stamp))
        if 'range' in due or 'policy' in due:
            self._ranges = sim.ranges()
        if 'policy' in due and self.autopilot:
            truth = sim.ground_truth()
            pose = (float(truth.position[0]), float(truth.position[1]), truth.yaw)
            self._cmd = self.policy.command(t / 1e9, pose, self._ranges)
            sim.set_cmd_vel(*self._cmd)
        if 'policy' in due:
            out.append(('cmd_vel', m.twist_msg(kit, *self._cmd), stamp))
        if 'imu' in due:
            acc, gyro = sim.imu()
            out.append(('imu', m.imu_msg(kit, stamp, frames.imu, acc, gyro, *self._imu_var),
                        stamp))
        if 'odom' in due:
            out.append(('odom', m.wheel_odometry_msg(kit, stamp, frames, sim.odometry()),
                        stamp))
            out.append(('ground_truth/odom',
                        m.ground_truth_msg(kit, stamp, frames, sim.ground_truth()), stamp))
            if self._contact is not None:
                out.append(('bumper', contact_msg(kit, stamp, frames.base,
                                                  self._contact.force()), stamp))
        if 'scan' in due and self._scanner is not None:
            out.append(('scan', laser_scan_msg(kit, stamp, SCAN_FRAME, self._scanner.scan()),
                        stamp))
        if 'range' in due:
            for name, value in self._ranges.items():
                out.append((f'range/{name}', m.range_msg(kit, stamp, frames.range(name),
                                                         value, ROBOT), stamp))
        if 'camera' in due:
            rgb, depth = sim.render()
            opts = self.options
            out.append(('image_raw', m.image_msg(kit, stamp, frames.camera, rgb), stamp))
            out.append(('camera_info', m.camera_info_msg(kit, stamp, frames.camera,
                                                         opts.width, opts.height, ROBOT),
                        stamp))
            out.append(('depth/image', m.depth_msg(kit, stamp, frames.camera, depth), stamp))
            for mount in sim.extra_cameras:
                rgb, _ = sim.render(mount.name)
                out.append((f'{mount.name}/image_raw',
                            m.image_msg(kit, stamp, mount.frame_id, rgb), stamp))
                out.append((f'{mount.name}/camera_info',
                            m.camera_info_msg(kit, stamp, mount.frame_id, opts.width,
                                              opts.height, ROBOT), stamp))

    def close(self) -> None:
        """Free the simulator's renderer."""
        self.sim.close()
