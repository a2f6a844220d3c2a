"""Randomised simulator worlds: determinism, styles, markings that are never obstacles."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.labelling.sim_truth import proximity_truth
from ssl_robot.sim import generate_world, ROBOT, SimError, Simulator, World
from ssl_robot.sim.appearance import (
    Appearance,
    apply_camera_effects,
    FAMILIES,
    mean_colour,
    Texture,
    TEXTURE_KINDS,
    texture_rgb,
)
from ssl_robot.sim.world import Marking, TERRAINS, world_family

GREY = Texture('flat', (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_same_seed_and_style_same_world_and_json_round_trip() -> None:
    for style in ('random', *FAMILIES):
        a, b = generate_world(11, style=style), generate_world(11, style=style)
        assert a == b and a.to_json() == b.to_json()
        assert World.from_json(a.to_json()) == a
    assert generate_world(11, style='random') == generate_world(11, style=world_family(11))
    assert generate_world(11) != generate_world(12)
    assert generate_world(11, style='indoor') != generate_world(11, style='outdoor')


def test_randomised_world_keeps_the_plain_layout_and_adds_clutter() -> None:
    plain, rich = generate_world(4, style='plain'), generate_world(4, style='workshop')
    assert plain.appearance is None and not plain.markings
    blocks = [o for o in rich.obstacles if o.kind == 'block']
    assert [(o.x, o.y, o.size) for o in blocks] == [(o.x, o.y, o.size) for o in plain.obstacles]
    assert rich.patches == plain.patches
    kinds = {o.kind for w in map(generate_world, range(6)) for o in w.obstacles}
    assert {'pole', 'leg', 'low', 'wall'} <= kinds
    assert all(o.texture is not None for o in rich.obstacles)
    assert rich.markings
    # Old worlds (format /1, no appearance) still load.
    old = plain.to_json().replace('world/2', 'world/1')
    assert World.from_json(old) == plain
    with pytest.raises(SimError, match='style'):
        generate_world(1, style='neon')


@pytest.mark.parametrize('kind', TEXTURE_KINDS)
def test_textures_are_deterministic_and_use_their_colours(kind: str) -> None:
    tex = Texture(kind, (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), scale=8.0, seed=3, density=0.3)
    a, b = texture_rgb(tex, 32), texture_rgb(tex, 32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    if kind == 'flat':
        assert (a == np.array([230, 26, 26], np.uint8)).all()
        return
    assert a[..., 2].max() > 150 and a[..., 0].max() > 150  # both colours show
    if kind != 'checker':  # a checker board has no randomness
        other = Texture(kind, tex.rgb1, tex.rgb2, scale=8.0, seed=4, density=0.3)
        assert not np.array_equal(a, texture_rgb(other, 32))


def test_a_terrain_type_keeps_its_look_across_worlds() -> None:
    # The terrain model learns what gravel looks like: in every world it must look like
    # gravel (the same kind, colours close to its look), not like a fresh draw.
    worlds = [generate_world(seed, style=style)
              for seed, style in ((1, 'indoor'), (2, 'workshop'), (3, 'outdoor'), (4, 'indoor'))]
    rough = [t for t in TERRAINS if t != 'smooth']
    looks = [{t: mean_colour(w.appearance.terrains[t]) for t in rough} for w in worlds]
    same = [np.linalg.norm(a[t] - b[t]) for i, a in enumerate(looks) for b in looks[i + 1:]
            for t in rough]
    other = [np.linalg.norm(w[t] - w[u]) for w in looks for t in rough for u in rough
             if t < u]
    assert max(same) < min(other)
    for w, look in zip(worlds, looks):
        assert all(w.appearance.terrains[t].kind == TERRAINS[t].texture_kind for t in rough)
        # The floor (smooth) is the family's, but never close to a rough type's look.
        floor = mean_colour(w.appearance.floor)
        assert min(np.linalg.norm(floor - c) for c in look.values()) > 0.1
    # The worlds still differ: another seed, another pattern and light.
    assert worlds[0].appearance.terrains['gravel'] != worlds[3].appearance.terrains['gravel']
    assert worlds[0].appearance.light_dir != worlds[3].appearance.light_dir


def test_rendering_is_deterministic_per_seed() -> None:
    world = generate_world(2, style='indoor')
    frames = []
    for _ in range(2):
        with Simulator(world, width=64, height=48) as sim:
            sim.set_cmd_vel(0.1, 1.0)
            sim.step(100)
            frames.append(sim.render()[0])
    np.testing.assert_array_equal(frames[0], frames[1])
    assert frames[0].std() > 5  # textured, lit, not blank


def test_camera_effects_hand_computed() -> None:
    look = Appearance('indoor', GREY, {}, GREY, exposure=2.0, exposure_s=0.02)
    img = np.zeros((1, 5, 3), np.uint8)
    img[0, 2] = 30
    rng = np.random.default_rng(0)
    # |w| * exposure_s * fx = 1 * 0.02 * 100 = 2 px: a 3-px box filter, then gain 2.
    out = apply_camera_effects(img, look, rng, turn_rate_rps=-1.0, fx_px=100.0)
    np.testing.assert_array_equal(out[0, :, 0], [0, 20, 20, 20, 0])
    still = apply_camera_effects(img, look, rng, turn_rate_rps=0.0, fx_px=100.0)
    np.testing.assert_array_equal(still[0, :, 0], [0, 0, 60, 0, 0])


def test_floor_markings_are_never_obstacles() -> None:
    tape = Marking('box', 0.25, 0.0, 0.0, (0.05, 0.3), Texture('flat', (0.9, 0.1, 0.1),
                                                               (0.9, 0.1, 0.1)))
    disc = Marking('disc', 0.6, 0.0, 0.0, (0.1, 0.1), Texture('stripes', (0.1, 0.1, 0.1),
                                                              (0.9, 0.9, 0.1)))
    base = generate_world(3, style='indoor')
    world = World(0, 2.0, 0.3, (), (), (0.0, 0.0, 0.0), style='indoor',
                  appearance=base.appearance, markings=(tape, disc))
    # Geometry: the ray ahead ends at the east wall, not at the markings.
    assert world.obstacle_distance(0.0, 0.0, 0.0) == pytest.approx(2.0)
    # Truth along a straight run across both markings: free at every distance.
    stamps = np.arange(0, 11) * 100_000_000
    poses = np.stack([np.linspace(0.0, 0.8, 11), np.zeros(11), np.zeros(11)], axis=1)
    truth, known = proximity_truth(world, stamps, poses, stamps, [0.0, 0.1, 0.3],
                                   list(ROBOT.proximity_poses.values()), 0.12)
    assert known.all() and not truth.any()
    # The simulated proximity sensors do not see them, and the robot drives over them.
    with Simulator(world, width=32, height=24) as sim:
        for x in (0.0, 0.2, 0.5):
            sim.place_robot(x, 0.0, 0.0)
            assert all(math.isinf(r) and r > 0 for r in sim.ranges().values())
        rgb, _ = sim.render()
        assert rgb.std() > 3  # the camera does see them


def test_640x480_randomised_world_renders() -> None:
    with Simulator(generate_world(5), width=640, height=480) as sim:
        rgb, depth = sim.render()
    assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640)
    assert np.isfinite(depth[-1]).all()
