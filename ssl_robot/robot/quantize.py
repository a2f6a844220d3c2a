"""int8 models: onnxruntime static quantisation calibrated on the run's training frames.

`quantize_run` exports the float model, quantises it (`QuantSettings`: by default QDQ, int8
weights per channel, uint8 activations, MinMax calibration, the first convolution and the
head after the last convolution kept in float, chosen by `benchmarks/bench_quantize.py`)
with a calibration set drawn from the training split, and measures both on the held-out
split in the same run: obstacle ROC-AUC (terrain: Spearman; TCN: cosine of the embeddings
to the float ones) and the time per frame on one thread (`time_per_frame`, the one timing
loop the export and the benchmark share). A model whose metric drops by more than
`max_drop` is refused (nothing is written).
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    speedup_quartiles: tuple[float, float] = (float('nan'), float('nan'))

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
                f'({self.speedup:.2f}x; rounds {self.speedup_quartiles[0]:.2f}-'
                f'{self.speedup_quartiles[1]:.2f}x), 1 thread; calibrated on '
                f'{self.calibration_frames} training frames; {self.settings}')

    def as_dict(self) -> dict[str, Any]:
        return {'path': str(self.path), 'kind': self.kind, 'metric': self.metric,
                'float': self.float_metric, 'int8': self.int8_metric, 'drop': self.drop,
                'float_ms_per_frame': self.float_ms, 'int8_ms_per_frame': self.int8_ms,
                'speedup': self.speedup, 'speedup_quartiles': list(self.speedup_quartiles),
                'calibration_frames': self.calibration_frames,
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
        float_first_conv: Keep the first convolution in float (its 3 input channels make
            it slower in int8 on AVX2 than in float).
        float_head: Keep the nodes after the last convolution (pooling, MLP, sigmoid) in
            float: tiny operators for which quantising costs more than it saves.
        calibration: onnxruntime's calibration method: 'MinMax', 'Entropy' or 'Percentile'.
        preprocess: Run onnxruntime's `quant_pre_process` (shape inference and graph
            optimisation) on the float model first.
    """

    quant_format: str = 'QDQ'
    per_channel: bool = True
    activations: str = 'uint8'
    weights: str = 'int8'
    reduce_range: bool = False
    op_types: tuple[str, ...] = ()
    float_first_conv: bool = True
    float_head: bool = True
    calibration: str = 'MinMax'
    preprocess: bool = False

    def label(self) -> str:
        ops = '+'.join(self.op_types) if self.op_types else 'all ops'
        floats = [name for name, kept in (('first conv', self.float_first_conv),
                                          ('head', self.float_head)) if kept]
        return (f'{self.quant_format} {"per-channel" if self.per_channel else "per-tensor"} '
                f'a={self.activations} w={self.weights}'
                f'{" reduce_range" if self.reduce_range else ""} {ops}'
                f'{", float " + " + ".join(floats) if floats else ""}'
                f'{", " + self.calibration if self.calibration != "MinMax" else ""}'
                f'{", pre-processed" if self.preprocess else ""}')


def float_nodes(proto: Any, *, first_conv: bool, head: bool) -> list[str]:
    """Names of the nodes of a float model that `QuantSettings` keeps in float.

    Args:
        proto: The float model (onnx.ModelProto; its nodes are in topological order).
        first_conv: The first convolution.
        head: Every node after the last convolution, except the activations right after
            it (a quantised convolution absorbs them).
    """
    nodes = list(proto.graph.node)
    convs = [k for k, node in enumerate(nodes) if node.op_type == 'Conv']
    if not convs:
        return []
    names = [nodes[convs[0]].name] if first_conv else []
    if head:
        absorbed = set(nodes[convs[-1]].output)
        for node in nodes[convs[-1] + 1:]:
            if node.op_type in ('Relu', 'Clip') and absorbed & set(node.input):
                absorbed |= set(node.output)
            elif node.op_type != 'Constant':
                names.append(node.name)
    return [name for name in names if name]


