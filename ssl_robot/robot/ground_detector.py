"""A hand-made, non-learned obstacle detector: "not the colour of the ground in front".

The baseline that shows what appearance alone gets, after Ulrich and Nourbakhsh's
appearance-based obstacle detection (AAAI 2000): the bottom band of the image (the
ground just in front of the robot) is taken as the ground's reference colour, and a
pixel is obstacle-like by how far its colour lies from that reference - a robust z-score
(distance from the reference median in units of its median absolute deviation) of
chromaticity (r, g share) and brightness, the largest over the three, clipped at 10.

For distance d and sensor s, the score is the mean obstacle-likeness of the pixels where
the ground strip the sensor's ray sweeps (from the sensor, advanced by d, to the obstacle
range ahead, 1 cm either side of the ray) appears in the image, through the pinhole
model of the camera's mount. An obstacle standing in that strip covers those pixels (it
also occludes the ground behind it), a free strip shows ground. Strip points below the
image (the nearest metres the camera cannot see) are read at the bottom row.

Nothing is learned: no parameter depends on data.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: Share of image rows (at the bottom) that is the ground reference.
REFERENCE_ROWS = 1 / 8
#: Largest obstacle-likeness of one pixel.
MAX_LIKENESS = 10.0


def strip_pixels(*, distances_m: Sequence[float], sensor_poses: Sequence[tuple[float, float,
                                                                               float]],
                 obstacle_range_m: float, image_hw: tuple[int, int],
                 camera_xyz_m: tuple[float, float, float], camera_pitch_rad: float,
                 camera_fovy_deg: float, samples: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, col) of the ground points of each (distance, sensor) strip.

    Args:
        distances_m: The D label distances.
        sensor_poses: The S sensors' (x, y, yaw) in base_link.
        obstacle_range_m: Length of the strip along the ray (the label's range threshold).
        image_hw: Image size (H, W).
        camera_xyz_m: Camera position in base_link.
        camera_pitch_rad: Camera pitch (down positive).
        camera_fovy_deg: Vertical field of view (square pixels, centred principal point).
        samples: Points along the ray (each with two side points 1 cm off the ray).

    Returns:
        (rows, cols) int arrays [D, S, 3 * samples], clamped into the image.
    """
    h, w = image_hw
    f = 0.5 * h / math.tan(math.radians(camera_fovy_deg) / 2.0)
    cu, cv = (w - 1) / 2.0, (h - 1) / 2.0
    cx, cy, cz = camera_xyz_m
    p = camera_pitch_rad
    forward = np.array([math.cos(p), 0.0, -math.sin(p)])
    down = -np.array([math.sin(p), 0.0, math.cos(p)])
    right = np.array([0.0, -1.0, 0.0])
    t = np.linspace(0.0, obstacle_range_m, samples)
    rows = np.zeros((len(distances_m), len(sensor_poses), 3 * samples), np.int64)
    cols = np.zeros_like(rows)
    for j, d in enumerate(distances_m):
        for k, (sx, sy, syaw) in enumerate(sensor_poses):
            along = np.array([math.cos(syaw), math.sin(syaw)])
            side = np.array([-along[1], along[0]])
            pts = np.concatenate([
                (np.array([d + sx, sy]) + off * side)[None] + t[:, None] * along[None]
                for off in (-0.01, 0.0, 0.01)])
            v = np.column_stack([pts[:, 0] - cx, pts[:, 1] - cy, np.full(len(pts), -cz)])
            z = np.maximum(v @ forward, 1e-3)
            u_px = cu + f * (v @ right) / z
            v_px = cv + f * (v @ down) / z
            rows[j, k] = np.clip(np.round(v_px), 0, h - 1).astype(np.int64)
            cols[j, k] = np.clip(np.round(u_px), 0, w - 1).astype(np.int64)
    return rows, cols


def obstacle_likeness(frames: np.ndarray) -> np.ndarray:
    """Per-pixel distance from the ground reference colour, [N, H, W] in [0, MAX_LIKENESS].

    Args:
        frames: uint8 RGB [N, H, W, 3].
    """
    x = frames.astype(np.float32) + 1.0
    total = x.sum(-1)
    feats = np.stack([x[..., 0] / total, x[..., 1] / total, total / 768.0], axis=-1)
    h, w = frames.shape[1:3]
    ref = feats[:, h - max(1, int(round(h * REFERENCE_ROWS))):, w // 4: w - w // 4]
    ref = ref.reshape(len(frames), -1, 3)
    med = np.median(ref, axis=1)
    mad = np.median(np.abs(ref - med[:, None]), axis=1) * 1.4826
    # A floor of the spread: a flat-coloured ground must not turn faint shading into 10.
    mad = np.maximum(mad, np.array([0.01, 0.01, 0.02], np.float32))
    z = np.abs(feats - med[:, None, None]) / mad[:, None, None]
    return np.minimum(z.max(-1), MAX_LIKENESS)


def ground_colour_scores(frames: np.ndarray, *, distances_m: Sequence[float],
                         sensor_poses: Sequence[tuple[float, float, float]],
                         obstacle_range_m: float, camera_xyz_m: tuple[float, float, float],
                         camera_pitch_rad: float, camera_fovy_deg: float,
                         batch: int = 256) -> np.ndarray:
    """Obstacle scores [N, D, S] of frames (higher = more obstacle-like; see the module doc).

    Args:
        frames: uint8 RGB [N, H, W, 3].
        distances_m, sensor_poses, obstacle_range_m: The labels' geometry.
        camera_xyz_m, camera_pitch_rad, camera_fovy_deg: The camera's mount and optics.
        batch: Frames per vectorised chunk (memory).
    """
    n, h, w = frames.shape[:3]
    rows, cols = strip_pixels(distances_m=distances_m, sensor_poses=sensor_poses,
                              obstacle_range_m=obstacle_range_m, image_hw=(h, w),
                              camera_xyz_m=camera_xyz_m, camera_pitch_rad=camera_pitch_rad,
                              camera_fovy_deg=camera_fovy_deg)
    out = np.zeros((n, len(distances_m), len(sensor_poses)), np.float32)
    for start in range(0, n, batch):
        like = obstacle_likeness(np.asarray(frames[start:start + batch]))
        out[start:start + len(like)] = like[:, rows, cols].mean(-1)
    return out
