"""`labeller` node: labels camera frames live, as soon as their future is known.

Subscribes to the recorder's sensor topics (sensor-data QoS, overridable through
QoSOverridingOptions), keeps the last `buffer_seconds` of odometry, ranges, IMU and
commands, and frames subsampled to `frame_rate_hz`. Every `label_period_s` it labels the
frames whose future is in the buffer (the newest odometry stamp is `label_horizon_s`
past them, or half the buffer when that is shorter) with the same core as
`ssl-robot label` (`ssl_robot.labelling.label_streams`), and every `flush_every_s` a
worker thread appends the labelled frames to the dataset (atomically, `DatasetWriter`).
Counts and yield go out as JSON on ``labeller/status``.

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

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
import numpy as np
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import CameraInfo, Image, Imu, Range
from std_msgs.msg import String

from ssl_robot.dataset import DatasetError, DatasetWriter
from ssl_robot.labelling import labelling_params, wrap_angle
from ssl_robot.labelling.params import absolute, DEFAULTS, STRING_ARRAY_DEFAULTS
from ssl_robot.labelling.streams import gather_views, label_streams, match_views, SensorStreams
from ssl_robot.msgconv import (image_to_rgb, imu_to_arrays, MessageError, odometry_to_pose2d,
                               range_reading, stamp_ns)
from ssl_robot.nodes._run import run_node

_DESCRIPTIONS = {
    'image_topic': 'camera topic (sensor_msgs/Image)',
    'camera_info_topic': 'camera intrinsics topic (sensor_msgs/CameraInfo)',
    'range_topics': 'proximity topics (sensor_msgs/Range), one per sensor',
    'odom_topic': 'odometry topic (nav_msgs/Odometry)', 'imu_topic': 'IMU topic',
    'cmd_vel_topic': 'commanded velocity (geometry_msgs/Twist), for wheel slip',
    'camera_xyz': 'camera position in base_link (m)',
    'camera_pitch': 'camera pitch, positive looking down (rad)',
    'label_distances': 'distances ahead (m) at which frames get proximity labels',
    'obstacle_range_threshold': 'Range below this (or -inf) means obstacle (m)',
    'frame_rate_hz': 'frames labelled per second (others skipped)',
    'pose_tolerance_x': 'tolerance on x of the pose at t\' (m)',
    'pose_tolerance_y': 'tolerance on y of the pose at t\' (m)',
    'pose_tolerance_yaw': 'tolerance on heading of the pose at t\' (rad)',
    'max_path_slack': 'path driven beyond d + tolerance that still counts (m)',
    'label_horizon_s': 'longest t\' - t searched (s); frames wait this long for labels',
    'range_match_tolerance_s': 'largest |reading stamp - t\'| used (s)',
    'odom_max_gap_s': 'no pose interpolation across longer odometry gaps (s)',
    'odom_max_jump_m': 'an odometry step larger than this is a reset (m)',
    'odom_max_jump_rad': 'an odometry turn larger than this is a reset (rad)',
    'odom_max_backstep_s': 'stamps going back further than this are a restart (s)',
    'terrain_grid': 'terrain patch grid [rows, cols] over the image',
    'terrain_window_s': 'IMU window of the roughness signal (s)',
    'terrain_hop_s': 'hop between roughness windows (s)',
    'terrain_band_hz': 'vibration band of vertical acceleration [low, high] (Hz)',
    'terrain_gyro_weight': 'weight of RMS roll/pitch rate in the signal (m/s^2 per rad/s)',
    'terrain_slip_weight': 'weight of wheel slip in the signal (m/s^2 per m/s)',
    'terrain_horizon_s': 'how far ahead (s) footprints are projected into a frame',
    'footprint_length_m': 'robot footprint length (m)',
    'footprint_width_m': 'robot footprint width (m)',
    'view_match_tolerance_s': 'largest |extra camera stamp - frame stamp| matched (s); a '
                              'view farther from its frame is masked',
    'extra_image_topics': 'image topics of extra cameras (sensor_msgs/Image, the main '
                          'camera\'s size): the views of a multi-view dataset',
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
                                   _describe(_DESCRIPTIONS[name]))
    if value.type_ == Parameter.Type.NOT_SET:
        node.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, list(default))])


class Labeller(Node):
    """Buffers sensor streams, labels frames whose future is known, appends to a dataset."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__('labeller', **node_kwargs)
        p = self.declare_parameter
        for key, default in DEFAULTS.items():
            p(key, default, _describe(_DESCRIPTIONS[key]))
        for key, default in STRING_ARRAY_DEFAULTS.items():
            _declare_string_array(self, key, default)
        p('dataset', 'data/live_dataset', _describe('dataset directory labels are appended to'))
        p('buffer_seconds', 30.0, _describe('seconds of sensor data kept (bounded memory)'))
        p('flush_every_s', 30.0, _describe('seconds between appends to the dataset'))
        p('status_period_s', 1.0, _describe('seconds between labeller/status messages'))
        p('label_period_s', 1.0, _describe('seconds between labelling passes'))
        p('queue_depth', 50, _describe('DDS history depth of each subscription'))
        gp = self.get_parameter
        self.params = labelling_params(
            {k: gp(k).value for k in (*DEFAULTS, *STRING_ARRAY_DEFAULTS)})
        self.view_names = [absolute(t) for t in self.params.view_topics]
        self.view_tolerance_ns = int(round(self.params.view_match_tolerance_s * 1e9))
        self.dataset = Path(gp('dataset').value).expanduser()
        self.buffer_ns = int(float(gp('buffer_seconds').value) * 1e9)
        horizon = max(self.params.proximity.horizon_s,
                      self.params.terrain.horizon_s + self.params.terrain.window_s)
        self.wait_ns = int(min(horizon, float(gp('buffer_seconds').value) / 2) * 1e9)
        self.period_ns = int(round(1e9 / max(self.params.frame_rate_hz, 1e-3)))
        self.counts: dict[str, int] = {
            'frames_received': 0, 'frames_skipped_rate': 0, 'frames_bad_encoding': 0,
            'frames_bad_size': 0, 'frames_labelled': 0, 'frames_written': 0,
            'messages_bad': 0, 'time_restarts': 0, 'incompatible_qos': 0, 'flush_errors': 0,
            'frames_dropped_buffer': 0, 'odom_out_of_order': 0, 'odom_duplicate': 0,
            'odom_jumps': 0, 'range_nan': 0, 'range_too_close': 0, 'range_nothing': 0,
            'views_bad_encoding': 0, 'views_bad_size': 0}
        for v in range(len(self.view_names)):
            self.counts.update({f'views_matched_{v}': 0, f'views_missing_{v}': 0})
        self.label_counts: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.known = np.zeros((len(self.params.proximity.distances_m),
                               len(self.params.sensors)), np.int64)
        self.obstacles = np.zeros_like(self.known)
        self.terrain_known = 0
        self.terrain_cells = 0
        self._reset_buffers()
        self.k_matrix: np.ndarray | None = None
        self.image_hw: tuple[int, int] | None = None
        self.pending_rows: list[dict[str, np.ndarray]] = []
        self.session_bag: int | None = None
        self.flush_thread: threading.Thread | None = None
        self.lock = threading.Lock()

        depth = int(gp('queue_depth').value)
        self._subscribe(Image, self.params.image_topic, self._on_image, depth)
        self._subscribe(CameraInfo, self.params.camera_info_topic, self._on_camera_info, depth)
        self._subscribe(Odometry, self.params.odom_topic, self._on_odom, depth)
        self._subscribe(Imu, self.params.imu_topic, self._on_imu, depth)
        self._subscribe(Twist, self.params.cmd_vel_topic, self._on_cmd, depth)
        for k, topic in enumerate(self.params.range_topics):
            self._subscribe(Range, topic, lambda msg, k=k: self._on_range(k, msg), depth)
        for v, topic in enumerate(self.params.view_topics):
            self._subscribe(Image, topic, lambda msg, v=v: self._on_view(v, msg), depth)
        self.status_pub = self.create_publisher(String, 'labeller/status', 10)
        self.create_timer(float(gp('label_period_s').value), self._label_ready)
        self.create_timer(float(gp('flush_every_s').value), self._flush)
        self.create_timer(float(gp('status_period_s').value), self._publish_status)
        self.get_logger().info(
            f'labelling {self.params.image_topic} at {self.params.frame_rate_hz} Hz into '
            f'{self.dataset}; frames wait {self.wait_ns / 1e9:.1f} s for their future'
            + (f'; views {", ".join(self.view_names)}' if self.view_names else ''))

    # ------------------------------------------------------------------ input
    def _reset_buffers(self) -> None:
        self.frames: list[tuple[int, np.ndarray]] = []
        self.slots: set[int] = set()
        self.newest_frame_ns: int | None = None
        self.views: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.params.view_topics]
        self.odom: list[tuple[int, tuple[float, float, float], float]] = []
        self.imu: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.ranges: list[list[tuple[int, float]]] = [[] for _ in self.params.range_topics]
        self.cmd: list[tuple[int, float]] = []
        self.newest_odom_ns: int | None = None

    def _subscribe(self, cls: type, topic: str, callback: Any, depth: int) -> None:
        qos = qos_profile_sensor_data
        qos = type(qos)(history=qos.history, depth=depth, reliability=qos.reliability,
                        durability=qos.durability)
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info, t=topic: self._on_incompatible(t, info))
        resolved = self.resolve_topic_name(topic)
        self.received[resolved] = 0

        def counted(msg: Any, t: str = resolved) -> None:
            self.received[t] += 1
            try:
                callback(msg)
            except (MessageError, ValueError, AttributeError, TypeError) as exc:
                self.counts['messages_bad'] += 1
                self.get_logger().warning(f'{t}: message dropped: {exc}',
                                          throttle_duration_sec=5.0)

        self.create_subscription(cls, topic, counted, qos, event_callbacks=events,
                                 qos_overriding_options=QoSOverridingOptions
                                 .with_default_policies())

    def _on_incompatible(self, topic: str, info: Any) -> None:
        self.counts['incompatible_qos'] += 1
        self.get_logger().error(f'{topic}: incompatible QoS with a publisher '
                                f'(policy {info.last_policy_kind}); nothing is received from it')

    def _on_image(self, msg: Image) -> None:
        self.counts['frames_received'] += 1
        stamp = stamp_ns(msg.header)
        self.newest_frame_ns = stamp if self.newest_frame_ns is None else max(
            self.newest_frame_ns, stamp)
        slot = stamp // self.period_ns
        if slot in self.slots:
            self.counts['frames_skipped_rate'] += 1
            return
        try:
            rgb = image_to_rgb(msg)
        except MessageError as exc:
            self.counts['frames_bad_encoding'] += 1
            self.get_logger().warning(f'frame dropped: {exc}', throttle_duration_sec=5.0)
            return
        if self.image_hw is None:
            self.image_hw = rgb.shape[:2]
            # View frames that came before the first frame are checked now.
            self.views = [[f for f in frames if self._view_fits(v, f[1])]
                          for v, frames in enumerate(self.views)]
        if rgb.shape[:2] != self.image_hw:
            self.counts['frames_bad_size'] += 1
            self.get_logger().warning(f'frame of size {rgb.shape[:2]} dropped: the dataset '
                                      f'holds {self.image_hw}', throttle_duration_sec=5.0)
            return
        self.slots.add(slot)
        self.frames.append((stamp, rgb))

    def _on_view(self, v: int, msg: Image) -> None:
        stamp = stamp_ns(msg.header)
        if not self._views_wanted(np.array([stamp], np.int64))[0]:
            return  # no frame will match it (frame_rate_hz): never decoded
        try:
            rgb = image_to_rgb(msg)
        except MessageError as exc:
            self.counts['views_bad_encoding'] += 1
            self.get_logger().warning(f'{self.view_names[v]}: view frame dropped: {exc}',
                                      throttle_duration_sec=5.0)
            return
        if self._view_fits(v, rgb):
            self.views[v].append((stamp, rgb))

    def _view_fits(self, v: int, rgb: np.ndarray) -> bool:
        """Whether a view frame has the main camera's size (counted and logged if not)."""
        if self.image_hw is None or rgb.shape[:2] == self.image_hw:
            return True
        self.counts['views_bad_size'] += 1
        self.get_logger().warning(
            f'{self.view_names[v]}: view frame of size {rgb.shape[:2]} dropped: views must '
            f'have the main camera\'s size {self.image_hw} (they are not resized)',
            throttle_duration_sec=5.0)
        return False

    def _views_wanted(self, stamps: np.ndarray) -> np.ndarray:
        """Which view stamps a frame may still be matched to.

        Those within the tolerance of a waiting frame, and those a frame on its way may
        match: not older than the newest frame, with a frame slot within the tolerance
        still free (a slot keeps only its first frame).
        """
        tol = self.view_tolerance_ns
        waiting = np.array([f[0] for f in self.frames], np.int64)
        near = match_views(stamps, waiting, tol) >= 0
        newest = self.newest_frame_ns
        to_come = np.array([(newest is None or s >= newest - tol) and self._free_slot_near(s)
                            for s in stamps.tolist()], bool)
        return near | to_come

    def _free_slot_near(self, stamp: int) -> bool:
        """Whether a frame within the view tolerance of `stamp` could still be kept."""
        first = (stamp - self.view_tolerance_ns) // self.period_ns
        last = (stamp + self.view_tolerance_ns) // self.period_ns
        return any(slot not in self.slots for slot in range(first, last + 1))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, np.float64).reshape(3, 3)
        if k[0, 0] > 0 and k[1, 1] > 0:
            self.k_matrix = k

    def _on_odom(self, msg: Odometry) -> None:
        stamp = stamp_ns(msg.header)
        limit = int(self.params.odom_max_backstep_s * 1e9)
        if self.newest_odom_ns is not None and stamp < self.newest_odom_ns - limit:
            # Time went back (a simulator or robot restart): label what is pending with
            # what the buffer holds, then start over; the two timelines never mix.
            self.counts['time_restarts'] += 1
            self.get_logger().warning(
                f'odometry stamp went back {(self.newest_odom_ns - stamp) / 1e9:.1f} s: '
                f'restart; labelling {len(self.frames)} pending frames and clearing the buffer')
            self._label(everything=True)
            self._reset_buffers()
        pose = odometry_to_pose2d(msg)
        if self.odom:
            last_stamp, last_pose, _ = self.odom[-1]
            if stamp == last_stamp:
                self.counts['odom_duplicate'] += 1
            elif stamp < last_stamp:
                self.counts['odom_out_of_order'] += 1
            step = np.hypot(pose[0] - last_pose[0], pose[1] - last_pose[1])
            turn = abs(wrap_angle(pose[2] - last_pose[2]))
            if step > self.params.odom_max_jump_m or turn > self.params.odom_max_jump_rad:
                self.counts['odom_jumps'] += 1
                self.get_logger().warning(
                    f'odometry jumped {step:.2f} m / {turn:.2f} rad: a reset, never bridged',
                    throttle_duration_sec=5.0)
        self.odom.append((stamp, pose, float(msg.twist.twist.linear.x)))
        self.newest_odom_ns = stamp if self.newest_odom_ns is None else max(
            self.newest_odom_ns, stamp)

    def _on_imu(self, msg: Imu) -> None:
        accel, gyro = imu_to_arrays(msg)
        self.imu.append((stamp_ns(msg.header), accel, gyro))

    def _on_range(self, k: int, msg: Range) -> None:
        value = range_reading(msg)
        if np.isnan(value):
            self.counts['range_nan'] += 1
        elif value == -np.inf:
            self.counts['range_too_close'] += 1
        elif value == np.inf:
            self.counts['range_nothing'] += 1
        self.ranges[k].append((stamp_ns(msg.header), value))

    def _on_cmd(self, msg: Twist) -> None:
        # Twist has no header: the node clock (sim time under use_sim_time) stamps it.
        self.cmd.append((self.get_clock().now().nanoseconds, float(msg.linear.x)))

    # ------------------------------------------------------------------ labelling
    def _streams(self, frames: list[tuple[int, np.ndarray]]) -> SensorStreams:
        h, w = self.image_hw or (0, 0)
        stamps = np.array([f[0] for f in frames], np.int64)
        views, views_mask = None, None
        if self.views:
            views, views_mask = gather_views(stamps, self.views, self.view_tolerance_ns, (h, w))
        return SensorStreams(
            frame_stamps=stamps,
            frames=np.stack([f[1] for f in frames]) if frames else np.zeros((0, h, w, 3),
                                                                             np.uint8),
            k_matrix=self.k_matrix, image_hw=self.image_hw,
            range_stamps=[np.array([r[0] for r in rs], np.int64) for rs in self.ranges],
            ranges=[np.array([r[1] for r in rs], np.float64) for rs in self.ranges],
            odom_stamps=np.array([o[0] for o in self.odom], np.int64),
            odom_poses=np.array([o[1] for o in self.odom], np.float64).reshape(-1, 3),
            odom_speed=np.array([o[2] for o in self.odom], np.float64),
            imu_stamps=np.array([i[0] for i in self.imu], np.int64),
            imu_accel=np.array([i[1] for i in self.imu], np.float64).reshape(-1, 3),
            imu_gyro=np.array([i[2] for i in self.imu], np.float64).reshape(-1, 3),
            cmd_stamps=np.array([c[0] for c in self.cmd], np.int64),
            cmd_speed=np.array([c[1] for c in self.cmd], np.float64),
            views=views, views_mask=views_mask)

    def _label_ready(self) -> None:
        self._label(everything=False)

    def _label(self, *, everything: bool) -> None:
        """Label the frames whose future is known (all pending ones when `everything`)."""
        if self.newest_odom_ns is None or not self.frames:
            self._prune()
            return
        # A frame's future is known when every stream seen so far has passed t + wait (the
        # executor may deliver one topic's backlog before another's).
        newest = [self.newest_odom_ns]
        newest += [max(r[0] for r in rs) for rs in self.ranges if rs]
        newest += [max(i[0] for i in self.imu)] if self.imu else []
        # A stream silent for half the buffer is dead, and must not hold labelling up.
        alive = [t for t in newest if t >= self.newest_odom_ns - self.buffer_ns // 2]
        cutoff = min(alive) - self.wait_ns
        ready = [f for f in self.frames if everything or f[0] <= cutoff]
        if not ready:
            self._prune()
            return
        result = label_streams(self._streams(ready), self.params)
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
        if n:
            with self.lock:
                self.pending_rows.append(rows)
        ready_stamps = {f[0] for f in ready}
        self.frames = [f for f in self.frames if f[0] not in ready_stamps]
        self._prune()

    def _prune(self) -> None:
        """Keep the buffer bounded: `buffer_seconds` behind the newest odometry."""
        if self.newest_odom_ns is None:
            return
        keep_from = self.newest_odom_ns - self.buffer_ns
        before = len(self.frames)
        self.frames = [f for f in self.frames if f[0] >= keep_from]
        self.counts['frames_dropped_buffer'] += before - len(self.frames)
        oldest_frame = min((f[0] for f in self.frames), default=keep_from)
        # Data just before the oldest waiting frame is still needed to interpolate at it.
        keep_data = min(keep_from, oldest_frame - int(2e9))
        self.odom = [o for o in self.odom if o[0] >= keep_data]
        self.imu = [i for i in self.imu if i[0] >= keep_data]
        self.cmd = [c for c in self.cmd if c[0] >= keep_data]
        self.ranges = [[r for r in rs if r[0] >= keep_data] for rs in self.ranges]
        self.slots = {s for s in self.slots if s * self.period_ns >= keep_data}
        for v, frames in enumerate(self.views):
            wanted = self._views_wanted(np.array([f[0] for f in frames], np.int64))
            self.views[v] = [f for f, keep in zip(frames, wanted) if keep and f[0] >= keep_from]

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
                               append=True, views=self.view_names) as writer:
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
            'dataset': str(self.dataset), **self.counts,
            'frames_waiting': len(self.frames),
            'views': list(self.view_names),
            'view_frames_buffered': [len(frames) for frames in self.views],
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

    def finish(self) -> dict[str, Any]:
        """Label what is pending with the future there is, write it; final counters."""
        self._label(everything=True)
        self._flush(wait=True)
        self._flush(wait=True)  # rows put back by a failed first try get a second one
        final = self.status()
        self.get_logger().info(f'labeller finished: {json.dumps(final)}')
        return final


def main(args: list[str] | None = None) -> int:
    """Run the labeller until SIGINT/SIGTERM, then write what is labelled."""
    return run_node('labeller', Labeller, args=args, startup_errors=(DatasetError, ValueError),
                    finish=Labeller.finish)


if __name__ == '__main__':
    sys.exit(main())
