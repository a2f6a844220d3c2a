"""`labeller` node: labels camera frames live, as soon as their future is known.

Subscribes to the recorder's sensor topics (sensor-data QoS, overridable through
QoSOverridingOptions), keeps the last `buffer_seconds` of odometry, ranges, IMU and
commands, and frames subsampled to `frame_rate_hz`. Every `label_period_s` it labels the
frames whose future is in the buffer (the newest odometry stamp is `label_horizon_s`
past them, or half the buffer when that is shorter) with the same core as
`ssl-robot label` (`ssl_robot.labelling.label_streams`), and every `flush_every_s` a
worker thread appends the labelled frames to the dataset (atomically, `DatasetWriter`).
Counts and yield go out as JSON on ``labeller/status``; each labelled frame's proximity labels
on ``labeller/labels`` (32FC1 D x S, 1 obstacle, 0 free, NaN unknown; the frame's stamp), which
the inference node grades its predictions with.

Multi-view like `ssl-robot label`: each topic of `extra_image_topics` (an extra camera)
is subscribed too, and its frames are decoded and buffered only while a frame may still
be matched to them (one waiting near it, or one still to come in a free frame slot
nearby), so views cost about what frames cost. When a frame is labelled,
seconds after it arrived, each extra camera's frame nearest in header stamp within
`view_match_tolerance_s` becomes its view (`match_views`); a view without one is masked
and counted (`views_missing_<k>`). Views are named in the dataset as the offline path
names them (the topic as configured, made absolute: '/camera2/image_raw'), so datasets
made live and offline from one config append to each other; appending to a dataset with
other views is refused (logged, counted in `flush_errors`, the rows kept).

Bad input is counted and logged, never fatal: unknown image encodings, images of another
size (extra cameras' too: views are not resized), NaN/inf ranges (REP-117), out-of-order
and repeated stamps, odometry resets/jumps
(never bridged), stamps going back (a restart: what is pending is labelled, the buffer
starts over). Time is message stamps only (the node clock, sim time under
``use_sim_time``, stamps header-less /cmd_vel).
"""
from __future__ import annotations

import json
from pathlib import Path
import sys
import threading
from typing import Any

from geometry_msgs.msg import Twist, WrenchStamped
from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState, LaserScan, Range
from std_msgs.msg import String

from ssl_robot.dataset import DatasetError, DatasetWriter
from ssl_robot.diagnostics import ERROR, NodeHealth, OK, parse_expected_rates, WARN
from ssl_robot.labelling import labelling_params
from ssl_robot.labelling.buffers import LiveLabelBuffer
from ssl_robot.labelling.params import absolute, DEFAULTS, DESCRIPTIONS, STRING_ARRAY_DEFAULTS
from ssl_robot.labelling.scan import scan_fields, ScanSectorReader
from ssl_robot.labelling.streams import LabelResult
from ssl_robot.msgconv import (
    imu_to_arrays,
    MessageError,
    odometry_to_pose2d,
    range_reading,
    stamp_ns,
)
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._qos import FollowingSubscription
from ssl_robot.nodes._run import run_node
from ssl_robot.nodes._throttle import LogThrottle

#: Parameters of the node only (not of labelling): default and description.
NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    'dataset': ('data/live_dataset', 'dataset directory labels are appended to'),
    'buffer_seconds': (30.0, 'seconds of sensor data kept (bounded memory)'),
    'flush_every_s': (30.0, 'seconds between appends to the dataset'),
    'status_period_s': (1.0, 'seconds between labeller/status messages'),
    'label_period_s': (1.0, 'seconds between labelling passes'),
    'queue_depth': (50, 'DDS history depth of each subscription'),
    'expected_rates_hz': ([''], "nominal input rates, 'TOPIC=HZ' each (generic names); "
                          'diagnostics WARN below 70 % (none: only when silent)'),
    'qos_policy': ('auto', 'reliability of the sensor subscriptions: auto (follow the '
                   'publishers, checked again when they appear), reliable or best_effort'),
}


