"""The one encoder family of the vision pretexts: a small conv net for 1- or 3-channel input.

A stride-1 stem, then one stride-2 stage per width (two 3x3 conv-BN-ReLU blocks each):
28 px input ends at 4x4, 64 px at 8x8, a 7 px jigsaw tile at 1x1. `forward` returns the
feature map (decoders need it); `embed` the globally averaged feature vector that probes,
k-NN and the exported feature extractor use.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ssl_robot.layers import conv_block

#: Default widths: ~10 M multiply-adds per 28x28 image, quick on a CPU core.
DEFAULT_WIDTHS = (32, 64, 128)


class VisionEncoder(nn.Module):
    """Conv encoder: stem + len(widths) stride-2 stages.

    Args:
        in_channels: 1 (grey) or 3 (RGB).
        widths: Channels per stage; the stem has widths[0].
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if in_channels not in (1, 3) or not widths:
            raise ValueError(f'VisionEncoder: in_channels {in_channels}, widths {widths}')
        layers: list[nn.Module] = [conv_block(in_channels, widths[0], 1)]
        prev = widths[0]
        for width in widths:
            layers += [conv_block(prev, width, 2), conv_block(width, width, 1)]
            prev = width
        self.features = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.widths = widths
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally averaged features [N, out_dim]."""
        return self.features(x).mean(dim=(2, 3))


class FeatureExtractor(nn.Module):
    """What is exported to ONNX: normalised RGB image [N, 3, H, W] -> features [N, out_dim].

    The input is always RGB, as the inference node feeds it. A grey encoder gets the
    BT.601 luma of the normalised channels: with the same mean and std on all three
    channels (which `rgb_normalisation` gives), luma of (rgb - m) / s equals
    (grey - m) / s, because the luma weights sum to 1.
    """

    LUMA = (0.299, 0.587, 0.114)

    def __init__(self, encoder: VisionEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer('luma', torch.tensor(self.LUMA).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder.in_channels == 1:
            x = (x * self.luma).sum(dim=1, keepdim=True)
        return self.encoder.embed(x)


def rgb_normalisation(mean: Sequence[float], std: Sequence[float]
                      ) -> tuple[list[float], list[float]]:
    """Per-channel statistics as three RGB entries (a grey encoder's repeated)."""
    if len(mean) == 1:
        return [float(mean[0])] * 3, [float(std[0])] * 3
    return [float(m) for m in mean], [float(s) for s in std]


def build_encoder(spec: dict[str, Any]) -> VisionEncoder:
    """Build an encoder from a spec with 'in_channels' and 'widths'."""
    return VisionEncoder(int(spec.get('in_channels', 1)), spec.get('widths', DEFAULT_WIDTHS))
