"""Obstacle models judged against the simulator's geometric truth, not their own labels.

On datasets made from simulator bags the truth of every frame with a known true pose is
rebuilt from the bags (`ssl_robot.labelling.sim_truth.dataset_proximity_truth`). Here
every model's scores (and the hand-made detector's, `ssl_robot.robot.ground_detector`)
are compared with that truth: ROC-AUC overall, per distance and per sensor with the
block-bootstrap CI, over every frame with truth - including the frames that got no
pseudo-label. The label noise of the same frames (pseudo-label precision and recall
against the truth) goes in the same report.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ssl_robot.labelling.sim_truth import precision_recall
from ssl_robot.metrics import auc_table
from ssl_robot.robot.ground_detector import ground_colour_scores
from ssl_robot.sim.world import ROBOT


def hand_detector_scores(frames: np.ndarray, *, distances_m: Sequence[float],
                         sensors: Sequence[str], obstacle_range_m: float) -> np.ndarray:
    """The ground-colour detector's scores [N, D, S] for frames of the simulated robot."""
    return ground_colour_scores(
        frames, distances_m=distances_m,
        sensor_poses=[ROBOT.proximity_poses[s] for s in sensors],
        obstacle_range_m=obstacle_range_m, camera_xyz_m=ROBOT.camera_xyz_m,
        camera_pitch_rad=ROBOT.camera_pitch_rad, camera_fovy_deg=ROBOT.camera_fovy_deg)


def label_noise(labels: np.ndarray, mask: np.ndarray, truth: np.ndarray, known: np.ndarray,
                *, distances_m: Sequence[float]) -> dict[str, Any]:
    """Pseudo-label precision/recall against the truth, overall and per distance."""
    per_distance = []
    for j, d in enumerate(distances_m):
        sel = np.zeros(mask.shape, bool)
        sel[:, j] = True
        per_distance.append({'distance_m': float(d),
                             **precision_recall(labels, mask & sel, truth, known)})
    labelled, unlabelled = known & mask, known & ~mask
    return {'overall': precision_recall(labels, mask, truth, known),
            'per_distance': per_distance,
            # Where the labeller finds labels at all: the robot's path picks them, and it
            # does not go where obstacles stand (coverage bias, not noise).
            'coverage': {
                'labelled_fraction': float(labelled.sum() / max(known.sum(), 1)),
                'truth_positive_rate_labelled': float(truth[labelled].mean())
                if labelled.any() else float('nan'),
                'truth_positive_rate_unlabelled': float(truth[unlabelled].mean())
                if unlabelled.any() else float('nan')}}


def truth_report(scores: dict[str, np.ndarray], truth: np.ndarray, known: np.ndarray, *,
                 pseudo_labels: np.ndarray, pseudo_mask: np.ndarray,
                 distances_m: Sequence[float], sensors: Sequence[str],
                 groups: np.ndarray | None, n_boot: int = 500, seed: int = 0
                 ) -> dict[str, Any]:
    """AUC vs truth of every scorer, and the label noise, on the same frames.

    Args:
        scores: Scorer name -> scores [N, D, S] (models, the hand-made detector).
        truth: Geometric truth [N, D, S].
        known: Where the truth is known [N, D, S] (every frame with a true pose).
        pseudo_labels: The labeller's labels [N, D, S].
        pseudo_mask: Where the labeller found a label [N, D, S].
        distances_m, sensors: Names of the D and S axes.
        groups: Block id per frame for the block bootstrap.
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap.

    Returns:
        {'frames', 'frames_with_truth', 'frames_with_pseudo_label', 'labels_with_truth',
        'labels_with_pseudo_label', 'truth_positive_rate', 'models': {name: auc_table},
        'label_noise': {...}}.
    """
    known = known.astype(bool)
    return {
        'frames': int(len(truth)),
        'frames_with_truth': int(known.any(axis=(1, 2)).sum()),
        'frames_with_pseudo_label': int(pseudo_mask.astype(bool).any(axis=(1, 2)).sum()),
        'labels_with_truth': int(known.sum()),
        'labels_with_pseudo_label': int(pseudo_mask.astype(bool).sum()),
        'truth_positive_rate': float(truth[known].mean()) if known.any() else float('nan'),
        'models': {name: auc_table(s, truth.astype(np.float32), known,
                                   distances=list(distances_m), sensors=list(sensors),
                                   n_boot=n_boot, seed=seed, groups=groups)
                   for name, s in scores.items()},
        'label_noise': label_noise(pseudo_labels, pseudo_mask.astype(bool), truth, known,
                                   distances_m=distances_m),
    }


def thirds(per_distance: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean AUC over the nearest and the farthest third of the distances (acceptance)."""
    aucs = [e['auc'] for e in per_distance]
    k = max(1, len(aucs) // 3)
    return {'nearest_third_auc': float(np.nanmean(aucs[:k])),
            'farthest_third_auc': float(np.nanmean(aucs[-k:]))}


def thirds_auc(scores: np.ndarray, truth: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """`thirds` of the per-distance AUC of scores [N, D, S] against the truth."""
    from ssl_robot.metrics import roc_auc
    known = known.astype(bool)
    return thirds([{'auc': roc_auc(scores[:, j][known[:, j]], truth[:, j][known[:, j]])}
                   for j in range(truth.shape[1])])
