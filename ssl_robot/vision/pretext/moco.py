"""MoCo v2 (He et al. 2020; Chen et al. 2020): momentum contrast with a queue.

A query encoder learns to match keys from a slowly moving momentum encoder against a
queue of past keys.

The key encoder follows the query encoder by an exponential moving average, updated in
`MoCoTask.after_step` (after each optimiser step). Keys of the newest batch enter the
queue first-in first-out. On one device the key encoder sees the batch in shuffled
chunks ("shuffle BN" emulated): batch-norm statistics then differ between a query and
its key, so they cannot be matched through the statistics alone.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.train.trainer import unwrap
from ssl_robot.vision.heads import ProjectionHead
from ssl_robot.vision.losses import info_nce_queue
from ssl_robot.vision.pretext.base import accuracy, PretextTask
from ssl_robot.vision.pretext.simclr import view_augment


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """Target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for p_online, p_target in zip(online.parameters(), target.parameters()):
        p_target.mul_(momentum).add_(p_online.detach(), alpha=1.0 - momentum)


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Write `keys` into the ring buffer `queue` at `ptr` (wrapping), advancing `ptr`.

    The oldest entries are overwritten first (FIFO).

    Args:
        queue: [K, D] buffer, updated in place.
        ptr: 0-d long tensor, index of the oldest entry; updated in place.
        keys: [B, D] newest keys (B <= K).
    """
    size = queue.shape[0]
    keys = keys[-size:]
    idx = (int(ptr) + torch.arange(keys.shape[0], device=queue.device)) % size
    queue[idx] = keys.to(queue.dtype)
    ptr.fill_((int(ptr) + keys.shape[0]) % size)


class MoCoNet(nn.Module):
    """Query encoder + projector, their momentum copies, and the key queue.

    Args:
        encoder: The query encoder (trained by the optimiser).
        hidden: Projector hidden width.
        out_dim: Projection size.
        queue_size: Number of negative keys.
        shuffle_chunks: Chunks the key batch is split into after shuffling.
    """

    def __init__(self, encoder: nn.Module, *, hidden: int = 256, out_dim: int = 64,
                 queue_size: int = 2048, shuffle_chunks: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.out_dim, hidden, out_dim)
        self.key_encoder = copy.deepcopy(encoder)
        self.key_projector = copy.deepcopy(self.projector)
        for p in [*self.key_encoder.parameters(), *self.key_projector.parameters()]:
            p.requires_grad_(False)
        self.shuffle_chunks = shuffle_chunks
        self.register_buffer('queue', F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    def query_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.encoder, self.projector])

    def key_modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.key_encoder, self.key_projector])

    def forward(self, x_query: torch.Tensor, x_key: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.normalize(self.projector(self.encoder.embed(x_query)), dim=1)
        with torch.no_grad():
            perm = torch.randperm(x_key.shape[0], device=x_key.device)
            chunks = [self.key_projector(self.key_encoder.embed(c))
                      for c in x_key[perm].chunk(self.shuffle_chunks)]
            k = torch.empty_like(q)
            k[perm] = F.normalize(torch.cat(chunks), dim=1)
        return q, k


class MoCoTask(PretextTask):
    """MoCo v2: InfoNCE against a momentum encoder's keys and a FIFO queue."""

    name = 'moco'
    #: jitter 0.8 (was 0.4), as SimCLR's: with 10 epochs (was 5) linear / k-NN at 10 %
    #: labels 77.5 / 73.1 against 75.0 / 70.3 (jitter 0.8 alone 75.8 / 70.9; momentum
    #: 0.95 72.5 / 66.8; seed 0, benchmarks/results/pretext_ablation.json).
    defaults: dict[str, Any] = {'temperature': 0.2, 'momentum': 0.99, 'queue_size': 2048,
                                'proj_dim': 64, 'hidden': 256, 'crop_scale': [0.3, 1.0],
                                'jitter': 0.8, 'noise_std': 0.05}

    def build_model(self) -> nn.Module:
        return MoCoNet(self.build_encoder(), hidden=int(self.params['hidden']),
                       out_dim=int(self.params['proj_dim']),
                       queue_size=int(self.params['queue_size']))

    def optimizer_groups(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for p in model.query_modules().parameters()]

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.pixels(batch)
        views = view_augment(self.params)
        q, k = model(self.normalize(views(x)), self.normalize(views(x)))
        net = unwrap(model)
        loss, logits = info_nce_queue(q, k, net.queue.clone(),
                                      temperature=float(self.params['temperature']))
        if net.training:  # validation batches never enter the queue
            enqueue(net.queue, net.queue_ptr, k)
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return loss, {'acc': accuracy(logits, labels)}

    def after_step(self, model: nn.Module, step: int) -> None:
        net = unwrap(model)
        momentum_update(net.query_modules(), net.key_modules(), float(self.params['momentum']))
