"""The one augmentation module of the vision pretexts, in torch (no torchvision).

Every function takes a float batch [N, C, H, W] with pixels on [0, 1] (before
normalisation) and draws one set of random parameters per image from torch's global
generator, which the trainer seeds per epoch (or from `generator` where given), so runs
repeat exactly. Everything is batched: no Python loop over images.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F

from ssl_robot.augment import color_jitter, uniform

_rand = uniform
#: Brightness/contrast/saturation jitter: the one implementation, shared with the robot wing.
brightness_contrast = color_jitter


def random_resized_crop(x: torch.Tensor, *, scale: tuple[float, float] = (0.3, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a random box (area fraction in `scale`, aspect in `ratio`) and resize it back.

    Boxes are sampled in normalised coordinates and resampled bilinearly with one
    `grid_sample` call for the whole batch; the output has the input's size.
    """
    n = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * _rand(n, x, generator)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(n, x, generator)
    aspect = torch.exp(log_r)
    # Half-sizes in normalised [-1, 1] units; clipped so the box stays inside the image.
    sw = torch.sqrt(area * aspect).clamp(max=1.0)
    sh = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * _rand(n, x, generator) - 1) * (1 - sw)
    cy = (2 * _rand(n, x, generator) - 1) * (1 - sh)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sw, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


def random_hflip(x: torch.Tensor, *, p: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability `p`."""
    flip = (_rand(x.shape[0], x, generator) < p).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def gaussian_noise(x: torch.Tensor, *, std: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, std^2) noise per pixel (not clamped: the denoiser sees the raw corruption)."""
    if not std:
        return x
    noise = torch.randn(x.shape, generator=generator, device='cpu').to(x.device, x.dtype)
    return x + std * noise


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate image i by k[i] * 90 degrees counter-clockwise (square images).

    Args:
        x: [N, C, S, S].
        k: Integer tensor [N] of quarter turns (taken modulo 4).

    Returns:
        The rotated batch, same shape.
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f'rotate90 needs square images, got {tuple(x.shape[-2:])}')
    k = k.to(x.device).long() % 4
    out = x.clone()
    for quarter in range(1, 4):
        sel = k == quarter
        if bool(sel.any()):
            out[sel] = torch.rot90(x[sel], quarter, dims=(2, 3))
    return out


@dataclass
class ViewAugment:
    """One random view of an image batch: crop, flip, jitter, noise (SimCLR-style).

    Attributes:
        crop_scale: Area fraction range of the random resized crop ((1, 1): no crop).
        flip_p: Probability of a left-right mirror.
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        saturation: Saturation jitter strength (RGB only).
        noise_std: Std of additive Gaussian noise (on [0, 1] pixels).
    """

    crop_scale: tuple[float, float] = (0.3, 1.0)
    flip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    noise_std: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(self.crop_scale) != (1.0, 1.0):
            x = random_resized_crop(x, scale=tuple(self.crop_scale))
        if self.flip_p:
            x = random_hflip(x, p=self.flip_p)
        if self.brightness or self.contrast or self.saturation:
            x = brightness_contrast(x, brightness=self.brightness, contrast=self.contrast,
                                    saturation=self.saturation)
        if self.noise_std:
            x = gaussian_noise(x, std=self.noise_std)
        return x


#: Mild augmentation for the pretexts whose own corruption is the task (flip only).
MILD = ViewAugment(crop_scale=(1.0, 1.0), flip_p=0.5, brightness=0.0, contrast=0.0,
                   saturation=0.0)
#: Strong views for the contrastive pretexts.
STRONG = ViewAugment()


def border_median(x: torch.Tensor) -> torch.Tensor:
    """Each image's background estimate: the per-channel median of its border pixels [N, C]."""
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    return border.median(dim=-1).values


def object_boxes(x: torch.Tensor, *, threshold: float = 0.1, min_fraction: float = 0.5
                 ) -> torch.Tensor:
    """The bounding square of each image's object: pixels that differ from the background.

    The background is the median of the image's border pixels; a pixel is the object's
    where any channel differs from it by more than `threshold`. The square is centred on
    the object's bounding box, at least `min_fraction` of the image side, and kept
    inside the image. An image without object pixels keeps the whole frame.

    Args:
        x: [N, C, S, S] pixels on [0, 1].
        threshold: Difference from the background that marks an object pixel.
        min_fraction: Smallest square side, as a fraction of S.

    Returns:
        int64 [N, 3]: (top, left, side) of each square.
    """
    n, _, s, _ = x.shape
    background = border_median(x)                                    # [N, C]
    fg = ((x - background[..., None, None]).abs() > threshold).any(dim=1)  # [N, S, S]
    rows, cols = fg.any(dim=2), fg.any(dim=1)                        # [N, S]
    idx = torch.arange(s, device=x.device)

    def extent(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.where(mask, idx, s).min(dim=1).values
        hi = torch.where(mask, idx, -1).max(dim=1).values
        empty = ~mask.any(dim=1)
        return torch.where(empty, 0, lo), torch.where(empty, s - 1, hi)

    y0, y1 = extent(rows)
    x0, x1 = extent(cols)
    side = torch.maximum(y1 - y0, x1 - x0) + 1
    side = side.clamp(min=max(1, int(round(min_fraction * s))), max=s)
    top = ((y0 + y1 + 1) // 2 - side // 2).clamp(min=0)
    left = ((x0 + x1 + 1) // 2 - side // 2).clamp(min=0)
    top = torch.minimum(top, s - side)
    left = torch.minimum(left, s - side)
    return torch.stack([top, left, side], dim=1)


def crop_to_object(x: torch.Tensor, *, threshold: float = 0.1,
                   min_fraction: float = 0.5) -> torch.Tensor:
    """Crop each image to its object's bounding square and resize it back to the input size.

    The square is `object_boxes`'; the resampling bilinear. Tiles and patches cut from
    the result fall on the object rather than on background.
    """
    n, _, s, _ = x.shape
    box = object_boxes(x, threshold=threshold, min_fraction=min_fraction).to(x.dtype)
    top, left, side = box[:, 0], box[:, 1], box[:, 2]
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = side / s
    theta[:, 0, 2] = (2 * left + side) / s - 1
    theta[:, 1, 2] = (2 * top + side) / s - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


def jitter_each_patch(patches: torch.Tensor, *, brightness: float = 0.3, contrast: float = 0.3,
                      grey_p: float = 0.5, generator: torch.Generator | None = None
                      ) -> torch.Tensor:
    """Jitter each patch on its own: brightness, contrast and (RGB) greyscale.

    Independent brightness/contrast jitter per patch, and per-patch greyscale with
    probability `grey_p` for RGB: neighbouring patches can no longer be matched by their
    low-level statistics (brightness, colour cast, chromatic aberration).

    Args:
        patches: [N, T, C, h, w] pixels on [0, 1].

    Returns:
        The jittered patches, same shape, clamped to [0, 1].
    """
    n, t, c, h, w = patches.shape
    flat = patches.reshape(n * t, c, h, w)
    if c == 3 and grey_p:
        grey = (0.299 * flat[:, 0:1] + 0.587 * flat[:, 1:2] + 0.114 * flat[:, 2:3])
        pick = (_rand(n * t, flat, generator) < grey_p).view(-1, 1, 1, 1)
        flat = torch.where(pick, grey.expand_as(flat), flat)
    flat = brightness_contrast(flat, brightness=brightness, contrast=contrast,
                               generator=generator)
    return flat.reshape(n, t, c, h, w)
