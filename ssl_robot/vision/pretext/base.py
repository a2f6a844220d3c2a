"""What every vision pretext shares.

Parameters, the image pool split, normalisation, the encoder, seeded validation and the
encoder's export spec.

A pretext's model is an `nn.Module` whose ``encoder`` attribute is a `VisionEncoder`;
its heads are the pretext's own and are dropped after training.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ssl_robot.train import Task
from ssl_robot.train.trainer import unwrap
from ssl_robot.vision import VisionError
from ssl_robot.vision.data import ImagePool, pixel_stats
from ssl_robot.vision.encoders import (
    build_encoder,
    DEFAULT_WIDTHS,
    rgb_normalisation,
    VisionEncoder,
)

#: Parameters of every pretext (each method adds its own in `defaults`).
BASE_DEFAULTS: dict[str, Any] = {
    'in_channels': 1, 'image_size': 28, 'widths': list(DEFAULT_WIDTHS),
    'mean': [0.5], 'std': [0.25], 'val_fraction': 0.1, 'split_seed': 0,
}
#: Seed of the fixed RNG that augments/corrupts validation batches, so that validation
#: numbers of different epochs compare.
VAL_SEED = 1234


class PretextTask(Task):
    """Base of the vision pretext tasks.

    Args:
        images: uint8 pool [N, C, S, S] (None when only rebuilding a model from params).
        params: Overrides of `BASE_DEFAULTS` and the method's `defaults`; the channels,
            size and (unless given) pixel statistics come from `images`.

    Raises:
        VisionError: On unknown parameters or a pool that is not [N, 1|3, S, S] uint8.
    """

    name = 'pretext'
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, images: torch.Tensor | None = None, *,
                 params: dict[str, Any] | None = None) -> None:
        params = dict(params or {})
        merged = {**BASE_DEFAULTS, **self.defaults}
        unknown = set(params) - set(merged)
        if unknown:
            raise VisionError(f'{self.name}: unknown parameters {", ".join(sorted(unknown))} '
                              f'(known: {", ".join(sorted(merged))})')
        merged.update(params)
        if images is not None:
            if (images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3)
                    or images.shape[2] != images.shape[3]):
                raise VisionError(f'{self.name}: want a uint8 pool [N, 1|3, S, S], got '
                                  f'{images.dtype} {tuple(images.shape)}')
            merged['in_channels'] = int(images.shape[1])
            merged['image_size'] = int(images.shape[-1])
            if 'mean' not in params or 'std' not in params:
                merged['mean'], merged['std'] = pixel_stats(images)
        self.params = merged
        self.images = images
        self._mean = torch.tensor(merged['mean'], dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(merged['std'], dtype=torch.float32).view(1, -1, 1, 1)

    # -- data ---------------------------------------------------------------------------

    def datasets(self) -> tuple[ImagePool, ImagePool | None]:
        """Split the pool (fixed seed) into train and validation images."""
        if self.images is None:
            raise VisionError(f'{self.name}: no image pool given')
        n = len(self.images)
        order = torch.from_numpy(np.random.default_rng(self.params['split_seed']).permutation(n))
        n_val = int(round(n * float(self.params['val_fraction'])))
        if n_val == 0:
            return ImagePool(self.images), None
        return ImagePool(self.images[order[n_val:]]), ImagePool(self.images[order[:n_val]])

    def pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float pixels on [0, 1]."""
        return batch.float().div_(255.0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> model input ((x - mean) / std per channel)."""
        return (x - self._mean.to(x.device)) / self._std.to(x.device)

    # -- model --------------------------------------------------------------------------

    def build_encoder(self) -> VisionEncoder:
        return build_encoder(self.params)

    @staticmethod
    def encoder_of(model: nn.Module) -> VisionEncoder:
        """The encoder inside a pretext model (or DDP wrapper)."""
        return unwrap(model).encoder

    def encoder_spec(self) -> dict[str, Any]:
        """What a consumer of the exported feature extractor needs (its ONNX metadata).

        The exported graph always takes RGB (see `FeatureExtractor`); `encoder_channels`
        says whether the encoder itself sees grey or colour.
        """
        size = int(self.params['image_size'])
        mean, std = rgb_normalisation(self.params['mean'], self.params['std'])
        return {
            'kind': 'encoder', 'pretext': self.name, 'input_hw': [size, size],
            'channels': 3, 'channel_order': 'RGB', 'mean': mean, 'std': std,
            'encoder_channels': int(self.params['in_channels']),
            'widths': list(self.params['widths']),
            'input_names': ['image'], 'output_names': ['features'],
            'input_layout': 'NCHW float32, RGB on [0,1] then (x-mean)/std',
        }

    # -- validation ---------------------------------------------------------------------

    def evaluate(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        """Mean validation loss (and pretext accuracy where the loss reports one).

        Random views/corruptions come from a fixed seed, so epochs compare.
        """
        sums: dict[str, float] = {}
        count = 0
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(VAL_SEED)
            for batch in loader:
                loss, extras = self.loss(model, batch)
                sums['val_loss'] = sums.get('val_loss', 0.0) + float(loss)
                for key, value in extras.items():
                    sums[f'val_{key}'] = sums.get(f'val_{key}', 0.0) + float(value)
                count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is the label."""
    return float((logits.argmax(dim=1) == labels).float().mean())
