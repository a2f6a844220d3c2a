"""Procedurally generated worlds for the simulated robot, and the robot's geometry.

A world is plain data (no MuJoCo): a square walled arena, obstacles (boxes and cylinders
of varied size and colour) and rectangular ground patches of several terrain types. A
randomised world (every style but 'plain', see `ssl_robot.sim.appearance`) adds thin
poles, table legs, low obstacles, inner walls and corners, flat floor markings that look
like obstacles but are free (the robot drives over them; they are never obstacle truth),
procedural textures on everything (obstacles may be camouflaged as the floor), and its
own light and camera settings. The same world description builds the MuJoCo model
(`ssl_robot.sim.model`), travels in a sim bag as JSON (`/sim/world`), and answers
geometric questions exactly (`World.obstacle_distance`, `World.terrain_at`) for tests
and evaluation.

Frames follow REP-103: x forward, y left, z up; angles in radians, counter-clockwise.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import math

import numpy as np

from ssl_robot.sim.appearance import (
    Appearance,
    appearance_from_dict,
    camouflage,
    draw_appearance,
    draw_texture,
    FAMILIES,
    object_family,
    STYLES,
    Texture,
    texture_from_dict,
)
from ssl_robot.sim.errors import SimError

#: Format key of the world JSON ('/1' worlds, without appearance, still load).
WORLD_FORMAT = 'ssl_robot.sim.world/2'


@dataclass(frozen=True)
class TerrainType:
    """How a terrain type looks and feels.

    Attributes:
        name: Terrain label ('smooth', 'gravel', ...).
        rgb: Base colour (0..1).
        mark_rgb: Speckle colour of the texture (0..1).
        speckle: Fraction of texels that get the speckle colour (texture visible to the camera).
        bump_height_m: Peak-to-peak height of the height-field bumps.
        bump_cell_m: Spatial period of the bumps (smaller = higher-frequency vibration).
        friction: Sliding friction coefficient (lower = more wheel slip).
        roughness: Nominal roughness rank (0 = smooth); a hint for evaluation only.
        texture_kind: Kind of its procedural texture in randomised worlds (one of
            `ssl_robot.sim.appearance.TEXTURE_KINDS`).
        texture_scale: Feature size of that texture (texels).
    """

    name: str
    rgb: tuple[float, float, float]
    mark_rgb: tuple[float, float, float]
    speckle: float
    bump_height_m: float
    bump_cell_m: float
    friction: float
    roughness: float
    texture_kind: str = 'speckle'
    texture_scale: float = 8.0

    @property
    def look(self) -> Texture:
        """What the type looks like in every randomised world, before a world's variation.

        Each world varies it only a little (`ssl_robot.sim.appearance.vary_texture`): a
        type keeps its look across worlds, as real gravel does.
        """
        return Texture(self.texture_kind, self.rgb, self.mark_rgb, scale=self.texture_scale,
                       seed=0, density=self.speckle, repeat_m=0.4)


#: Terrain types; 'smooth' is the arena floor outside every patch.
TERRAINS: dict[str, TerrainType] = {t.name: t for t in (
    TerrainType('smooth', (0.62, 0.62, 0.60), (0.55, 0.55, 0.53), 0.05, 0.0, 0.1, 1.0, 0.0,
                'noise', 24.0),
    # Gravel: pale grains on dark grey; grass: blotchy greens; sand: ripples of two ochres.
    TerrainType('gravel', (0.45, 0.42, 0.38), (0.85, 0.82, 0.78), 0.45, 0.007, 0.04, 0.9, 1.0,
                'speckle', 2.0),
    TerrainType('grass', (0.20, 0.50, 0.15), (0.35, 0.70, 0.20), 0.35, 0.005, 0.06, 0.8, 0.5,
                'noise', 6.0),
    TerrainType('sand', (0.85, 0.75, 0.50), (0.75, 0.62, 0.38), 0.25, 0.003, 0.12, 0.5, 0.3,
                'grain', 12.0),
)}


@dataclass(frozen=True)
class CameraMount:
    """Where an extra camera sits on the robot, in base_link (REP-103).

    Extra cameras share the main camera's image size and field of view; only the pose
    differs, so the same scene is seen from another viewpoint (multi-view TCN).

    Attributes:
        name: Camera name; its topics are `<name>/image_raw` and `<name>/camera_info`,
            its frame `<name>_optical_frame`.
        xyz_m: Position in base_link.
        pitch_rad: Pitch, positive = looking down.
        yaw_rad: Yaw, positive = looking to the left.
    """

    name: str
    xyz_m: tuple[float, float, float]
    pitch_rad: float
    yaw_rad: float

    @property
    def frame_id(self) -> str:
        """Optical frame of the camera's messages."""
        return f'{self.name}_optical_frame'


