"""`recorder` node: writes the robot's sensor topics into a rosbag2 bag, losing nothing silently.

Subscriptions take raw CDR (no deserialisation) with the sensor-data QoS profile (depth
from the `queue_depth` parameter; every policy overridable through QoSOverridingOptions,
e.g. ``qos_overrides./image_raw.subscription.reliability:=reliable``). The callback only
stamps a message with the node clock (sim time under ``use_sim_time``) and queues it; a
writer thread writes it to a `SplitBagWriter` (crash-safe split files, see
`ssl_robot.bags.recovery`). A full queue drops the message and counts it; DDS-level losses
(``message_lost`` events) and incompatible QoS are counted too. All counters are logged
and published as JSON on ``recorder/status``. SIGINT/SIGTERM drain the queue and
finalise the bag.
"""
from __future__ import annotations

import json
from pathlib import Path
import queue
import sys
import threading

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from std_msgs.msg import String

from ssl_robot.bags.split import SplitBagWriter
from ssl_robot.bags.typestore import BagError, typestore
from ssl_robot.diagnostics import ERROR, Growth, NodeHealth, OK, parse_expected_rates, WARN
from ssl_robot.errors import ConfigError
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._run import run_node
from ssl_robot.nodes.msgtypes import message_class

#: Generic topic parameter -> message type of that sensor stream.
SENSOR_TOPICS = (
    ('image_topic', 'image_raw', 'sensor_msgs/msg/Image'),
    ('camera_info_topic', 'camera_info', 'sensor_msgs/msg/CameraInfo'),
    ('depth_topic', 'depth/image', 'sensor_msgs/msg/Image'),
    ('odom_topic', 'odom', 'nav_msgs/msg/Odometry'),
    ('imu_topic', 'imu', 'sensor_msgs/msg/Imu'),
)
RANGE_TYPE = 'sensor_msgs/msg/Range'
_STOP = object()


def _describe(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text)


def unique_output(path: Path) -> Path:
    """`path`, or `path_1`, `path_2`, ... when it exists (never overwrite a bag)."""
    if not path.exists():
        return path
    index = 1
    while path.with_name(f'{path.name}_{index}').exists():
        index += 1
    return path.with_name(f'{path.name}_{index}')


