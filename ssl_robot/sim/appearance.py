"""How a world looks: procedural textures, lights and camera effects (domain randomisation).

Plain data and numpy only (no MuJoCo). A `Texture` is a recipe (kind, two colours, scale,
seed) that `texture_rgb` turns into a seamless RGB image deterministically; the MuJoCo
model declares one texture per recipe and the simulator fills its texels from
`texture_rgb` (`ssl_robot.sim.model`). An `Appearance` holds everything a world draws
besides its geometry: ground textures per terrain type, wall texture, lights, and the
camera's exposure, noise, motion blur and mounting jitter.

Styles are appearance families (`STYLES`): a world of style 'indoor' gets wood, tiles and
carpet floors and furniture colours; 'workshop' concrete, tape stripes, cardboard and
metal; 'outdoor' soil, grass and rock. Terrain types are not redrawn per world: gravel
looks like gravel everywhere. Each type has its own look (colours and texture kind, given
by `ssl_robot.sim.world.TERRAINS`) that a world only varies a little (`vary_texture`: hue,
brightness, saturation, feature scale), under its own randomised light; the smooth floor
is the family's, kept away from the look of every rough type. 'random' (the default)
picks one family per world from its seed; 'plain' is the original look (flat-coloured
obstacles on speckled ground, one light, no camera effects), which keeps the worlds of
older seeds. An evaluation can train on some families and test on another (domain
shift).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace
import math

import numpy as np

#: Texture kinds `texture_rgb` draws.
TEXTURE_KINDS = ('flat', 'speckle', 'noise', 'stripes', 'tiles', 'grain', 'checker')

#: Appearance families a world can be drawn from ('random' picks one of FAMILIES per seed).
FAMILIES = ('indoor', 'workshop', 'outdoor')
STYLES = ('random', 'plain', *FAMILIES)

#: Texels per side of the textures (ground textures are larger: they fill most pixels).
OBJECT_TEXELS = 64
GROUND_TEXELS = 128


@dataclass(frozen=True)
class Texture:
    """A procedural texture recipe.

    Attributes:
        kind: One of TEXTURE_KINDS.
        rgb1: Main colour (0..1).
        rgb2: Second colour (0..1): speckles, stripes, grout, grain, noise extreme.
        scale: Feature size in texels (noise cell, stripe period, tile side, ...).
        seed: Seed of the texture's randomness.
        density: Share of the second colour (speckle), or line width fraction (stripes,
            tiles).
        repeat_m: Side of one texture tile in the world (m).
    """

    kind: str
    rgb1: tuple[float, float, float]
    rgb2: tuple[float, float, float]
    scale: float = 8.0
    seed: int = 0
    density: float = 0.3
    repeat_m: float = 0.5


@dataclass(frozen=True)
class Appearance:
    """Everything a world draws besides geometry.

    Attributes:
        family: Appearance family ('plain' or one of FAMILIES).
        floor: Texture of the smooth floor.
        terrains: Terrain type name -> texture of its patches.
        wall: Texture of the arena walls.
        light_dir: Direction of the directional light (x, y, z), pointing down.
        light_rgb: Diffuse colour of the directional light.
        ambient: Ambient level of the headlight (grey).
        headlight: Diffuse level of the headlight (grey).
        exposure: Gain applied to the rendered image (1 = none).
        noise_sigma: Std of the per-pixel Gaussian sensor noise (0..255 units).
        exposure_s: Shutter time: turning at w rad/s smears the image by about
            w * exposure_s * fx pixels horizontally (motion blur).
        camera_dz_m: Camera mounting height offset (m).
        camera_dpitch_rad: Camera mounting pitch offset (rad, positive = down).
    """

    family: str
    floor: Texture
    terrains: dict[str, Texture]
    wall: Texture
    light_dir: tuple[float, float, float] = (0.2, 0.3, -1.0)
    light_rgb: tuple[float, float, float] = (0.5, 0.5, 0.5)
    ambient: float = 0.45
    headlight: float = 0.5
    exposure: float = 1.0
    noise_sigma: float = 0.0
    exposure_s: float = 0.0
    camera_dz_m: float = 0.0
    camera_dpitch_rad: float = 0.0

    @property
    def has_camera_effects(self) -> bool:
        """Whether the rendered image is post-processed (gain, noise or blur)."""
        return self.exposure != 1.0 or self.noise_sigma > 0.0 or self.exposure_s > 0.0

    def textures(self) -> dict[str, Texture]:
        """Named ground and wall textures ('floor', 'wall', 'terrain_<name>')."""
        return {'floor': self.floor, 'wall': self.wall,
                **{f'terrain_{k}': v for k, v in self.terrains.items()}}


def texture_from_dict(data: dict) -> Texture:
    """A Texture from its `dataclasses.asdict` form (JSON)."""
    return Texture(**{**data, 'rgb1': tuple(data['rgb1']), 'rgb2': tuple(data['rgb2'])})


def appearance_from_dict(data: dict) -> Appearance:
    """An Appearance from its `dataclasses.asdict` form (JSON)."""
    return Appearance(**{
        **data, 'floor': texture_from_dict(data['floor']),
        'wall': texture_from_dict(data['wall']),
        'terrains': {k: texture_from_dict(v) for k, v in data['terrains'].items()},
        'light_dir': tuple(data['light_dir']), 'light_rgb': tuple(data['light_rgb'])})


# ---------------------------------------------------------------------------- textures
def _periodic_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Seamless value noise in [0, 1]: a random periodic grid, bilinearly interpolated."""
    n = max(2, int(round(size / max(cell, 1.0))))
    grid = rng.random((n, n))
    pos = np.arange(size) * n / size
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    f = f * f * (3 - 2 * f)  # smoothstep: no visible grid lines
    i1 = (i0 + 1) % n
    i0 %= n
    a = grid[i0][:, i0] * (1 - f)[None, :] + grid[i0][:, i1] * f[None, :]
    b = grid[i1][:, i0] * (1 - f)[None, :] + grid[i1][:, i1] * f[None, :]
    return a * (1 - f)[:, None] + b * f[:, None]


