"""Inference core (no rclpy): an exported ONNX robot model with its metadata checked.

The inference node and the benchmark share it: `OnnxRobotModel` loads a file written by
`ssl-robot export`, checks that its metadata describes a robot model this code can
feed (kind, input size, RGB order, normalisation, outputs, label shapes), and turns an
RGB frame into predictions. `obstacle_grid_layout` lays obstacle probabilities out as
the cells of a `nav_msgs/OccupancyGrid` in base_link; `terrain_grid_layout` lays a
terrain model's per-patch cost out on the ground the camera sees, on the same kind of
grid (`obstacle_grid_data` fills either).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import stat
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.area_resize import AreaResize
from ssl_robot.errors import SslRobotError

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Metadata every robot model carries, and what each kind adds.
REQUIRED_KEYS = ('kind', 'input_hw', 'channel_order', 'mean', 'std', 'output_names')
KIND_KEYS = {'obstacle': ('distances_m', 'sensors'), 'terrain': ('grid',),
             'tcn': ('embed_dim',), 'encoder': ('feature_dim',), 'collision': ('horizon_s',)}


#: Largest ONNX model file loaded (a robot model is a few MiB; /dev/zero is endless).
MAX_MODEL_BYTES = 512 * 2**20


class InferenceError(SslRobotError, RuntimeError):
    """The model cannot be loaded or used (missing, corrupt, metadata mismatch)."""


def check_model_file(path: Path | str, *, models_dir: Path | str = '',
                     max_bytes: int = MAX_MODEL_BYTES) -> Path:
    """Check, without opening it, that `path` is a model file the node may load.

    A regular file (no device such as /dev/zero, no FIFO that blocks until its writer
    closes), at most `max_bytes`, and, when `models_dir` is given, inside it (after
    resolving symbolic links).

    Returns:
        The resolved path.

    Raises:
        InferenceError: Naming the path and what is wrong with it.
    """
    if not str(path):
        raise InferenceError('no model_path given')
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InferenceError(f'{path}: no such ONNX model ({exc.strerror})') from None
    if not stat.S_ISREG(info.st_mode):
        raise InferenceError(f'{path}: not a regular file (a device, FIFO or directory is '
                             'never loaded)')
    if info.st_size > max_bytes:
        raise InferenceError(f'{path}: {info.st_size} bytes, more than the '
                             f'{max_bytes}-byte limit for a model')
    resolved = Path(path).resolve()
    if str(models_dir):
        root = Path(models_dir).resolve()
        if root != resolved and root not in resolved.parents:
            raise InferenceError(f'{path}: outside the models directory {root}')
    return resolved


def parse_metadata(raw: dict[str, str]) -> dict[str, Any]:
    """Decode and check a robot model's ONNX metadata (values stored as JSON strings).

    Raises:
        InferenceError: When a key is missing or a value is out of range.
    """
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InferenceError(f'metadata lacks {", ".join(missing)} (not exported by '
                             f'ssl-robot export?)')
    kind = meta['kind']
    if kind not in KIND_KEYS:
        raise InferenceError(f'model kind {kind!r} is not a robot model '
                             f'({", ".join(KIND_KEYS)})')
    missing = [k for k in KIND_KEYS[kind] if k not in meta]
    if missing:
        raise InferenceError(f'{kind} model metadata lacks {", ".join(missing)}')
    hw = meta['input_hw']
    if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0
                                                          for v in hw)):
        raise InferenceError(f'input_hw {hw!r} is not [H, W]')
    if meta['channel_order'] != 'RGB':
        raise InferenceError(f'channel_order {meta["channel_order"]!r}: only RGB is supported')
    for key in ('mean', 'std'):
        if not (isinstance(meta[key], list) and len(meta[key]) == 3):
            raise InferenceError(f'{key} {meta[key]!r} is not three numbers')
    if min(meta['std']) <= 0:
        raise InferenceError(f'std {meta["std"]} must be positive')
    if kind == 'obstacle' and (not meta['distances_m'] or not meta['sensors']):
        raise InferenceError('obstacle model without distances or sensors')
    return meta


@dataclass
class Prediction:
    """Output of one frame: `kind`, the model's first output without the batch axis.

    `outputs` holds every output by name (a terrain model's `terrain_descriptor` and
    `terrain_type_prob` too), each without the batch axis.
    """

    kind: str
    values: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


class OnnxRobotModel:
    """An exported robot model in an onnxruntime session.

    Args:
        path: The .onnx file.
        providers: onnxruntime execution providers in order of preference; unavailable
            ones are skipped (CPU is always the last resort).
        expected_kind: Reject models of another kind ('' accepts any).
        intra_op_threads: onnxruntime intra-op threads (0: its default).
        max_bytes: Refuse a larger file (`check_model_file`).

    Raises:
        InferenceError: When the file is missing or corrupt, or its metadata does not
            describe a usable robot model (of `expected_kind`).
    """

    def __init__(self, path: Path | str, *, providers: Sequence[str] = ('CPUExecutionProvider',),
                 expected_kind: str = '', intra_op_threads: int = 0,
                 max_bytes: int = MAX_MODEL_BYTES) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        check_model_file(path, max_bytes=max_bytes)
        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available] or ['CPUExecutionProvider']
        options = ort.SessionOptions()
        # All graph optimisations (fusions, constant folding; the fastest level measured
        # by benchmarks/bench_inference.py), one intra-op thread by default (config).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InferenceError(f'{self.path}: not a valid ONNX model: {exc}') from exc
        # The metadata export_onnx stored, read by onnxruntime itself (no onnx/torch import).
        raw = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            self.meta = parse_metadata(raw)
        except InferenceError as exc:
            raise InferenceError(f'{self.path}: {exc}') from exc
        if expected_kind and self.meta['kind'] != expected_kind:
            raise InferenceError(f'{self.path}: a {self.meta["kind"]} model, expected '
                                 f'{expected_kind}')
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, *self.meta['input_hw']]:
            raise InferenceError(
                f'{self.path}: graph input {[i.shape for i in inputs]} does not match '
                f'metadata input_hw {self.meta["input_hw"]}')
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != list(self.meta['output_names']):
            raise InferenceError(f'{self.path}: graph outputs {outputs} != metadata '
                                 f'output_names {self.meta["output_names"]}')
        self.input_name = inputs[0].name
        self._mean = np.asarray(self.meta['mean'], np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(self.meta['std'], np.float32).reshape(1, 3, 1, 1)

    @property
    def kind(self) -> str:
        return self.meta['kind']

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.meta['input_hw'][0]), int(self.meta['input_hw'][1])

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses."""
        return list(self.session.get_providers())

    def preprocess(self, frames: np.ndarray, shared: FrameSums | None = None) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] (or one [H, W, 3]) -> normalised [N, 3, h, w].

        Area-average resize by training's own resize (`ssl_robot.area_resize`: output
        cell i covers input rows floor(i H / h) to ceil((i + 1) H / h), as torch's 'area'
        bins them), exact sums of the uint8 frame from its integral image: no full-size
        float copy. Scale and normalisation then run in one pass on the small image.
        `shared` hands one frame's sums to every model of its input size that runs on it.
        """
        if frames.ndim == 3:
            frames = frames[None]
        n, height, width = frames.shape[:3]
        plan = self._resize_plan(height, width)
        h, w = self.input_hw
        out = np.empty((n, 3, h, w), np.float32)
        for k, frame in enumerate(frames):
            sums = shared.sums(frame, plan.resize) if shared is not None and n == 1 \
                else plan.resize.sums(frame)
            # (mean of block / 255 - mean) / std == block sum * factor + offset.
            out[k] = (sums * plan.factor + plan.offset).transpose(2, 0, 1)
        return out

    def _resize_plan(self, height: int, width: int) -> _ResizePlan:
        """The bins and factors of one camera size, made once (`preprocess`)."""
        plans = self.__dict__.setdefault('_plans', {})
        plan = plans.get((height, width))
        if plan is None:
            plan = plans[(height, width)] = _ResizePlan.make(
                (height, width), self.input_hw, self._mean.reshape(3), self._std.reshape(3))
        return plan

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for a preprocessed batch."""
        return self.session.run(None, {self.input_name: x})[0]

    def smoke_test(self, rgb: np.ndarray | None = None) -> None:
        """Run the model on a frame (default: mid-grey) and check its outputs are finite.

        Raises:
            InferenceError: When it fails or outputs NaN/inf.
        """
        if rgb is None:
            rgb = np.full((*self.input_hw, 3), 128, np.uint8)
        try:
            outputs = self.session.run(None, {self.input_name: self.preprocess(rgb)})
        except Exception as exc:  # onnxruntime's own error types
            raise InferenceError(f'{self.path}: smoke inference failed: {exc}') from None
        for name, out in zip(self.meta['output_names'], outputs):
            if not np.isfinite(out).all():
                raise InferenceError(f'{self.path}: output {name} is not finite (NaN/inf) '
                                     'on a stored frame')

    def predict(self, rgb: np.ndarray, shared: FrameSums | None = None) -> Prediction:
        """Predict for one uint8 RGB frame [H, W, 3] (every output, `Prediction.outputs`).

        `shared`: see `preprocess`.
        """
        outputs = self.session.run(None, {self.input_name: self.preprocess(rgb, shared)})
        return Prediction(self.kind, outputs[0][0], {
            name: out[0] for name, out in zip(self.meta['output_names'], outputs)})

    def aspect_mismatch(self, height: int, width: int, *, tolerance: float = 0.1) -> bool:
        """Whether a camera frame's aspect ratio differs from the model's by > tolerance."""
        h, w = self.input_hw
        return abs((width / height) / (w / h) - 1.0) > tolerance


