"""Lifecycle node `inference`: camera frames -> predictions of an exported ONNX model.

configure loads and checks the model (ERROR/FAILURE with a logged reason when it is
missing, corrupt or of the wrong kind; the node stays up), activate subscribes to the
camera with depth 1 (the newest frame wins when the model is slower than the camera),
deactivate unsubscribes. Every output carries the header of the frame it came from:

- obstacle: `obstacle/grid` (nav_msgs/OccupancyGrid in base_link, one cell per labelled
  distance x sensor, 0-100, -1 unknown; stamp of the frame) and `obstacle/probabilities`
  (sensor_msgs/Image 32FC1, D rows x S columns, the frame's header);
- terrain: `terrain/cost` (32FC1 image of the camera's size, the grid upsampled) and
  `terrain/grid` (nav_msgs/OccupancyGrid in base_link: the ground the camera sees, each
  cell the cost of the patch it projects into, 0-100 with 100 at `terrain_cost_max`, -1
  unseen; needs CameraInfo on `camera_info_topic` and the extrinsics `camera_xyz`,
  `camera_pitch`); a model with a type output also publishes `terrain/type`
  (sensor_msgs/Image mono8 of the camera's size, each pixel its patch's most probable
  terrain type id, the frame's header);
- tcn (and vision 'encoder' models): `embedding` (32FC1 image 1 x E);
- collision: `collision/probability` (32FC1 image 1 x 1: P(collision within the model's
  `horizon_s` if the robot drives on), the frame's header).

With `debug_image` on (off by default) it also publishes what the model sees:
`debug/image` (rgb8, the input frame with the obstacle probabilities per sensor and
distance, or the terrain cost per patch, drawn over it by `ssl_robot.overlay`; the
frame's header) and, for obstacle models, `debug/obstacle_markers`
(visualization_msgs/MarkerArray: one cube per predicted cell of `obstacle/grid` in
base_link, green free to red obstacle, its height the probability).

Setting the `model_path` parameter while configured hot-swaps the model. The new file must
be a regular file (no device, no FIFO) of at most `max_model_bytes`, inside `models_dir`
when one is set, and the model must be of the running one's kind and input size and give
finite outputs on the last camera frame (a smoke inference) before it takes effect;
otherwise the swap is rejected, logged, counted in the node's stats and the old model
kept. `models_dir`, `max_model_bytes` and `expected_kind` are read-only after start.
NaN/inf outputs on a frame are a WARN and a counted drop, never a silent all-unknown grid.

`~/status` (std_msgs/String, JSON, reliable and transient local) says which model the
node uses and in which lifecycle state, on every load, on the first prediction each model
makes and every second: what the online trainer waits for before it calls a hand-over
done. /diagnostics (about 1 Hz): camera rate against `expected_rates_hz`, drops
by cause, latency median/p99, the onnxruntime providers in use (WARN when not the
requested first one) and the model's id and metadata.

Self-grading (obstacle models): the predictions made for frame t are scored against the
labeller's labels of t (`labeller/labels`) when they arrive, in a rolling window per model
(`ssl_robot.grading`): live ROC-AUC overall and per distance with its sample count, in the
diagnostics ('inference: self-grading', WARN below `grade_floor_auc`) and in `~/status`;
each hot-swap logs the outgoing model's grade, and the new model's is logged against it
once it has `grade_min_samples` labelled cells.
"""
from __future__ import annotations

import array
import json
import sys
from typing import Any

import cv2
from geometry_msgs.msg import Pose
from nav_msgs.msg import OccupancyGrid
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from ssl_robot.diagnostics import (
    model_id,
    NodeHealth,
    OK,
    parse_expected_rates,
    provider_check,
    WARN,
)
from ssl_robot.errors import ConfigError
from ssl_robot.grading import Grade, PerceptionGrader
from ssl_robot.inference import (
    check_model_file,
    default_lateral_offsets,
    FrameSums,
    InferenceError,
    MAX_MODEL_BYTES,
    obstacle_grid_data,
    obstacle_grid_layout,
    OnnxRobotModel,
    patch_image,
    terrain_grid_layout,
)
from ssl_robot.msgconv import image_to_rgb, MessageError
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._memory import keep_freed_buffers
from ssl_robot.nodes._qos import CameraShare, FollowingSubscription
from ssl_robot.nodes._run import run_node
from ssl_robot.nodes._throttle import LogThrottle
from ssl_robot.overlay import (
    obstacle_cell_centres,
    obstacle_overlay,
    probability_colour,
    terrain_overlay,
)

