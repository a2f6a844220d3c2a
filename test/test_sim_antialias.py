"""Rendering without multisampling: same scene, same depth, only the edges differ."""
from __future__ import annotations

import numpy as np

from ssl_robot.sim import generate_world, SimOptions, SimSession


def _render(antialias: bool) -> tuple[int, np.ndarray, np.ndarray]:
    session = SimSession(generate_world(3), SimOptions(width=160, height=120,
                                                       antialias=antialias))
    try:
        session.advance(300_000_000)
        sim = session.sim
        rgb, depth = sim._camera.render(sim.data, sim.model.camera('camera').id)
        return int(sim.model.vis.quality.offsamples), rgb.astype(np.float64), depth
    finally:
        session.close()


def test_no_msaa_renders_the_same_scene_with_aliased_edges() -> None:
    samples_on, rgb_on, depth_on = _render(True)
    samples_off, rgb_off, depth_off = _render(False)
    assert (samples_on, samples_off) == (4, 0)
    diff = np.abs(rgb_on - rgb_off).max(axis=2)
    # The same poses and scene: most pixels agree exactly, the rest lie on edges.
    assert (diff == 0).mean() > 0.8
    assert 0 < (diff > 8).mean() < 0.1               # aliasing is there, and only there
    # Depth too (MSAA reads one sample, a fraction of a pixel off the centre).
    near = np.isfinite(depth_on) & np.isfinite(depth_off)
    assert near.mean() > 0.5
    assert np.median(np.abs(depth_on[near] / depth_off[near] - 1)) < 0.01
