"""The simulated robot's core: worlds, geometry, sensors against geometry, odometry, IMU."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.sim import (
    generate_world,
    Obstacle,
    ROBOT,
    SimError,
    SimOptions,
    SimSession,
    Simulator,
    TerrainPatch,
    World,
)
from ssl_robot.sim.model import TIMESTEP_S

RED = (0.9, 0.2, 0.2)


def _world(obstacles=(), patches=(), half=2.0) -> World:
    return World(0, half, 0.3, tuple(obstacles), tuple(patches), (0.0, 0.0, 0.0))


# -- worlds --------------------------------------------------------------------------------

def test_same_seed_same_world_different_seed_different() -> None:
    a, b, c = generate_world(7), generate_world(7), generate_world(8)
    assert a == b
    assert a.to_json() == b.to_json()
    assert a.obstacles != c.obstacles
    assert {p.terrain for p in a.patches} == {'gravel', 'grass', 'sand'}


def test_world_json_round_trip() -> None:
    world = generate_world(3)
    assert World.from_json(world.to_json()) == world
    with pytest.raises(SimError, match='invalid world JSON'):
        World.from_json('{"seed": 1}')


def test_generated_world_keeps_start_clear() -> None:
    for seed in range(5):
        world = generate_world(seed)
        assert world.clearance(*world.start[:2]) > 0.4
        assert len(world.obstacles) >= 6


@pytest.mark.parametrize(('x', 'y', 'heading', 'expected'), [
    (0.0, 0.0, 0.0, 0.9),                  # box face at x = 1 - 0.1
    (0.0, 0.0, math.pi, 2.0),              # west wall
    (0.0, 0.0, math.pi / 2, 1.5 - 0.2),    # cylinder r=0.2 at (0, 1.5)
    (0.0, 0.0, -math.pi / 2, 2.0),         # south wall
    (1.5, 1.5, math.pi / 4, math.sqrt(2) * 0.5),  # corner of the arena
    (0.0, 0.3, 0.0, 2.0),                  # passes above the box (|y| > 0.1)
])
def test_obstacle_distance_hand_computed(x: float, y: float, heading: float,
                                         expected: float) -> None:
    world = _world([Obstacle('box', 1.0, 0.0, 0.0, (0.1, 0.1), 0.2, RED),
                    Obstacle('cylinder', 0.0, 1.5, 0.0, (0.2, 0.2), 0.2, RED)])
    assert world.obstacle_distance(x, y, heading) == pytest.approx(expected, abs=1e-9)


def test_obstacle_distance_rotated_box_and_far_rays() -> None:
    # A box rotated by 45 deg: its corner points at the ray, at 1 - 0.1*sqrt(2).
    world = _world([Obstacle('box', 1.0, 0.0, math.pi / 4, (0.1, 0.1), 0.2, RED)], half=10.0)
    assert world.obstacle_distance(0.0, 0.0, 0.0) == pytest.approx(1 - 0.1 * math.sqrt(2))
    assert world.obstacle_distance(0.0, 0.0, math.pi) == math.inf  # wall beyond 5 m


def test_terrain_at() -> None:
    world = _world(patches=[TerrainPatch('gravel', 1.0, 1.0, 0.5, 0.25, 1)])
    assert world.terrain_at(1.4, 1.2) == 'gravel'
    assert world.terrain_at(1.4, 1.3) == 'smooth'
    assert world.terrain_at(0.0, 0.0) == 'smooth'


def test_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(SimError, match='arena'):
        generate_world(0, arena_size_m=0.5)
    with pytest.raises(SimError, match='camera size'):
        Simulator(_world(), width=1280, height=960)
    with pytest.raises(SimError, match='rate'):
        SimOptions(camera_rate_hz=0.0).periods_ns()


# -- sensors against geometry ------------------------------------------------------------

@pytest.fixture(scope='module')
def wall_sim() -> Simulator:
    """A robot in front of a tall, wide box whose face is at x = 1.0."""
    world = _world([Obstacle('box', 1.5, 0.0, 0.0, (0.5, 0.6), 0.4, RED)])
    sim = Simulator(world, width=128, height=96)
    yield sim
    sim.close()


@pytest.mark.parametrize('gap', [0.03, 0.08, 0.15, 0.25])
def test_center_range_matches_distance(wall_sim: Simulator, gap: float) -> None:
    sensor_x = ROBOT.proximity_poses['center'][0]
    wall_sim.place_robot(1.0 - gap - sensor_x, 0.0, 0.0)
    truth = wall_sim.ground_truth()
    expected = 1.0 - (truth.position[0] + sensor_x)
    assert expected == pytest.approx(gap, abs=0.01)  # the robot stayed where it was put
    readings = wall_sim.ranges()
    assert readings['center'] == pytest.approx(expected, abs=0.01)
    # The angled side sensors see the same face further away: gap / cos(yaw).
    sx, _, syaw = ROBOT.proximity_poses['left']
    side = (1.0 - truth.position[0] - sx) / math.cos(syaw)
    if side <= ROBOT.range_max_m:
        assert readings['left'] == pytest.approx(side, abs=0.015)


def test_range_is_inf_when_nothing_in_range(wall_sim: Simulator) -> None:
    wall_sim.place_robot(1.0 - 0.5, 0.0, 0.0)
    assert all(v == math.inf for v in wall_sim.ranges().values())
    wall_sim.place_robot(0.0, 0.0, math.pi / 2)  # facing the +y wall 2 m away
    assert all(v == math.inf for v in wall_sim.ranges().values())


@pytest.mark.parametrize('cam_gap', [0.1, 0.2])
def test_depth_centre_matches_distance(wall_sim: Simulator, cam_gap: float) -> None:
    cam_x = ROBOT.camera_xyz_m[0]
    wall_sim.place_robot(1.0 - cam_gap - cam_x, 0.0, 0.0)
    truth = wall_sim.ground_truth()
    horizontal = 1.0 - (truth.position[0] + cam_x)
    # The optical axis is pitched down; it meets the face at horizontal / cos(pitch).
    expected = horizontal / math.cos(ROBOT.camera_pitch_rad)
    rgb, depth = wall_sim.render()
    h, w = depth.shape
    centre = depth[h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1].mean()
    assert centre == pytest.approx(expected, abs=0.01)
    assert rgb.shape == (96, 128, 3) and rgb.dtype == np.uint8
    assert rgb[h // 2, w // 2, 0] > 150 > rgb[h // 2, w // 2, 1]  # the red box


def test_depth_is_inf_for_open_sky() -> None:
    with Simulator(_world(half=2.0), width=64, height=48) as sim:
        _, depth = sim.render()
        cam_z = sim.ground_truth().position[2] + ROBOT.camera_xyz_m[2]
    assert np.isinf(depth[0]).all()               # top row: sky above the walls
    # Bottom row: the floor, along a ray `below` the optical axis, at depth z = r cos(below).
    _, fy, _, cy = ROBOT.camera_intrinsics(64, 48)
    below = math.atan((47 - cy) / fy)
    expected = cam_z / math.sin(ROBOT.camera_pitch_rad + below) * math.cos(below)
    assert depth[-1].mean() == pytest.approx(expected, abs=0.003)


def test_extra_camera_sees_the_same_scene_from_its_own_pose() -> None:
    """camera2 sits at the front right corner, higher, yawed left.

    Its optical axis meets the wall where the mount's geometry says, and its image
    differs from the main one's.
    """
    world = _world([Obstacle('box', 1.5, 0.0, 0.0, (0.5, 0.6), 0.4, RED)])
    mount = ROBOT.extra_cameras[0]
    with Simulator(world, width=64, height=48, extra_cameras=1) as sim:
        assert sim.camera_names == ['camera', 'camera2']
        sim.place_robot(0.7, 0.0, 0.0)
        truth = sim.ground_truth()
        main_rgb, main_depth = sim.render()
        rgb, depth = sim.render('camera2')
        with pytest.raises(SimError, match='camera3'):
            sim.render('camera3')
    # The optical axis (cos p cos y, cos p sin y, -sin p) meets the face x = 1.0.
    along = (1.0 - truth.position[0] - mount.xyz_m[0]) / (
        math.cos(mount.pitch_rad) * math.cos(mount.yaw_rad))
    hit_z = truth.position[2] + mount.xyz_m[2] - along * math.sin(mount.pitch_rad)
    hit_y = mount.xyz_m[1] + along * math.cos(mount.pitch_rad) * math.sin(mount.yaw_rad)
    assert 0.0 < hit_z < 0.4 and abs(hit_y) < 0.6  # on the box's face
    assert depth[23:25, 31:33].mean() == pytest.approx(along, abs=0.01)
    assert rgb[24, 32, 0] > 150 > rgb[24, 32, 1]  # the red box
    # Same scene, other viewpoint: the main camera, lower and further forward, is closer.
    assert main_depth[23:25, 31:33].mean() < along
    assert rgb.shape == main_rgb.shape
    assert np.abs(rgb.astype(int) - main_rgb).mean() > 5.0
    with pytest.raises(SimError, match='extra cameras'):
        Simulator(world, width=64, height=48, extra_cameras=len(ROBOT.extra_cameras) + 1)


def test_rangefinder_agrees_with_obstacle_distance_while_driving() -> None:
    session = SimSession(generate_world(4), SimOptions(render=False))
    checked = 0
    try:
        for k in range(60):
            session.advance((k + 1) * 500_000_000)
            truth = session.sim.ground_truth()
            readings = session.sim.ranges()
            rot = truth.yaw
            for name, (sx, sy, syaw) in ROBOT.proximity_poses.items():
                wx = truth.position[0] + sx * math.cos(rot) - sy * math.sin(rot)
                wy = truth.position[1] + sx * math.sin(rot) + sy * math.cos(rot)
                expected = session.world.obstacle_distance(wx, wy, rot + syaw)
                if expected > ROBOT.range_max_m - 0.02:
                    assert readings[name] > ROBOT.range_max_m - 0.04
                    continue
                if expected < ROBOT.range_min_m + 0.01:
                    continue
                assert readings[name] == pytest.approx(expected, abs=0.015), (k, name)
                checked += 1
    finally:
        session.close()
    assert checked >= 3  # the driver does approach obstacles


# -- odometry and IMU --------------------------------------------------------------------

def test_odometry_drifts_but_stays_bounded() -> None:
    session = SimSession(generate_world(2), SimOptions(render=False))
    path, errors, prev = 0.0, [], None
    try:
        for k in range(40):
            session.advance((k + 1) * 500_000_000)
            truth, odom = session.sim.ground_truth(), session.sim.odometry()
            if prev is not None:
                path += float(np.hypot(*(truth.position[:2] - prev)))
            prev = truth.position[:2].copy()
            errors.append(math.hypot(odom.x - truth.position[0], odom.y - truth.position[1]))
    finally:
        session.close()
    assert path > 1.5                       # the robot did drive
    assert errors[-1] > 1e-3                # odometry is not ground truth
    assert max(errors) < 0.15 * path + 0.05  # but a wheel odometry, not a random walk


def _vertical_vibration(world: World, start: tuple[float, float, float]) -> float:
    with Simulator(world, render=False) as sim:
        sim.place_robot(*start)
        sim.set_cmd_vel(0.15, 0.0)
        sim.step(int(0.5 / TIMESTEP_S))
        sim.imu()
        acc = []
        for _ in range(250):  # 2.5 s at 100 Hz
            sim.step(5)
            acc.append(sim.imu()[0])
        truth = sim.ground_truth()
        assert world.terrain_at(*truth.position[:2]) == world.terrain_at(*start[:2])
    return float(np.std(np.array(acc)[:, 2]))


def test_imu_vibrates_more_on_bumpy_terrain() -> None:
    world = _world(patches=[TerrainPatch('gravel', 1.0, 0.0, 0.7, 0.5, 11),
                            TerrainPatch('grass', -1.0, 1.2, 0.7, 0.5, 12)])
    smooth = _vertical_vibration(world, (-1.3, -1.0, 0.0))
    gravel = _vertical_vibration(world, (0.45, 0.0, 0.0))
    grass = _vertical_vibration(world, (-1.6, 1.2, 0.0))
    assert gravel > 3 * smooth
    assert grass > 1.5 * smooth
    assert gravel > grass


def test_robot_geometry_matches_the_parameter_file() -> None:
    from ssl_robot.config import load_node_parameters
    from ssl_robot.sim import STREAMS
    params = load_node_parameters('sim_robot')
    assert tuple(params['camera_xyz']) == pytest.approx(ROBOT.camera_xyz_m)
    assert params['camera_pitch'] == pytest.approx(ROBOT.camera_pitch_rad)
    assert list(params['range_topics']) == [f'range/{n}' for n in ROBOT.proximity_poses]
    for key in ('image_topic', 'camera_info_topic', 'depth_topic', 'odom_topic', 'imu_topic',
                'cmd_vel_topic'):
        assert params[key] in STREAMS, key


# -- driver --------------------------------------------------------------------------------

def test_driver_approaches_obstacles_straight_and_crosses_terrain() -> None:
    session = SimSession(generate_world(1), SimOptions(render=False))
    poses, terrains, stops = [], set(), []
    mode = session.policy.mode
    try:
        for k in range(600):  # 60 s
            session.advance((k + 1) * 100_000_000)
            truth = session.sim.ground_truth()
            poses.append((float(truth.position[0]), float(truth.position[1]), truth.yaw))
            terrains.add(session.world.terrain_at(*poses[-1][:2]))
            if session.policy.mode == 'stop' and mode != 'stop':
                stops.append(k)
            mode = session.policy.mode
    finally:
        session.close()
    assert len(stops) >= 3
    assert len(terrains) >= 3
    for k in stops:
        if k < 20:
            continue
        (x0, y0, yaw0), (x1, y1, yaw1) = poses[k - 20], poses[k]
        # The 2 s before a stop: driving nearly straight at the obstacle, from >= 0.2 m away.
        assert math.hypot(x1 - x0, y1 - y0) > 0.2
        assert abs(math.atan2(math.sin(yaw1 - yaw0), math.cos(yaw1 - yaw0))) < 0.5
