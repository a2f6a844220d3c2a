"""The package's one ONNX exporter, with a torch-vs-onnxruntime check.

Every model the package trains (obstacle, terrain, TCN, vision encoders, text encoders)
exports through `export_onnx`: dynamic batch axis, metadata inside the file, and an
automatic parity check on random inputs whose max abs difference is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
import onnx
import torch

from ssl_robot.errors import SslRobotError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Opset used for every export.
OPSET = 18


class ExportError(SslRobotError, RuntimeError):
    """Export failed, or onnxruntime disagrees with torch beyond the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """Result of an export.

    Attributes:
        path: The written .onnx file.
        max_abs_diff: Largest |torch - onnxruntime| over every output and trial.
        metadata: The metadata stored in the file (all values strings).
    """

    path: Path
    max_abs_diff: float
    metadata: dict[str, str]


def export_onnx(
    model: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: Path | str,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    metadata: Mapping[str, Any],
    atol: float = 1e-4,
    trials: int = 3,
) -> ExportReport:
    """Export `model` to ONNX with a dynamic batch axis, metadata, and a parity check.

    Args:
        model: The module; exported in eval mode on CPU.
        example_inputs: One example tensor per input; axis 0 is the batch axis.
        path: Output file (written atomically).
        input_names: ONNX input names.
        output_names: ONNX output names (the model returns a tensor or a tuple of them).
        metadata: Stored as the file's metadata_props; non-string values become JSON.
        atol: Max allowed abs difference between torch and onnxruntime.
        trials: Random input batches (batch sizes 1, 2, 3, ...) compared.

    Returns:
        The export report with the measured max abs difference.

    Raises:
        ExportError: When export fails or the outputs disagree beyond `atol`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f'{path}: cannot write there: {exc.strerror or exc}') from None
    model = model.eval().cpu()
    inputs = tuple(t.detach().cpu() for t in example_inputs)
    dynamic_axes = {name: {0: 'batch'} for name in [*input_names, *output_names]}
    tmp = path.with_name(path.name + '.tmp')
    try:
        with torch.no_grad():
            torch.onnx.export(model, inputs, str(tmp), input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=dynamic_axes,
                              opset_version=OPSET, dynamo=False, external_data=False)
        proto = onnx.load(str(tmp))
        meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
        onnx.helper.set_model_props(proto, meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f'{path}: ONNX export failed: {exc}') from exc

    try:
        max_diff = check_parity(model, tmp, inputs, input_names, trials=trials,
                                output_names=output_names)
    except ExportError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(str(exc).replace(str(tmp), str(path))) from None
    if not max_diff <= atol:
        tmp.unlink(missing_ok=True)
        raise ExportError(f'{path}: onnxruntime and torch differ by {max_diff:.3g} > {atol}')
    os.replace(tmp, path)
    return ExportReport(path=path, max_abs_diff=max_diff, metadata=meta)


def check_parity(model: torch.nn.Module, onnx_path: Path | str,
                 example_inputs: Sequence[torch.Tensor], input_names: Sequence[str], *,
                 trials: int = 3, seed: int = 0,
                 output_names: Sequence[str] | None = None) -> float:
    """Run torch and onnxruntime on random inputs shaped like the examples.

    Float inputs are drawn from N(0, 1); integer inputs uniformly between the example's
    min and max. Batch sizes 1..trials exercise the dynamic batch axis.

    Returns:
        The max abs difference over all outputs and trials.

    Raises:
        ExportError: When torch or onnxruntime gives a NaN or infinite output.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    max_diff = 0.0
    for batch in range(1, trials + 1):
        feeds = []
        for example in example_inputs:
            shape = (batch, *example.shape[1:])
            if example.dtype.is_floating_point:
                feeds.append(torch.randn(shape, generator=generator, dtype=example.dtype))
            else:
                low, high = int(example.min()), int(example.max()) + 1
                feeds.append(torch.randint(low, high, shape, generator=generator,
                                           dtype=example.dtype))
        with torch.no_grad():
            expected = model(*feeds)
        if isinstance(expected, torch.Tensor):
            expected = (expected,)
        got = session.run(None, {n: f.numpy() for n, f in zip(input_names, feeds)})
        for name, e, g in zip(output_names or range(len(got)), expected, got):
            # NaN/inf would pass `max(0.0, nan)`; a model that outputs them is broken.
            if not (np.isfinite(e.numpy()).all() and np.isfinite(g).all()):
                raise ExportError(f'{onnx_path}: output {name} is not finite (NaN/inf) on '
                                  f'random inputs of batch {batch}; the model is broken')
            max_diff = max(max_diff, float(np.max(np.abs(e.numpy() - g))) if g.size else 0.0)
    return max_diff


def read_metadata(path: Path | str) -> dict[str, str]:
    """Return the metadata stored in an ONNX file by `export_onnx`.

    Raises:
        ExportError: When the file is missing or not a valid ONNX model.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f'{path}: no such ONNX model')
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f'{path}: not a valid ONNX model: {exc}') from exc
    return {p.key: p.value for p in proto.metadata_props}
