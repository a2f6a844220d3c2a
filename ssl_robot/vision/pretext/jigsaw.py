"""Jigsaw puzzles (Noroozi & Favaro 2016): put shuffled tiles back in order.

The image is cut into a grid x grid of cells; each tile is a random crop smaller than its
cell, so neighbouring tiles are separated by a random gap and edge continuity does not
give the order away. The tiles are shuffled by one of a fixed set of permutations chosen
greedily for maximal minimum Hamming distance, and the network predicts its index.

By default the grid is cut from the object's bounding square (not background), each
tile's brightness and contrast are jittered on their own, and the shuffled tiles are laid
out on one full-size canvas that the encoder sees whole (JiGen-style), rather than
encoded one 7-px tile at a time (benchmarks/eval_pretext_ablation.py measures each
change).
"""
from __future__ import annotations

from functools import lru_cache
import itertools
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.vision.augment import border_median, crop_to_object, jitter_each_patch, MILD
from ssl_robot.vision.heads import mlp
from ssl_robot.vision.pretext.base import accuracy, PretextTask
from ssl_robot.vision.pretext.rotation import Classifier


@lru_cache(maxsize=8)
def max_hamming_permutations(n_perms: int, n_tiles: int = 9, seed: int = 0) -> np.ndarray:
    """A fixed permutation set with large pairwise Hamming distances.

    Greedy (Noroozi & Favaro's algorithm 1): start from a seeded random permutation,
    then repeatedly add the permutation whose minimum Hamming distance to the chosen
    ones is largest (lowest index on ties, so the set is deterministic).

    Args:
        n_perms: Size of the set (at most n_tiles!).
        n_tiles: Tiles per puzzle.
        seed: Seed of the first permutation.

    Returns:
        int64 [n_perms, n_tiles]; row p maps output position i to input tile perm[p, i].
    """
    every = np.array(list(itertools.permutations(range(n_tiles))), dtype=np.int8)
    if not 1 <= n_perms <= len(every):
        raise ValueError(f'n_perms {n_perms}: want 1..{len(every)} for {n_tiles} tiles')
    first = np.random.default_rng(seed).integers(len(every))
    chosen = [int(first)]
    min_dist = (every != every[first]).sum(axis=1)
    for _ in range(n_perms - 1):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, (every != every[nxt]).sum(axis=1))
    return every[chosen].astype(np.int64)


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """The permutation that undoes `perm` (along the last axis)."""
    return torch.argsort(perm, dim=-1)


