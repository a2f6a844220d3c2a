"""A small synthetic-but-learnable labelled dataset for robot model tests and benchmarks.

Each bag is a sequence of scenes (about 3 s each at 10 Hz): an obstacle (a dark red
block) in the left, centre or right third of the image approaches the robot; its image
height grows as it comes closer. Proximity labels follow the geometry (obstacle at
distance d for the sensor whose third holds the block once the robot has advanced
close enough), with a share of labels masked unknown. Terrain roughness per grid column
sets the amplitude of a texture in the matching image block. Frames close in time look
alike (same scene), which the TCN can learn.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_robot.dataset import DatasetWriter

DISTANCES = [0.0, 0.1, 0.2, 0.3]
SENSORS = ['left', 'center', 'right']
GRID = (3, 4)


def render_bag(rng: np.random.Generator, n_frames: int, hw: tuple[int, int]
               ) -> dict[str, np.ndarray]:
    """Frames and labels of one synthetic bag."""
    h, w = hw
    d_count, s_count = len(DISTANCES), len(SENSORS)
    frames = np.zeros((n_frames, h, w, 3), np.uint8)
    prox = np.zeros((n_frames, d_count, s_count), np.float32)
    terrain = np.zeros((n_frames, *GRID), np.float32)
    scene_len = 30
    for i in range(n_frames):
        k = i % scene_len
        if k == 0:
            sector = int(rng.integers(-1, s_count))  # -1: no obstacle in this scene
            background = rng.uniform(60, 160, 3)
            rough = rng.uniform(0, 1, GRID[1])
        dist = 0.5 - 0.015 * k
        img = np.tile(background, (h, w, 1)) + rng.normal(0, 4, (h, w, 3))
        # Terrain texture: bottom half, per grid column, amplitude ~ roughness.
        for c in range(GRID[1]):
            x0, x1 = c * w // GRID[1], (c + 1) * w // GRID[1]
            img[h // 2:, x0:x1] += rng.normal(0, 1, (h - h // 2, x1 - x0, 1)) * 50 * rough[c]
            terrain[i, :, c] = rough[c] + rng.normal(0, 0.05, GRID[0])
        if sector >= 0:
            x0, x1 = sector * w // s_count, (sector + 1) * w // s_count
            top = int(h * (0.25 + 0.6 * dist))
            img[top:int(h * 0.9), x0 + 2:x1 - 2] = (150, 20, 20)
            for d, ahead in enumerate(DISTANCES):
                prox[i, d, sector] = float(dist - ahead <= 0.15)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    known = rng.random(prox.shape) < 0.7
    tmask = np.zeros(terrain.shape, bool)
    tmask[:, GRID[0] // 2:, :] = rng.random((n_frames, GRID[0] - GRID[0] // 2, GRID[1])) < 0.8
    stamps = (np.arange(n_frames, dtype=np.int64) * 100_000_000) + 1_000_000_000
    return {'frames': frames, 'stamps_ns': stamps, 'proximity': prox,
            'proximity_mask': known, 'terrain': terrain, 'terrain_mask': tmask,
            'prov_t_future_ns': np.where(known.any(2), stamps[:, None] + 10**9, -1),
            'prov_pose_err': np.zeros((n_frames, d_count, 3), np.float32)}


def write_synthetic_dataset(path: Path | str, *, n_bags: int = 4, frames_per_bag: int = 90,
                            hw: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """Write a synthetic labelled dataset with `n_bags` bags; returns its path."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    with DatasetWriter(path, distances_m=DISTANCES, sensors=SENSORS, terrain_grid=GRID,
                       image_hw=hw, params={'synthetic': True, 'seed': seed}) as writer:
        for b in range(n_bags):
            writer.add_bag(f'synthetic_{b}.mcap', render_bag(rng, frames_per_bag, hw))
    return path
