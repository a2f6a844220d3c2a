"""Image transforms in torch (no torchvision): uint8 frames to normalised model input.

Frames travel as uint8 NHWC RGB (as stored in the dataset and decoded by msgconv); the
model sees float NCHW, resized and normalised with constants stored with the model
(augmentations shared with the vision wing are in `ssl_robot.augment`).
Resizing uses area averaging: uint8 frames on the CPU are resized by the inference
core's own resize (`ssl_robot.area_resize`, exact pixel sums from integral images), so
training and deployment see the same pixels; float images (and frames on another device)
by torch's 'area' interpolation, which bins the pixels the same way.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ssl_robot.area_resize import AreaResize

#: Default per-channel normalisation (RGB, on [0, 1] pixels), stored in every model spec.
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.25, 0.25, 0.25)


def frames_to_input(frames: torch.Tensor, input_hw: Sequence[int], mean: Sequence[float],
                    std: Sequence[float]) -> torch.Tensor:
    """Convert uint8 NHWC RGB frames to normalised float NCHW at `input_hw`.

    Args:
        frames: uint8 tensor [N, H, W, 3].
        input_hw: Model input (height, width).
        mean: Per-channel mean on [0, 1] pixels.
        std: Per-channel standard deviation on [0, 1] pixels.

    Returns:
        float32 tensor [N, 3, h, w].
    """
    return normalize(unit_frames(frames, input_hw), mean, std)


def unit_frames(frames: torch.Tensor | np.ndarray, input_hw: Sequence[int],
                rows: Sequence[int] | None = None) -> torch.Tensor:
    """uint8 NHWC frames (rows `rows` of them) area-resized to `input_hw`, float in 0..1.

    NCHW in the channels-last memory layout (the faster CPU convolutions). CPU frames,
    e.g. a memory-mapped dataset's, are read where they lie and resized from their
    integral images (`AreaResize`: at 640x480 ~0.2 ms a frame, 6x faster than torch's
    float resize, and no full-size float copy); frames on another device by torch.
    """
    if isinstance(frames, torch.Tensor) and frames.device.type != 'cpu':
        x = frames if rows is None else frames[torch.as_tensor(list(rows))]
        return resize(x.permute(0, 3, 1, 2).float().div_(255.0), input_hw)
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    area = AreaResize.make(frames.shape[1:3], input_hw)
    return torch.from_numpy(area.unit(frames, rows)).permute(0, 3, 1, 2)


def resize(x: torch.Tensor, input_hw: Sequence[int]) -> torch.Tensor:
    """Area-average resize of float NCHW images to `input_hw` (no-op when equal)."""
    h, w = int(input_hw[0]), int(input_hw[1])
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode='area')


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel of float NCHW images."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def mirror_permutation(sensors: Sequence[str]) -> list[int]:
    """Index permutation of the sensors under a left-right mirror of the robot.

    A sensor named with 'left' maps to the one with 'right' in its place (and back);
    others (e.g. 'center') map to themselves.

    Raises:
        ValueError: When several sensors have no left/right in their names, so the
            mirror is unknown (disable the flip augmentation for such robots).
    """
    names = list(sensors)
    perm = []
    for name in names:
        if 'left' in name:
            twin = name.replace('left', 'right')
        elif 'right' in name:
            twin = name.replace('right', 'left')
        else:
            twin = name
        if twin not in names:
            raise ValueError(f'sensor {name!r} has no mirror twin {twin!r} in {names}')
        perm.append(names.index(twin))
    if len(names) > 1 and perm == list(range(len(names))):
        raise ValueError(f'sensors {names}: no left/right pairs, the mirror is unknown')
    return perm