@dataclass(frozen=True)
class RobotGeometry:
    """Geometry of the simulated Thymio-like robot, in base_link (REP-103).

    base_link is on the ground plane midway between the wheels, x forward.

    Attributes:
        wheel_base_m: Distance between the wheel contact points.
        wheel_radius_m: Wheel radius.
        body_half_size_m: Chassis half extents (x, y, z).
        proximity_poses: Sensor name -> (x, y, yaw) of each forward proximity sensor.
        proximity_height_m: Height of the proximity sensors above the ground.
        range_min_m: Proximity sensor minimum range.
        range_max_m: Proximity sensor maximum range.
        camera_xyz_m: Camera position in base_link.
        camera_pitch_rad: Camera pitch, positive = looking down.
        camera_fovy_deg: Vertical field of view (pinhole).
        extra_cameras: Mounts of the extra cameras a run may enable (in order; a run with
            k extra cameras renders the first k).
        imu_xyz_m: IMU position in base_link.
        max_speed_mps: Top forward speed.
        max_turn_rate_rps: Top turn rate.
    """

    wheel_base_m: float = 0.095
    wheel_radius_m: float = 0.022
    body_half_size_m: tuple[float, float, float] = (0.055, 0.045, 0.022)
    proximity_poses: dict[str, tuple[float, float, float]] = field(default_factory=lambda: {
        'left': (0.055, 0.035, 0.35), 'center': (0.062, 0.0, 0.0),
        'right': (0.055, -0.035, -0.35)})
    proximity_height_m: float = 0.035
    range_min_m: float = 0.01
    range_max_m: float = 0.30
    camera_xyz_m: tuple[float, float, float] = (0.10, 0.0, 0.12)
    camera_pitch_rad: float = 0.35
    camera_fovy_deg: float = 60.0
    # Higher than the main camera, at a front corner, yawed ~23 degrees towards the
    # middle: the two optical axes meet the ground about 10 cm apart, 35-45 cm ahead.
    extra_cameras: tuple[CameraMount, ...] = (
        CameraMount('camera2', (0.02, -0.045, 0.17), 0.45, 0.40),
        CameraMount('camera3', (0.02, 0.045, 0.17), 0.45, -0.40))
    imu_xyz_m: tuple[float, float, float] = (0.0, 0.0, 0.03)
    max_speed_mps: float = 0.2
    max_turn_rate_rps: float = 2.0

    def camera_intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Pinhole (fx, fy, cx, cy) in pixels of the camera rendered at width x height.

        MuJoCo renders with square pixels and the vertical field of view given, so
        fx = fy = (height / 2) / tan(fovy / 2) and the principal point is the centre.
        """
        f = 0.5 * height / math.tan(math.radians(self.camera_fovy_deg) / 2.0)
        return f, f, (width - 1) / 2.0, (height - 1) / 2.0

    def extra_camera_mounts(self, count: int) -> tuple[CameraMount, ...]:
        """The first `count` extra camera mounts.

        Raises:
            SimError: For a count below 0 or above the mounts the robot has.
        """
        if not 0 <= count <= len(self.extra_cameras):
            raise SimError(f'extra cameras {count} out of range (0 to '
                           f'{len(self.extra_cameras)})')
        return self.extra_cameras[:count]


#: The robot every simulator builds; its values match config/robot.yaml camera_* keys.
ROBOT = RobotGeometry()

#: Rays of `World.obstacle_distance` stop here (metres).
MAX_RAY_M = 5.0


@dataclass(frozen=True)
class Obstacle:
    """A static obstacle standing on the floor.

    Attributes:
        shape: 'box' or 'cylinder'.
        x: Centre x (m).
        y: Centre y (m).
        yaw: Rotation about z (box only).
        size: Box half extents (sx, sy) or cylinder (radius, radius).
        height: Height (m).
        rgb: Colour.
        texture: Procedural texture (None: flat `rgb`).
        kind: What it stands for: 'block', 'pole', 'leg', 'low', 'wall'.
    """

    shape: str
    x: float
    y: float
    yaw: float
    size: tuple[float, float]
    height: float
    rgb: tuple[float, float, float]
    texture: Texture | None = None
    kind: str = 'block'

    def ray_distance(self, x: float, y: float, dx: float, dy: float) -> float:
        """Distance along the unit ray (x, y)+t(dx, dy), t >= 0, to this obstacle (inf)."""
        if self.shape == 'cylinder':
            return _ray_circle(x - self.x, y - self.y, dx, dy, self.size[0])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        lx, ly = c * (x - self.x) + s * (y - self.y), -s * (x - self.x) + c * (y - self.y)
        ldx, ldy = c * dx + s * dy, -s * dx + c * dy
        return _ray_box(lx, ly, ldx, ldy, self.size[0], self.size[1])

    def clearance(self, x: float, y: float) -> float:
        """Conservative distance from (x, y) to the obstacle's bounding circle."""
        return math.hypot(x - self.x, y - self.y) - math.hypot(*self.size)


