"""The seven vision pretexts, one module each, all `Task`s of the shared trainer.

`PRETEXTS` maps each name to its task class; `build_pretext(name, images, params)` makes
one; `load_pretext_encoder(checkpoint)` rebuilds the trained encoder of a run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ssl_robot.vision import VisionError
from ssl_robot.vision.pretext.base import PretextTask
from ssl_robot.vision.pretext.denoising import DenoisingTask
from ssl_robot.vision.pretext.inpainting import InpaintingTask
from ssl_robot.vision.pretext.jigsaw import JigsawTask
from ssl_robot.vision.pretext.moco import MoCoTask
from ssl_robot.vision.pretext.relative_position import RelativePositionTask
from ssl_robot.vision.pretext.rotation import RotationTask
from ssl_robot.vision.pretext.simclr import SimCLRTask

#: Pretext name -> task class, in the order tables list them.
PRETEXTS: dict[str, type[PretextTask]] = {
    cls.name: cls for cls in (RotationTask, JigsawTask, InpaintingTask, RelativePositionTask,
                              SimCLRTask, MoCoTask, DenoisingTask)
}


def build_pretext(name: str, images: torch.Tensor | None = None,
                  params: dict[str, Any] | None = None) -> PretextTask:
    """Make the pretext task `name` on an image pool.

    Raises:
        VisionError: On an unknown name or bad parameters.
    """
    if name not in PRETEXTS:
        raise VisionError(f'unknown pretext {name!r} (known: {", ".join(PRETEXTS)})')
    return PRETEXTS[name](images, params=params)


def load_pretext_model(checkpoint: Path | str) -> tuple[PretextTask, torch.nn.Module]:
    """Rebuild a pretext task (without images) and its trained model from a checkpoint.

    Raises:
        VisionError: When the checkpoint is not of a vision pretext.
    """
    from ssl_robot.train import load_checkpoint
    state = load_checkpoint(checkpoint)
    name = state['config'].get('task', '')
    if name not in PRETEXTS:
        raise VisionError(f'{checkpoint}: checkpoint of task {name!r}, not a vision pretext')
    task = build_pretext(name, None, state['config'].get('task_params', {}))
    model = task.build_model()
    model.load_state_dict(state['model'])
    return task, model.eval()


__all__ = ['build_pretext', 'load_pretext_model', 'PRETEXTS', 'PretextTask']
