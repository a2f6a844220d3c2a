"""How right the pseudo-labels are, on simulator bags where the geometry is known.

For frame t, distance d and sensor s, the truth is whether the simulated world has an
obstacle closer than the threshold along sensor s's ray when the robot stands at its
ground-truth pose at t advanced by d along its heading: `World.obstacle_distance` from
the sensor's position, in the sensor's direction. The pseudo-labels come from drifting
odometry and real (simulated) sensor readings; the truth from neither.
"""
from __future__ import annotations

import numpy as np

from ssl_robot.labelling.poses import build_trajectory, interpolate_poses


def proximity_truth(world: object, gt_stamps: np.ndarray, gt_poses: np.ndarray,
                    frame_stamps: np.ndarray, distances_m: list[float],
                    sensor_poses: list[tuple[float, float, float]],
                    obstacle_range_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth obstacle labels [N, D, S] and where they are defined (gt pose known)."""
    traj = build_trajectory(gt_stamps, gt_poses, max_jump_m=10.0, max_jump_rad=7.0)
    at = interpolate_poses(traj, frame_stamps)
    n, d, s = len(frame_stamps), len(distances_m), len(sensor_poses)
    truth = np.zeros((n, d, s), bool)
    for i in np.flatnonzero(at.known):
        x, y, yaw = at.poses[i]
        c, si = np.cos(yaw), np.sin(yaw)
        for j, dist in enumerate(distances_m):
            bx, by = x + dist * c, y + dist * si
            for k, (sx, sy, syaw) in enumerate(sensor_poses):
                ox, oy = bx + c * sx - si * sy, by + si * sx + c * sy
                truth[i, j, k] = world.obstacle_distance(ox, oy, yaw + syaw) < obstacle_range_m
    return truth, np.broadcast_to(at.known[:, None, None], truth.shape).copy()


def precision_recall(labels: np.ndarray, mask: np.ndarray, truth: np.ndarray,
                     truth_known: np.ndarray) -> dict[str, float]:
    """Precision, recall, accuracy of known pseudo-labels against the truth."""
    sel = mask & truth_known
    pred, true = labels[sel] > 0.5, truth[sel]
    tp = int((pred & true).sum())
    fp = int((pred & ~true).sum())
    fn = int((~pred & true).sum())
    return {'precision': tp / max(tp + fp, 1), 'recall': tp / max(tp + fn, 1),
            'accuracy': float((pred == true).mean()) if sel.any() else float('nan'),
            'known': int(sel.sum()), 'positives_true': int(true.sum()),
            'tp': tp, 'fp': fp, 'fn': fn}
