"""MuJoCo model (MJCF) of a world and the robot.

Geom groups say who sees what: the proximity rays (`mj_ray` with a group mask) see only
obstacles and walls (group 3), so that a bump of the ground ahead never reads as an
obstacle; the camera renders everything except collision-only geoms (group 4).
Terrain patches are height fields whose geoms have `priority` over the wheels, so the
patch's own friction decides how much the wheels slip.

A randomised world's textures are declared as flat textures of the right size and
filled from their procedural recipes once the model is compiled (`fill_textures`: MuJoCo
uploads texels to the GL context when the renderer is made). Floor markings are
render-only geoms a hair above the floor: no collision, not seen by the rays.
"""
from __future__ import annotations

from dataclasses import replace
import math

import numpy as np

from ssl_robot.sim.appearance import GROUND_TEXELS, OBJECT_TEXELS, Texture, texture_rgb
from ssl_robot.sim.world import ROBOT, RobotGeometry, TerrainPatch, TERRAINS, World

#: Geom group of obstacles and walls: the only group the proximity rays see.
OBSTACLE_GROUP = 3
#: Geom group of collision-only robot geoms (never rendered).
HIDDEN_GROUP = 4
#: Physics time step (s).
TIMESTEP_S = 0.002
#: Sample spacing of the height fields the camera sees (m).
VISUAL_SPACING_M = 0.06
#: Robot mass (kg), like a Thymio.
ROBOT_MASS_KG = 0.27


def _f(values: tuple[float, ...] | list[float] | np.ndarray) -> str:
    return ' '.join(f'{float(v):.6g}' for v in values)