def _describe(text: str) -> ParameterDescriptor:
    return ParameterDescriptor(description=text)


def _declare_string_array(node: Node, name: str, default: list[str]) -> None:
    """Declare a string-array parameter whose default may be empty.

    An empty list given as the default would be typed BYTE_ARRAY and refuse strings from a
    parameter file or `-p`; declared by type it stays unset when nothing sets it (an empty
    list in a parameter file sets nothing either), and is then set to `default`.
    """
    value = node.declare_parameter(name, Parameter.Type.STRING_ARRAY,
                                   _describe(DESCRIPTIONS[name]))
    if value.type_ == Parameter.Type.NOT_SET:
        node.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, list(default))])


class Labeller(Node):
    """Feeds sensor messages to the live labelling buffer; appends labelled rows to a dataset.

    The buffering, admission and readiness logic is core code
    (`ssl_robot.labelling.buffers.LiveLabelBuffer`), shared with the offline path; this node
    converts messages, runs the timers and writes.
    """

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__('labeller', **node_kwargs)
        self._throttle = LogThrottle(5.0)  # per-message warnings (rclpy's throttle is costly)
        p = self.declare_parameter
        for key, default in DEFAULTS.items():
            p(key, default, _describe(DESCRIPTIONS[key]))
        for key, default in STRING_ARRAY_DEFAULTS.items():
            _declare_string_array(self, key, default)
        for key, (default, text) in NODE_PARAMETERS.items():
            p(key, default, _describe(text))
        gp = self.get_parameter
        self.params = labelling_params(
            {k: gp(k).value for k in (*DEFAULTS, *STRING_ARRAY_DEFAULTS)})
        self.view_names = [absolute(t) for t in self.params.view_topics]
        self.dataset = Path(gp('dataset').value).expanduser()
        self.buffer = LiveLabelBuffer(self.params, buffer_s=float(gp('buffer_seconds').value))
        self.counts: dict[str, int] = {
            'frames_received': 0, 'frames_labelled': 0, 'frames_written': 0,
            'messages_bad': 0, 'incompatible_qos': 0, 'flush_errors': 0}
        for v in range(len(self.view_names)):
            self.counts.update({f'views_matched_{v}': 0, f'views_missing_{v}': 0})
        self.label_counts: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.known = np.zeros((len(self.params.proximity.distances_m),
                               len(self.params.sensors)), np.int64)
        self.obstacles = np.zeros_like(self.known)
        self.terrain_known = 0
        self.terrain_cells = 0
        self.pending_rows: list[dict[str, np.ndarray]] = []
        self.session_bag: int | None = None
        self.flush_thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.health = NodeHealth('labeller')
        self.expected_hz = {self.resolve_topic_name(t): hz for t, hz in parse_expected_rates(
            list(gp('expected_rates_hz').value)).items()}
        self.subscribed: dict[str, FollowingSubscription] = {}
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)

        depth = int(gp('queue_depth').value)
        self._subscribe(Image, self.params.image_topic, self._on_image, depth)
        self._subscribe(CameraInfo, self.params.camera_info_topic,
                        lambda msg: self.buffer.set_camera_info(msg.k), depth)
        self._subscribe(Odometry, self.params.odom_topic, self._on_odom, depth)
        self._subscribe(Imu, self.params.imu_topic, self._on_imu, depth)
        self._subscribe(Twist, self.params.cmd_vel_topic, self._on_cmd, depth)
        for k, topic in enumerate(self.params.range_topics):
            self._subscribe(Range, topic, lambda msg, k=k: self.buffer.sensors.add_range(
                k, stamp_ns(msg.header), range_reading(msg)), depth)
        for v, topic in enumerate(self.params.view_topics):
            self._subscribe(Image, topic, lambda msg, v=v: self._on_view(v, msg), depth)
        if self.params.scan_topic:
            # The scan's sectors are proximity sensors after the range topics'.
            self.scan_sectors = ScanSectorReader(self.params.scan_sectors)
            self._subscribe(LaserScan, self.params.scan_topic, self._on_scan, depth)
        if self.params.bumper_topic:
            self._subscribe(WrenchStamped, self.params.bumper_topic, self._on_bumper, depth)
        if self.params.joint_states_topic:
            self._subscribe(JointState, self.params.joint_states_topic, self._on_joint_state,
                            depth)
        self.status_pub = self.create_publisher(String, 'labeller/status', 10)
        # Each labelled frame's proximity labels, for the inference node to grade itself.
        self.labels_pub = self.create_publisher(Image, 'labeller/labels', 50)
        self.create_timer(float(gp('label_period_s').value), self._label_ready)
        self.create_timer(float(gp('flush_every_s').value), self._flush)
        self.create_timer(float(gp('status_period_s').value), self._publish_status)
        self.get_logger().info(
            f'labelling {self.params.image_topic} at {self.params.frame_rate_hz} Hz into '
            f'{self.dataset}; frames wait {self.buffer.wait_ns / 1e9:.1f} s for their future'
            + (f'; views {", ".join(self.view_names)}' if self.view_names else ''))

    # ------------------------------------------------------------------ input
    def _subscribe(self, cls: type, topic: str, callback: Any, depth: int) -> None:
        qos = qos_profile_sensor_data
        qos = type(qos)(history=qos.history, depth=depth, reliability=qos.reliability,
                        durability=qos.durability)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info, t=topic: self._on_incompatible(t, info))
        resolved = self.resolve_topic_name(topic)
        self.received[resolved] = 0
        self.health.watch_input(resolved, expected_hz=self.expected_hz.get(resolved, 0.0))

        def counted(msg: Any, t: str = resolved) -> None:
            self.received[t] += 1
            self.health.arrived(t, self.diagnostics.now_s())
            try:
                callback(msg)
            except (MessageError, ValueError, AttributeError, TypeError) as exc:
                self.counts['messages_bad'] += 1
                if self._throttle(f'bad {t}'):
                    self.get_logger().warning(f'{t}: message dropped: {exc}')

        self.subscribed[resolved] = FollowingSubscription(
            self, cls, topic, counted, qos=qos, policy=self.get_parameter('qos_policy').value,
            event_callbacks=events)

    def _on_incompatible(self, topic: str, info: Any) -> None:
        self.counts['incompatible_qos'] += 1
        self.get_logger().error(f'{topic}: incompatible QoS with a publisher '
                                f'(policy {info.last_policy_kind}); nothing is received from it')

    def _on_image(self, msg: Image) -> None:
        self.counts['frames_received'] += 1
        why = self.buffer.add_frame(stamp_ns(msg.header), msg)
        if why and self._throttle('frame'):
            self.get_logger().warning(why)

    def _on_view(self, v: int, msg: Image) -> None:
        why = self.buffer.add_view(v, stamp_ns(msg.header), msg)
        if why and self._throttle(f'view {v}'):
            self.get_logger().warning(f'{self.view_names[v]}: {why}')

    def _on_odom(self, msg: Odometry) -> None:
        note, restarted = self.buffer.add_odom(stamp_ns(msg.header), odometry_to_pose2d(msg),
                                               float(msg.twist.twist.linear.x))
        if restarted is not None:
            self._take(restarted)
        if note and self._throttle('odom'):
            self.get_logger().warning(note)

    def _on_imu(self, msg: Imu) -> None:
        accel, gyro = imu_to_arrays(msg)
        self.buffer.sensors.add_imu(stamp_ns(msg.header), accel, gyro)

    def _on_scan(self, msg: LaserScan) -> None:
        ranges, geometry = scan_fields(msg)
        first, stamp = len(self.params.range_topics), stamp_ns(msg.header)
        for j, value in enumerate(self.scan_sectors(ranges, **geometry).tolist()):
            self.buffer.sensors.add_range(first + j, stamp, value)

    def _on_bumper(self, msg: WrenchStamped) -> None:
        force = msg.wrench.force
        self.buffer.sensors.add_bumper(stamp_ns(msg.header), float(np.hypot(force.x, force.y)))

    def _on_joint_state(self, msg: JointState) -> None:
        self.buffer.sensors.add_joint_state(stamp_ns(msg.header), tuple(msg.name),
                                            np.asarray(msg.velocity), np.asarray(msg.effort))

    def _on_cmd(self, msg: Twist) -> None:
        # Twist has no header: the node clock (sim time under use_sim_time) stamps it.
        self.buffer.sensors.add_cmd(self.get_clock().now().nanoseconds, float(msg.linear.x))

    # ------------------------------------------------------------------ labelling
    def _label_ready(self) -> None:
        self._take(self.buffer.label())

    def _take(self, result: LabelResult | None) -> None:
        """Count a labelling result and queue its rows for the next append."""
        if result is None:
            return
        rows = result.rows
        for key, value in result.counts.items():
            # Stream anomalies are counted once on arrival; these are per labelled frame.
            if key.startswith(('proximity_', 'terrain_', 'frames_')):
                self.label_counts[key] = self.label_counts.get(key, 0) + int(value)
            elif key.startswith('views_'):  # views_matched_<k>, views_missing_<k>
                self.counts[key] += int(value)
        self.known += rows['proximity_mask'].sum(axis=0)
        self.obstacles += (rows['proximity'] * rows['proximity_mask']).sum(axis=0).astype(
            np.int64)
        self.terrain_known += int(rows['terrain_mask'].sum())
        self.terrain_cells += int(rows['terrain_mask'].size)
        n = len(rows['stamps_ns'])
        self.counts['frames_labelled'] += n
        for stamp, labels, mask in zip(rows['stamps_ns'], rows['proximity'],
                                       rows['proximity_mask']):
            self.labels_pub.publish(label_image(int(stamp), labels, mask))
        if n:
            with self.lock:
                self.pending_rows.append(rows)

    # ------------------------------------------------------------------ output
    def _flush(self, *, wait: bool = False) -> None:
        """Append the labelled frames to the dataset in a worker thread."""
        if self.flush_thread is not None and self.flush_thread.is_alive():
            if not wait:
                return  # the previous append is still running; the rows wait
            self.flush_thread.join()
        with self.lock:
            pending, self.pending_rows = self.pending_rows, []
        if not pending:
            return
        rows = {key: np.concatenate([r[key] for r in pending]) for key in pending[0]}
        self.flush_thread = threading.Thread(target=self._append, args=(rows,), daemon=False)
        self.flush_thread.start()
        if wait:
            self.flush_thread.join()

    def _append(self, rows: dict[str, np.ndarray]) -> None:
        p = self.params
        try:
            with DatasetWriter(self.dataset, distances_m=p.proximity.distances_m,
                               sensors=p.sensors, terrain_grid=p.terrain.grid,
                               image_hw=rows['frames'].shape[1:3], params=p.as_dict(),
                               append=True, views=self.view_names,
                               collision=None if self.dataset.exists() else True) as writer:
                if self.session_bag is None or self.session_bag >= len(writer.meta['bags']):
                    self.session_bag = writer.begin_bag(
                        f'live:{self.get_fully_qualified_name()}@{int(rows["stamps_ns"][0])}',
                        params=p.as_dict())
                writer.add_rows(self.session_bag, rows)
            self.counts['frames_written'] += len(rows['stamps_ns'])
            self.get_logger().info(f'appended {len(rows["stamps_ns"])} labelled frames to '
                                   f'{self.dataset} ({writer.n_frames} in all)')
        except (DatasetError, OSError) as exc:
            self.counts['flush_errors'] += 1
            self.get_logger().error(f'cannot append to {self.dataset}: {exc}; '
                                    f'{len(rows["stamps_ns"])} frames kept for the next try')
            with self.lock:
                self.pending_rows.insert(0, rows)

    def status(self) -> dict[str, Any]:
        """What labeller/status publishes."""
        labelled = max(self.counts['frames_labelled'], 1)
        return {
            'dataset': str(self.dataset), **self.counts, **self.buffer.all_counts(),
            'frames_waiting': len(self.buffer.frames),
            'views': list(self.view_names),
            'view_frames_buffered': [len(frames) for frames in self.buffer.views],
            'received': dict(self.received),
            'distances_m': list(self.params.proximity.distances_m),
            'sensors': self.params.sensors,
            'known_labels': self.known.tolist(),
            'obstacle_labels': self.obstacles.tolist(),
            'yield': (self.known / labelled).round(4).tolist(),
            'terrain_patch_yield': self.terrain_known / max(self.terrain_cells, 1),
            'dropped': {k: v for k, v in self.label_counts.items() if v},
        }

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    def _update_health(self, now_s: float) -> None:
        """/diagnostics: label yield, buffer fill, drops by cause."""
        s = self.status()
        self.health.drops.update({k: v for k, v in self.label_counts.items() if v})
        self.health.drops.update(messages_bad=s['messages_bad'])
        stamps = [stamp for stamp, _ in self.buffer.frames]
        fill = (max(stamps) - min(stamps)) / self.buffer.buffer_ns if len(stamps) > 1 else 0.0
        labelled = s['frames_labelled']
        level, message = OK, f'{labelled} frames labelled, {s["frames_written"]} written'
        if s['incompatible_qos']:
            level, message = WARN, f'{s["incompatible_qos"]} incompatible QoS events'
        if s['flush_errors']:
            level, message = ERROR, f'{s["flush_errors"]} dataset appends failed'
        self.health.section('labels').set(
            level, message, dataset=s['dataset'], frames_received=s['frames_received'],
            frames_labelled=labelled, frames_written=s['frames_written'],
            frames_waiting=s['frames_waiting'], buffer_fill=round(min(fill, 1.0), 3),
            label_yield=float(np.mean(s['yield'])) if labelled else 0.0,
            terrain_patch_yield=s['terrain_patch_yield'], flush_errors=s['flush_errors'])

    def finish(self) -> dict[str, Any]:
        """Label what is pending with the future there is, write it; final counters."""
        self._take(self.buffer.label(everything=True))
        self._flush(wait=True)
        self._flush(wait=True)  # rows put back by a failed first try get a second one
        final = self.status()
        self.get_logger().info(f'labeller finished: {json.dumps(final)}')
        return final