#: Accepted camera encodings (converted explicitly by msgconv.image_to_rgb).
ENCODINGS = ('rgb8', 'bgr8', 'mono8')


class InferenceNode(LifecycleNode):
    """Runs an ONNX robot model on camera frames (see the module docstring)."""

    def __init__(self, node_name: str = 'inference', *, camera_share: CameraShare | None = None,
                 frame_sums: FrameSums | None = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._camera_share = camera_share  # one camera subscription for the process's nodes
        self._frame_sums = frame_sums  # and each frame resized once for their models
        self._declare('model_path', '', 'exported .onnx model (ssl-robot export); setting it '
                      'while configured hot-swaps the model')
        self._declare('providers', ['CPUExecutionProvider'],
                      'onnxruntime execution providers in order of preference')
        self._declare('intra_op_threads', 1, 'onnxruntime intra-op threads (0: default)')
        self._declare('expected_kind', '', "accept only this model kind ('' any): "
                      'obstacle, terrain or tcn', read_only=True)
        self._declare('models_dir', '', 'model_path must lie inside this directory '
                      "('' anywhere); set it on a fleet", read_only=True)
        self._declare('max_model_bytes', MAX_MODEL_BYTES, 'largest model file loaded',
                      read_only=True)
        self._declare('image_topic', 'image_raw', 'camera topic (sensor_msgs/Image)')
        self._declare('base_frame', 'base_link', 'frame of the obstacle OccupancyGrid')
        self._declare('sensor_lateral_offsets_m', [0.035, 0.0, -0.035],
                      'lateral offset (y, left +) of each proximity sensor, in the '
                      "model's sensor order; other lengths: evenly spread")
        self._declare('sensor_yaws_rad', [0.35, 0.0, -0.35],
                      "heading of each proximity sensor's beam (left +), in the model's "
                      'sensor order; other lengths: all straight ahead')
        self._declare('grid_x_offset_m', 0.06, 'forward offset of the proximity sensors '
                      'from base_frame')
        self._declare('grid_beam_range_m', 0.06, "where along its beam a sensor's grid "
                      "cell lies (about half the labeller's obstacle_range_threshold)")
        self._declare('camera_info_topic', 'camera_info', 'camera intrinsics '
                      '(sensor_msgs/CameraInfo) that place the terrain cost on the ground')
        self._declare('camera_xyz', [0.10, 0.0, 0.12], 'camera position in base_link (m)')
        self._declare('camera_pitch', 0.35, 'camera pitch, positive looking down (rad)')
        self._declare('terrain_grid_resolution_m', 0.02, 'cell size of terrain/grid (m)')
        self._declare('terrain_grid_range_m', 1.0, 'how far ahead and to each side '
                      'terrain/grid reaches (m)')
        self._declare('terrain_cost_max', 0.0, 'terrain cost shown as 100 in terrain/grid '
                      "(0: the model's training mean + 2 standard deviations)")
        self._declare('camera_hw', [0, 0], 'expected camera [H, W]; configure fails when its '
                      "aspect ratio differs from the model's ([0, 0]: not checked)")
        self._declare('debug_image', False, 'also publish debug/image (the frame with the '
                      'predictions drawn over it) and debug/obstacle_markers (MarkerArray)')
        self._declare('autostart', False, 'configure and activate by itself at start (for '
                      '`ros2 run`; launch files drive the lifecycle instead)', read_only=True)
        self._declare('executor', 'events', "rclpy executor of this process: events "
                      "(rclpy's EventsExecutor, its wait loop in C++: a third less CPU per node "
                      'at 640x480, benchmarks/bench_inference.py) or single_threaded (the '
                      "Python SingleThreadedExecutor)", read_only=True)
        if self._param('executor') not in ('single_threaded', 'events'):
            raise ConfigError(f'executor must be single_threaded or events, not '
                              f'{self._param("executor")!r}')
        self.model: OnnxRobotModel | None = None
        self._sub = None
        self._info_sub = None
        self._camera_info: tuple[np.ndarray, tuple[int, int]] | None = None
        # (what it was made for, layout): one camera, one layout; remade when it changes.
        self._terrain_layout_for: tuple[Any, Any] = (None, None)
        self._pubs: dict[str, Any] = {}
        self._throttle = LogThrottle(5.0)  # per-frame warnings (rclpy's throttle is costly)
        self.stats = {'frames': 0, 'predicted': 0, 'dropped': {}, 'swaps': 0,
                      'swaps_rejected': 0, 'published': {}}
        self._declare('qos_policy', 'auto', 'reliability of the camera subscription: auto '
                      '(follow the publishers, checked again when they appear), reliable '
                      'or best_effort')
        self._declare('grade_labels_topic', 'labeller/labels', "the labeller's per-frame "
                      'proximity labels (32FC1 D x S) that predictions are graded against')
        self._declare('grade_floor_auc', 0.6, 'diagnostics WARN when the live AUC is below')
        self._declare('grade_min_samples', 50, 'labelled cells before the AUC is judged')
        self._declare('grade_window_frames', 1000, 'labelled frames in the rolling window')
        self._declare('expected_rates_hz', [''], "nominal input rates, 'TOPIC=HZ' each "
                      '(generic names); diagnostics WARN below 70 % (none: only when silent)')
        self._expected_hz = parse_expected_rates(list(self._param('expected_rates_hz')))
        self._last_rgb: np.ndarray | None = None
        self._lifecycle = 'unconfigured'
        self._model_id = ''
        self._predicted_with_model = 0
        self._status_pub = self.create_publisher(String, '~/status', QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.health = NodeHealth('inference')
        self.grader = PerceptionGrader(
            window_frames=int(self._param('grade_window_frames')),
            floor_auc=float(self._param('grade_floor_auc')),
            min_samples=int(self._param('grade_min_samples')))
        self._swapped_from: Grade | None = None  # the outgoing model's grade at a swap
        self.create_subscription(Image, self._param('grade_labels_topic'), self._on_labels,
                                 QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._autostart_timer = None
        if self._param('autostart'):
            # Steady: under use_sim_time a node must not wait for /clock to come up.
            self._autostart_timer = self.create_timer(
                0.1, self._autostart, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _autostart(self) -> None:
        """Configure and activate once, from the executor (`autostart`).

        Configure and activate once, from the executor (`autostart`); a failed configure
        leaves the node unconfigured, with the reason logged, like a manual one.
        """
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def _declare(self, name: str, default: Any, description: str, *,
                 read_only: bool = False) -> None:
        self.declare_parameter(name, default, ParameterDescriptor(
            description=description, read_only=read_only))

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ---------------------------------------------------------------- model
    def _load(self, path: str) -> OnnxRobotModel:
        check_model_file(path, models_dir=self._param('models_dir'),
                         max_bytes=int(self._param('max_model_bytes')))
        model = OnnxRobotModel(path, providers=list(self._param('providers')),
                               expected_kind=self._param('expected_kind'),
                               intra_op_threads=int(self._param('intra_op_threads')),
                               max_bytes=int(self._param('max_model_bytes')))
        cam = list(self._param('camera_hw'))
        if len(cam) == 2 and min(cam) > 0 and model.aspect_mismatch(cam[0], cam[1]):
            raise InferenceError(f'{path}: model input {list(model.input_hw)} does not match '
                                 f'the camera {cam} (aspect ratio)')
        return model

    def _use(self, model: OnnxRobotModel) -> None:
        self.model = model
        self._layout = None
        if model.kind == 'obstacle':
            offsets = list(self._param('sensor_lateral_offsets_m'))
            if len(offsets) != len(model.meta['sensors']):
                offsets = default_lateral_offsets(len(model.meta['sensors']))
                self.get_logger().warning(
                    f'sensor_lateral_offsets_m has {len(offsets)} values for '
                    f'{len(model.meta["sensors"])} sensors; spreading them evenly')
            yaws = list(self._param('sensor_yaws_rad'))
            if len(yaws) != len(offsets):
                self.get_logger().warning(
                    f'sensor_yaws_rad has {len(yaws)} values for {len(offsets)} sensors; '
                    'taking every beam as straight ahead')
                yaws = [0.0] * len(offsets)
            self._layout = obstacle_grid_layout(
                model.meta['distances_m'], offsets, yaws_rad=yaws,
                x_offset_m=float(self._param('grid_x_offset_m')),
                beam_range_m=float(self._param('grid_beam_range_m')))
        self.get_logger().info(
            f'loaded {model.kind} model {model.path} (input {list(model.input_hw)}, outputs '
            f'{model.meta["output_names"]}); onnxruntime providers in use: {model.providers}')
        self._model_id = model_id(model.path)
        self._predicted_with_model = 0
        self._publish_status()

    # ---------------------------------------------------------------- health
    def _status(self) -> dict[str, Any]:
        model = self.model
        return {'state': self._lifecycle, 'model_path': str(model.path.resolve()) if model
                else '', 'model_id': self._model_id if model else '',
                'kind': model.kind if model else '', 'providers': model.providers if model
                else [], 'predicted_with_model': self._predicted_with_model,
                'predicted': self.stats['predicted'], 'frames': self.stats['frames']}

    def _publish_status(self) -> None:
        status = self._status()
        if self.model is not None and self.model.kind == 'obstacle':
            status['grade'] = self.grader.grade(self._model_id).as_dict()
        self._status_pub.publish(String(data=json.dumps(status)))

    def _on_labels(self, msg: Image) -> None:
        """Grade the prediction of the labelled frame (labels: 1, 0, NaN unknown)."""
        if msg.encoding != '32FC1' or len(msg.data) != 4 * msg.height * msg.width:
            return
        values = np.frombuffer(bytes(msg.data), '<f4').reshape(msg.height, msg.width)
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.grader.labelled(stamp, np.nan_to_num(values), np.isfinite(values))

    def _update_grade(self) -> None:
        if self.model is None or self.model.kind != 'obstacle':
            return
        grade = self.grader.grade(self._model_id)
        per_distance = {f'auc at {d:g} m': a for d, (a, _) in zip(
            self.model.meta['distances_m'], grade.per_distance)}
        self.health.section('self-grading').set(
            grade.level, grade.message, model_id=grade.model_id, auc=grade.auc,
            samples=grade.samples, frames=grade.frames, floor_auc=self.grader.floor_auc,
            labels_matched=self.grader.labels_matched,
            labels_unmatched=self.grader.labels_unmatched, **per_distance)
        old = self._swapped_from
        if old is not None and grade.samples >= self.grader.min_samples:
            self._swapped_from = None
            log = self.get_logger().warning if grade.auc < old.auc else self.get_logger().info
            log(f'model {grade.model_id} after the swap: AUC {grade.auc:.3f} over '
                f'{grade.samples} labelled cells; {old.model_id} had {old.auc:.3f} over '
                f'{old.samples}')

    def _update_health(self, now_s: float) -> None:
        """Refresh the model section of the diagnostics; republish ~/status."""
        sec = self.health.section('model')
        model = self.model
        if model is None:
            sec.set(WARN, f'no model loaded ({self._lifecycle})', state=self._lifecycle)
        else:
            requested = list(self._param('providers'))
            level, text = provider_check(requested, model.providers)
            sec.set(level, f'{model.kind} model {self._model_id}, {self._lifecycle}; {text}',
                    state=self._lifecycle, model_path=str(model.path), model_id=self._model_id,
                    kind=model.kind, input_hw=list(model.input_hw),
                    providers_requested=requested, providers_in_use=model.providers,
                    predicted_with_model=self._predicted_with_model,
                    **{f'meta {k}': v for k, v in model.meta.items()
                       if k in ('distances_m', 'sensors', 'grid', 'embed_dim', 'horizon_s')})
        self._update_grade()
        self.health.section('frames').set(
            OK, f'{self.stats["predicted"]} of {self.stats["frames"]} frames predicted',
            frames=self.stats['frames'], predicted=self.stats['predicted'],
            swaps=self.stats['swaps'], swaps_rejected=self.stats['swaps_rejected'],
            **{f'published {pub.topic_name}': self.stats['published'].get(key, 0)
               for key, pub in self._pubs.items()})
        self._publish_status()

    def _swap_candidate(self, path: str) -> OnnxRobotModel:
        """Load `path` and check it may replace the running model (see the docstring)."""
        model = self._load(path)
        old = self.model
        if model.kind != old.kind:
            raise InferenceError(f'{path}: a {model.kind} model cannot replace the running '
                                 f'{old.kind} model')
        if model.input_hw != old.input_hw:
            raise InferenceError(f'{path}: input {list(model.input_hw)} differs from the '
                                 f"running model's {list(old.input_hw)}")
        model.smoke_test(self._last_rgb)
        return model

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        for p in params:
            if p.name != 'model_path':
                continue
            if self.model is None:  # not configured: configure loads it; check the file
                try:
                    check_model_file(p.value, models_dir=self._param('models_dir'),
                                     max_bytes=int(self._param('max_model_bytes')))
                except InferenceError as exc:
                    self.get_logger().error(f'model_path rejected: {exc}')
                    return SetParametersResult(successful=False, reason=str(exc))
                continue
            try:
                model = self._swap_candidate(p.value)
            except InferenceError as exc:
                self.stats['swaps_rejected'] += 1
                self.get_logger().error(f'hot-swap rejected (rolled back), keeping '
                                        f'{self.model.path}: {exc}')
                return SetParametersResult(successful=False, reason=str(exc))
            old = self.grader.grade(self._model_id)
            self.get_logger().info(f'hot-swap: outgoing model {self._model_id} graded '
                                   f'{old.message}')
            self._swapped_from = old
            self._use(model)
            self.stats['swaps'] += 1
            self.get_logger().info(f'hot-swapped model to {p.value} (swap {self.stats["swaps"]})')
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        path = self._param('model_path')
        try:
            model = self._load(path)
        except InferenceError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self._use(model)
        qos = QoSProfile(depth=10)
        self._pubs = {
            'grid': self.create_lifecycle_publisher(OccupancyGrid, 'obstacle/grid', qos),
            'probs': self.create_lifecycle_publisher(Image, 'obstacle/probabilities', qos),
            'terrain': self.create_lifecycle_publisher(Image, 'terrain/cost', qos),
            'terrain_type': self.create_lifecycle_publisher(Image, 'terrain/type', qos),
            'terrain_grid': self.create_lifecycle_publisher(OccupancyGrid, 'terrain/grid',
                                                            qos),
            'embedding': self.create_lifecycle_publisher(Image, 'embedding', qos),
            'collision': self.create_lifecycle_publisher(Image, 'collision/probability', qos),
        }
        if self._param('debug_image'):
            self._pubs['debug_image'] = self.create_lifecycle_publisher(Image, 'debug/image',
                                                                        qos)
            self._pubs['markers'] = self.create_lifecycle_publisher(
                MarkerArray, 'debug/obstacle_markers', qos)
        self._lifecycle = 'inactive'
        self._publish_status()
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Depth 1: when inference is slower than the camera, the newest frame wins.
        qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                         durability=qos_profile_sensor_data.durability)
        subscribe = self._camera_share.join if self._camera_share else FollowingSubscription
        self._sub = subscribe(
            self, Image, self._param('image_topic'), self._on_image, qos=qos,
            policy=self._param('qos_policy'),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible))
        if self.model.kind == 'terrain':
            self._info_sub = self.create_subscription(
                CameraInfo, self._param('camera_info_topic'), self._on_camera_info,
                qos_profile_sensor_data)
        self.get_logger().info(f'active: {self._param("image_topic")} -> predictions')
        expected = {self.resolve_topic_name(t): hz for t, hz in self._expected_hz.items()}
        self.health.watch_input(self._sub.topic_name,
                                expected_hz=expected.get(self._sub.topic_name, 0.0))
        self._lifecycle = 'active'
        self._publish_status()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._sub is not None:
            self._sub.destroy()
            self._sub = None
        if self._info_sub is not None:
            self.destroy_subscription(self._info_sub)
            self._info_sub = None
        self._log_stats()
        self.health.inputs.clear()
        self._lifecycle = 'inactive'
        self._publish_status()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self.model = None
        self._lifecycle = 'unconfigured'
        self._publish_status()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._sub is not None:
            self._sub.destroy()
            self._sub = None
        self._log_stats()
        return super().on_shutdown(state)

    def _on_incompatible(self, event: Any) -> None:
        self.get_logger().error(f'incompatible QoS on {self._param("image_topic")}: policy '
                                f'{event.last_policy_kind}, {event.total_count} so far')

    # ---------------------------------------------------------------- frames
    def _drop(self, reason: str, detail: str) -> None:
        dropped = self.stats['dropped']
        dropped[reason] = dropped.get(reason, 0) + 1
        self.health.dropped(reason)
        if self._throttle(f'dropped {reason}'):
            self.get_logger().warning(f'dropped frame ({reason}, {dropped[reason]} so far): '
                                      f'{detail}')

    def _on_image(self, msg: Image) -> None:
        self.stats['frames'] += 1
        received_s = self.diagnostics.now_s()
        if self._sub is not None:
            self.health.arrived(self._sub.topic_name, received_s)
        model = self.model
        if model is None:
            self._drop('no_model', 'no model loaded')
            return
        if msg.encoding not in ENCODINGS:
            self._drop('encoding', f'encoding {msg.encoding!r} (accepted: {", ".join(ENCODINGS)})')
            return
        try:
            rgb = image_to_rgb(msg)
        except MessageError as exc:
            self._drop('malformed', str(exc))
            return
        if model.aspect_mismatch(rgb.shape[0], rgb.shape[1]):
            self._drop('aspect', f'frame {rgb.shape[1]}x{rgb.shape[0]} vs model input '
                       f'{model.input_hw[1]}x{model.input_hw[0]}')
            return
        try:
            prediction = model.predict(rgb, self._frame_sums)
            values = prediction.values
        except Exception as exc:  # onnxruntime's own error types; never crash the node
            self._drop('inference_error', f'{type(exc).__name__}: {exc}')
            return
        if not np.isfinite(values).all():
            self._drop('non_finite', f'{model.path} output NaN/inf on this frame; nothing '
                       'published')
            return
        self._last_rgb = rgb  # the stored frame a hot-swap's smoke inference runs on
        self.stats['predicted'] += 1
        self._predicted_with_model += 1
        self.health.latency.add(self.diagnostics.now_s() - received_s)
        if model.kind == 'obstacle':
            self._publish_obstacle(msg.header, values)
        elif model.kind == 'terrain':
            self._publish_terrain(msg.header, rgb.shape[:2], prediction.outputs)
        elif model.kind == 'collision':
            if self._listened('collision'):
                self._publish('collision', float_image(msg.header, values.reshape(1, 1)))
        elif self._listened('embedding'):
            self._publish('embedding', float_image(msg.header, values.reshape(1, -1)))
        if 'debug_image' in self._pubs and model.kind in ('obstacle', 'terrain'):
            self._publish_debug(msg.header, rgb, model.kind, values)
        if self._predicted_with_model == 1:  # the first prediction of this model is out
            self._publish_status()

    def _publish(self, key: str, msg: Any) -> None:
        """Publish a per-frame output, counted per topic (diagnostics: `published TOPIC`)."""
        self._pubs[key].publish(msg)
        published = self.stats['published']
        published[key] = published.get(key, 0) + 1

    def _listened(self, key: str) -> bool:
        """Whether output `key` has subscribers: outputs nobody takes are not built.

        At 640x480 a terrain cost image is 1.2 MB to resize, copy and publish, a type
        image 0.3 MB, a debug image 0.9 MB, at the camera's rate (a recorder or rviz
        subscribing makes them wanted again; DDS would drop them unmatched anyway).
        """
        return self._pubs[key].get_subscription_count() > 0

    def _publish_debug(self, header: Any, rgb: np.ndarray, kind: str, values: np.ndarray
                       ) -> None:
        """The frame with the predictions drawn (same header), and obstacle markers."""
        if self._listened('debug_image'):
            drawn = obstacle_overlay(rgb, values) if kind == 'obstacle' else terrain_overlay(
                rgb, values)
            self._publish('debug_image', rgb_image(header, drawn))
        if kind == 'obstacle' and self._layout is not None and self._listened('markers'):
            self._publish('markers', obstacle_markers(
                header, self._param('base_frame'), self._layout.resolution,
                obstacle_cell_centres(self._layout), values))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = (np.asarray(msg.k, np.float64).reshape(3, 3),
                             (int(msg.height), int(msg.width)))

    def _terrain_layout(self, image_hw: tuple[int, int]) -> Any:
        """The terrain/grid layout of frames of `image_hw` (None: no CameraInfo, or blind)."""
        if self._camera_info is None:
            if self._throttle('no camera info', period_s=10.0):
                self.get_logger().warning(
                    f'no CameraInfo on {self._param("camera_info_topic")} yet: terrain/grid '
                    'not published')
            return None
        k, (info_h, info_w) = self._camera_info
        key = (k.tobytes(), info_h, info_w, image_hw, tuple(self.model.meta['grid']))
        made_for, layout = self._terrain_layout_for
        if key != made_for:
            scaled = k.copy()
            if info_h and info_w:  # intrinsics of the frames' size
                scaled[0] *= image_hw[1] / info_w
                scaled[1] *= image_hw[0] / info_h
            try:
                layout = terrain_grid_layout(
                    scaled, image_hw, self.model.meta['grid'],
                    camera_xyz=list(self._param('camera_xyz')),
                    camera_pitch=float(self._param('camera_pitch')),
                    resolution_m=float(self._param('terrain_grid_resolution_m')),
                    range_m=float(self._param('terrain_grid_range_m')))
            except ValueError as exc:
                self.get_logger().error(f'terrain/grid not published: {exc}')
                layout = None
            self._terrain_layout_for = (key, layout)
        return layout

    def _publish_terrain(self, header: Any, image_hw: tuple[int, int],
                         outputs: dict[str, np.ndarray]) -> None:
        """terrain/cost, terrain/type (type models) and terrain/grid of one frame."""
        cost = outputs['terrain'].astype(np.float32)
        if self._listened('terrain'):
            self._publish('terrain', float_image(header, cv2.resize(
                cost, (image_hw[1], image_hw[0]), interpolation=cv2.INTER_LINEAR)))
        if 'terrain_type_prob' in outputs and self._listened('terrain_type'):
            ids = outputs['terrain_type_prob'].argmax(axis=-1).astype(np.uint8)
            self._publish('terrain_type', mono8_image(header, patch_image(ids, image_hw)))
        if not self._listened('terrain_grid'):
            return
        layout = self._terrain_layout(image_hw)
        if layout is not None:
            top = float(self._param('terrain_cost_max')) or (
                float(self.model.meta.get('target_mean', 0.0))
                + 2.0 * float(self.model.meta.get('target_std', 1.0)))
            self._publish('terrain_grid', occupancy_grid_message(
                header, np.clip(cost / max(top, 1e-9), 0.0, 1.0), layout,
                self._param('base_frame')))

    def _publish_obstacle(self, header: Any, probs: np.ndarray) -> None:
        if self._listened('grid'):
            self._publish('grid', occupancy_grid_message(header, probs, self._layout,
                                                              self._param('base_frame')))
        if self._listened('probs'):
            self._publish('probs', float_image(header, probs))
        self.grader.predicted(header.stamp.sec * 10**9 + header.stamp.nanosec, self._model_id,
                              probs)

    def _log_stats(self) -> None:
        s = self.stats
        self.get_logger().info(f'frames {s["frames"]}, predicted {s["predicted"]}, '
                               f'dropped {s["dropped"] or 0}, model swaps {s["swaps"]}, '
                               f'rejected {s["swaps_rejected"]}')


def occupancy_grid_message(header: Any, probs: np.ndarray, layout: Any,
                           frame_id: str) -> OccupancyGrid:
    """The nav_msgs/OccupancyGrid of values in [0, 1] on `layout`, the frame's stamp.

    Obstacle probabilities [D, S] on an `obstacle_grid_layout`, or a terrain cost per
    patch [GH, GW] on a `terrain_grid_layout` (`obstacle_grid_data`).
    """
    grid = OccupancyGrid()
    grid.header.stamp = header.stamp
    grid.header.frame_id = frame_id
    grid.info.map_load_time = header.stamp
    grid.info.resolution = float(layout.resolution)
    grid.info.width, grid.info.height = layout.width, layout.height
    origin = Pose()
    origin.position.x, origin.position.y = layout.origin_xy
    origin.orientation.w = 1.0
    grid.info.origin = origin
    grid.data = array.array('b', obstacle_grid_data(probs, layout).tobytes())
    return grid


def float_image(header: Any, values: np.ndarray) -> Image:
    """A 32FC1 sensor_msgs/Image of a 2-D float array, with `header`."""
    values = np.ascontiguousarray(values, dtype='<f4')
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(values.shape[0]), int(values.shape[1])
    msg.encoding = '32FC1'
    msg.is_bigendian = 0
    msg.step = 4 * msg.width
    msg.data = byte_array(values)
    return msg


def byte_array(values: np.ndarray) -> array.array:
    """The bytes of a C-contiguous array as the array.array('B') a uint8[] field holds.

    One copy (`frombytes` reads the buffer); `tobytes()` and then the message's own
    conversion of the bytes would copy a camera-sized image twice.
    """
    out = array.array('B')
    out.frombytes(memoryview(values).cast('B'))
    return out


def mono8_image(header: Any, values: np.ndarray) -> Image:
    """A mono8 sensor_msgs/Image of a uint8 [H, W] array, with `header`."""
    return _uint8_image(header, values, 'mono8')


def rgb_image(header: Any, rgb: np.ndarray) -> Image:
    """An rgb8 sensor_msgs/Image of a uint8 [H, W, 3] array, with `header`."""
    return _uint8_image(header, rgb, 'rgb8')


def _uint8_image(header: Any, pixels: np.ndarray, encoding: str) -> Image:
    pixels = np.ascontiguousarray(pixels, np.uint8)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * (int(pixels.shape[2]) if pixels.ndim == 3 else 1)
    msg.data = byte_array(pixels)
    return msg


def obstacle_markers(header: Any, frame_id: str, cell_m: float, centres: np.ndarray,
                     probs: np.ndarray) -> MarkerArray:
    """One cube per (distance, sensor) cell at `centres` [D, S, 2] in `frame_id`.

    Colour green (free) to red (obstacle), height and opacity grow with the probability;
    a DELETEALL first clears the cells of a model swapped out.
    """
    markers = [Marker(action=Marker.DELETEALL, ns='obstacle')]
    markers[0].header.frame_id = frame_id
    colours = probability_colour(probs) / 255.0
    for k, ((d, s), p) in enumerate(np.ndenumerate(np.asarray(probs, np.float64))):
        m = Marker(ns='obstacle', id=k, type=Marker.CUBE, action=Marker.ADD)
        m.header.stamp = header.stamp
        m.header.frame_id = frame_id
        height = 0.01 + 0.1 * float(np.clip(np.nan_to_num(p), 0.0, 1.0))
        m.pose.position.x, m.pose.position.y = (float(v) for v in centres[d, s])
        m.pose.position.z = height / 2
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = float(cell_m) * 0.9
        m.scale.z = height
        m.color.r, m.color.g, m.color.b = (float(c) for c in colours[d, s])
        m.color.a = 0.35 + 0.6 * float(np.clip(np.nan_to_num(p), 0.0, 1.0))
        markers.append(m)
    return MarkerArray(markers=markers)


def make_executor(node: InferenceNode) -> Executor:
    """The executor named by the node's `executor` parameter (checked at start)."""
    if node.get_parameter('executor').value == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    return SingleThreadedExecutor()


def main(argv: list[str] | None = None) -> int:
    """Run the inference node until shut down (starts unconfigured)."""
    keep_freed_buffers()  # camera-sized buffers reused, not page-faulted in per frame
    return run_node('inference', InferenceNode, args=argv, startup_errors=(ConfigError,),
                    finish=InferenceNode._log_stats, executor=make_executor)


def group_models(argv: list[str]) -> list[tuple[str, str]]:
    """The (node name, model path) pairs of `inference_group --models NAME=PATH ...`."""
    import argparse

    from rclpy.utilities import remove_ros_args
    from rclpy.validate_node_name import validate_node_name
    parser = argparse.ArgumentParser(
        prog='inference_group', description='Several inference nodes in one process, on '
        'one camera subscription; other parameters (--ros-args) apply to every node, or '
        'per node name in a parameters file.')
    parser.add_argument('--models', nargs='+', required=True, metavar='NAME=MODEL.onnx',
                        help='one node per model: its name and its model_path')
    args = parser.parse_args(remove_ros_args(argv)[1:])
    pairs = []
    for spec in args.models:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise ConfigError(f'--models {spec!r}: expected NAME=MODEL.onnx')
        try:
            validate_node_name(name)
        except Exception as exc:  # rclpy's InvalidNodeNameException
            raise ConfigError(f'--models {spec!r}: {exc}') from exc
        pairs.append((name, path))
    if len({name for name, _ in pairs}) != len(pairs):
        raise ConfigError(f'--models: node names repeat in {args.models}')
    return pairs


def main_group(argv: list[str] | None = None) -> int:
    """Run one inference node per model of `--models` in this process until shut down.

    The nodes share one executor and one subscription per camera topic (`CameraShare`):
    each frame is received and deserialised once, which at 640x480 30 Hz costs about as
    much CPU as a model's own work (benchmarks/bench_inference.py), and area-resized once
    for the models of one input size (`FrameSums`). Each node keeps its
    own lifecycle, parameters (`model_path` hot-swaps that node's model), ~/status and
    diagnostics. A `__node:=` remapping would rename every node: name them in --models.
    """
    from rclpy.parameter import Parameter
    argv = list(sys.argv if argv is None else argv)
    try:
        pairs = group_models(argv)
    except ConfigError as exc:
        print(f'inference_group: {exc}', file=sys.stderr)
        return 2
    keep_freed_buffers()
    share, sums = CameraShare(), FrameSums()

    def make(name: str, path: str) -> InferenceNode:
        return InferenceNode(name, camera_share=share, frame_sums=sums,
                             parameter_overrides=[Parameter('model_path', value=path)])
    return run_node('inference_group', lambda: make(*pairs[0]), args=argv,
                    more_nodes=lambda first: [make(*pair) for pair in pairs[1:]],
                    startup_errors=(ConfigError,), finish=InferenceNode._log_stats,
                    executor=make_executor)


if __name__ == '__main__':
    sys.exit(main())
