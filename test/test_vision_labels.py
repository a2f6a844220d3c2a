"""Label generation of the vision pretexts against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_robot.vision.augment import random_hflip, random_resized_crop, rotate90
from ssl_robot.vision.pretext.denoising import corrupt
from ssl_robot.vision.pretext.inpainting import square_hole_mask
from ssl_robot.vision.pretext.jigsaw import (
    crop_patches,
    cut_tiles,
    inverse_permutation,
    max_hamming_permutations,
    shuffle_tiles,
)
from ssl_robot.vision.pretext.relative_position import (
    layout_extent,
    NEIGHBOUR_OFFSETS,
    patch_origins,
    sample_patch_pairs,
)
from ssl_robot.vision.pretext.rotation import rotation_batch


def test_rotate90_counter_clockwise_by_hand() -> None:
    img = torch.tensor([[1., 2.], [3., 4.]]).view(1, 1, 2, 2)
    # 90 degrees counter-clockwise: the right column becomes the top row.
    assert rotate90(img, torch.tensor([1]))[0, 0].tolist() == [[2., 4.], [1., 3.]]
    assert rotate90(img, torch.tensor([2]))[0, 0].tolist() == [[4., 3.], [2., 1.]]
    assert rotate90(img, torch.tensor([3]))[0, 0].tolist() == [[3., 1.], [4., 2.]]
    assert rotate90(img, torch.tensor([4]))[0, 0].tolist() == [[1., 2.], [3., 4.]]


def test_rotation_batch_labels_each_rotation() -> None:
    x = torch.arange(2 * 9, dtype=torch.float32).view(2, 1, 3, 3)
    images, labels = rotation_batch(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for row, label in enumerate(labels.tolist()):
        expected = torch.rot90(x[row % 2], label, dims=(1, 2))
        assert torch.equal(images[row], expected)
    # An image with a bright top row, turned 90 degrees CCW, has its bright column left.
    top = torch.zeros(1, 1, 3, 3)
    top[..., 0, :] = 1
    turned, lab = rotation_batch(top)
    assert lab[1] == 1 and turned[1, 0, :, 0].tolist() == [1., 1., 1.]


def test_rotate90_rejects_non_square() -> None:
    with pytest.raises(ValueError, match='square'):
        rotate90(torch.zeros(1, 1, 2, 3), torch.tensor([1]))


def test_jigsaw_permutation_and_inverse() -> None:
    tiles = torch.tensor([[10, 11, 12, 13]])            # one puzzle, 4 tiles
    perms = torch.tensor([[0, 1, 2, 3], [2, 0, 3, 1]])
    shuffled = shuffle_tiles(tiles, perms, torch.tensor([1]))
    assert shuffled.tolist() == [[12, 10, 13, 11]]      # position i holds tile perm[i]
    inv = inverse_permutation(perms[1])
    assert inv.tolist() == [1, 3, 0, 2]
    assert shuffled[0, inv].tolist() == [10, 11, 12, 13]


def test_max_hamming_permutations_are_distinct_and_far_apart() -> None:
    perms = max_hamming_permutations(10, 9, 0)
    assert perms.shape == (10, 9)
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    dist = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    off_diag = dist[~np.eye(10, dtype=bool)]
    assert off_diag.min() >= 8  # greedy max-min: at most one tile shared between any two
    assert np.array_equal(perms, max_hamming_permutations(10, 9, 0))  # deterministic
    # 2x2 puzzles: 24 permutations; the first 4 greedy ones differ in every position.
    four = max_hamming_permutations(4, 4, 0)
    d4 = (four[:, None] != four[None]).sum(-1)
    assert d4[~np.eye(4, dtype=bool)].min() == 4


def test_cut_tiles_stays_inside_cells() -> None:
    x = torch.arange(6 * 6, dtype=torch.float32).view(1, 1, 6, 6)
    tiles = cut_tiles(x, grid=2, tile=2, generator=torch.Generator().manual_seed(0))
    assert tiles.shape == (1, 4, 1, 2, 2)
    for t in range(4):
        r, c = divmod(t, 2)
        top_left = int(tiles[0, t, 0, 0, 0])
        y, xx = divmod(top_left, 6)
        assert 3 * r <= y <= 3 * r + 1 and 3 * c <= xx <= 3 * c + 1  # within cell, gap >= 0
        assert tiles[0, t, 0].tolist() == x[0, 0, y:y + 2, xx:xx + 2].tolist()


def test_crop_patches_by_hand() -> None:
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    p = crop_patches(x, torch.tensor([[1]]), torch.tensor([[2]]), 2)
    assert p[0, 0, 0].tolist() == [[6., 7.], [10., 11.]]


def test_patch_positions_with_gap() -> None:
    # patch 7, gap 2, no jitter, layout at (0, 0): cell stride 9, centre at (9, 9).
    labels = torch.arange(8)
    centre, neighbour = patch_origins(torch.zeros(8, 2, dtype=torch.long), labels, patch=7,
                                      gap=2, jitter=0)
    assert centre.tolist() == [[9, 9]] * 8
    assert neighbour.tolist() == [[0, 0], [0, 9], [0, 18], [9, 0], [9, 18],
                                  [18, 0], [18, 9], [18, 18]]
    # With jitter 1 the layout keeps a 1-pixel margin, and shifts add on.
    c, n = patch_origins(torch.tensor([[2, 3]]), torch.tensor([4]), patch=7, gap=2, jitter=1,
                         centre_shift=torch.tensor([[-1, 1]]),
                         neighbour_shift=torch.tensor([[1, 0]]))
    assert c.tolist() == [[2 + 1 + 9 - 1, 3 + 1 + 9 + 1]]
    assert n.tolist() == [[2 + 1 + 9 + 1, 3 + 1 + 18]]
    assert layout_extent(7, 2, 1) == 27
    assert NEIGHBOUR_OFFSETS[0] == (-1, -1) and NEIGHBOUR_OFFSETS[7] == (1, 1)


def test_sampled_patches_match_their_labels() -> None:
    # An image whose pixel value encodes its (y, x): the patches' corners reveal positions.
    s = 28
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing='ij')
    x = (yy * 100 + xx).float().view(1, 1, s, s).repeat(64, 1, 1, 1)
    centre, neighbour, labels = sample_patch_pairs(x, patch=7, gap=2, jitter=1,
                                                   generator=torch.Generator().manual_seed(1))
    cy, cx = centre[:, 0, 0, 0] // 100, centre[:, 0, 0, 0] % 100
    ny, nx = neighbour[:, 0, 0, 0] // 100, neighbour[:, 0, 0, 0] % 100
    offsets = torch.tensor(NEIGHBOUR_OFFSETS)[labels]
    dy, dx = ny - cy, nx - cx
    for axis_delta, off in ((dy, offsets[:, 0]), (dx, offsets[:, 1])):
        # stride 9 per cell; each patch jitters by at most 1, so the difference is 9*off +- 2
        assert ((axis_delta - 9 * off).abs() <= 2).all()
    # Non-adjacent patches of different cells never touch: gap 2 minus 2x jitter >= 0.
    assert len(set(labels.tolist())) > 4
    with pytest.raises(ValueError, match='need 27 px'):
        sample_patch_pairs(torch.zeros(1, 1, 20, 20), patch=7, gap=2, jitter=1)


def test_square_hole_mask_by_hand() -> None:
    mask = square_hole_mask(1, 5, 2, top_left=torch.tensor([[1, 3]]))
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[1:3, 3:5] = True
    assert torch.equal(mask[0, 0], expected)
    random = square_hole_mask(16, 28, 14, generator=torch.Generator().manual_seed(0))
    assert (random.sum(dim=(1, 2, 3)) == 14 * 14).all()


def test_corrupt_drops_pixels_to_the_fill() -> None:
    x = torch.ones(4, 1, 10, 10)
    out = corrupt(x, noise_std=0.0, drop_p=0.5, fill=torch.full((1, 1, 1, 1), 0.25),
                  generator=torch.Generator().manual_seed(0))
    dropped = (out == 0.25).float().mean()
    assert set(out.unique().tolist()) == {0.25, 1.0} and 0.35 < float(dropped) < 0.65


def test_augment_shapes_and_identity_cases() -> None:
    x = torch.rand(8, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_hflip(x, p=0.0, generator=g), x)
    assert torch.equal(random_hflip(x, p=1.0, generator=g), x.flip(-1))
    full = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=g)
    assert torch.allclose(full, x, atol=1e-5)  # the whole image resampled onto itself
    assert random_resized_crop(x, generator=g).shape == x.shape