class FrameSums:
    """The last frame's integral image and area sums, for the models that run on it.

    Several models on one camera subscription (`inference_group`: a node per model)
    resize each frame; at 640x480 the integral image is most of a model's preprocessing
    (~0.4 ms). It is made once per frame and read by every resize, whatever the model's
    input size (the obstacle model's 96x128 and the terrain model's 48x64 alike); models
    of one input size also share the sums. Both are kept while the same frame comes
    again: the same memory (the frame is held, so its buffer cannot be reused meanwhile),
    shape and strides. Frames must not be written to in place while they are kept.

    `hits` counts resizes answered from kept sums, `table_hits` resizes that read the
    kept integral image.
    """

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self._sums: dict[tuple[tuple[int, int], tuple[int, int]], np.ndarray] = {}
        self._table: np.ndarray | None = None
        self.hits = 0
        self.table_hits = 0

    def _same(self, frame: np.ndarray) -> bool:
        kept = self._frame
        return (kept is not None and kept.shape == frame.shape and kept.dtype == frame.dtype
                and kept.strides == frame.strides
                and kept.__array_interface__['data'][0] == frame.__array_interface__['data'][0])

    def sums(self, frame: np.ndarray, resize: AreaResize) -> np.ndarray:
        """`resize.sums(frame)`, computed once per frame and resize."""
        if not self._same(frame):
            self._frame, self._sums, self._table = frame, {}, None
        if resize.identity:
            return frame
        key = (resize.frame_hw, resize.out_hw)
        sums = self._sums.get(key)
        if sums is not None:
            self.hits += 1
            return sums
        # Every resize of this frame's size reads the same table (its depth follows from
        # the frame's size).
        if self._table is None:
            self._table = resize.integral(frame)
        else:
            self.table_hits += 1
        sums = self._sums[key] = resize.table_sums(self._table)
        return sums