@dataclass(frozen=True)
class Marking:
    """A flat marking on the floor (tape, rug, painted shape): seen by the camera only.

    The proximity sensors do not see it, the wheels roll over it, and
    `World.obstacle_distance` ignores it: wherever it lies, the truth is 'free'.

    Attributes:
        shape: 'box' or 'disc'.
        x: Centre x (m).
        y: Centre y (m).
        yaw: Rotation about z (box only).
        size: Box half extents (sx, sy) or disc (radius, radius).
        texture: Its texture.
    """

    shape: str
    x: float
    y: float
    yaw: float
    size: tuple[float, float]
    texture: Texture


@dataclass(frozen=True)
class TerrainPatch:
    """An axis-aligned rectangle of one terrain type.

    Attributes:
        terrain: Terrain type name (key of TERRAINS).
        x: Centre x.
        y: Centre y.
        half_x: Half extent along x.
        half_y: Half extent along y.
        seed: Seed of its bump height field.
    """

    terrain: str
    x: float
    y: float
    half_x: float
    half_y: float
    seed: int

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) lies on the patch."""
        return abs(x - self.x) <= self.half_x and abs(y - self.y) <= self.half_y


@dataclass(frozen=True)
class World:
    """A generated world: arena, obstacles, terrain patches and the robot's start pose.

    Attributes:
        seed: The seed it was generated from.
        arena_half_m: Half side of the square arena (walls' inner faces at +-arena_half_m).
        wall_height_m: Wall height.
        obstacles: Obstacles.
        patches: Terrain patches (non-overlapping); elsewhere the floor is 'smooth'.
        start: Robot start pose (x, y, yaw).
        style: The style it was drawn in ('plain' or a family of
            `ssl_robot.sim.appearance.FAMILIES`).
        appearance: Textures, lights and camera settings (None: the plain look).
        markings: Flat floor markings (never obstacles).
    """

    seed: int
    arena_half_m: float
    wall_height_m: float
    obstacles: tuple[Obstacle, ...]
    patches: tuple[TerrainPatch, ...]
    start: tuple[float, float, float]
    style: str = 'plain'
    appearance: Appearance | None = None
    markings: tuple[Marking, ...] = ()

    def obstacle_distance(self, x: float, y: float, heading: float) -> float:
        """Distance along a horizontal ray from (x, y) to the nearest obstacle or wall.

        Args:
            x: Ray origin x (world frame, m).
            y: Ray origin y.
            heading: Ray direction (rad, 0 = +x).

        Returns:
            Distance in metres, or inf when nothing lies within MAX_RAY_M.
        """
        dx, dy = math.cos(heading), math.sin(heading)
        best = _ray_box(x, y, dx, dy, self.arena_half_m, self.arena_half_m, inside=True)
        for obstacle in self.obstacles:
            best = min(best, obstacle.ray_distance(x, y, dx, dy))
        return best if best <= MAX_RAY_M else math.inf

    def terrain_at(self, x: float, y: float) -> str:
        """Terrain type name under (x, y)."""
        for patch in self.patches:
            if patch.contains(x, y):
                return patch.terrain
        return 'smooth'

    def clearance(self, x: float, y: float) -> float:
        """Conservative free distance from (x, y) to any obstacle or wall."""
        wall = self.arena_half_m - max(abs(x), abs(y))
        return min([wall] + [o.clearance(x, y) for o in self.obstacles])

    def to_json(self) -> str:
        """The world as JSON (what `/sim/world` carries)."""
        return json.dumps({'format': WORLD_FORMAT, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> World:
        """Rebuild a world from `to_json` output.

        Raises:
            SimError: When the text is not a world description.
        """
        try:
            data = json.loads(text)
            if data.pop('format', None) not in ('ssl_robot.sim.world/1', WORLD_FORMAT):
                raise ValueError('not an ssl_robot world (format key missing)')
            appearance = data.get('appearance')
            return cls(
                seed=int(data['seed']), arena_half_m=float(data['arena_half_m']),
                wall_height_m=float(data['wall_height_m']),
                obstacles=tuple(Obstacle(**{
                    **o, 'size': tuple(o['size']), 'rgb': tuple(o['rgb']),
                    'texture': texture_from_dict(o['texture']) if o.get('texture') else None})
                    for o in data['obstacles']),
                patches=tuple(TerrainPatch(**p) for p in data['patches']),
                start=tuple(data['start']), style=str(data.get('style', 'plain')),
                appearance=appearance_from_dict(appearance) if appearance else None,
                markings=tuple(Marking(**{**k, 'size': tuple(k['size']),
                                          'texture': texture_from_dict(k['texture'])})
                               for k in data.get('markings', ())))
        except (ValueError, KeyError, TypeError) as exc:
            raise SimError(f'invalid world JSON: {exc}') from exc


def generate_world(seed: int, *, arena_size_m: float = 4.0, n_obstacles: int = 10,
                   n_patches: int = 6, wall_height_m: float = 0.3,
                   style: str = 'random') -> World:
    """Generate a world deterministically from `seed` and `style`.

    The layout of patches and blocks is the same in every style (one random stream);
    every style but 'plain' then adds clutter (poles, table legs, low obstacles, inner
    walls and corners, floor markings) and draws textures, lights and camera settings
    from its appearance family, from a second stream. 'random' picks the family from
    the seed, so `style='random'` gives the same world as the family it picked.

    Args:
        seed: World seed (same seed and style, same world).
        arena_size_m: Side of the square arena.
        n_obstacles: Number of blocks (fewer when they do not fit); clutter comes on top.
        n_patches: Number of terrain patches (fewer when they do not fit).
        wall_height_m: Height of the arena walls.
        style: 'random' (default), 'plain' (the original look: flat colours, one
            light, no clutter) or one of `ssl_robot.sim.appearance.FAMILIES`.

    Returns:
        The world.

    Raises:
        SimError: For an arena too small, negative counts or an unknown style.
    """
    if arena_size_m < 1.0 or n_obstacles < 0 or n_patches < 0:
        raise SimError(f'bad world parameters: arena {arena_size_m} m, '
                       f'{n_obstacles} obstacles, {n_patches} patches')
    if style not in STYLES:
        raise SimError(f'unknown world style {style!r} (styles: {", ".join(STYLES)})')
    rng = np.random.default_rng([int(seed), 0x51A])
    half = arena_size_m / 2.0
    patches: list[TerrainPatch] = []
    rough = [t for t in TERRAINS if t != 'smooth']
    for i in range(n_patches * 30):  # bounded rejection sampling
        if len(patches) == n_patches:
            break
        hx, hy = rng.uniform(0.3, 0.75, size=2)
        px, py = rng.uniform(-half + hx, half - hx), rng.uniform(-half + hy, half - hy)
        if any(abs(px - p.x) < hx + p.half_x + 0.1 and abs(py - p.y) < hy + p.half_y + 0.1
               for p in patches):
            continue
        patches.append(TerrainPatch(rough[len(patches) % len(rough)], round(px, 4),
                                    round(py, 4), round(hx, 4), round(hy, 4),
                                    int(rng.integers(2**31))))
    obstacles: list[Obstacle] = []
    for _ in range(n_obstacles * 50):
        if len(obstacles) == n_obstacles:
            break
        shape = 'box' if rng.random() < 0.55 else 'cylinder'
        if shape == 'box':
            size = tuple(round(float(v), 4) for v in rng.uniform(0.04, 0.18, size=2))
        else:
            r = round(float(rng.uniform(0.03, 0.14)), 4)
            size = (r, r)
        ox, oy = rng.uniform(-half + 0.3, half - 0.3, size=2)
        reach = math.hypot(*size)
        # Leave room to drive between obstacles and around the start.
        if math.hypot(ox, oy) < reach + 0.45:
            continue
        if any(o.clearance(ox, oy) < reach + 0.35 for o in obstacles):
            continue
        obstacles.append(Obstacle(
            shape, round(float(ox), 4), round(float(oy), 4),
            round(float(rng.uniform(-math.pi, math.pi)), 4), size,
            round(float(rng.uniform(0.08, 0.3)), 4),
            tuple(round(float(v), 3) for v in _saturated_colour(rng))))
    start = (0.0, 0.0, round(float(rng.uniform(-math.pi, math.pi)), 4))
    plain = World(int(seed), half, wall_height_m, tuple(obstacles), tuple(patches), start)
    if style == 'plain':
        return plain
    family = style if style in FAMILIES else world_family(seed)
    return randomise_world(plain, family)


def world_family(seed: int) -> str:
    """The appearance family style 'random' picks for a seed."""
    return FAMILIES[int(np.random.default_rng([int(seed), 0xFA1]).integers(len(FAMILIES)))]


def randomise_world(plain: World, family: str) -> World:
    """Add clutter, markings, textures, light and camera settings of `family` to a plain world.

    Args:
        plain: A world of style 'plain' (its blocks and patches are kept in place).
        family: One of `ssl_robot.sim.appearance.FAMILIES`.

    Returns:
        The randomised world (style = family).
    """
    rng = np.random.default_rng([plain.seed, 0xD0A, FAMILIES.index(family)])
    appearance = draw_appearance(
        rng, family, {name: t.look for name, t in TERRAINS.items()},
        look_rng=np.random.default_rng([plain.seed, 0x100C, FAMILIES.index(family)]))
    palette = object_family(family)
    half = plain.arena_half_m

    def ground_under(x: float, y: float) -> Texture:
        patch = plain.terrain_at(x, y)
        return appearance.floor if patch == 'smooth' else appearance.terrains[patch]

    def dress(rgb_texture: Texture, **kw: object) -> dict:
        return {'rgb': rgb_texture.rgb1, 'texture': rgb_texture, **kw}

    def object_texture(x: float, y: float, size_m: float) -> Texture:
        # A quarter of the objects wear (nearly) the ground they stand on: camouflage.
        if rng.random() < 0.25:
            return camouflage(rng, ground_under(x, y), repeat_m=round(max(size_m, 0.1), 3))
        return draw_texture(rng, palette, 'object', repeat_m=max(size_m, 0.1))

    obstacles = [Obstacle(o.shape, o.x, o.y, o.yaw, o.size, o.height,
                          **dress(object_texture(o.x, o.y, 2 * max(o.size))))
                 for o in plain.obstacles]

    def free_spot(reach: float, gap: float = 0.35) -> tuple[float, float] | None:
        for _ in range(60):
            x, y = (float(v) for v in rng.uniform(-half + 0.3, half - 0.3, size=2))
            if math.hypot(x, y) < reach + 0.45:
                continue
            if all(o.clearance(x, y) >= reach + gap for o in obstacles):
                return round(x, 4), round(y, 4)
        return None

    def yaw() -> float:
        return round(float(rng.uniform(-math.pi, math.pi)), 4)

    # Inner walls; half of them with a second wall at a right angle (a corner).
    for _ in range(int(rng.integers(1, 3))):
        hl = float(rng.uniform(0.2, 0.4))
        spot = free_spot(1.5 * hl, gap=0.3)
        if not spot:
            continue
        a = yaw()
        tex = draw_texture(rng, palette, 'object', repeat_m=0.4) if rng.random() < 0.5 \
            else appearance.wall
        height = round(float(rng.uniform(0.15, 0.3)), 4)
        pieces = [(spot[0], spot[1], a)]
        if rng.random() < 0.5:  # the second wall starts at the first one's end
            end = (spot[0] + hl * math.cos(a), spot[1] + hl * math.sin(a))
            b = a + math.pi / 2
            pieces.append((end[0] + hl * math.cos(b), end[1] + hl * math.sin(b), b))
        for x, y, angle in pieces:
            if max(abs(x), abs(y)) > half - hl - 0.05:
                continue
            obstacles.append(Obstacle('box', round(x, 4), round(y, 4),
                                      round(math.atan2(math.sin(angle), math.cos(angle)), 4),
                                      (round(hl, 4), 0.015), height, **dress(tex, kind='wall')))
    # Thin poles.
    for _ in range(int(rng.integers(2, 5))):
        r = round(float(rng.uniform(0.008, 0.018)), 4)
        spot = free_spot(r)
        if spot:
            obstacles.append(Obstacle('cylinder', *spot, 0.0, (r, r),
                                      round(float(rng.uniform(0.2, 0.3)), 4),
                                      **dress(object_texture(*spot, 0.1), kind='pole')))
    # Tables: four legs at the corners of a rectangle (the robot may fit between them).
    for _ in range(int(rng.integers(0, 3))):
        w, length = (float(v) for v in rng.uniform(0.22, 0.4, size=2))
        spot = free_spot(math.hypot(w, length) / 2 + 0.03)
        if not spot:
            continue
        a = yaw()
        c, si = math.cos(a), math.sin(a)
        tex = object_texture(*spot, 0.2)
        round_legs = rng.random() < 0.5
        leg = round(float(rng.uniform(0.012, 0.022)), 4)
        height = round(float(rng.uniform(0.22, 0.3)), 4)
        for lx, ly in ((w / 2, length / 2), (-w / 2, length / 2), (w / 2, -length / 2),
                       (-w / 2, -length / 2)):
            obstacles.append(Obstacle(
                'cylinder' if round_legs else 'box', round(spot[0] + c * lx - si * ly, 4),
                round(spot[1] + si * lx + c * ly, 4), a, (leg, leg), height,
                **dress(tex, kind='leg')))
    # Low obstacles (above the proximity sensors' height, below most of the view).
    for _ in range(int(rng.integers(1, 4))):
        size = tuple(round(float(v), 4) for v in rng.uniform(0.04, 0.12, size=2))
        spot = free_spot(math.hypot(*size))
        if spot:
            obstacles.append(Obstacle('box', *spot, yaw(), size,
                                      round(float(rng.uniform(0.045, 0.07)), 4),
                                      **dress(object_texture(*spot, 0.2), kind='low')))
    # Flat markings: most of them wear obstacle colours (they look like obstacles).
    markings = []
    for _ in range(int(rng.integers(4, 9))):
        x, y = (round(float(v), 4) for v in rng.uniform(-half + 0.2, half - 0.2, size=2))
        shape = ('box', 'box', 'disc')[int(rng.integers(3))]
        if shape == 'disc':
            r = round(float(rng.uniform(0.05, 0.15)), 4)
            size = (r, r)
        elif rng.random() < 0.5:  # tape
            size = (round(float(rng.uniform(0.1, 0.4)), 4),
                    round(float(rng.uniform(0.01, 0.03)), 4))
        else:  # rug
            size = tuple(round(float(v), 4) for v in rng.uniform(0.1, 0.3, size=2))
        role = 'object' if rng.random() < 0.7 else 'ground'
        markings.append(Marking(shape, x, y, yaw(), size,
                                draw_texture(rng, palette, role, repeat_m=0.3)))
    return World(plain.seed, half, plain.wall_height_m, tuple(obstacles), plain.patches,
                 plain.start, style=family, appearance=appearance, markings=tuple(markings))


def _saturated_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A distinct, saturated colour (obstacles stand out from the duller ground)."""
    hue = rng.uniform(0, 6)
    i, f = int(hue), hue - int(hue)
    v, s = rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.9)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]


