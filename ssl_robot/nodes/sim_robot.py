"""`sim_robot` node: the simulated robot, live on ROS topics.

    sim_robot --ros-args -p seed:=3 -p duration:=60.0 -p real_time_factor:=2.0

Runs the same world, physics, sensors and driver as `ssl-robot sim`
(`ssl_robot.sim.SimSession`), paced by a steady wall-clock timer at `real_time_factor`
simulated seconds per wall second, and publishes on the generic topic names (image_raw,
camera_info, depth/image, range/left|center|right, odom, imu, ground_truth/odom,
sim/world, cmd_vel) plus /clock when `publish_clock` is true. With `extra_cameras` > 0
it also publishes camera2/image_raw and camera2/camera_info (camera3/... for a second
one): rgb8 images of the same scene from another pose on the robot, with the main
camera's stamps and their own frame ids (camera2_optical_frame).

Stamps: with `publish_clock` the header stamps are simulated time from a fixed epoch
(the same as in sim bags) and /clock carries it, so every other node runs with
`use_sim_time: true`. Without it, simulated time is laid onto the node clock's time at
start (wall time, or sim time from another /clock when `use_sim_time` is set).

With `autopilot` the built-in driver steers and the node publishes its commands on
cmd_vel; otherwise the node follows cmd_vel (non-finite commands are dropped, counted
and logged). With `duration` > 0 the node exits after that many simulated seconds.
"""
from __future__ import annotations

import sys

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

from ssl_robot.diagnostics import NodeHealth, OK, WARN
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._run import run_node
from ssl_robot.nodes._throttle import LogThrottle
from ssl_robot.nodes.msgtypes import message_class
from ssl_robot.sim import ROBOT, SIM_EPOCH_NS, SimError, STREAMS
from ssl_robot.sim.messages import Frames, MessageKit
from ssl_robot.sim.session import SimOptions, SimSession
from ssl_robot.sim.world import generate_world

#: Wall-clock period of the pacing timer (s).
TICK_S = 0.01
#: Most simulated time one tick may advance (s): a slow tick never freezes the executor.
MAX_TICK_SIM_S = 0.25


def _describe(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text)


def _rclpy_class(msgtype: str) -> type:
    cls = message_class(msgtype)
    if cls is None:
        raise SimError(f'message type {msgtype} is not installed')
    return cls


#: Builders fill rclpy messages; uint8[] fields take bytes.
RCLPY_KIT = MessageKit(resolve=_rclpy_class, pack_bytes=lambda a: a.tobytes())