@dataclass
class _ResizePlan:
    """How `OnnxRobotModel.preprocess` resizes frames of one size.

    `resize` gives each output cell's pixel sum [h, w, 3] (`ssl_robot.area_resize`);
    `factor` and `offset` [h, w, 3] then give the normalised input.
    """

    resize: AreaResize
    factor: np.ndarray
    offset: np.ndarray

    @classmethod
    def make(cls, frame_hw: tuple[int, int], input_hw: tuple[int, int], mean: np.ndarray,
             std: np.ndarray) -> _ResizePlan:
        resize = AreaResize.make(frame_hw, input_hw)
        scale = (1.0 / (255.0 * std)).astype(np.float64)
        offset = np.broadcast_to((-mean / std).astype(np.float32), (*input_hw, 3))
        factor = (scale[None, None, :] / resize.area).astype(np.float32)
        return cls(resize, factor, offset)


@dataclass
class GridLayout:
    """Cells of an OccupancyGrid holding obstacle probabilities per distance x sensor.

    Attributes:
        resolution: Cell size (m).
        width: Cells along x (forward).
        height: Cells along y (left).
        origin_xy: Position of the grid's corner cell (m, base_link).
        cells: [D, S] flat index of the cell of each distance and sensor; with `sources`,
            [M] flat indices of the cells that show a prediction.
        sources: None, or [M] which prediction (flat index into the model's output, e.g. a
            terrain patch) each of `cells` shows.
    """

    resolution: float
    width: int
    height: int
    origin_xy: tuple[float, float]
    cells: np.ndarray
    sources: np.ndarray | None = None


