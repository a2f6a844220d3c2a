"""A small CNN encoder that runs fast on one CPU core at e.g. 48x64 or 72x96 input."""
from __future__ import annotations

import torch
from torch import nn

from ssl_robot.layers import conv_block


class ConvEncoder(nn.Module):
    """Four stride-2 stages (16x downsampling) of width w, 2w, 4w, 4w channels.

    `forward` returns the feature map [N, C, H/16, W/16]; heads pool it as they need
    (globally for obstacle and TCN, to the terrain grid for terrain).

    Args:
        width: Channels of the first stage.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 4 * width]
        layers, in_ch = [], 3
        for out_ch in chans:
            layers += [conv_block(in_ch, out_ch, 2), conv_block(out_ch, out_ch, 1)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