def patch_heights(patch: TerrainPatch) -> tuple[np.ndarray, float]:
    """Normalised bump height field of a patch, and its sample spacing (m).

    Random heights on a grid of the terrain's bump period, bilinearly upsampled to half
    that period; the peak-to-peak height is the terrain's `bump_height_m`.

    Returns:
        (heights in [0, 1] of shape [rows along y, cols along x], spacing in metres).
    """
    terrain = TERRAINS[patch.terrain]
    rng = np.random.default_rng(patch.seed)
    cell = terrain.bump_cell_m
    spacing = cell / 2.0
    cols = max(2, int(round(2 * patch.half_x / spacing)) + 1)
    rows = max(2, int(round(2 * patch.half_y / spacing)) + 1)
    coarse = rng.random((rows // 2 + 2, cols // 2 + 2))
    yi, xi = np.arange(rows) / 2.0, np.arange(cols) / 2.0
    y0, x0 = yi.astype(int), xi.astype(int)
    fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
    heights = (coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1][:, x0] * fy * (1 - fx)
               + coarse[y0][:, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1][:, x0 + 1] * fy * fx)
    heights -= heights.min()
    heights /= max(float(heights.max()), 1e-9)
    # Ramp the bumps down to floor level over the border, so a wheel rolls onto the
    # patch instead of hitting a step.
    ramp = 0.06
    ty = np.clip(np.minimum(np.arange(rows), np.arange(rows)[::-1]) * spacing / ramp, 0, 1)
    tx = np.clip(np.minimum(np.arange(cols), np.arange(cols)[::-1]) * spacing / ramp, 0, 1)
    return heights * ty[:, None] * tx[None, :], spacing


def build_mjcf(world: World, *, robot: RobotGeometry = ROBOT, width: int = 128,
               height: int = 96) -> str:
    """MJCF text of the world with the robot at its start pose.

    Args:
        world: The world.
        robot: Robot geometry.
        width: Largest camera image width that will be rendered (offscreen buffer).
        height: Largest camera image height.

    Returns:
        The MJCF XML string.
    """
    half = world.arena_half_m
    assets, geoms = [], []
    look = world.appearance
    if look is not None:
        for name, texture in world_textures(world).items():
            texels = GROUND_TEXELS if name in look.textures() else OBJECT_TEXELS
            assets.append(
                f'<texture name="tex_{name}" type="2d" builtin="flat" width="{texels}" '
                f'height="{texels}" rgb1="{_f(texture.rgb1)}"/>'
                f'<material name="mat_{name}" texture="tex_{name}" texuniform="true" '
                f'texrepeat="{1 / texture.repeat_m:.6g} {1 / texture.repeat_m:.6g}" '
                f'specular="0.05" shininess="0.1"/>')
    for name, terrain in TERRAINS.items():
        if look is not None:
            break
        assets.append(
            f'<texture name="tex_{name}" type="2d" builtin="flat" width="64" height="64" '
            f'rgb1="{_f(terrain.rgb)}" rgb2="{_f(terrain.rgb)}" mark="random" '
            f'random="{terrain.speckle}" markrgb="{_f(terrain.mark_rgb)}"/>'
            f'<material name="mat_{name}" texture="tex_{name}" texuniform="true" '
            f'texrepeat="8 8" specular="0.05" shininess="0.1"/>')
    for i, patch in enumerate(world.patches):
        terrain = TERRAINS[patch.terrain]
        heights, spacing = patch_heights(patch)
        # Software GL pays per triangle: the camera sees a coarser copy of the bumps
        # (samples >= VISUAL_SPACING_M apart); the wheels roll on the full-resolution one.
        step = max(1, int(math.ceil(VISUAL_SPACING_M / spacing)))
        for name, grid in ((f'hf{i}', heights), (f'hfv{i}', heights[::step, ::step])):
            rows, cols = grid.shape
            assets.append(
                f'<hfield name="{name}" nrow="{rows}" ncol="{cols}" '
                f'size="{patch.half_x:.6g} {patch.half_y:.6g} '
                f'{max(terrain.bump_height_m, 1e-4):.6g} 0.01" elevation="{_f(grid.ravel())}"/>')
        # Just above the floor, so the patch, not the floor, carries the wheels.
        geoms.append(
            f'<geom name="patch{i}" type="hfield" hfield="hf{i}" '
            f'pos="{patch.x:.6g} {patch.y:.6g} 0.0005" '
            f'friction="{terrain.friction} 0.005 0.0001" priority="1" group="{HIDDEN_GROUP}"/>'
            f'<geom name="patch{i}_look" type="hfield" hfield="hfv{i}" '
            f'pos="{patch.x:.6g} {patch.y:.6g} 0.0005" '
            f'material="mat_{"terrain_" if look else ""}{patch.terrain}" '
            f'contype="0" conaffinity="0" group="0"/>')
    wall_t = 0.05
    wall_paint = 'material="mat_wall"' if look else 'rgba="0.55 0.65 0.85 1"'
    for j, (x, y, sx, sy) in enumerate((
            (half + wall_t, 0, wall_t, half + 2 * wall_t),
            (-half - wall_t, 0, wall_t, half + 2 * wall_t),
            (0, half + wall_t, half, wall_t), (0, -half - wall_t, half, wall_t))):
        geoms.append(
            f'<geom name="wall{j}" type="box" pos="{x:.6g} {y:.6g} {world.wall_height_m / 2:.6g}" '
            f'size="{sx:.6g} {sy:.6g} {world.wall_height_m / 2:.6g}" '
            f'{wall_paint} '
            f'group="{OBSTACLE_GROUP}"/>')
    for k, obs in enumerate(world.obstacles):
        if obs.shape == 'box':
            shape = f'type="box" size="{obs.size[0]:.6g} {obs.size[1]:.6g} {obs.height / 2:.6g}"'
        else:
            shape = f'type="cylinder" size="{obs.size[0]:.6g} {obs.height / 2:.6g}"'
        paint = f'material="mat_obstacle{k}"' if obs.texture else f'rgba="{_f(obs.rgb)} 1"'
        geoms.append(
            f'<geom name="obstacle{k}" {shape} pos="{obs.x:.6g} {obs.y:.6g} '
            f'{obs.height / 2:.6g}" euler="0 0 {obs.yaw:.6g}" {paint} '
            f'group="{OBSTACLE_GROUP}"/>')
    for k, mark in enumerate(world.markings):
        shape = (f'type="box" size="{mark.size[0]:.6g} {mark.size[1]:.6g} 0.0008"'
                 if mark.shape == 'box' else f'type="cylinder" size="{mark.size[0]:.6g} 0.0008"')
        geoms.append(
            f'<geom name="marking{k}" {shape} pos="{mark.x:.6g} {mark.y:.6g} 0.0009" '
            f'euler="0 0 {mark.yaw:.6g}" material="mat_marking{k}" contype="0" '
            f'conaffinity="0" group="0"/>')
    x0, y0, yaw0 = world.start
    ambient, headlight = (look.ambient, look.headlight) if look else (0.45, 0.5)
    light_dir, light_rgb = ((look.light_dir, look.light_rgb) if look
                            else ((0.2, 0.3, -1.0), (0.5, 0.5, 0.5)))
    if look is not None:  # the camera's mounting jitter of this world
        cx, cy, cz = robot.camera_xyz_m
        robot = replace(robot, camera_xyz_m=(cx, cy, cz + look.camera_dz_m),
                        camera_pitch_rad=robot.camera_pitch_rad + look.camera_dpitch_rad)
    return f"""<mujoco model="ssl_robot_world_{world.seed}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <quality shadowsize="0"/>
    <headlight ambient="{_f([ambient] * 3)}" diffuse="{_f([headlight] * 3)}"
               specular="0.05 0.05 0.05"/>
    <map znear="0.005" zfar="40"/>
  </visual>
  <asset>{''.join(assets)}</asset>
  <default>
    <geom solref="0.01 1"/>
  </default>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="{_f(light_dir)}" castshadow="false"
           diffuse="{_f(light_rgb)}"/>
    <geom name="floor" type="plane" size="{half + 0.5:.6g} {half + 0.5:.6g} 0.1"
          material="mat_{'floor' if look else 'smooth'}"
          friction="{TERRAINS['smooth'].friction} 0.005 0.0001" priority="1"/>
    {''.join(geoms)}
    {_robot_body(robot, x0, y0, yaw0)}
  </worldbody>
  <actuator>
    <velocity name="left_motor" joint="left_wheel" kv="0.05" forcerange="-0.08 0.08"
              ctrlrange="{-robot.max_speed_mps * 1.5 / robot.wheel_radius_m:.6g}
                         {robot.max_speed_mps * 1.5 / robot.wheel_radius_m:.6g}"/>
    <velocity name="right_motor" joint="right_wheel" kv="0.05" forcerange="-0.08 0.08"
              ctrlrange="{-robot.max_speed_mps * 1.5 / robot.wheel_radius_m:.6g}
                         {robot.max_speed_mps * 1.5 / robot.wheel_radius_m:.6g}"/>
  </actuator>
  <sensor>
    <accelerometer name="imu_acc" site="imu"/>
    <gyro name="imu_gyro" site="imu"/>
  </sensor>
</mujoco>"""


def world_textures(world: World) -> dict[str, Texture]:
    """Material name -> procedural texture of a randomised world (empty for 'plain').

    Names: 'floor', 'wall', 'terrain_<type>', 'obstacle<k>' (textured obstacles),
    'marking<k>'.
    """
    if world.appearance is None:
        return {}
    out = dict(world.appearance.textures())
    out.update({f'obstacle{k}': o.texture for k, o in enumerate(world.obstacles) if o.texture})
    out.update({f'marking{k}': m.texture for k, m in enumerate(world.markings)})
    return out


def fill_textures(model: object, world: World) -> None:
    """Write the texels of every procedural texture into a compiled model (`mujoco.MjModel`).

    Call before the renderer's context is made (that uploads the textures).
    """
    for name, texture in world_textures(world).items():
        tex = model.texture(f'tex_{name}')
        w, h = int(model.tex_width[tex.id]), int(model.tex_height[tex.id])
        adr = int(model.tex_adr[tex.id])
        model.tex_data[adr:adr + w * h * 3] = texture_rgb(texture, w).reshape(-1)


def camera_xyaxes(pitch: float, yaw: float) -> str:
    """MJCF `xyaxes` of a camera in base_link pitched down by `pitch`, yawed left by `yaw`.

    MuJoCo cameras look along their -z with +y up: unyawed, image right is -y of
    base_link and image up is the forward axis tilted up by the pitch; the yaw turns both
    about z.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    right = (s, -c, 0.0)  # Rz(yaw) (0, -1, 0)
    up = (math.sin(pitch) * c, math.sin(pitch) * s, math.cos(pitch))
    return _f((*right, *up))


def _robot_body(robot: RobotGeometry, x: float, y: float, yaw: float) -> str:
    """The robot: chassis with a free joint, two driven wheels, a rear caster, sensors."""
    r = robot.wheel_radius_m
    hx, hy, hz = robot.body_half_size_m
    wy = robot.wheel_base_m / 2.0
    cx, cy, cz = robot.camera_xyz_m
    cameras = ''.join(
        f'<camera name="{mount.name}" pos="{_f(mount.xyz_m)}" '
        f'xyaxes="{camera_xyaxes(mount.pitch_rad, mount.yaw_rad)}" '
        f'fovy="{robot.camera_fovy_deg:.6g}"/>' for mount in robot.extra_cameras)
    sites = []
    for name, (sx, sy, syaw) in robot.proximity_poses.items():
        # A site's +z is the ray direction: rotate z onto the sensor's forward axis.
        fwd = (math.cos(syaw), math.sin(syaw), 0.0)
        sites.append(f'<site name="range_{name}" pos="{sx:.6g} {sy:.6g} '
                     f'{robot.proximity_height_m:.6g}" zaxis="{_f(fwd)}" size="0.004" '
                     f'rgba="0.9 0.1 0.1 1" group="{HIDDEN_GROUP}"/>')
    caster_r = 0.01
    return f"""<body name="base_link" pos="{x:.6g} {y:.6g} 0.001" euler="0 0 {yaw:.6g}">
      <freejoint name="root"/>
      <geom name="chassis" type="box" pos="-0.02 0 {r + hz - 0.005:.6g}"
            size="{hx:.6g} {hy:.6g} {hz:.6g}" rgba="0.95 0.95 0.95 1" mass="{ROBOT_MASS_KG - 0.04}"
            contype="0" conaffinity="0" group="1"/>
      <geom name="mast" type="box" pos="{cx - 0.01:.6g} 0 {(r + 2 * hz + cz) / 2:.6g}"
            size="0.006 0.006 {max((cz - r - 2 * hz) / 2, 0.005):.6g}" rgba="0.2 0.2 0.2 1"
            mass="0.005" contype="0" conaffinity="0" group="1"/>
      <geom name="caster" type="sphere" pos="-0.05 0 {caster_r:.6g}" size="{caster_r}"
            condim="1" priority="2" mass="0.005" group="{HIDDEN_GROUP}"/>
      <site name="imu" pos="{_f(robot.imu_xyz_m)}" size="0.005" group="{HIDDEN_GROUP}"/>
      <camera name="camera" pos="{cx:.6g} {cy:.6g} {cz:.6g}"
              xyaxes="{camera_xyaxes(robot.camera_pitch_rad, 0.0)}"
              fovy="{robot.camera_fovy_deg:.6g}"/>
      {cameras}
      {''.join(sites)}
      <!-- Wheel joints carry the gearbox's reflected inertia (armature): a bare 15 g wheel
           under a velocity servo spins up wildly whenever it loses ground contact. -->
      <body name="left_wheel" pos="0 {wy:.6g} {r:.6g}">
        <joint name="left_wheel" type="hinge" axis="0 1 0" damping="0.0001" armature="0.0001"/>
        <geom type="sphere" size="{r:.6g}" mass="0.015" friction="0.1 0.005 0.0001" condim="3"
              group="{HIDDEN_GROUP}"/>
        <geom type="cylinder" size="{r:.6g} 0.006" euler="1.5708 0 0" rgba="0.1 0.1 0.1 1"
              contype="0" conaffinity="0" mass="0.001" group="1"/>
      </body>
      <body name="right_wheel" pos="0 {-wy:.6g} {r:.6g}">
        <joint name="right_wheel" type="hinge" axis="0 1 0" damping="0.0001" armature="0.0001"/>
        <geom type="sphere" size="{r:.6g}" mass="0.015" friction="0.1 0.005 0.0001" condim="3"
              group="{HIDDEN_GROUP}"/>
        <geom type="cylinder" size="{r:.6g} 0.006" euler="1.5708 0 0" rgba="0.1 0.1 0.1 1"
              contype="0" conaffinity="0" mass="0.001" group="1"/>
      </body>
    </body>"""