def unwritten_exit_code(node: Labeller) -> int:
    """1 when labelled frames could not be written (e.g. an unwritable dataset), else 0."""
    with node.lock:
        unwritten = sum(len(rows['stamps_ns']) for rows in node.pending_rows)
    if unwritten:
        print(f'labeller: {unwritten} labelled frames could not be written to '
              f'{node.dataset} ({node.counts["flush_errors"]} failed appends)', file=sys.stderr)
    return 1 if unwritten else 0


def label_image(stamp_ns: int, labels: np.ndarray, mask: np.ndarray) -> Image:
    """A frame's proximity labels [D, S] as a 32FC1 image: 1 obstacle, 0 free, NaN unknown.

    Its stamp is the labelled frame's (the camera frame's header stamp).
    """
    values = np.where(np.asarray(mask, bool), np.asarray(labels, np.float32), np.nan)
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
    msg.height, msg.width = int(values.shape[0]), int(values.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = '32FC1', 0, 4 * msg.width
    msg.data = np.ascontiguousarray(values, '<f4').tobytes()
    return msg


def main(args: list[str] | None = None) -> int:
    """Run the labeller until SIGINT/SIGTERM, then write what is labelled.

    Exits 1 when labelled frames could not be written (the reason is logged).
    """
    return run_node('labeller', Labeller, args=args, startup_errors=(DatasetError, ValueError),
                    finish=Labeller.finish, exit_code=unwritten_exit_code)


if __name__ == '__main__':
    sys.exit(main())