def _ray_circle(x: float, y: float, dx: float, dy: float, r: float) -> float:
    """Ray from (x, y) (circle at origin) to the circle of radius r; inf on a miss."""
    b = x * dx + y * dy
    c = x * x + y * y - r * r
    if c <= 0.0:
        return 0.0
    disc = b * b - c
    if disc < 0.0 or b > 0.0:
        return math.inf
    return -b - math.sqrt(disc)


def _ray_box(x: float, y: float, dx: float, dy: float, hx: float, hy: float, *,
             inside: bool = False) -> float:
    """Ray (box-local frame) to an axis-aligned box of half sizes (hx, hy).

    With `inside`, the ray starts inside and the distance to the exit face is returned
    (the arena walls); otherwise the distance to the entry face (0 when inside).
    """
    t_near, t_far = -math.inf, math.inf
    for p, d, h in ((x, dx, hx), (y, dy, hy)):
        if abs(d) < 1e-12:
            if abs(p) > h:
                return math.inf
            continue
        t1, t2 = (-h - p) / d, (h - p) / d
        t_near, t_far = max(t_near, min(t1, t2)), min(t_far, max(t1, t2))
    if t_near > t_far or t_far < 0.0:
        return math.inf
    if inside:
        return t_far
    return max(t_near, 0.0)