@dataclass
class FrameTimes:
    """Time per frame of models timed together (`time_per_frame`).

    Attributes:
        ms: Median ms per frame of each model over all its timed runs.
        ratios: Per round, the first model's median over each model's (its speedup over
            the first model), one list per model.
    """

    ms: list[float]
    ratios: list[list[float]] = field(default_factory=list)

    def speedup(self, k: int) -> float:
        """How many times faster model `k` is than the first model (ratio of medians)."""
        return self.ms[0] / self.ms[k]

    def quartiles(self, k: int) -> tuple[float, float]:
        """Lower and upper quartile of model `k`'s per-round speedup (its spread)."""
        low, high = np.percentile(self.ratios[k], [25, 75])
        return float(low), float(high)


def time_per_frame(models: Sequence[Any], frame: np.ndarray, *, repeats: int = 1000,
                   block: int = 25, warmup: int = 5) -> FrameTimes:
    """Time per frame (batch 1) of models, their runs interleaved block by block.

    The one timing loop of the int8 export and of `benchmarks/bench_quantize.py`. Each
    round runs every model once for a block of `block` timed runs, after `warmup` untimed
    ones (its weights back in the caches), in an order that rotates and reverses from round
    to round; so load from other processes falls on all models alike, and a model's figure
    does not depend on how many others are timed with it (a loop of single runs across
    many models times each with caches the others emptied).

    Args:
        models: Objects with `preprocess(frame)` and `run(x)` (`OnnxRobotModel`).
        frame: One uint8 RGB frame.
        repeats: Timed runs per model (rounded up to whole blocks).
        block: Timed runs per model and round.
        warmup: Untimed runs before each block.
    """
    inputs = [model.preprocess(frame) for model in models]
    block = max(1, min(block, repeats))
    rounds = -(-repeats // block)
    times: list[list[float]] = [[] for _ in models]
    medians: list[list[float]] = [[] for _ in models]
    for r in range(rounds):
        order = list(range(len(models)))
        order = order[r % len(order):] + order[:r % len(order)]
        if r % 2:
            order.reverse()
        for k in order:
            model, x = models[k], inputs[k]
            for _ in range(warmup):
                model.run(x)
            block_times = []
            for _ in range(block):
                start = time.perf_counter()
                model.run(x)
                block_times.append(time.perf_counter() - start)
            times[k] += block_times
            medians[k].append(statistics.median(block_times))
    ratios = [[first / own for first, own in zip(medians[0], medians[k])]
              for k in range(len(models))]
    return FrameTimes(ms=[1e3 * statistics.median(t) for t in times], ratios=ratios)


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
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            quantize_static,
            QuantType,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
        types = {'uint8': QuantType.QUInt8, 'int8': QuantType.QInt8}
        out = Path(out)
        source = self.float_path
        try:
            if settings.preprocess:
                source = out.with_name(out.stem + '_preprocessed.onnx')
                quant_pre_process(str(self.float_path), str(source))
            excluded = float_nodes(onnx.load(str(source)), first_conv=settings.float_first_conv,
                                   head=settings.float_head)
            quantize_static(
                str(source), str(out),
                _Calibration(self.float_model, self.calibration),
                quant_format=getattr(QuantFormat, settings.quant_format),
                per_channel=settings.per_channel,
                activation_type=types[settings.activations],
                weight_type=types[settings.weights], reduce_range=settings.reduce_range,
                op_types_to_quantize=list(settings.op_types) or None,
                nodes_to_exclude=excluded or None,
                calibrate_method=getattr(CalibrationMethod, settings.calibration))
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
                 repeats: int = 1000, seed: int = 0,
                 settings: QuantSettings = QuantSettings()) -> QuantReport:
    """Export a run's model as int8 to `out`, measured against its float export.

    Args:
        run: Run directory (or checkpoint file).
        out: The int8 .onnx file.
        checkpoint: Checkpoint name in the run directory.
        calibration_frames: Training frames the activation ranges are calibrated on.
        max_drop: Largest drop of the held-out metric accepted (AUC / Spearman / cosine).
        repeats: Timed runs per model (`time_per_frame`; median reported).
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
        times = time_per_frame([prepared.float_model, int8_model], prepared.frames[0],
                               repeats=repeats)
        report = QuantReport(path=out, kind=prepared.kind, metric=prepared.metric,
                             float_metric=prepared.float_metric, int8_metric=int8_metric,
                             float_ms=times.ms[0], int8_ms=times.ms[1],
                             calibration_frames=len(prepared.calibration),
                             eval_frames=len(prepared.val_idx), settings=settings.label(),
                             speedup_quartiles=times.quartiles(1))
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
