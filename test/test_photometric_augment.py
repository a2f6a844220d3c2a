"""Photometric augmentations of the robot tasks (grey, blurred, hue-turned frames)."""
from __future__ import annotations

import torch

from ssl_robot.augment import random_blur, random_grayscale, random_hue


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


def test_hue_turn_keeps_grey_brightness_and_saturation() -> None:
    grey = torch.full((3, 3, 2, 2), 0.4)
    torch.testing.assert_close(random_hue(grey, max_turn=1.0), grey)
    gen = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(500, 3, 1, 1, generator=gen)  # no clamping
    out = random_hue(x, max_turn=1.0 / 3.0, generator=gen)
    torch.testing.assert_close(out.mean(dim=1), x.mean(dim=1))  # brightness
    chroma = (x - x.mean(dim=1, keepdim=True)).norm(dim=1)
    torch.testing.assert_close((out - out.mean(dim=1, keepdim=True)).norm(dim=1), chroma)
    assert (out - x).abs().amax(dim=(1, 2, 3)).median() > 0.01  # the hues did turn
    torch.testing.assert_close(random_hue(x, max_turn=0.0), x)


def test_hue_turn_of_a_third_maps_red_to_green_and_blue() -> None:
    """The angle is (2U - 1) x max_turn x 180 degrees; max_turn is set so that it is +-120."""
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0
    for seed, expected in ((1, [0.0, 1.0, 0.0]), (3, [0.0, 0.0, 1.0])):
        u = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()
        max_turn = (2.0 / 3.0) / abs(2.0 * u - 1.0)  # max_turn is in half-turns
        out = random_hue(red, max_turn=max_turn,
                         generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(out.flatten(), torch.tensor(expected), atol=1e-5, rtol=0)
