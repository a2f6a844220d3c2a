"""Train a pretext (or the supervised reference) through the shared trainer; export encoders."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_robot.train import TrainConfig, Trainer
from ssl_robot.vision.encoders import FeatureExtractor, VisionEncoder
from ssl_robot.vision.pretext import build_pretext, load_pretext_model, PretextTask


def train_task(task: PretextTask, out_dir: Path | str, *, epochs: int, batch_size: int = 128,
               lr: float = 2e-3, seed: int = 0, max_steps: int = 0, progress: bool = True,
               device: str = 'cpu') -> nn.Module:
    """Train `task` with the shared `Trainer`; returns the best model (eval mode).

    The task's parameters go into the checkpoint, so `load_pretext_model` rebuilds it.
    """
    config = TrainConfig(out_dir=str(out_dir), epochs=epochs, max_steps=max_steps,
                         batch_size=batch_size, lr=lr, weight_decay=1e-4,
                         warmup_steps=20, seed=seed, device=device, progress=progress,
                         task=task.name, task_params=dict(task.params))
    return Trainer(task, config).fit().model.eval()


def train_or_load_pretext(name: str, images: torch.Tensor, out_dir: Path | str, *,
                          params: dict[str, Any] | None = None, epochs: int,
                          batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                          progress: bool = True, retrain: bool = False
                          ) -> tuple[PretextTask, nn.Module, bool]:
    """Train pretext `name` on `images`, or load the matching run in `out_dir`.

    A run matches when it finished (its final_metrics.json is written last) and was made
    with the same parameters, epochs, batch size, learning rate and seed; a run cut short
    keeps a best.pt of fewer epochs, which is trained again.

    Returns:
        (task, trained model, whether it was loaded rather than trained).
    """
    task = build_pretext(name, images, params)
    best = Path(out_dir) / 'best.pt'
    if best.exists() and (best.parent / 'final_metrics.json').exists() and not retrain:
        from ssl_robot.train import load_checkpoint
        cfg = load_checkpoint(best)['config']
        if (cfg.get('task_params') == task.params and cfg.get('epochs') == epochs
                and cfg.get('seed') == seed and cfg.get('batch_size') == batch_size
                and cfg.get('lr') == lr):
            return task, load_pretext_model(best)[1], True
    model = train_task(task, out_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                       progress=progress)
    return task, model, False


def export_encoder(encoder: VisionEncoder, spec: dict[str, Any], path: Path | str, *,
                   extra_metadata: dict[str, Any] | None = None) -> Any:
    """Export an encoder as an ONNX feature extractor (image -> features [N, D]).

    Args:
        encoder: The trained encoder.
        spec: `PretextTask.encoder_spec()` (becomes the ONNX metadata).
        path: Output .onnx file.
        extra_metadata: More metadata (metrics, run directory, ...).

    Returns:
        The exporter's `ExportReport`.
    """
    from ssl_robot.export import export_onnx
    h, w = spec['input_hw']
    meta = {**spec, 'feature_dim': encoder.out_dim, **(extra_metadata or {})}
    return export_onnx(FeatureExtractor(encoder).eval(),
                       [torch.zeros(1, 3, int(h), int(w))], path,
                       input_names=['image'], output_names=['features'], metadata=meta)
