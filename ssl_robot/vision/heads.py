"""Heads by role on top of `VisionEncoder` features: classifier, projector, decoder."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear -> BN -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class ProjectionHead(nn.Module):
    """SimCLR/MoCo v2 projector: MLP to a low-dimensional space (normalised by the loss)."""

    def __init__(self, in_dim: int, hidden: int = 256, out_dim: int = 64) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Feature map -> image: bilinear upsampling + conv blocks, resized to `out_hw`.

    Used by inpainting and the denoising autoencoder; output is in normalised pixel units.
    """

    def __init__(self, in_ch: int, out_channels: int, widths: tuple[int, ...] = (64, 32)) -> None:
        super().__init__()
        blocks = []
        prev = in_ch
        for width in widths:
            blocks.append(nn.Sequential(nn.Conv2d(prev, width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
            prev = width
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(prev, out_channels, 3, padding=1)

    def forward(self, feats: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        x = feats
        for block in self.blocks:
            x = block(F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=False))
        x = F.interpolate(x, size=out_hw, mode='bilinear', align_corners=False)
        return self.out(x)
