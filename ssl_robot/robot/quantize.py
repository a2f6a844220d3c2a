"""int8 models: onnxruntime static quantisation calibrated on the run's training frames.

`quantize_run` exports the float model, quantises it (QDQ, int8 weights per channel,
uint8 activations) with a calibration set drawn from the training split, and measures
both on the held-out split in the same run: obstacle ROC-AUC (terrain: Spearman; TCN:
cosine of the embeddings to the float ones) and the time per frame on one thread. A model
whose metric drops by more than `max_drop` is refused (nothing is written).
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

import numpy as np

from ssl_robot.export import ExportError
from ssl_robot.metrics import roc_auc, spearman

#: Default number of training frames the activation ranges are calibrated on.
CALIBRATION_FRAMES = 256


@dataclass
class QuantReport:
    """What quantising a run gave, float and int8 measured in the same run."""

    path: Path
    kind: str
    metric: str
    float_metric: float
    int8_metric: float
    float_ms: float
    int8_ms: float
    calibration_frames: int
    eval_frames: int

    @property
    def drop(self) -> float:
        return self.float_metric - self.int8_metric

    @property
    def speedup(self) -> float:
        return self.float_ms / self.int8_ms if self.int8_ms > 0 else float('nan')

    def line(self) -> str:
        """The one-line summary `ssl-robot export --quantize int8` prints."""
        return (f'int8: {self.metric} float {self.float_metric:.4f} int8 {self.int8_metric:.4f} '
                f'(drop {self.drop:+.4f}) on {self.eval_frames} held-out frames; per frame '
                f'float {self.float_ms:.3f} ms, int8 {self.int8_ms:.3f} ms '
                f'({self.speedup:.2f}x), 1 thread; calibrated on {self.calibration_frames} '
                f'training frames')

    def as_dict(self) -> dict[str, Any]:
        return {'path': str(self.path), 'kind': self.kind, 'metric': self.metric,
                'float': self.float_metric, 'int8': self.int8_metric, 'drop': self.drop,
                'float_ms_per_frame': self.float_ms, 'int8_ms_per_frame': self.int8_ms,
                'speedup': self.speedup, 'calibration_frames': self.calibration_frames,
                'eval_frames': self.eval_frames}


def _session(path: Path) -> Any:
    from ssl_robot.inference import OnnxRobotModel
    return OnnxRobotModel(path, intra_op_threads=1)


def _outputs(model: Any, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([model.run(model.preprocess(frames[i:i + batch]))
                           for i in range(0, len(frames), batch)])


def _metric(kind: str, out: np.ndarray, data: Any, idx: np.ndarray,
            reference: np.ndarray | None) -> tuple[str, float]:
    """The held-out metric of one model's outputs."""
    if kind == 'obstacle':
        mask = np.asarray(data.proximity_mask[idx], bool)
        return 'AUC', roc_auc(out[mask], np.asarray(data.proximity[idx])[mask])
    if kind == 'terrain':
        mask = np.asarray(data.terrain_mask[idx], bool)
        return 'Spearman', spearman(out[mask], np.asarray(data.terrain[idx])[mask])
    # An embedding: how close it stays to the float model's (cosine, 1 = identical).
    ref = reference if reference is not None else out
    cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
                                + 1e-12)
    return 'cosine to float', float(np.mean(cos))


def _ms_per_frame(model: Any, frame: np.ndarray, repeats: int) -> float:
    x = model.preprocess(frame)
    for _ in range(10):
        model.run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class _Calibration:
    """onnxruntime's CalibrationDataReader over preprocessed training frames."""

    def __init__(self, model: Any, frames: np.ndarray, batch: int = 16) -> None:
        self._batches = iter([{model.input_name: model.preprocess(frames[i:i + batch])}
                              for i in range(0, len(frames), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_run(run: Path | str, out: Path | str, *, checkpoint: str = 'best.pt',
                 calibration_frames: int = CALIBRATION_FRAMES, max_drop: float = 0.005,
                 repeats: int = 200, seed: int = 0) -> QuantReport:
    """Export a run's model as int8 to `out`, measured against its float export.

    Args:
        run: Run directory (or checkpoint file).
        out: The int8 .onnx file.
        checkpoint: Checkpoint name in the run directory.
        calibration_frames: Training frames the activation ranges are calibrated on.
        max_drop: Largest drop of the held-out metric accepted (AUC / Spearman / cosine).
        repeats: Timed runs per model (median reported).
        seed: Seed of the calibration draw.

    Returns:
        The report (also stored in the int8 model's metadata).

    Raises:
        ExportError: When quantisation fails or the metric drops by more than `max_drop`.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static, QuantType

    from ssl_robot.robot import build_task
    from ssl_robot.robot.export import export_run
    from ssl_robot.train import load_checkpoint
    out = Path(out)
    path = Path(run) / checkpoint if Path(run).is_dir() else Path(run)
    config = load_checkpoint(path)['config']
    task = build_task(config['task'], dict(config['task_params']))
    train_idx, val_idx = task.split()
    if not len(val_idx) or not len(train_idx):
        raise ExportError(f'{path}: the dataset has no training or held-out frames to '
                          'calibrate and check an int8 model on')
    rng = np.random.default_rng(seed)
    calib_idx = np.sort(rng.choice(train_idx, min(calibration_frames, len(train_idx)),
                                   replace=False))
    data = task.data
    with tempfile.TemporaryDirectory(prefix='ssl_robot_quant_') as tmp:
        float_path = Path(tmp) / 'float.onnx'
        export_run(run, float_path, checkpoint=checkpoint)
        float_model = _session(float_path)
        int8_tmp = Path(tmp) / 'int8.onnx'
        try:
            quantize_static(str(float_path), str(int8_tmp),
                            _Calibration(float_model, np.asarray(data.frames[calib_idx])),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime's own error types
            raise ExportError(f'{path}: int8 quantisation failed: {exc}') from exc
        # The float model's metadata (what the inference node checks) travels along.
        proto = onnx.load(str(int8_tmp))
        meta = {p.key: p.value for p in onnx.load(str(float_path),
                                                  load_external_data=False).metadata_props}
        int8_model = _session(_with_metadata(proto, meta, int8_tmp))
        frames = np.asarray(data.frames[val_idx])
        float_out = _outputs(float_model, frames)
        int8_out = _outputs(int8_model, frames)
        if not np.isfinite(int8_out).all():
            raise ExportError(f'{path}: the int8 model outputs NaN/inf on held-out frames')
        kind = float_model.kind
        name, float_metric = _metric(kind, float_out, data, val_idx, None)
        _, int8_metric = _metric(kind, int8_out, data, val_idx, float_out)
        report = QuantReport(path=out, kind=kind, metric=name, float_metric=float_metric,
                             int8_metric=int8_metric,
                             float_ms=_ms_per_frame(float_model, frames[0], repeats),
                             int8_ms=_ms_per_frame(int8_model, frames[0], repeats),
                             calibration_frames=len(calib_idx), eval_frames=len(val_idx))
        if not report.drop <= max_drop:
            raise ExportError(f'{path}: int8 refused: {report.line()}; the drop exceeds '
                              f'{max_drop} (nothing written)')
        meta['quantization'] = json.dumps(report.as_dict() | {'path': str(out)})
        out.parent.mkdir(parents=True, exist_ok=True)
        _with_metadata(proto, meta, out)
    return report


def _with_metadata(proto: Any, meta: dict[str, str], path: Path) -> Path:
    import onnx
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(path))
    return path
