"""Losses of the vision pretexts (classification pretexts use plain cross-entropy)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy over two views.

    For 2N embeddings, each one's positive is its other view and its negatives the
    other 2N - 2; the loss is the mean over all 2N anchors, so it is symmetric in
    (z1, z2).

    Args:
        z1: [N, D] projections of view 1.
        z2: [N, D] projections of view 2 (row i is the same image as z1's row i).
        temperature: Softmax temperature.

    Returns:
        Scalar loss.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float('-inf'))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, *,
                   temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's InfoNCE: each query against its key (positive) and the queue (negatives).

    Args:
        q: [N, D] L2-normalised queries.
        k: [N, D] L2-normalised keys (no gradient).
        queue: [K, D] L2-normalised negatives.
        temperature: Softmax temperature.

    Returns:
        (scalar loss, logits [N, 1 + K] whose column 0 is the positive).
    """
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.t()
    logits = torch.cat([positive, negatives], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets), logits


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
               outside_weight: float = 0.0) -> torch.Tensor:
    """Mean squared error inside `mask` (plus `outside_weight` times the error outside).

    Args:
        pred: [N, C, H, W].
        target: [N, C, H, W].
        mask: Bool or float [N, 1, H, W], 1 where the loss counts fully.
        outside_weight: Weight of the pixels outside the mask (context-encoder style).
    """
    mask = mask.to(pred.dtype).expand_as(pred)
    err = (pred - target) ** 2
    inside = (err * mask).sum() / mask.sum().clamp(min=1.0)
    if not outside_weight:
        return inside
    outside = (err * (1 - mask)).sum() / (1 - mask).sum().clamp(min=1.0)
    return inside + outside_weight * outside
