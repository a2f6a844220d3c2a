"""Heads by role on top of the encoder's feature map."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class ObstacleHead(nn.Module):
    """Global pool -> MLP -> one logit per (distance, sensor) [N, D, S]."""

    def __init__(self, in_ch: int, n_distances: int, n_sensors: int, hidden: int = 64) -> None:
        super().__init__()
        self.shape = (n_distances, n_sensors)
        self.mlp = nn.Sequential(nn.Linear(in_ch, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, n_distances * n_sensors))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        pooled = feats.mean(dim=(2, 3))
        return self.mlp(pooled).view(-1, *self.shape)


class TerrainHead(nn.Module):
    """1x1 convs on the feature map, resampled to the terrain grid -> [N, C, GH, GW].

    Channel 0 is the scalar cost; the `extra` channels after it are the per-patch
    descriptor entries and terrain-type logits of a descriptor model (none by default,
    which keeps the state dict of a scalar-only model).
    """

    def __init__(self, in_ch: int, grid_hw: tuple[int, int], hidden: int = 32, *,
                 extra: int = 0) -> None:
        super().__init__()
        self.grid_hw = (int(grid_hw[0]), int(grid_hw[1]))
        self.conv = nn.Sequential(nn.Conv2d(in_ch, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, 1 + int(extra), 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.conv(feats)
        # Bilinear resampling (not adaptive pooling) exports to ONNX for any grid size.
        return F.interpolate(out, size=self.grid_hw, mode='bilinear', align_corners=False)


class EmbeddingHead(nn.Module):
    """Global pool -> linear -> L2-normalised embedding [N, E] (TCN)."""

    def __init__(self, in_ch: int, embed_dim: int = 32) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_ch, in_ch), nn.ReLU(inplace=True),
                                  nn.Linear(in_ch, embed_dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(feats.mean(dim=(2, 3))), dim=1, eps=1e-8)
