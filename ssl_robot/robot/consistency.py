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
