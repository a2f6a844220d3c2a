"""Inpainting (Pathak et al. 2016, context encoders): fill in masked square regions.

One or more square holes (`hole` pixels each, random positions, the random-block
variant) are set to the mean pixel (0 after normalisation); an encoder-decoder
reconstructs the image, and the loss is the squared error inside the holes plus a small
weight outside (the context).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_robot.vision.augment import MILD
from ssl_robot.vision.heads import ConvDecoder
from ssl_robot.vision.losses import masked_mse
from ssl_robot.vision.pretext.base import PretextTask


def square_hole_mask(n: int, size: int, hole: int, *, top_left: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool masks [N, 1, S, S], True on one `hole` x `hole` square per image.

    Args:
        n: Number of masks.
        size: Image side S.
        hole: Hole side (<= S).
        top_left: [N, 2] hole corners (y, x); random when None.
    """
    if not 0 < hole <= size:
        raise ValueError(f'hole {hole} must be within 1..{size}')
    if top_left is None:
        top_left = torch.randint(0, size - hole + 1, (n, 2), generator=generator)
    coords = torch.arange(size)
    ys = (coords >= top_left[:, :1]) & (coords < top_left[:, :1] + hole)   # [N, S]
    xs = (coords >= top_left[:, 1:]) & (coords < top_left[:, 1:] + hole)
    return (ys[:, :, None] & xs[:, None, :]).unsqueeze(1)


class AutoEncoder(nn.Module):
    """Encoder -> `ConvDecoder` -> image in normalised units, same size as the input."""

    def __init__(self, encoder: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = ConvDecoder(encoder.out_dim, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x), tuple(x.shape[-2:]))


class InpaintingTask(PretextTask):
    """Context-encoder inpainting of a random square hole."""

    name = 'inpainting'
    #: holes: square holes per image (they may overlap), each `hole_fraction` of the side.
    defaults: dict[str, Any] = {'hole_fraction': 0.5, 'outside_weight': 0.05, 'holes': 1}

    def build_model(self) -> nn.Module:
        return AutoEncoder(self.build_encoder(), int(self.params['in_channels']))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.normalize(MILD(self.pixels(batch)))
        size = target.shape[-1]
        hole = max(1, int(round(size * float(self.params['hole_fraction']))))
        n, holes = target.shape[0], int(self.params['holes'])
        mask = square_hole_mask(n * holes, size, hole).view(holes, n, 1, size, size)
        mask = mask.any(dim=0).to(target.device)
        pred = model(target.masked_fill(mask, 0.0))
        loss = masked_mse(pred, target, mask, outside_weight=float(self.params['outside_weight']))
        return loss, {}