def texture_rgb(texture: Texture, size: int) -> np.ndarray:
    """Draw a texture: uint8 RGB [size, size, 3], seamless when tiled, same recipe same image.

    Raises:
        ValueError: For an unknown texture kind.
    """
    rng = np.random.default_rng([int(texture.seed), 0x7E7])
    c1, c2 = np.asarray(texture.rgb1, np.float64), np.asarray(texture.rgb2, np.float64)
    s = max(float(texture.scale), 1.0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    kind = texture.kind
    if kind == 'flat':
        t = np.zeros((size, size))
    elif kind == 'speckle':
        t = (rng.random((size, size)) < texture.density).astype(np.float64)
    elif kind == 'noise':
        t = 0.65 * _periodic_noise(rng, size, s) + 0.35 * _periodic_noise(rng, size, s / 3)
        t = np.clip((t - 0.5) * 1.6 + 0.5, 0, 1)
    elif kind == 'stripes':
        # Periods that divide the texture keep it seamless; the direction is x, y or diagonal.
        period = size / max(1, round(size / s))
        axis = int(rng.integers(3))
        u = (x, y, x + y)[axis]
        t = ((u % period) < texture.density * period).astype(np.float64)
    elif kind == 'tiles':
        side = size / max(1, round(size / s))
        ix, iy = (x // side).astype(int), (y // side).astype(int)
        shade = rng.uniform(-0.08, 0.08, (int(size / side) + 1,) * 2)[iy, ix]
        grout = (np.minimum(x % side, y % side) < max(1.0, texture.density * side * 0.3))
        img = np.clip(c1[None, None] + shade[..., None], 0, 1)
        img[grout] = c2
        return _quantise(img + 0.03 * (rng.random((size, size, 1)) - 0.5))
    elif kind == 'grain':
        warp = _periodic_noise(rng, size, s * 2)
        rings = np.sin(2 * math.pi * (y / s + 3.0 * warp))
        t = 0.5 + 0.5 * rings * (0.6 + 0.4 * _periodic_noise(rng, size, s / 2))
    elif kind == 'checker':
        side = size / max(1, round(size / s))
        t = (((x // side) + (y // side)) % 2).astype(np.float64)
    else:
        raise ValueError(f'unknown texture kind {kind!r} (kinds: {", ".join(TEXTURE_KINDS)})')
    img = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    return _quantise(img)


def _quantise(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- palettes
def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (h in [0, 1)) -> RGB, rounded to 3 decimals (JSON-friendly)."""
    h6 = (h % 1.0) * 6.0
    i, f = int(h6), h6 - int(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return tuple(round(float(c), 3) for c in rgb)


def _shift(rgb: tuple[float, float, float], rng: np.random.Generator,
           amount: float) -> tuple[float, float, float]:
    """A colour nudged by up to `amount` per channel (a close, not identical, colour)."""
    return tuple(round(float(np.clip(c + rng.uniform(-amount, amount), 0, 1)), 3) for c in rgb)


#: Per family: (hue range, saturation range, value range) of ground and of object colours,
#: and the texture kinds (with weights) each draws.
_PALETTES = {
    'indoor': {
        'ground': ((0.02, 0.14), (0.15, 0.6), (0.35, 0.85)),
        'object': ((0.0, 1.0), (0.05, 0.7), (0.2, 0.95)),
        'ground_kinds': {'grain': 3, 'tiles': 2, 'noise': 2, 'checker': 1, 'stripes': 1},
        'object_kinds': {'flat': 3, 'grain': 2, 'noise': 1, 'stripes': 1, 'speckle': 1},
    },
    'workshop': {
        'ground': ((0.0, 1.0), (0.0, 0.15), (0.3, 0.75)),
        'object': ((0.05, 0.17), (0.2, 0.9), (0.2, 0.9)),
        'ground_kinds': {'noise': 3, 'speckle': 2, 'tiles': 1, 'stripes': 1},
        'object_kinds': {'flat': 2, 'noise': 2, 'stripes': 2, 'grain': 1, 'checker': 1},
    },
    'outdoor': {
        'ground': ((0.06, 0.35), (0.25, 0.75), (0.2, 0.7)),
        'object': ((0.0, 0.4), (0.05, 0.6), (0.2, 0.8)),
        'ground_kinds': {'noise': 4, 'speckle': 2, 'grain': 1},
        'object_kinds': {'noise': 3, 'speckle': 2, 'grain': 1, 'flat': 1},
    },
}


def _pick(rng: np.random.Generator, weights: dict[str, int]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _colour(rng: np.random.Generator, ranges: tuple) -> tuple[float, float, float]:
    (h0, h1), (s0, s1), (v0, v1) = ranges
    return _hsv(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def draw_texture(rng: np.random.Generator, family: str, role: str, *,
                 repeat_m: float) -> Texture:
    """A random texture of a family's `role` ('ground' or 'object') palette."""
    palette = _PALETTES[family]
    kind = _pick(rng, palette[f'{role}_kinds'])
    c1 = _colour(rng, palette[role])
    # The second colour: a darker/lighter shade of the first, or (for stripes and
    # checkers, like tape or tiles) another colour of the palette.
    c2 = _colour(rng, palette[role]) if kind in ('stripes', 'checker') or rng.random() < 0.3 \
        else _shift(tuple(c * rng.uniform(0.5, 1.4) for c in c1), rng, 0.05)
    return Texture(kind, c1, c2, scale=round(float(rng.uniform(4, 24)), 2),
                   seed=int(rng.integers(2**31)),
                   density=round(float(rng.uniform(0.15, 0.5)), 3),
                   repeat_m=round(float(repeat_m * rng.uniform(0.6, 1.6)), 3))


def camouflage(rng: np.random.Generator, ground: Texture, *, repeat_m: float) -> Texture:
    """A texture that looks like `ground`: same kind, nearly the same colours, another seed."""
    return Texture(ground.kind, _shift(ground.rgb1, rng, 0.05), _shift(ground.rgb2, rng, 0.05),
                   scale=ground.scale, seed=int(rng.integers(2**31)), density=ground.density,
                   repeat_m=repeat_m)


def object_family(family: str) -> str:
    """The palette objects of a world draw from ('plain' worlds draw none)."""
    return family if family in _PALETTES else 'indoor'


def vary_texture(rng: np.random.Generator, base: Texture, *, hue: float = 0.02,
                 value: float = 0.06, saturation: float = 0.1, scale: float = 1.25
                 ) -> Texture:
    """A texture of the same kind around `base`: what one terrain type looks like in a world.

    Both colours get the same small hue shift and the same brightness and saturation
    factors (so the pair keeps its contrast); the feature scale and tile size a factor in
    [1/scale, scale]; the pattern a new seed.

    Args:
        rng: Randomness (the world's stream of terrain looks).
        base: The type's look.
        hue: Largest hue shift (fraction of the colour circle).
        value: Largest relative brightness change.
        saturation: Largest relative saturation change.
        scale: Largest factor of the feature scale and of the tile size.

    Returns:
        The varied texture.
    """
    dh = rng.uniform(-hue, hue)
    kv, ks = 1.0 + rng.uniform(-value, value), 1.0 + rng.uniform(-saturation, saturation)

    def vary(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        return _hsv(h + dh, min(1.0, s * ks), min(1.0, v * kv))

    log_s = math.log(scale)
    return replace(base, rgb1=vary(base.rgb1), rgb2=vary(base.rgb2),
                   scale=round(base.scale * math.exp(rng.uniform(-log_s, log_s)), 2),
                   seed=int(rng.integers(2**31)),
                   repeat_m=round(base.repeat_m * math.exp(rng.uniform(-log_s, log_s)), 3))


def mean_colour(texture: Texture, size: int = GROUND_TEXELS) -> np.ndarray:
    """Mean RGB (0..1) of a texture: what it looks like from afar."""
    return texture_rgb(texture, size).reshape(-1, 3).mean(0) / 255.0


def _floor_apart_from(candidates: list[Texture], looks: list[Texture], *,
                      min_distance: float = 0.15) -> Texture:
    """The first floor candidate whose mean colour is `min_distance` from every look.

    None that far: the farthest candidate.
    """
    targets = [mean_colour(t) for t in looks]

    def gap(floor: Texture) -> float:
        c = mean_colour(floor)
        return min((float(np.linalg.norm(c - t)) for t in targets), default=math.inf)

    gaps = [gap(f) for f in candidates]
    far = [f for f, g in zip(candidates, gaps) if g >= min_distance]
    return far[0] if far else candidates[int(np.argmax(gaps))]


def draw_appearance(rng: np.random.Generator, family: str, terrain_looks: dict[str, Texture],
                    *, look_rng: np.random.Generator) -> Appearance:
    """Draw a world's ground, wall, light and camera appearance from a family.

    Args:
        rng: Randomness (the world's appearance stream).
        family: One of FAMILIES.
        terrain_looks: Rough terrain type -> its look (`ssl_robot.sim.world.TERRAINS`);
            the world's texture of each type varies around it (`vary_texture`). The
            floor (terrain 'smooth') is drawn from the family, apart from these looks.
        look_rng: Randomness of the terrain looks' variation. A stream of its own:
            `rng` draws as many textures as it always did (the floor candidates), so
            the clutter a world draws after its appearance stays where it was.

    Returns:
        The appearance.
    """
    rough = {name: look for name, look in terrain_looks.items() if name != 'smooth'}
    terrains = {name: vary_texture(look_rng, look) for name, look in rough.items()}
    floor = _floor_apart_from(
        [draw_texture(rng, family, 'ground', repeat_m=0.5) for _ in range(1 + len(rough))],
        list(terrains.values()))
    wall = draw_texture(rng, family, 'object', repeat_m=0.6)
    azimuth, elevation = rng.uniform(-math.pi, math.pi), rng.uniform(0.5, 1.4)
    light_dir = (round(-math.cos(elevation) * math.cos(azimuth), 4),
                 round(-math.cos(elevation) * math.sin(azimuth), 4),
                 round(-math.sin(elevation), 4))
    warmth = rng.uniform(-0.12, 0.12)  # colour temperature: warm (+) or cool (-) light
    level = rng.uniform(0.3, 0.75)
    light_rgb = tuple(round(float(np.clip(level * (1 + k * warmth), 0, 1)), 3)
                      for k in (1.0, 0.2, -1.0))
    return Appearance(
        family=family, floor=floor, terrains=terrains, wall=wall, light_dir=light_dir,
        light_rgb=light_rgb, ambient=round(float(rng.uniform(0.2, 0.5)), 3),
        headlight=round(float(rng.uniform(0.2, 0.5)), 3),
        exposure=round(float(rng.uniform(0.75, 1.3)), 3),
        noise_sigma=round(float(rng.uniform(0.0, 6.0)), 2),
        exposure_s=round(float(rng.uniform(0.0, 0.012)), 4),
        camera_dz_m=round(float(rng.uniform(-0.005, 0.005)), 4),
        camera_dpitch_rad=round(float(rng.uniform(-0.02, 0.02)), 4))


# ---------------------------------------------------------------------------- camera
def apply_camera_effects(rgb: np.ndarray, appearance: Appearance, rng: np.random.Generator,
                         *, turn_rate_rps: float, fx_px: float) -> np.ndarray:
    """What the camera's sensor does to a rendered image: blur, gain, noise.

    Motion blur averages the image over the shutter time while the robot turns: a
    horizontal box filter of about |w| * exposure_s * fx pixels (none below half a
    pixel). Then the exposure gain, then Gaussian noise, clipped to 0..255.

    Args:
        rgb: Rendered uint8 image [H, W, 3].
        appearance: The world's camera settings.
        rng: The camera noise stream.
        turn_rate_rps: The robot's current turn rate.
        fx_px: Focal length in pixels.

    Returns:
        The uint8 image the camera delivers.
    """
    if not appearance.has_camera_effects:
        return rgb
    import cv2  # box filter and Gaussian noise ~10x faster than numpy's at 640x480
    smear = abs(turn_rate_rps) * appearance.exposure_s * fx_px
    k = int(round(smear))
    if k >= 1:
        # k + 1 pixels from k // 2 left of each pixel, edges repeated; uint8 in, float out
        # in one pass.
        img = cv2.boxFilter(rgb, cv2.CV_32F, (k + 1, 1), anchor=(k // 2, 0), normalize=True,
                            borderType=cv2.BORDER_REPLICATE)
    else:
        img = rgb.astype(np.float32)
    noise = np.zeros_like(img)
    if appearance.noise_sigma > 0:
        cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's generator, seeded from `rng`
        cv2.randn(noise, 0.0, (appearance.noise_sigma,) * img.shape[2])
    # Gain, noise, rounding and clipping to 0..255 in one pass (OpenCV's saturating cast
    # rounds half to even, like np.rint); each full-size temporary costs its page faults.
    return cv2.addWeighted(img, float(appearance.exposure), noise, 1.0, 0.0, dtype=cv2.CV_8U)
