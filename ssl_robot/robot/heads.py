"""Heads by role on top of the encoder's feature map."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

#: How `ObstacleHead` pools the feature map, and the cells of its 'grid' readout.
READOUTS = ('mean', 'grid')
READOUT_GRID = (3, 4)


def grid_mean(feats: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean of the feature map [N, C, H, W] over a grid of cells -> [N, C, GH, GW].

    The cells are those of `F.adaptive_avg_pool2d` (cell i spans rows floor(i H / GH) to
    ceil((i + 1) H / GH)), taken as slices, so that the ONNX export works for any map size
    (the exporter refuses adaptive pooling where the grid does not divide the map).
    """
    h, w = feats.shape[2], feats.shape[3]
    # Ceilings as floors of non-negative numbers: the exporter may trace the sizes, and
    # ONNX integer division truncates (it would round -(-a // b) the wrong way).
    rows = [(i * h // grid[0], ((i + 1) * h + grid[0] - 1) // grid[0]) for i in range(grid[0])]
    cols = [(j * w // grid[1], ((j + 1) * w + grid[1] - 1) // grid[1]) for j in range(grid[1])]
    cells = [feats[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
    return torch.stack(cells, dim=2).view(feats.shape[0], feats.shape[1], *grid)


class ObstacleHead(nn.Module):
    """Pool -> MLP -> one logit per (distance, sensor) [N, D, S].

    `readout` says how the feature map is pooled: 'mean' averages it globally (where in
    the image a feature fired is lost); 'grid' averages it to a `grid` of cells and feeds
    every cell to the MLP, so that a logit can depend on where the obstacle is in the
    image - low in the image is near, left and right are the side sensors (Nava et al.'s
    network reads its last feature map the same way, through a dense layer).

    Args:
        in_ch: Channels of the feature map.
        n_distances: Distances ahead.
        n_sensors: Sensors.
        hidden: Hidden units of the MLP.
        readout: 'mean' or 'grid'.
        grid: (rows, columns) of the 'grid' readout.
    """

    def __init__(self, in_ch: int, n_distances: int, n_sensors: int, hidden: int = 64, *,
                 readout: str = 'mean', grid: tuple[int, int] = READOUT_GRID) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f'unknown obstacle readout {readout!r} (known: '
                             f'{", ".join(READOUTS)})')
        self.shape = (n_distances, n_sensors)
        self.readout = readout
        self.grid = (int(grid[0]), int(grid[1]))
        cells = self.grid[0] * self.grid[1] if readout == 'grid' else 1
        self.mlp = nn.Sequential(nn.Linear(in_ch * cells, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, n_distances * n_sensors))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.readout == 'grid':
            pooled = grid_mean(feats, self.grid).flatten(1)
        else:
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
