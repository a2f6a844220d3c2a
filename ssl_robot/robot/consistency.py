"""State consistency of obstacle predictions along the robot's path (Nava et al., RA-L 2021).

What frame t predicts at distance d_a must agree with what a later frame t' predicts at
d_a - d_k when the robot, between t and t', advanced by d_k (found through odometry:
t' is the time the labeller matched for frame t at distance d_k, its provenance
`prov_t_future_ns`). The constraint needs no sensor reading, so it also binds outputs
that have no label. Pairs are made on the uniform distance grid the labels use.
"""
from __future__ import annotations

import numpy as np
import torch


def consistency_partners(stamps_ns: np.ndarray, bag_ids: np.ndarray,
                         t_future_ns: np.ndarray, allowed: np.ndarray, *,
                         tolerance_ns: int) -> np.ndarray:
    """Frame index [N, D] that the robot took at t'(t, d_k), or -1.

    Args:
        stamps_ns: Frame stamps [N].
        bag_ids: Bag of each frame [N].
        t_future_ns: t' of each frame and distance [N, D] (-1: no match).
        allowed: Frames a partner may be (e.g. the training split) [N] bool.
        tolerance_ns: Largest |stamp of the partner - t'|.

    Returns:
        partners [N, D] int64: the allowed frame of the same bag nearest in stamp to t'
        within the tolerance, -1 where there is none (and at d_0 = 0: no shift).
    """
    stamps = np.asarray(stamps_ns, np.int64)
    bags = np.asarray(bag_ids)
    tf = np.asarray(t_future_ns, np.int64)
    out = np.full(tf.shape, -1, np.int64)
    for bag in np.unique(bags):
        cand = np.flatnonzero((bags == bag) & np.asarray(allowed, bool))
        if not len(cand):
            continue
        order = cand[np.argsort(stamps[cand], kind='stable')]
        st = stamps[order]
        rows = np.flatnonzero(bags == bag)
        q = tf[rows]
        pos = np.searchsorted(st, q)
        lo, hi = np.clip(pos - 1, 0, len(st) - 1), np.clip(pos, 0, len(st) - 1)
        nearest = np.where(np.abs(q - st[lo]) <= np.abs(st[hi] - q), lo, hi)
        ok = (q >= 0) & (np.abs(st[nearest] - q) <= tolerance_ns)
        out[rows] = np.where(ok, order[nearest], -1)
    out[:, 0] = -1
    return out


def state_consistency_loss(logits_t: torch.Tensor, logits_later: torch.Tensor,
                           shift: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of obstacle probabilities along the path.

    Args:
        logits_t: Outputs of the frames at t, [B, D, S].
        logits_later: Outputs of their partner frames at t', [B, D, S].
        shift: Distance steps k the robot advanced between t and t' [B] (>= 1).

    Returns:
        mean over pairs and over (a >= k, s) of (p_t[a, s] - p_later[a - k, s])^2; a zero
        that still backpropagates without pairs.
    """
    b, d, s = logits_t.shape
    if b == 0:
        return logits_t.sum() * 0.0
    a = torch.arange(d, device=logits_t.device)[None, :]
    src = a - shift[:, None]
    valid = src >= 0  # [B, D]
    p_t = torch.sigmoid(logits_t)
    p_later = torch.sigmoid(logits_later)
    gathered = torch.gather(p_later, 1, src.clamp(min=0)[..., None].expand(b, d, s))
    diff = (p_t - gathered) ** 2 * valid[..., None]
    return diff.sum() / (valid.sum() * s).clamp(min=1)


def complete_labels_beyond_obstacles(labels: np.ndarray, mask: np.ndarray, *,
                                     distances_m: list[float], sensor_index: int,
                                     margin_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Obstacle labels the robot's own path implies where it never stood (label completion).

    The robot cannot stand beyond an obstacle in its way, so the labeller never finds the
    poses behind one and leaves them unknown: the pseudo-labels hold almost only the
    obstacles the robot brushed past (a few % positive where the truth has a quarter).
    What the straight-ahead sensor felt at P(t) advanced by d_j still says what lies
    further: an obstacle within the obstacle range of that sensor at d_j is within it at
    every d > d_j too (closer still, or in the way), and the robot's front meets it
    before d_j + `margin_m` (the obstacle range plus the sensor's offset ahead of the
    front), so beyond that every sensor's label is 'obstacle' (the way is blocked).

    Only unknown labels are filled; known ones are kept as the labeller made them.

    Args:
        labels: Pseudo-labels [N, D, S] (1 = obstacle).
        mask: Where they are known [N, D, S].
        distances_m: The D distances ahead (increasing).
        sensor_index: The sensor that looks straight ahead from within the robot's width.
        margin_m: Beyond d_j + margin_m the way is blocked.

    Returns:
        (labels, mask) with the completed entries added (new arrays).
    """
    labels = np.array(labels, np.float32)
    mask = np.array(mask, bool)
    dist = np.asarray(distances_m, np.float64)
    felt = mask[:, :, sensor_index] & (labels[:, :, sensor_index] > 0.5)  # [N, D]
    rows = np.flatnonzero(felt.any(axis=1))
    first = dist[np.argmax(felt[rows], axis=1)]  # nearest distance that felt an obstacle
    add = np.zeros(mask.shape, bool)
    add[rows, :, sensor_index] = dist[None, :] > first[:, None] + 1e-9
    add[rows] |= (dist[None, :] > first[:, None] + margin_m + 1e-9)[:, :, None]
    add &= ~mask
    labels[add] = 1.0
    mask[add] = True
    return labels, mask
