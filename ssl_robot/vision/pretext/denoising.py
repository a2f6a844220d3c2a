"""Denoising autoencoder (Vincent et al. 2008): reconstruct the clean image.

The corruption is additive Gaussian noise plus masking noise (a random fraction of the
pixels set to the mean), applied in [0, 1] pixel space; the loss is the squared error of
the reconstruction against the clean (normalised) image over all pixels.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.vision.augment import gaussian_noise, MILD
from ssl_robot.vision.pretext.base import PretextTask
from ssl_robot.vision.pretext.inpainting import AutoEncoder


def corrupt(x: torch.Tensor, *, noise_std: float, drop_p: float, fill: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise, then each pixel (all channels) replaced by `fill` with prob `drop_p`.

    Args:
        x: [N, C, H, W] pixels on [0, 1].
        noise_std: Std of the Gaussian noise.
        drop_p: Masking-noise probability.
        fill: [1, C, 1, 1] value of dropped pixels (the mean pixel).
    """
    noisy = gaussian_noise(x, std=noise_std, generator=generator)
    if drop_p:
        drop = torch.rand((x.shape[0], 1, *x.shape[2:]), generator=generator).to(x.device)
        noisy = torch.where(drop < drop_p, fill.to(x.device, x.dtype), noisy)
    return noisy


class DenoisingTask(PretextTask):
    """Denoising autoencoder."""

    name = 'denoising'
    defaults: dict[str, Any] = {'noise_std': 0.3, 'drop_p': 0.25}

    def build_model(self) -> nn.Module:
        return AutoEncoder(self.build_encoder(), int(self.params['in_channels']))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        clean = MILD(self.pixels(batch))
        noisy = corrupt(clean, noise_std=float(self.params['noise_std']),
                        drop_p=float(self.params['drop_p']), fill=self._mean)
        pred = model(self.normalize(noisy))
        return F.mse_loss(pred, self.normalize(clean)), {}
