"""int8 models: onnxruntime static quantisation calibrated on the run's training frames.

`quantize_run` exports the float model, quantises it (`QuantSettings`: by default QDQ, int8
weights per channel, uint8 activations, every operator onnxruntime can quantise) with a
calibration set drawn from the training split, and measures both on the held-out split
in the same run: obstacle ROC-AUC (terrain: Spearman; TCN: cosine of the embeddings to
the float ones) and the time per frame on one thread, float and int8 runs interleaved so
that a busy machine slows both alike. A model whose metric drops by more than `max_drop`
is refused (nothing is written). `benchmarks/bench_quantize.py` compares the settings.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.export import ExportError
from ssl_robot.metrics import roc_auc, spearman

if TYPE_CHECKING:
    from collections.abc import Sequence

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
    settings: str = ''

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
                f'training frames; {self.settings}')

    def as_dict(self) -> dict[str, Any]:
        return {'path': str(self.path), 'kind': self.kind, 'metric': self.metric,
                'float': self.float_metric, 'int8': self.int8_metric, 'drop': self.drop,
                'float_ms_per_frame': self.float_ms, 'int8_ms_per_frame': self.int8_ms,
                'speedup': self.speedup, 'calibration_frames': self.calibration_frames,
                'eval_frames': self.eval_frames, 'settings': self.settings}


def _session(path: Path) -> Any:
    from ssl_robot.inference import OnnxRobotModel
    return OnnxRobotModel(path, intra_op_threads=1)


@dataclass(frozen=True)
class QuantSettings:
    """How onnxruntime's `quantize_static` quantises a model.

    Attributes:
        quant_format: 'QDQ' (Quantize/DequantizeLinear pairs that onnxruntime fuses into
            integer kernels) or 'QOperator' (QLinearConv, QGemm, ... written directly).
        per_channel: One weight scale per output channel (else one per tensor).
        activations: 'uint8' or 'int8' activations.
        weights: 'int8' or 'uint8' weights.
        reduce_range: 7-bit weights (avoids the u8 x s8 overflow of AVX2 kernels).
        op_types: Operators quantised (empty: every one onnxruntime can).
    """

    quant_format: str = 'QDQ'
    per_channel: bool = True
    activations: str = 'uint8'
    weights: str = 'int8'
    reduce_range: bool = False
    op_types: tuple[str, ...] = ()

    def label(self) -> str:
        ops = '+'.join(self.op_types) if self.op_types else 'all ops'
        return (f'{self.quant_format} {"per-channel" if self.per_channel else "per-tensor"} '
                f'a={self.activations} w={self.weights}'
                f'{" reduce_range" if self.reduce_range else ""} {ops}')


def ms_per_frame(models: Sequence[Any], frame: np.ndarray, repeats: int) -> list[float]:
    """Median ms per frame of each model (batch 1), their runs interleaved.

    Runs alternate model by model, so that load from other processes on a shared machine
    falls on all of them alike and their ratio stays meaningful.
    """
    inputs = [model.preprocess(frame) for model in models]
    for _ in range(10):
        for model, x in zip(models, inputs):
            model.run(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for k, (model, x) in enumerate(zip(models, inputs)):
            start = time.perf_counter()
            model.run(x)
            times[k].append(time.perf_counter() - start)
    return [1e3 * statistics.median(t) for t in times]


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


class _Calibration:
    """onnxruntime's CalibrationDataReader over preprocessed training frames."""

    def __init__(self, model: Any, frames: np.ndarray, batch: int = 16) -> None:
        self._batches = iter([{model.input_name: model.preprocess(frames[i:i + batch])}
                              for i in range(0, len(frames), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


class QuantRun:
    """A run's float export with its calibration and held-out frames, to quantise.

    Use as a context manager (the float export lives in a temporary directory).

    Args:
        run: Run directory (or checkpoint file).
        checkpoint: Checkpoint name in the run directory.
        calibration_frames: Training frames the activation ranges are calibrated on.
        seed: Seed of the calibration draw.

    Raises:
        ExportError: When the dataset has no training or held-out frames.
    """

    def __init__(self, run: Path | str, *, checkpoint: str = 'best.pt',
                 calibration_frames: int = CALIBRATION_FRAMES, seed: int = 0) -> None:
        from ssl_robot.robot import build_task
        from ssl_robot.robot.export import export_run
        from ssl_robot.train import load_checkpoint
        self.path = Path(run) / checkpoint if Path(run).is_dir() else Path(run)
        config = load_checkpoint(self.path)['config']
        task = build_task(config['task'], dict(config['task_params']))
        train_idx, self.val_idx = task.split()
        if not len(self.val_idx) or not len(train_idx):
            raise ExportError(f'{self.path}: the dataset has no training or held-out frames '
                              'to calibrate and check an int8 model on')
        rng = np.random.default_rng(seed)
        calib_idx = np.sort(rng.choice(train_idx, min(calibration_frames, len(train_idx)),
                                       replace=False))
        self.data = task.data
        self.calibration = np.asarray(self.data.frames[calib_idx])
        self.frames = np.asarray(self.data.frames[self.val_idx])
        self._tmp = tempfile.TemporaryDirectory(prefix='ssl_robot_quant_')
        self.float_path = Path(self._tmp.name) / 'float.onnx'
        export_run(run, self.float_path, checkpoint=checkpoint)
        self.float_model = _session(self.float_path)
        self.kind = self.float_model.kind
        self.float_out = _outputs(self.float_model, self.frames)
        self.metric, self.float_metric = _metric(self.kind, self.float_out, self.data,
                                                 self.val_idx, None)
        import onnx
        self.meta = {p.key: p.value for p in onnx.load(
            str(self.float_path), load_external_data=False).metadata_props}

    def quantize(self, settings: QuantSettings, out: Path | str) -> tuple[Any, float]:
        """Quantise the float export to `out` (the float metadata kept) and load it.

        Returns:
            (the int8 model in a 1-thread session, its held-out metric).

        Raises:
            ExportError: When quantisation fails or the model outputs NaN/inf.
        """
        import onnx
        from onnxruntime.quantization import QuantFormat, quantize_static, QuantType
        types = {'uint8': QuantType.QUInt8, 'int8': QuantType.QInt8}
        out = Path(out)
        try:
            quantize_static(
                str(self.float_path), str(out),
                _Calibration(self.float_model, self.calibration),
                quant_format=getattr(QuantFormat, settings.quant_format),
                per_channel=settings.per_channel,
                activation_type=types[settings.activations],
                weight_type=types[settings.weights], reduce_range=settings.reduce_range,
                op_types_to_quantize=list(settings.op_types) or None)
        except Exception as exc:  # onnxruntime's own error types
            raise ExportError(f'{self.path}: int8 quantisation failed: {exc}') from exc
        # The float model's metadata (what the inference node checks) travels along.
        _with_metadata(onnx.load(str(out)), self.meta, out)
        model = _session(out)
        int8_out = _outputs(model, self.frames)
        if not np.isfinite(int8_out).all():
            raise ExportError(f'{self.path}: the int8 model outputs NaN/inf on held-out frames')
        return model, _metric(self.kind, int8_out, self.data, self.val_idx, self.float_out)[1]

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> QuantRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quantize_run(run: Path | str, out: Path | str, *, checkpoint: str = 'best.pt',
                 calibration_frames: int = CALIBRATION_FRAMES, max_drop: float = 0.005,
                 repeats: int = 200, seed: int = 0,
                 settings: QuantSettings = QuantSettings()) -> QuantReport:
    """Export a run's model as int8 to `out`, measured against its float export.

    Args:
        run: Run directory (or checkpoint file).
        out: The int8 .onnx file.
        checkpoint: Checkpoint name in the run directory.
        calibration_frames: Training frames the activation ranges are calibrated on.
        max_drop: Largest drop of the held-out metric accepted (AUC / Spearman / cosine).
        repeats: Timed runs per model (median reported).
        seed: Seed of the calibration draw.
        settings: How the model is quantised.

    Returns:
        The report (also stored in the int8 model's metadata).

    Raises:
        ExportError: When quantisation fails or the metric drops by more than `max_drop`.
    """
    import onnx
    out = Path(out)
    with QuantRun(run, checkpoint=checkpoint, calibration_frames=calibration_frames,
                  seed=seed) as prepared, tempfile.TemporaryDirectory(
                      prefix='ssl_robot_quant_') as tmp:
        int8_tmp = Path(tmp) / 'int8.onnx'
        int8_model, int8_metric = prepared.quantize(settings, int8_tmp)
        float_ms, int8_ms = ms_per_frame([prepared.float_model, int8_model],
                                         prepared.frames[0], repeats)
        report = QuantReport(path=out, kind=prepared.kind, metric=prepared.metric,
                             float_metric=prepared.float_metric, int8_metric=int8_metric,
                             float_ms=float_ms, int8_ms=int8_ms,
                             calibration_frames=len(prepared.calibration),
                             eval_frames=len(prepared.val_idx), settings=settings.label())
        if not report.drop <= max_drop:
            raise ExportError(f'{prepared.path}: int8 refused: {report.line()}; the drop '
                              f'exceeds {max_drop} (nothing written)')
        meta = dict(prepared.meta)
        meta['quantization'] = json.dumps(report.as_dict() | {'path': str(out)})
        out.parent.mkdir(parents=True, exist_ok=True)
        _with_metadata(onnx.load(str(int8_tmp)), meta, out)
    return report


def _with_metadata(proto: Any, meta: dict[str, str], path: Path) -> Path:
    import onnx
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(path))
    return path
