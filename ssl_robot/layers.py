"""Network building blocks shared by the robot and vision wings."""
from __future__ import annotations

from torch import nn


def conv_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU (BN folds into the conv at ONNX export)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))
