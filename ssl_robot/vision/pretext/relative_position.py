"""Relative patch position (Doersch et al. 2015): where is the second patch, 8-way?

A 3x3 layout of `patch`-pixel cells with `gap` pixels between cells is placed at a
random spot of the image; the centre cell and one of its 8 neighbours are cut out, each
shifted independently by up to `jitter` pixels, so that the position cannot be read off
continuing edges or lines. The network sees both patches and predicts the neighbour's
label (row-major order, centre skipped: 0 = up-left ... 7 = down-right).

By default (`canvas`) the two tiles are cut from the object's bounding square and shown
on one full-size canvas instead, the centre tile in the centre cell and the neighbour in
a random other cell: the encoder then learns on images of the size and layout it is
evaluated on, where the two-patch network learns on 7-px patches alone. `cell_head` gives
the head the canvas's features per cell of the 3x3 grid instead
(benchmarks/eval_pretext_ablation.py measures each change).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.vision.augment import border_median, crop_to_object, jitter_each_patch, MILD
from ssl_robot.vision.heads import mlp
from ssl_robot.vision.pretext.base import accuracy, PretextTask
from ssl_robot.vision.pretext.jigsaw import crop_patches, cut_tiles, paste_tiles
from ssl_robot.vision.pretext.rotation import Classifier

#: (row, column) offset in cells of the neighbour with each label.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def layout_extent(patch: int, gap: int, jitter: int) -> int:
    """Side in pixels that the 3x3 layout needs, jitter included."""
    return 3 * patch + 2 * gap + 2 * jitter


def patch_origins(layout_yx: torch.Tensor, labels: torch.Tensor, *, patch: int, gap: int,
                  jitter: int, centre_shift: torch.Tensor | None = None,
                  neighbour_shift: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left pixel (y, x) of the centre and neighbour patches.

    Args:
        layout_yx: [N, 2] top-left of the layout (its jitter margin included).
        labels: [N] neighbour labels (index into NEIGHBOUR_OFFSETS).
        patch: Patch side.
        gap: Pixels between neighbouring cells.
        jitter: Max shift of each patch in each axis.
        centre_shift: [N, 2] shifts in [-jitter, jitter] of the centre patch (0 if None).
        neighbour_shift: Same for the neighbour patch.

    Returns:
        (centre [N, 2], neighbour [N, 2]) top-left corners (y, x).
    """
    stride = patch + gap
    offsets = torch.tensor(NEIGHBOUR_OFFSETS, device=layout_yx.device)[labels]
    centre = layout_yx + jitter + stride
    neighbour = centre + offsets * stride
    if centre_shift is not None:
        centre = centre + centre_shift
    if neighbour_shift is not None:
        neighbour = neighbour + neighbour_shift
    return centre, neighbour