class Recorder(Node):
    """Records configured topics to a rosbag2 bag through a bounded queue and a writer thread."""

    def __init__(self) -> None:
        super().__init__('recorder')
        p = self.declare_parameter
        p('output', 'bags/recording', _describe('bag directory to create (a suffix _N is added '
                                               'when it exists)'))
        p('storage', 'mcap', _describe('rosbag2 storage: mcap or sqlite3'))
        p('max_bag_duration', 10.0, _describe('split the bag after this many seconds of bag '
                                              'time (0: never), like ros2 bag record'))
        p('max_bag_size', 0, _describe('split the bag after this many bytes (0: never)'))
        p('flush_period', 1.0, _describe('seconds between making the open split durable; a '
                                         'SIGKILL loses at most about this much'))
        p('queue_size', 2000, _describe('messages the writer queue holds before dropping '
                                        '(drops are counted, logged and published)'))
        p('queue_depth', 100, _describe('DDS history depth of each subscription'))
        p('status_period', 1.0, _describe('seconds between recorder/status messages'))
        p('topics', [''], _describe('topics to record as topic or topic=pkg/msg/Type; empty: '
                                    'the configured sensor topics'))
        p('extra_topics', [''], _describe('further topics to record (type from the graph '
                                          'unless given as topic=pkg/msg/Type)'))
        for name, default, _ in SENSOR_TOPICS:
            p(name, default, _describe(f'generic {default} topic'))
        p('range_topics', ['range/left', 'range/center', 'range/right'],
          _describe('proximity sensor topics (sensor_msgs/Range)'))
        p('expected_rates_hz', [''], _describe("nominal input rates, 'TOPIC=HZ' each (generic "
                                               'names); diagnostics WARN below 70 %'))

        gp = self.get_parameter
        self.queue_size = max(1, gp('queue_size').value)
        self.output = unique_output(Path(gp('output').value).expanduser())
        self.writer = SplitBagWriter(
            self.output, storage=gp('storage').value,
            max_duration_s=gp('max_bag_duration').value,
            max_size_bytes=gp('max_bag_size').value, flush_period_s=gp('flush_period').value)
        self.writer.open()
        self.flush_period = max(0.05, float(gp('flush_period').value))

        self.lock = threading.Lock()
        self.received: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.lost: dict[str, int] = {}
        self.write_errors = 0
        self.incompatible_qos = 0
        self.queue: queue.Queue = queue.Queue(maxsize=self.queue_size)
        self.subscriptions_by_topic: dict[str, object] = {}
        self.pending: dict[str, str] = {}  # topic -> '' (type from graph)
        self.sim_time_warned = False

        self.status_pub = self.create_publisher(String, 'recorder/status', 10)
        self.health = NodeHealth('recorder')
        self.expected_hz = {self.resolve_topic_name(t): hz for t, hz in parse_expected_rates(
            list(gp('expected_rates_hz').value)).items()}
        self._backlog_growth = Growth()
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)
        for topic, msgtype in self._wanted_topics():
            if msgtype:
                self._subscribe(topic, msgtype)
            else:
                self.pending[topic] = ''
        if self.pending:
            self.discovery_timer = self.create_timer(0.5, self._discover)
        self.status_timer = self.create_timer(float(gp('status_period').value),
                                              self._publish_status)
        self.thread = threading.Thread(target=self._write_loop, name='bag_writer', daemon=True)
        self.thread.start()
        self.get_logger().info(
            f'recording {sorted(self.subscriptions_by_topic) + sorted(self.pending)} to '
            f'{self.output} ({gp("storage").value})')

    def _wanted_topics(self) -> list[tuple[str, str]]:
        """(resolved topic, type or '') for every topic to record."""
        gp = self.get_parameter
        specs = [s for s in gp('topics').value if s]
        if not specs:
            specs = [f'{gp(name).value}={msgtype}' for name, _, msgtype in SENSOR_TOPICS]
            specs += [f'{t}={RANGE_TYPE}' for t in gp('range_topics').value if t]
        specs += [s for s in gp('extra_topics').value if s]
        wanted = []
        for spec in specs:
            topic, _, msgtype = spec.partition('=')
            wanted.append((self.resolve_topic_name(topic.strip()), msgtype.strip()))
        return wanted

    def _discover(self) -> None:
        """Subscribe to topics whose type the graph now tells."""
        for topic, types in self.get_topic_names_and_types():
            if topic in self.pending and types:
                del self.pending[topic]
                self._subscribe(topic, types[0])
        if not self.pending:
            self.discovery_timer.cancel()

    def _subscribe(self, topic: str, msgtype: str) -> None:
        cls = message_class(msgtype)
        if cls is None or msgtype not in typestore().types:
            self.get_logger().error(f'{topic}: type {msgtype} unknown here, not recorded')
            return
        try:
            self.writer.add_topic(topic, msgtype)
        except BagError as exc:
            self.get_logger().error(f'{topic}: not recorded: {exc}')
            return
        self.received[topic] = self.dropped[topic] = self.lost[topic] = 0
        self.health.watch_input(topic, expected_hz=self.expected_hz.get(topic, 0.0))
        depth = int(self.get_parameter('queue_depth').value)
        qos = QoSProfile(history=qos_profile_sensor_data.history, depth=depth,
                         reliability=qos_profile_sensor_data.reliability,
                         durability=qos_profile_sensor_data.durability)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info, t=topic: self._on_incompatible(t, info),
            message_lost=lambda info, t=topic: self._on_lost(t, info))
        self.subscriptions_by_topic[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic, m=msgtype: self._on_message(t, m, data), qos,
            raw=True, event_callbacks=events,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())

    def _on_incompatible(self, topic: str, info: object) -> None:
        self.incompatible_qos += 1
        self.get_logger().error(f'{topic}: incompatible QoS with a publisher '
                                f'(policy {info.last_policy_kind}); nothing is received from it')

    def _on_lost(self, topic: str, info: object) -> None:
        with self.lock:
            self.lost[topic] += int(info.total_count_change)
        self.get_logger().warning(f'{topic}: DDS lost {info.total_count_change} messages '
                                  f'(total {info.total_count}) before the recorder got them')

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        if now == 0 and not self.sim_time_warned:
            self.sim_time_warned = True
            self.get_logger().warning('use_sim_time is on but no /clock yet: receive time 0')
        with self.lock:
            self.received[topic] += 1
        self.health.arrived(topic, self.diagnostics.now_s())
        try:
            self.queue.put_nowait((topic, msgtype, data, now))
        except queue.Full:
            with self.lock:
                self.dropped[topic] += 1
                total = sum(self.dropped.values())
            if total == 1 or total % 100 == 0:
                self.get_logger().warning(
                    f'writer queue full ({self.queue_size}): dropped {total} messages so far '
                    f'({topic}); raise queue_size or use faster storage')

    def _write_loop(self) -> None:
        """Writer thread: write queued messages; make the split durable when idle."""
        while True:
            try:
                item = self.queue.get(timeout=self.flush_period)
            except queue.Empty:
                self._safely(self.writer.flush)
                continue
            if item is _STOP:
                # Closed here: sqlite3 connections belong to the thread that made them.
                self._safely(self.writer.close)
                return
            self._safely(self.writer.write_raw, *item)

    def _safely(self, func: object, *args: object) -> None:
        try:
            func(*args)
        except Exception as exc:  # noqa: BLE001 - a write error is counted, never fatal
            with self.lock:
                self.write_errors += 1
                first = self.write_errors == 1
            if first or exc is not self.writer.failure:  # one line per cause, not per message
                self.get_logger().error(f'bag write failed: {exc}')

    def status(self) -> dict:
        """Counters since start (what recorder/status publishes)."""
        with self.lock:
            received, dropped, lost = dict(self.received), dict(self.dropped), dict(self.lost)
        return {
            'output': str(self.output),
            'received': sum(received.values()),
            # After a failed write only what reached the disk counts as written.
            'written': (sum(self.writer.message_counts.values()) if self.writer.failure is None
                        else self.writer.durable_messages),
            'failure': None if self.writer.failure is None else str(self.writer.failure),
            'durable': self.writer.durable_messages,
            'dropped': sum(dropped.values()), 'lost_in_dds': sum(lost.values()),
            'write_errors': self.write_errors, 'incompatible_qos': self.incompatible_qos,
            'backlog': self.queue.qsize(), 'queue_size': self.queue_size,
            'bytes': self.writer.bytes_written, 'files': len(self.writer.files) + 1,
            'topics': {t: {'received': received[t], 'written':
                           self.writer.message_counts.get(t, 0), 'dropped': dropped[t],
                           'lost_in_dds': lost[t]} for t in received},
            'waiting_for_type': sorted(self.pending),
        }

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    def _update_health(self, now_s: float) -> None:
        """/diagnostics: bytes, splits, backlog (WARN while it grows), drops by cause."""
        s = self.status()
        self.health.drops.update(queue_full=s['dropped'], lost_in_dds=s['lost_in_dds'],
                                 write_errors=s['write_errors'])
        growing = self._backlog_growth.add(s['backlog'])
        level, message = OK, f'{s["written"]} messages, {s["bytes"]} bytes in {s["output"]}'
        if growing:
            level, message = WARN, f'backlog growing ({s["backlog"]} of {s["queue_size"]})'
        if s['incompatible_qos']:
            level, message = WARN, f'{s["incompatible_qos"]} incompatible QoS events'
        if s['write_errors']:
            level, message = ERROR, f'{s["write_errors"]} bag write errors'
        self.health.section('bag').set(
            level, message, output=s['output'], bytes=s['bytes'], splits=s['files'],
            written=s['written'], durable=s['durable'], backlog=s['backlog'],
            queue_size=s['queue_size'], backlog_growing=growing,
            incompatible_qos=s['incompatible_qos'],
            waiting_for_type=', '.join(s['waiting_for_type']))

    def finish(self) -> dict:
        """Stop receiving, write everything queued, finalise the bag; the final counters."""
        for sub in list(self.subscriptions_by_topic.values()):
            try:
                self.destroy_subscription(sub)
            except Exception:  # noqa: BLE001, S110 - the context may be shut down already
                pass
        self.subscriptions_by_topic.clear()
        self.queue.put(_STOP)
        self.thread.join()
        final = self.status()
        final['files'] = len(self.writer.files)
        self.get_logger().info(f'bag finalised: {json.dumps(final)}')
        return final


def main(args: list[str] | None = None) -> int:
    """Run the recorder until SIGINT/SIGTERM, then finalise the bag."""
    return run_node('recorder', Recorder, args=args, startup_errors=(BagError, ConfigError),
                    finish=Recorder.finish, exit_code=_exit_code)


def _exit_code(node: Recorder) -> int:
    """1 when the bag could not be written completely (a full disk...), else 0."""
    if node.writer.failure is not None:
        print(f'recorder: {node.writer.failure} ({node.write_errors} messages not written)',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