def obstacle_grid_layout(distances_m: Sequence[float], lateral_offsets_m: Sequence[float], *,
                         x_offset_m: float = 0.0, yaws_rad: Sequence[float] | None = None,
                         beam_range_m: float = 0.0) -> GridLayout:
    """Place each (distance, sensor) prediction on a square grid in base_link.

    The label "obstacle at distance d for sensor s" means: once the robot has driven d
    straight ahead, sensor s sees something within its trigger range. Its cell is that
    sensor's beam at `beam_range_m` after the drive:
    (x_offset + d + r cos(yaw_s), y_s + r sin(yaw_s)). The resolution is the smallest
    spacing between distances or between sensor beams; pairs that still share a cell
    are merged by `obstacle_grid_data` (the higher probability wins).

    Args:
        distances_m: Labelled distances ahead (m).
        lateral_offsets_m: Lateral offset (y, left positive) of each sensor (m).
        x_offset_m: Forward offset of the sensors from base_link (m).
        yaws_rad: Heading of each sensor's beam (left positive; None: all straight ahead).
        beam_range_m: How far along its beam a sensor's cell lies (e.g. half the range
            that makes a label 'obstacle'; 0: at the sensor).
    """
    ys0 = np.asarray(lateral_offsets_m, np.float64)
    yaws = np.zeros_like(ys0) if yaws_rad is None else np.asarray(yaws_rad, np.float64)
    if yaws.shape != ys0.shape:
        raise ValueError(f'{len(yaws)} sensor yaws for {len(ys0)} sensors')
    d = np.asarray(distances_m, np.float64)
    xs = x_offset_m + d[:, None] + beam_range_m * np.cos(yaws)[None, :]   # [D, S]
    ys = np.broadcast_to(ys0 + beam_range_m * np.sin(yaws), xs.shape)    # [D, S]
    gaps = [g for arr in (np.sort(d), np.sort(ys[0])) for g in np.diff(arr) if g > 1e-6]
    res = float(min(gaps)) if gaps else 0.05
    cols = np.round((xs - xs.min()) / res).astype(int)
    rows = np.round((ys - ys.min()) / res).astype(int)
    width, height = int(cols.max()) + 1, int(rows.max()) + 1
    return GridLayout(res, width, height,
                      (float(xs.min() - res / 2), float(ys.min() - res / 2)),
                      rows * width + cols)


