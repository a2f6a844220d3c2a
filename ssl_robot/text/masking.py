"""Masking and corruption of token ids: pure functions on tensors.

They are shared by the task models (`ssl_robot.text.model`) and the tasks
(`ssl_robot.text.tasks`).

A leaf module (it imports only torch), so the model and the tasks both depend on it and
not on each other.
"""
from __future__ import annotations

import torch


def select_positions(maskable: torch.Tensor, prob: float, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick each maskable position independently with probability `prob` (bool tensor)."""
    draw = torch.rand(maskable.shape, generator=generator, device=maskable.device)
    return (draw < prob) & maskable


def mask_tokens(ids: torch.Tensor, *, maskable: torch.Tensor, mask_id: int,
                random_low: int, random_high: int, prob: float = 0.15,
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking: select `prob` of the maskable tokens.

    Of those 80 % become [MASK], 10 % a random regular token, 10 % stay unchanged.

    Args:
        ids: Token ids [B, T].
        maskable: Bool [B, T], False for special tokens and padding.
        mask_id: Id of [MASK].
        random_low: Smallest id a random replacement may take (first regular token).
        random_high: One past the largest (the vocabulary size).
        prob: Selection probability.
        generator: RNG (None: torch's global one).

    Returns:
        (inputs, labels, selected): the corrupted ids; labels equal to `ids` at selected
        positions and -100 (ignored by cross-entropy) elsewhere; the selection.
    """
    selected = select_positions(maskable, prob, generator=generator)
    action = torch.rand(ids.shape, generator=generator, device=ids.device)
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    random_ids = torch.randint(random_low, random_high, ids.shape, generator=generator,
                               device=ids.device)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    return inputs, labels, selected


def corrupt_with_samples(original: torch.Tensor, selected: torch.Tensor,
                         samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Put generator samples at the selected positions; label what actually changed.

    A sample equal to the original token counts as *not* replaced (as in ELECTRA): the
    discriminator's target is whether the token differs from the original.

    Args:
        original: Ids [B, T].
        selected: Bool [B, T].
        samples: One id per selected position, in row-major order.

    Returns:
        (corrupted ids, replaced) where replaced = corrupted != original.
    """
    corrupted = original.clone()
    corrupted[selected] = samples.to(original.dtype)
    return corrupted, corrupted != original
