"""Image operations shared by the robot and vision wings (torch, no torchvision).

Each takes a float batch [N, C, H, W] with pixels on [0, 1] (before normalisation) and
draws one set of random parameters per image from torch's global generator, which the
trainer seeds per epoch, or from `generator` where given, so runs repeat exactly.
"""
from __future__ import annotations

import torch


def uniform(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N draws from U[0, 1) on the CPU generator, in x's device and dtype."""
    return torch.rand(n, generator=generator, device='cpu').to(x.device, x.dtype)


def color_jitter(x: torch.Tensor, *, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Scale brightness, contrast and saturation (RGB only) by factors in [1-s, 1+s].

    The result is clamped to [0, 1].
    """
    n = x.shape[0]

    def factor(strength: float) -> torch.Tensor:
        return (1.0 + (2.0 * uniform(n, x, generator) - 1.0) * strength).view(-1, 1, 1, 1)

    if brightness:
        x = x * factor(brightness)
    if contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor(contrast) + mean
    if saturation and x.shape[1] == 3:
        grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = (x - grey) * factor(saturation) + grey
    return x.clamp(0.0, 1.0)


def random_hue(x: torch.Tensor, *, max_turn: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn the hue of each RGB image by an angle drawn from U[-max_turn, max_turn] x pi.

    The turn is a rotation of the RGB cube about its grey diagonal (Rodrigues' formula),
    so grey pixels, brightness (the mean of R, G, B) and distances between colours are
    kept: a green floor can become a red one, its texture stays. The result is clamped
    to [0, 1]. `max_turn` 1.0 allows any hue.
    """
    if max_turn <= 0 or x.shape[1] != 3:
        return x
    n = x.shape[0]
    theta = (2.0 * uniform(n, x, generator) - 1.0) * (float(max_turn) * torch.pi)
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    axis = torch.full((3,), 3.0 ** -0.5, dtype=x.dtype, device=x.device)
    outer = torch.outer(axis, axis)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
                         dtype=x.dtype, device=x.device) * 3.0 ** -0.5
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    rot = cos * eye + (1.0 - cos) * outer + sin * cross  # [N, 3, 3]
    return torch.einsum('nij,njhw->nihw', rot, x).clamp(0.0, 1.0)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror images (or label grids) left-right along the last axis."""
    return torch.flip(x, dims=(-1,))


def random_grayscale(x: torch.Tensor, *, p: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace the colour of each RGB image by its luma with probability p."""
    if p <= 0 or x.shape[1] != 3:
        return x
    pick = (uniform(x.shape[0], x, generator) < p).view(-1, 1, 1, 1)
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    return torch.where(pick, grey, x)


def random_blur(x: torch.Tensor, *, p: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each image with a 3x3 binomial kernel (sigma about 0.7 px) with probability p.

    A slightly defocused or shaken camera; the border repeats the edge pixels.
    """
    if p <= 0:
        return x
    pick = (uniform(x.shape[0], x, generator) < p).view(-1, 1, 1, 1)
    k = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    kernel = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 3, 3)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode='replicate')
    blurred = torch.nn.functional.conv2d(padded, kernel, groups=x.shape[1])
    return torch.where(pick, blurred, x)