def obstacle_grid_data(probs: np.ndarray, layout: GridLayout) -> np.ndarray:
    """OccupancyGrid data (int8, 0-100, -1 unknown) from probabilities [D, S].

    Or, for a layout with `sources` (`terrain_grid_layout`), from values in [0, 1] of
    any shape whose flat entries the sources pick. Where several predictions share a
    cell the highest value is kept.
    """
    data = np.full(layout.width * layout.height, -1, np.int16)
    values = np.clip(np.round(np.nan_to_num(probs, nan=-0.01) * 100), -1, 100).ravel()
    if layout.sources is not None:
        values = values[layout.sources]
    np.maximum.at(data, layout.cells.ravel(), values.astype(np.int16))
    return data.astype(np.int8)


def terrain_grid_layout(k_matrix: np.ndarray, image_hw: Sequence[int], grid_hw: Sequence[int],
                        *, camera_xyz: Sequence[float], camera_pitch: float,
                        resolution_m: float = 0.02, range_m: float = 1.0) -> GridLayout:
    """The ground cells in base_link that the camera sees, each showing its image patch.

    The ground ahead (z = 0 in base_link, x in (0, range_m], |y| <= range_m) is cut into
    square cells of `resolution_m`; each cell centre goes through the labeller's camera
    model (`ssl_robot.labelling.terrain.project_ground_points`: CameraInfo intrinsics,
    extrinsics `camera_xyz` and `camera_pitch`), the way a felt footprint becomes a patch
    label, and the cell shows the patch of the GH x GW grid over the image that it lands
    in. The grid spans the cells seen; a cell outside the image stays unknown (-1).

    Args:
        k_matrix: 3x3 intrinsics of images of size `image_hw` (CameraInfo k).
        image_hw: (H, W) of the camera images.
        grid_hw: (GH, GW) patch grid of the terrain model.
        camera_xyz: Camera position in base_link (m).
        camera_pitch: Camera pitch, positive looking down (rad).
        resolution_m: Cell size (m).
        range_m: How far ahead and to each side cells are laid (m).

    Raises:
        ValueError: When the camera sees no ground within `range_m`.
    """
    from ssl_robot.labelling.terrain import project_ground_points
    h, w = (int(v) for v in image_hw)
    gh, gw = (int(v) for v in grid_hw)
    res = float(resolution_m)
    n_x, n_y = int(np.ceil(range_m / res)), int(np.ceil(range_m / res))
    ix, iy = np.meshgrid(np.arange(n_x), np.arange(-n_y, n_y), indexing='xy')
    points = np.stack([(ix + 0.5) * res, (iy + 0.5) * res], axis=-1)
    u, v, front = project_ground_points(points, k_matrix, tuple(camera_xyz), camera_pitch)
    seen = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    if not seen.any():
        raise ValueError(f'the camera (pitch {camera_pitch} rad at {list(camera_xyz)}) sees '
                         f'no ground within {range_m} m')
    ix, iy, u, v = ix[seen], iy[seen], u[seen], v[seen]
    x0, y0 = int(ix.min()), int(iy.min())
    width, height = int(ix.max()) - x0 + 1, int(iy.max()) - y0 + 1
    patch = np.floor(v * gh / h).astype(np.int64) * gw + np.floor(u * gw / w).astype(np.int64)
    return GridLayout(res, width, height, (x0 * res, y0 * res),
                      (iy - y0) * width + (ix - x0), patch)


def patch_image(patches: np.ndarray, image_hw: Sequence[int]) -> np.ndarray:
    """A per-patch map [GH, GW] blown up to an image [H, W].

    Pixel (r, c) shows patch (floor(r GH / H), floor(c GW / W)): the patch binning of the
    terrain labels.
    """
    h, w = (int(v) for v in image_hw)
    gh, gw = patches.shape[:2]
    return patches[(np.arange(h) * gh // h)[:, None], (np.arange(w) * gw // w)[None, :]]


def default_lateral_offsets(n_sensors: int, span_m: float = 0.07) -> list[float]:
    """Evenly spread sensor offsets from left (+y) to right (-y)."""
    if n_sensors == 1:
        return [0.0]
    return list(np.linspace(span_m / 2, -span_m / 2, n_sensors))
