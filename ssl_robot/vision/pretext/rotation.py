"""RotNet (Gidaris et al. 2018): predict which of 0/90/180/270 degrees an image was turned.

Every image of a batch appears in all four rotations, so the classes are balanced and
the encoder cannot rely on per-image cues of the batch composition.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.vision.augment import MILD, rotate90
from ssl_robot.vision.heads import mlp
from ssl_robot.vision.pretext.base import accuracy, PretextTask

#: Number of rotation classes: label k means k * 90 degrees counter-clockwise.
N_ROTATIONS = 4


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of each square image and their labels.

    Args:
        x: [N, C, S, S].

    Returns:
        (images [4N, C, S, S], labels [4N]): rows k*N..(k+1)*N-1 are the batch turned by
        k * 90 degrees counter-clockwise, labelled k.
    """
    n = x.shape[0]
    labels = torch.arange(N_ROTATIONS, device=x.device).repeat_interleave(n)
    return rotate90(x.repeat(N_ROTATIONS, 1, 1, 1), labels), labels


class Classifier(nn.Module):
    """Encoder -> pool -> MLP (or linear, hidden=0) -> class logits.

    Args:
        encoder: The encoder.
        n_classes: Number of logits.
        hidden: MLP hidden width (0: a linear head).
        cells: 0 pools the last feature map globally (`VisionEncoder.embed`); k > 0
            averages it over a k x k grid of cells and the head sees all of them, so
            where a feature is comes from the head's weights rather than from the
            features (the puzzle pretexts, whose answer is a layout).
    """

    def __init__(self, encoder: nn.Module, n_classes: int, hidden: int = 256, *,
                 cells: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.cells = int(cells)
        dim = encoder.out_dim * max(1, self.cells) ** 2
        self.head = mlp(dim, hidden, n_classes) if hidden else nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cells:
            return self.head(F.adaptive_avg_pool2d(self.encoder(x), self.cells).flatten(1))
        return self.head(self.encoder.embed(x))


class RotationTask(PretextTask):
    """Rotation prediction (4-way)."""

    name = 'rotation'
    primary_metric = 'val_loss'
    defaults: dict[str, Any] = {'hidden': 256}

    def build_model(self) -> nn.Module:
        return Classifier(self.build_encoder(), N_ROTATIONS, int(self.params['hidden']))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = MILD(self.pixels(batch))
        images, labels = rotation_batch(self.normalize(x))
        logits = model(images)
        return F.cross_entropy(logits, labels), {'acc': accuracy(logits, labels)}
