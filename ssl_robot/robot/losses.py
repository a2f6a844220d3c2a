"""Losses of the robot tasks: masked over unknown labels, and time-contrastive (TCN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce_with_logits(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
                           pos_weight: float | None = None,
                           weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the known labels only.

    With `weight` (broadcastable to `logits`, >= 0), a weighted mean: label i counts
    weight_i / sum of the known labels' weights.

    Unknown labels (mask False) contribute nothing: neither loss nor gradient. With no
    known label in the batch the loss is a zero that still backpropagates.

    Args:
        logits: Any shape.
        target: Same shape, 0/1 (unknown entries may hold anything finite).
        mask: Same shape, bool, True where the label is known.
        pos_weight: Weight of the positive class (obstacles are rare), or None.
        weight: Per-label weights, or None (all 1).

    Returns:
        Scalar loss.
    """
    mask = mask.bool()
    target = torch.where(mask, target, torch.zeros_like(target))
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype,
                                                      device=logits.device)
    per = F.binary_cross_entropy_with_logits(logits, target, reduction='none', pos_weight=pw)
    if weight is not None:
        w = torch.where(mask, weight.expand_as(per), torch.zeros_like(per))
        return (per * w).sum() / w.sum().clamp(min=1e-6)
    known = mask.sum()
    return (per * mask).sum() / known.clamp(min=1)


def masked_smooth_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
                     beta: float = 1.0) -> torch.Tensor:
    """Mean smooth-L1 (Huber / beta) over the known entries only.

    Args:
        pred: Any shape.
        target: Same shape (unknown entries may hold NaN).
        mask: Same shape, bool, True where the label is known.
        beta: Transition point between the quadratic and linear parts.

    Returns:
        Scalar loss.
    """
    mask = mask.bool()
    target = torch.where(mask, target, pred.detach())
    per = F.smooth_l1_loss(pred, target, reduction='none', beta=beta)
    return (per * mask).sum() / mask.sum().clamp(min=1)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Mean cross-entropy over the known entries only (class logits on the last axis).

    Args:
        logits: [..., K] class logits.
        target: [...] class ids (unknown entries may hold anything, e.g. -1).
        mask: [...] bool, True where the class is known.

    Returns:
        Scalar loss; a zero that still backpropagates when nothing is known.
    """
    mask = mask.bool()
    target = torch.where(mask, target.long(), torch.zeros_like(target, dtype=torch.long))
    per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                          reduction='none').view(mask.shape)
    return (per * mask).sum() / mask.sum().clamp(min=1)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *,
                 margin: float = 0.2) -> torch.Tensor:
    """TCN triplet loss: mean of max(0, |a - p|^2 - |a - n|^2 + margin).

    Args:
        anchor: Embeddings [N, E] (L2-normalised).
        positive: Embeddings of frames close in time to the anchors [N, E].
        negative: Embeddings of frames far in time from the anchors [N, E].
        margin: Margin between positive and negative squared distances.

    Returns:
        Scalar loss.
    """
    d_pos = (anchor - positive).pow(2).sum(dim=1)
    d_neg = (anchor - negative).pow(2).sum(dim=1)
    return F.relu(d_pos - d_neg + margin).mean()


def npairs_loss(anchor: torch.Tensor, positive: torch.Tensor, *,
                negative_mask: torch.Tensor | None = None,
                temperature: float = 0.1) -> torch.Tensor:
    """N-pairs loss: each anchor must pick its own positive among the batch's positives.

    Cross-entropy over similarities a_i . p_j / temperature with target j = i. Pairs that
    are not valid negatives (e.g. frames of the same bag within the negative radius)
    are excluded via `negative_mask`.

    Args:
        anchor: [N, E] L2-normalised.
        positive: [N, E] L2-normalised.
        negative_mask: bool [N, N], True where p_j is a valid negative for a_i (the
            diagonal is ignored). None: every other pair is a negative.
        temperature: Softmax temperature.

    Returns:
        Scalar loss.
    """
    logits = anchor @ positive.t() / temperature
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    if negative_mask is not None:
        keep = negative_mask.bool() | eye
        logits = logits.masked_fill(~keep, float('-inf'))
    return F.cross_entropy(logits, torch.arange(n, device=logits.device))