class SimRobot(Node):
    """Steps the simulated robot in real time (scaled) and publishes its streams."""

    def __init__(self, **node_kwargs: object) -> None:
        super().__init__('sim_robot', **node_kwargs)
        self._throttle = LogThrottle(5.0)  # per-message warnings (rclpy's throttle is costly)
        p = self.declare_parameter
        p('seed', 0, _describe('world seed (same seed, same world, noise and driver)'))
        p('rate_hz', 30.0, _describe('camera rate (image_raw, camera_info, depth/image), Hz'))
        p('image_width', 128, _describe('camera image width, px (8-640)'))
        p('image_height', 96, _describe('camera image height, px (8-480)'))
        p('publish_clock', True, _describe('publish simulated time on /clock'))
        p('range_rate_hz', 30.0, _describe('proximity sensors rate, Hz'))
        p('odom_rate_hz', 50.0, _describe('odom and ground_truth/odom rate, Hz'))
        p('imu_rate_hz', 100.0, _describe('imu rate, Hz'))
        p('clock_rate_hz', 100.0, _describe('/clock rate in simulated time, Hz'))
        p('real_time_factor', 1.0, _describe('simulated seconds per wall second'))
        p('duration', 0.0, _describe('simulated seconds to run, then exit (0: forever)'))
        p('autopilot', True, _describe('drive with the built-in policy and publish cmd_vel; '
                                       'false: follow cmd_vel'))
        p('n_obstacles', 10, _describe('obstacles in the generated world'))
        p('n_patches', 6, _describe('terrain patches in the generated world'))
        p('style', 'random', _describe('world appearance family: random (one per seed), plain '
                                       '(original flat colours), indoor, workshop, outdoor'))
        p('extra_cameras', 0, _describe('extra cameras at other poses on the robot (0-2), '
                                        'on <name>/image_raw and <name>/camera_info'))
        p('scan', False, _describe('publish a planar laser scan on scan '
                                   '(sensor_msgs/LaserScan, 121 beams over 240 deg, 10 Hz)'))
        p('contacts', False, _describe('publish the obstacle contact force on the robot on '
                                       'bumper (geometry_msgs/WrenchStamped, base_link)'))
        p('crash_rate', 0.0, _describe('chance (0-1) that the driver does not stop for an '
                                       'obstacle and drives into it (crash data)'))
        for name, default, text in (
                ('image_topic', 'image_raw', 'camera image topic'),
                ('camera_info_topic', 'camera_info', 'camera info topic'),
                ('depth_topic', 'depth/image', 'depth image topic (32FC1 metres)'),
                ('odom_topic', 'odom', 'wheel odometry topic'),
                ('imu_topic', 'imu', 'IMU topic'),
                ('cmd_vel_topic', 'cmd_vel', 'velocity command topic'),
                ('ground_truth_topic', 'ground_truth/odom', 'true pose (evaluation only)'),
                ('world_topic', 'sim/world', 'world description (JSON, transient local)'),
                ('odom_frame', 'odom', 'odometry frame'),
                ('base_frame', 'base_link', 'robot body frame'),
                ('camera_frame', 'camera_optical_frame', 'camera optical frame')):
            p(name, default, _describe(text))
        p('range_topics', [f'range/{n}' for n in ROBOT.proximity_poses],
          _describe('proximity topics, in the order left, center, right'))
        value = self._value
        self.rtf = float(value('real_time_factor'))
        self.duration_ns = int(float(value('duration')) * 1e9)
        if not self.rtf > 0:
            raise SimError(f'real_time_factor must be > 0, got {self.rtf}')
        options = SimOptions(
            width=int(value('image_width')), height=int(value('image_height')),
            camera_rate_hz=float(value('rate_hz')), range_rate_hz=float(value('range_rate_hz')),
            odom_rate_hz=float(value('odom_rate_hz')), imu_rate_hz=float(value('imu_rate_hz')),
            clock_rate_hz=float(value('clock_rate_hz')),
            extra_cameras=int(value('extra_cameras')), scan=bool(value('scan')),
            contacts=bool(value('contacts')), crash_rate=float(value('crash_rate')))
        self.publish_clock = bool(value('publish_clock'))
        epoch = SIM_EPOCH_NS if self.publish_clock else self.get_clock().now().nanoseconds
        frames = Frames(odom=value('odom_frame'), base=value('base_frame'),
                        camera=value('camera_frame'))
        world = generate_world(int(value('seed')), n_obstacles=int(value('n_obstacles')),
                               n_patches=int(value('n_patches')), style=str(value('style')))
        self.autopilot = bool(value('autopilot'))
        self.session = SimSession(world, options, autopilot=self.autopilot, epoch_ns=epoch,
                                  kit=RCLPY_KIT, frames=frames)
        self.topics = self._topic_names()
        self.pubs = {key: self._make_publisher(key) for key in self.session.streams
                     if key not in ('sim/world', 'clock')}
        if self.publish_clock:
            self.pubs['clock'] = self.create_publisher(
                _rclpy_class(STREAMS['clock']), '/clock', QoSProfile(depth=10))
        world_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
        world_pub = self.create_publisher(_rclpy_class(STREAMS['sim/world']),
                                          value('world_topic'), world_qos)
        world_pub.publish(self.session.world_message()[1])
        self.dropped_commands = 0
        if not self.autopilot:
            self.create_subscription(_rclpy_class(STREAMS['cmd_vel']), self.topics['cmd_vel'],
                                     self._on_cmd_vel, 10)
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.start_ns: int | None = None  # set by the first tick: set-up time is not lag
        self.done = False
        self._last_lag_log_ns = 0
        self.create_timer(TICK_S, self._tick, clock=self.steady)
        self.published: dict[str, int] = {}
        self._behind_s = 0.0
        self.health = NodeHealth('sim_robot', hardware_id=f'world seed {world.seed}')
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)
        self.get_logger().info(
            f'world seed {world.seed}: {len(world.obstacles)} obstacles, '
            f'{len(world.patches)} terrain patches; camera {options.width}x{options.height} '
            f'at {options.camera_rate_hz} Hz'
            f'{f" (+{options.extra_cameras} extra)" if options.extra_cameras else ""}; '
            f'{self.rtf}x real time; '
            f'{"autopilot" if self.autopilot else "following " + self.topics["cmd_vel"]}')

    def _value(self, name: str):  # noqa: ANN202 - a parameter's Python value
        return self.get_parameter(name).value

    def _topic_names(self) -> dict[str, str]:
        ranges = list(self._value('range_topics'))
        names = list(ROBOT.proximity_poses)
        if len(ranges) != len(names):
            raise SimError(f'range_topics needs {len(names)} names ({", ".join(names)}), '
                           f'got {ranges}')
        topics = {'image_raw': self._value('image_topic'),
                  'camera_info': self._value('camera_info_topic'),
                  'depth/image': self._value('depth_topic'),
                  'odom': self._value('odom_topic'), 'imu': self._value('imu_topic'),
                  'cmd_vel': self._value('cmd_vel_topic'),
                  'ground_truth/odom': self._value('ground_truth_topic')}
        topics.update({f'range/{n}': t for n, t in zip(names, ranges)})
        # Extra cameras keep their generic names (remap them in launch).
        topics.update({key: key for key in self.session.streams if key not in topics})
        return topics

    def _make_publisher(self, key: str):  # noqa: ANN202 - an rclpy Publisher
        callbacks = PublisherEventCallbacks(incompatible_qos=lambda event, k=key: (
            self.get_logger().warning(
                f'{self.topics[k]}: a subscriber asks for an incompatible QoS '
                f'(policy {event.last_policy_kind}); it gets nothing')))
        qos = QoSProfile(depth=10) if key == 'cmd_vel' else qos_profile_sensor_data
        return self.create_publisher(
            _rclpy_class(self.session.streams[key]), self.topics[key], qos,
            event_callbacks=callbacks,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())

    def _on_cmd_vel(self, msg: object) -> None:
        try:
            self.session.set_cmd_vel(msg.linear.x, msg.angular.z)
        except SimError as exc:
            self.dropped_commands += 1
            if self._throttle('command'):
                self.get_logger().warning(f'dropped command #{self.dropped_commands}: {exc}')

    def _tick(self) -> None:
        if self.done:
            return
        now = self.steady.now().nanoseconds
        if self.start_ns is None:
            self.start_ns = now
        target = int((now - self.start_ns) * self.rtf)
        if self.duration_ns:
            target = min(target, self.duration_ns)
        behind = target - self.session.time_ns
        self._behind_s = max(0.0, behind / 1e9)
        if behind > MAX_TICK_SIM_S * 1e9:
            if now - self._last_lag_log_ns > 10e9:
                self._last_lag_log_ns = now
                self.get_logger().warning(
                    f'simulation runs {behind / 1e9:.2f} s behind real_time_factor '
                    f'{self.rtf}; lower the camera rate/size or the factor')
            target = self.session.time_ns + int(MAX_TICK_SIM_S * 1e9)
        for key, msg, _stamp in self.session.advance(target):
            publisher = self.pubs.get(key)
            if publisher is not None:
                publisher.publish(msg)
                self.published[key] = self.published.get(key, 0) + 1
        if self.duration_ns and self.session.time_ns >= self.duration_ns:
            self.done = True
            self.get_logger().info(f'simulated {self.session.time_ns / 1e9:.1f} s: done')

    def _update_health(self, now_s: float) -> None:
        """/diagnostics: simulated time, lag behind the real-time factor, messages out."""
        lagging = self._behind_s > MAX_TICK_SIM_S
        self.health.section('simulation').set(
            WARN if lagging else OK,
            f'{self._behind_s:.2f} s behind real_time_factor {self.rtf}' if lagging
            else f'at {self.session.time_ns / 1e9:.1f} s simulated',
            sim_time_s=self.session.time_ns / 1e9, behind_s=self._behind_s,
            real_time_factor=self.rtf, dropped_commands=self.dropped_commands,
            **{f'published {self.topics.get(k, k)}': n for k, n in self.published.items()})

    def close(self) -> None:
        """Free the simulator."""
        self.session.close()


def main(args: list[str] | None = None) -> int:
    """Run the simulated robot until `duration` has passed or SIGINT/SIGTERM."""
    return run_node('sim_robot', SimRobot, args=args, startup_errors=(SimError,),
                    done=lambda node: node.done, finish=SimRobot.close)


if __name__ == '__main__':
    sys.exit(main())