def cut_tiles(x: torch.Tensor, *, grid: int, tile: int,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each image into grid x grid tiles, each a random `tile`-pixel crop of its cell.

    Args:
        x: [N, C, S, S] with S >= grid * tile.
        grid: Cells per side.
        tile: Tile side (< cell side leaves a random gap between tiles).

    Returns:
        [N, grid * grid, C, tile, tile] in row-major cell order.
    """
    n, c, s, _ = x.shape
    cell = s // grid
    if tile > cell:
        raise ValueError(f'tile {tile} larger than the cell {cell} ({s} px / {grid})')
    slack = cell - tile + 1
    t = grid * grid
    cell_origin = torch.arange(grid, device=x.device) * cell
    oy = cell_origin.repeat_interleave(grid).expand(n, t)
    ox = cell_origin.repeat(grid).expand(n, t)
    jy = torch.randint(0, slack, (n, t), generator=generator).to(x.device)
    jx = torch.randint(0, slack, (n, t), generator=generator).to(x.device)
    return crop_patches(x, oy + jy, ox + jx, tile)


def crop_patches(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int
                 ) -> torch.Tensor:
    """Gather square patches: x[n, :, top[n,j]:+size, left[n,j]:+size] -> [N, J, C, size, size]."""
    offs = torch.arange(size, device=x.device)
    rows = (top.unsqueeze(-1) + offs).unsqueeze(-1)          # [N, J, size, 1]
    cols = (left.unsqueeze(-1) + offs).unsqueeze(-2)         # [N, J, 1, size]
    batch = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1, 1)
    patches = x.permute(0, 2, 3, 1)[batch, rows, cols]       # [N, J, size, size, C]
    return patches.permute(0, 1, 4, 2, 3).contiguous()


def shuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor, index: torch.Tensor
                  ) -> torch.Tensor:
    """Put tile perms[index[n], i] of puzzle n at position i.

    Args:
        tiles: [N, T, ...].
        perms: The permutation set [P, T].
        index: Permutation index per puzzle [N] (the label).
    """
    order = perms.to(tiles.device)[index]                     # [N, T]
    return tiles[torch.arange(tiles.shape[0], device=tiles.device).unsqueeze(1), order]


def paste_tiles(tiles: torch.Tensor, *, grid: int, size: int, fill: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Lay tiles out on a `size` x `size` canvas.

    Tile i goes into cell i (row-major) at a random offset inside its cell; the rest of
    the canvas is `fill`.

    Args:
        tiles: [N, grid * grid, C, t, t].
        grid: Cells per side.
        size: Canvas side (>= grid * t).
        fill: Per-image, per-channel background [N, C].

    Returns:
        [N, C, size, size].
    """
    n, count, c, t, _ = tiles.shape
    cell = size // grid
    if t > cell:
        raise ValueError(f'tile {t} larger than the cell {cell} ({size} px / {grid})')
    canvas = fill.view(n, c, 1, 1).expand(n, c, size, size).clone()
    origin = torch.arange(grid, device=tiles.device) * cell
    top = origin.repeat_interleave(grid).expand(n, count)
    left = origin.repeat(grid).expand(n, count)
    top = top + torch.randint(0, cell - t + 1, (n, count), generator=generator).to(top.device)
    left = left + torch.randint(0, cell - t + 1, (n, count), generator=generator).to(top.device)
    offs = torch.arange(t, device=tiles.device)
    rows = (top.unsqueeze(-1) + offs).unsqueeze(-1)           # [N, T, t, 1]
    cols = (left.unsqueeze(-1) + offs).unsqueeze(-2)          # [N, T, 1, t]
    batch = torch.arange(n, device=tiles.device).view(-1, 1, 1, 1)
    out = canvas.permute(0, 2, 3, 1)                          # [N, S, S, C] view
    out[batch, rows, cols] = tiles.permute(0, 1, 3, 4, 2)
    return canvas


class JigsawNet(nn.Module):
    """Shared encoder per tile -> per-tile projection -> concatenation -> MLP -> index."""

    def __init__(self, encoder: nn.Module, n_tiles: int, n_perms: int, tile_dim: int = 64,
                 hidden: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.tile_proj = nn.Sequential(nn.Linear(encoder.out_dim, tile_dim), nn.ReLU(inplace=True))
        self.head = mlp(n_tiles * tile_dim, hidden, n_perms)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        n, t = tiles.shape[:2]
        feats = self.tile_proj(self.encoder.embed(tiles.flatten(0, 1)))
        return self.head(feats.view(n, -1))


class JigsawTask(PretextTask):
    """Jigsaw puzzle: predict the permutation index of shuffled tiles.

    Parameters beyond Noroozi & Favaro's: `object_crop` cuts the grid from the object's
    bounding square (not from background); `tile_jitter` jitters each tile's brightness
    and contrast (and greys RGB tiles at random) so tiles cannot be ordered by low-level
    statistics; `canvas` lays the shuffled tiles out on one full-size image that the
    encoder sees whole (as in JiGen, Carlucci et al. 2019), so it learns at the scale it
    is evaluated at, instead of encoding each tile alone; `cell_head` (with `canvas`)
    gives the head the canvas's features averaged per grid cell rather than globally, so
    the encoder need not write where a tile lies into its features.
    """

    name = 'jigsaw'
    #: tile 0: 7/9 of the cell side (7 px tiles in 9 px cells at 28 px).
    defaults: dict[str, Any] = {'grid': 3, 'tile': 0, 'n_perms': 64, 'perm_seed': 0,
                                'hidden': 256, 'object_crop': True, 'tile_jitter': True,
                                'canvas': True, 'cell_head': False}

    def __init__(self, images: torch.Tensor | None = None, *,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(images, params=params)
        grid = int(self.params['grid'])
        self.perms = torch.from_numpy(max_hamming_permutations(
            int(self.params['n_perms']), grid * grid, int(self.params['perm_seed'])))

    def build_model(self) -> nn.Module:
        grid = int(self.params['grid'])
        if self.params['canvas']:
            return Classifier(self.build_encoder(), len(self.perms), int(self.params['hidden']),
                              cells=grid if self.params['cell_head'] else 0)
        return JigsawNet(self.build_encoder(), grid * grid, len(self.perms),
                         hidden=int(self.params['hidden']))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = MILD(self.pixels(batch))
        if self.params['object_crop']:
            x = crop_to_object(x)
        grid = int(self.params['grid'])
        tile = int(self.params['tile']) or max(1, (x.shape[-1] // grid) * 7 // 9)
        tiles = cut_tiles(x, grid=grid, tile=tile)
        if self.params['tile_jitter']:
            tiles = jitter_each_patch(tiles)
        labels = torch.randint(0, len(self.perms), (x.shape[0],)).to(x.device)
        shuffled = shuffle_tiles(tiles, self.perms, labels)
        if self.params['canvas']:
            canvas = paste_tiles(shuffled, grid=grid, size=x.shape[-1], fill=border_median(x))
            logits = model(self.normalize(canvas))
        else:
            logits = model(self.normalize(shuffled.flatten(0, 1)).unflatten(0, shuffled.shape[:2]))
        return F.cross_entropy(logits, labels), {'acc': accuracy(logits, labels)}
