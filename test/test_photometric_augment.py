"""Photometric augmentations of the robot tasks (grey and blurred frames) on hand cases."""
from __future__ import annotations

import torch

from ssl_robot.augment import random_blur, random_grayscale


def test_grayscale_replaces_colour_by_luma_at_its_rate() -> None:
    x = torch.zeros(2, 3, 2, 2)
    x[:, 0] = 1.0  # pure red: luma 0.299
    out = random_grayscale(x, p=1.0)
    torch.testing.assert_close(out, torch.full_like(x, 0.299))
    torch.testing.assert_close(random_grayscale(x, p=0.0), x)
    gen = torch.Generator().manual_seed(0)
    many = random_grayscale(torch.rand(2000, 3, 1, 1), p=0.3, generator=gen)
    grey = (many[:, 0] == many[:, 1]) & (many[:, 1] == many[:, 2])
    assert 0.25 < grey.float().mean() < 0.35


def test_blur_is_the_binomial_kernel_and_keeps_flat_images() -> None:
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 16.0
    out = random_blur(x, p=1.0)
    expected = torch.zeros(5, 5)
    expected[1:4, 1:4] = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    torch.testing.assert_close(out[0, 0], expected)
    flat = torch.full((2, 3, 4, 6), 0.4)
    torch.testing.assert_close(random_blur(flat, p=1.0), flat)
    torch.testing.assert_close(random_blur(x, p=0.0), x)
