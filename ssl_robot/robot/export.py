"""Export of a robot run (its checkpoint) to ONNX through the package's one exporter."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def export_run(run: Path | str, out: Path | str, *, checkpoint: str = 'best.pt',
               atol: float = 1e-4) -> Any:
    """Export a robot run's checkpoint to `out`; returns the ExportReport."""
    from ssl_robot.robot.nets import export_robot_onnx
    from ssl_robot.robot.tasks import model_from_checkpoint
    path = Path(run)
    if path.is_dir():
        path = path / checkpoint
    model, state = model_from_checkpoint(path)
    config = state['config']
    extra = {'task': config['task'], 'checkpoint': str(path.resolve()),
             'train_step': int(state.get('step', 0)),
             'dataset': str(config['task_params'].get('dataset', ''))}
    return export_robot_onnx(model, out, extra_metadata=extra, atol=atol)