def sample_patch_pairs(x: torch.Tensor, *, patch: int, gap: int, jitter: int,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (centre, neighbour, label) triples, one per image.

    Returns:
        (centre [N, C, p, p], neighbour [N, C, p, p], labels [N]).
    """
    n, _, s, _ = x.shape
    extent = layout_extent(patch, gap, jitter)
    if extent > s:
        raise ValueError(f'patch {patch}, gap {gap}, jitter {jitter} need {extent} px, '
                         f'image has {s}')

    def randint(low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=generator).to(x.device)

    layout = randint(0, s - extent + 1, (n, 2))
    labels = randint(0, len(NEIGHBOUR_OFFSETS), (n,))
    centre, neighbour = patch_origins(
        layout, labels, patch=patch, gap=gap, jitter=jitter,
        centre_shift=randint(-jitter, jitter + 1, (n, 2)),
        neighbour_shift=randint(-jitter, jitter + 1, (n, 2)))
    both_y = torch.stack([centre[:, 0], neighbour[:, 0]], dim=1)
    both_x = torch.stack([centre[:, 1], neighbour[:, 1]], dim=1)
    patches = crop_patches(x, both_y, both_x, patch)
    return patches[:, 0], patches[:, 1], labels


def canvas_tile(size: int, *, tile_fraction: float) -> int:
    """Side of the canvas's tiles: `tile_fraction` of a cell of the 3x3 grid, >= 1 px.

    Args:
        size: Side S of the (object-cropped) image.
        tile_fraction: Tile side over cell side (5/9: 5-px tiles in 9-px cells at 28 px).
    """
    return max(1, round(size // 3 * tile_fraction))


def canvas_pairs(x: torch.Tensor, *, tile: int, tile_jitter: bool = False,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative position on one full-size canvas, the encoder's evaluation scale.

    The image is cut into a 3x3 grid of `tile`-px tiles (random crops of their cells,
    so a random gap separates neighbours); the centre tile is pasted back into the
    centre cell of a background canvas, one neighbour (the label) into a random other
    cell, independent of the label, so its place shows nothing: only its content tells
    where it came from.

    Args:
        x: [N, C, S, S] pixels on [0, 1].
        tile: Tile side (<= S // 3).
        tile_jitter: Jitter each tile's brightness and contrast on its own
            (`jitter_each_patch`) before it is pasted.

    Returns:
        (canvases [N, C, S, S], labels [N] indexing NEIGHBOUR_OFFSETS).
    """
    n, c, s, _ = x.shape
    tiles = cut_tiles(x, grid=3, tile=tile, generator=generator)         # [N, 9, C, t, t]
    if tile_jitter:
        tiles = jitter_each_patch(tiles, generator=generator)

    def randint(high: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=generator).to(x.device)

    labels = randint(len(NEIGHBOUR_OFFSETS))
    # Label k is cell k of the 3x3 grid with the centre (cell 4) skipped.
    source = labels + (labels >= 4).long()
    slot = randint(len(NEIGHBOUR_OFFSETS))
    slot = slot + (slot >= 4).long()
    fill = border_median(x)                                              # [N, C]
    laid = fill.view(n, 1, c, 1, 1).expand(n, 9, c, tile, tile).clone()
    rows = torch.arange(n, device=x.device)
    laid[:, 4] = tiles[:, 4]
    laid[rows, slot] = tiles[rows, source]
    return paste_tiles(laid, grid=3, size=s, fill=fill, generator=generator), labels


class PairNet(nn.Module):
    """Shared encoder on both patches -> concatenated features -> MLP -> 8 logits."""

    def __init__(self, encoder: nn.Module, n_classes: int = 8, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = mlp(2 * encoder.out_dim, hidden, n_classes)

    def forward(self, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.embed(torch.cat([centre, neighbour]))
        a, b = feats.chunk(2)
        return self.head(torch.cat([a, b], dim=1))


class RelativePositionTask(PretextTask):
    """Relative patch position, 8-way, with gaps and jitter.

    Parameters beyond Doersch et al.: `object_crop` lays the 3x3 layout on the object's
    bounding square rather than on background; `patch_jitter` jitters each patch's (or
    canvas tile's) brightness and contrast (and greys RGB patches at random), Doersch's
    remedy for chromatic aberration and other low-level shortcuts; `patch_scale` upsamples both
    patches by that factor before the encoder, so that its last feature map is more than
    one cell, as on the whole images it is evaluated on; `canvas` shows the centre and
    the neighbour tile on one full-size canvas, the neighbour in a random cell
    (`canvas_pairs`), so that the encoder learns at the scale it is evaluated at, each
    tile `tile_fraction` of its cell (the rest a random gap between neighbours);
    `cell_head` (with `canvas`) gives the head the canvas's features averaged per cell of
    the 3x3 grid rather than globally, so the encoder need not write where a tile lies
    into its features.
    """

    name = 'relative-position'
    #: patch 0: patch pairs take the largest patch whose layout fits the image (7 px at
    #: 28 px), the canvas `tile_fraction` of a grid cell: 5/9 (5-px tiles in 9-px cells
    #: at 28 px; 7/9 before): linear / k-NN at 10 % labels 74.6 +- 0.7 / 68.6 +- 1.2
    #: against 73.3 +- 1.0 / 65.2 +- 2.5 over seeds 0-2, every seed gaining
    #: (benchmarks/results/pretext_eval_seeds_variants.json). cell_head stays off: linear
    #: at 10 % labels 75.7 against 73.1 at seed 0 (benchmarks/results/pretext_ablation.json),
    #: but 73.4 +- 2.6 against 73.6 +- 0.6 over seeds 0-2 (per seed 75.7 / 73.9 / 70.6
    #: against 73.0 / 73.4 / 74.3).
    defaults: dict[str, Any] = {'patch': 0, 'tile_fraction': 5 / 9, 'gap': 2, 'jitter': 1,
                                'hidden': 256, 'object_crop': True, 'patch_jitter': False,
                                'patch_scale': 1, 'canvas': True, 'cell_head': False}

    def build_model(self) -> nn.Module:
        if self.params['canvas']:
            return Classifier(self.build_encoder(), len(NEIGHBOUR_OFFSETS),
                              int(self.params['hidden']),
                              cells=3 if self.params['cell_head'] else 0)
        return PairNet(self.build_encoder(), len(NEIGHBOUR_OFFSETS), int(self.params['hidden']))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = MILD(self.pixels(batch))
        if self.params['object_crop']:
            x = crop_to_object(x)
        if self.params['canvas']:
            tile = int(self.params['patch']) or canvas_tile(
                x.shape[-1], tile_fraction=float(self.params['tile_fraction']))
            canvas, labels = canvas_pairs(x, tile=tile,
                                          tile_jitter=bool(self.params['patch_jitter']))
            logits = model(self.normalize(canvas))
            return F.cross_entropy(logits, labels), {'acc': accuracy(logits, labels)}
        gap, jitter = int(self.params['gap']), int(self.params['jitter'])
        patch = int(self.params['patch']) or (x.shape[-1] - 2 * gap - 2 * jitter) // 3
        centre, neighbour, labels = sample_patch_pairs(x, patch=patch, gap=gap, jitter=jitter)
        if self.params['patch_jitter']:
            centre, neighbour = jitter_each_patch(torch.stack([centre, neighbour], 1)).unbind(1)
        scale = int(self.params['patch_scale'])
        if scale > 1:
            centre, neighbour = (F.interpolate(p, scale_factor=scale, mode='bilinear',
                                               align_corners=False)
                                 for p in (centre, neighbour))
        logits = model(self.normalize(centre), self.normalize(neighbour))
        return F.cross_entropy(logits, labels), {'acc': accuracy(logits, labels)}
