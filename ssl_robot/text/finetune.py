"""Downstream fine-tuning: the whole encoder + a linear head, against training from scratch.

The second downstream test of the NLP pretexts (the first, `ssl_robot.text.evaluate`'s
gloss probe, keeps the encoder frozen): each pre-trained encoder and the same
architecture from random initialisation are trained end to end on the same labelled
texts with 1 %, 10 % and 100 % of the training labels. The task shipped with Debian is
the man page section of a page from its prose (`read_man_pages`: the NAME description and
the start of DESCRIPTION of the manpages and manpages-dev pages of sections 2, 3, 4, 5, 7).

Protocol: split by page (70 % train, 10 % validation, 20 % test, one split per seed);
the label subsets are nested prefixes of one permutation that starts with one page of
every class; head = linear layer on the mean-pooled final hidden states; trained on the
package's shared trainer (`ssl_robot.train.Trainer`: seeding, checkpoints, progress and
the best validation epoch as for every other task) with AdamW at a constant learning
rate and dropout as in pre-training (a layer-wise decay of the rate towards the
embeddings, ELECTRA's fine-tuning recipe, is `layer_decay`; off by default: 0.8 scored
lower at 10 % labels, `benchmarks/eval_text_plateau.py --experiment finetune`);
validation accuracy every epoch, the test accuracy of the best validation epoch is
reported; mean and standard deviation over seeds.
"""
from __future__ import annotations

from collections.abc import Sequence
import contextlib
import copy
import logging
import math
from pathlib import Path
import random
import tempfile
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from ssl_robot.text.data import ManPage
from ssl_robot.text.model import mean_pool, TextTransformer
from ssl_robot.text.tasks import pad_sequences
from ssl_robot.text.tokenizer import TextTokenizer
from ssl_robot.train import Task, TrainConfig, Trainer

log = logging.getLogger('ssl_robot.text')

#: Label fractions of the fine-tuning.
FINETUNE_FRACTIONS = (0.01, 0.1, 1.0)


class TextClassifier(nn.Module):
    """An encoder and a linear head on its mean-pooled final hidden states."""

    def __init__(self, encoder: TextTransformer, n_classes: int, *, causal: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.causal = causal
        self.head = nn.Linear(encoder.cfg.dim, n_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(mean_pool(self.encoder(ids, mask, causal=self.causal), mask))


def split_labelled(labels: list[int], *, seed: int = 0,
                   fractions: tuple[float, float] = (0.7, 0.1)
                   ) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) indices; train starts with one item of every class present.

    The label subsets of `finetune` are prefixes of train, so even the smallest holds
    every class.
    """
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    n_train = int(len(order) * fractions[0])
    n_val = int(len(order) * fractions[1])
    train, val, test = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    first: dict[int, int] = {}
    for i in train:
        first.setdefault(labels[i], i)
    heads = list(first.values())
    taken = set(heads)
    return heads + [i for i in train if i not in taken], val, test


class _Examples(Dataset):
    """(token ids, label) pairs, repeated to `length` items (an epoch of a small subset)."""

    def __init__(self, seqs: list[list[int]], ys: list[int], length: int = 0) -> None:
        self.seqs, self.ys = seqs, ys
        self.length = max(length, len(seqs))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        index %= len(self.seqs)
        return self.seqs[index], self.ys[index]


class SectionTask(Task):
    """Fine-tuning a copy of an encoder + a linear head on labelled texts, for the trainer.

    Args:
        encoder: The encoder to start from (copied; the original is left untouched).
        causal: Run it with the causal mask (the AR encoder).
        data: 'train' and 'val' (token ids, labels).
        n_classes: Number of labels.
        pad_id: Padding id.
        epoch_items: Items per epoch (the training examples repeated up to it).
        layer_decay: Learning rate of a block = the one above it times this (the head
            and the final LayerNorm at the full rate; the embeddings below the first
            block); 1: one rate for all.
    """

    name = 'text_finetune'
    primary_metric = 'accuracy'
    higher_is_better = True

    def __init__(self, encoder: TextTransformer, causal: bool,
                 data: dict[str, tuple[list, list]], n_classes: int, *, pad_id: int,
                 epoch_items: int = 0, layer_decay: float = 1.0) -> None:
        self.encoder, self.causal, self.data = encoder, causal, data
        self.n_classes, self.pad_id = n_classes, pad_id
        self.epoch_items, self.layer_decay = epoch_items, layer_decay

    def params(self) -> dict[str, Any]:
        """Task parameters saved with the run."""
        return {'causal': self.causal, 'n_classes': self.n_classes,
                'n_train': len(self.data['train'][0]), 'epoch_items': self.epoch_items,
                'layer_decay': self.layer_decay, 'model': self.encoder.cfg.to_dict()}

    def build_model(self) -> nn.Module:
        return TextClassifier(copy.deepcopy(self.encoder), self.n_classes, causal=self.causal)

    def datasets(self) -> tuple[Dataset, Dataset]:
        return (_Examples(*self.data['train'], length=self.epoch_items),
                _Examples(*self.data['val']))

    def collate(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        ids, mask = pad_sequences([i[0] for i in items], self.pad_id)
        return {'ids': ids, 'mask': mask, 'label': torch.tensor([i[1] for i in items])}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        return F.cross_entropy(model(batch['ids'], batch['mask']), batch['label']), {}

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for batch in loader:
                logits = model(batch['ids'], batch['mask'])
                n = len(batch['label'])
                total += float(F.cross_entropy(logits, batch['label'])) * n
                correct += int((logits.argmax(-1) == batch['label']).sum())
                count += n
        return {'val_loss': total / max(count, 1), 'accuracy': correct / max(count, 1)}

    def optimizer_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Parameter groups with the trainer's per-group `lr_scale` (layer-wise decay)."""
        encoder = model.encoder
        depth = len(encoder.blocks)
        level: dict[int, int] = {}  # id(parameter) -> blocks between it and the head
        for i, block in enumerate(encoder.blocks):
            for param in block.parameters():
                level[id(param)] = depth - i
        below = depth + 1  # embeddings and the relative-position tables
        groups: dict[int, list[nn.Parameter]] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            here = level.get(id(param), 0 if name.startswith(('head', 'encoder.ln_f'))
                             else below)
            groups.setdefault(here, []).append(param)
        return [{'params': params, 'lr_scale': self.layer_decay ** here}
                for here, params in sorted(groups.items())]


def _batches(seqs: list[list[int]], ys: list[int], batch_size: int, pad_id: int):
    for start in range(0, len(seqs), batch_size):
        ids, mask = pad_sequences(seqs[start:start + batch_size], pad_id)
        yield ids, mask, torch.tensor(ys[start:start + batch_size])


def _accuracy(model: nn.Module, seqs: list[list[int]], ys: list[int], pad_id: int) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for ids, mask, y in _batches(seqs, ys, 128, pad_id):
            correct += int((model(ids.to(device), mask.to(device)).argmax(-1).cpu()
                            == y).sum())
    return correct / max(len(ys), 1)


def finetune_one(encoder: TextTransformer, causal: bool, data: dict[str, tuple[list, list]],
                 n_classes: int, *, pad_id: int, epochs: int, min_steps: int = 60,
                 lr: float = 5e-4, layer_decay: float = 1.0, batch_size: int = 32,
                 seed: int = 0, out_dir: Path | str | None = None,
                 progress: bool = False, resume: bool = False) -> dict[str, float]:
    """Fine-tune a copy of `encoder` + a head; test accuracy at the best validation epoch.

    An epoch is at least `min_steps` / `epochs` steps (a 1 % subset would otherwise take
    a handful of steps in all).

    Args:
        encoder: The encoder (copied).
        causal: Run it with the causal mask.
        data: 'train', 'val' and 'test' (token ids, labels).
        n_classes: Number of labels.
        pad_id: Padding id.
        epochs: Epochs (validation after each).
        min_steps: Fewest optimiser steps in all.
        lr: Peak (head) learning rate.
        layer_decay: Layer-wise decay of the learning rate (`SectionTask`).
        batch_size: Texts per step.
        seed: Seeds the head, the batches and dropout.
        out_dir: Run directory of the trainer (None: a temporary one).
        progress: Show the trainer's progress.
        resume: Continue the run in `out_dir` (a finished one is only evaluated).
    """
    train_x = data['train'][0]
    per_epoch = max(math.ceil(len(train_x) / batch_size), math.ceil(min_steps / epochs))
    task = SectionTask(encoder, causal, {k: data[k] for k in ('train', 'val')}, n_classes,
                       pad_id=pad_id, layer_decay=layer_decay,
                       epoch_items=per_epoch * batch_size
                       if per_epoch > math.ceil(len(train_x) / batch_size) else 0)
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix='finetune_'))
        # Constant rate, no warm-up and no clipping: the recipe of the loop this replaced.
        config = TrainConfig(out_dir=str(out_dir), epochs=epochs, batch_size=batch_size,
                             lr=lr, weight_decay=0.01, warmup_steps=0, schedule='constant',
                             grad_clip=0.0, seed=seed, device='auto', progress=progress,
                             task=task.name, task_params=task.params())
        result = Trainer(task, config).fit(resume=resume and out_dir is not None)
    accs = [r['accuracy'] for r in result.history]
    best_epoch = accs.index(max(accs))
    return {'val_acc': accs[best_epoch],
            'test_acc': _accuracy(result.model, *data['test'], pad_id),
            'best_epoch': best_epoch, 'steps': result.history[-1]['step']}


def finetune_encoders(encoders: dict[str, tuple[TextTransformer, bool]],
                      pages: list[ManPage], n_classes: int, tokenizer: TextTokenizer, *,
                      epochs: int = 6, lr: float = 5e-4, layer_decay: float = 1.0,
                      seeds: Sequence[int] = (0,),
                      fractions: tuple[float, ...] = FINETUNE_FRACTIONS,
                      out_dir: Path | str | None = None, progress: bool = False,
                      resume: bool = False) -> dict[str, Any]:
    """Fine-tune every encoder at every label fraction on the same splits and subsets.

    Args:
        encoders: name -> (encoder, causal); the from-scratch baselines are entries too.
        pages: The labelled texts.
        n_classes: Number of labels.
        tokenizer: The pre-training tokenizer.
        epochs: Epochs per run (validation after each).
        lr: AdamW learning rate (of the head; `layer_decay` below it).
        layer_decay: Layer-wise decay of the learning rate (1: off).
        seeds: One split, subset order and training seed each; accuracy is the mean
            over them.
        fractions: Label fractions.
        out_dir: Where the trainer's runs go (one folder per seed, encoder and
            fraction; None: temporary folders).
        progress: Show the trainer's progress.
        resume: Continue the runs in `out_dir` (finished ones are only evaluated).

    Returns:
        Split sizes, the majority-class test accuracy, test accuracy per encoder and
        fraction (mean over seeds, with its sample standard deviation and every seed's).
    """
    max_len = next(iter(encoders.values()))[0].cfg.max_len
    labels = [p.label for p in pages]
    # [CLS] text [SEP], truncated to the encoders' max_len.
    seqs = [[tokenizer.cls_id, *ids[:max_len - 2], tokenizer.sep_id]
            for ids in tokenizer.encode_batch([p.text for p in pages])]

    def part(idx: list[int]) -> tuple[list, list]:
        return [seqs[i] for i in idx], [labels[i] for i in idx]

    out: dict[str, Any] = {
        'classes': n_classes, 'fractions': list(fractions), 'epochs': epochs, 'lr': lr,
        'layer_decay': layer_decay, 'seeds': list(seeds), 'majority_accuracy_seeds': [],
        'accuracy_seeds': {name: [] for name in encoders}, 'runs': {}}
    for seed in seeds:
        train_idx, val_idx, test_idx = split_labelled(labels, seed=seed)
        train_counts = [sum(labels[i] == c for i in train_idx) for c in range(n_classes)]
        majority = max(range(n_classes), key=train_counts.__getitem__)
        out['majority_accuracy_seeds'].append(
            sum(labels[i] == majority for i in test_idx) / len(test_idx))
        out.update({'n_train': len(train_idx), 'n_val': len(val_idx),
                    'n_test': len(test_idx)})
        for name, (encoder, causal) in encoders.items():
            accs = []
            for frac in fractions:
                n = max(n_classes, round(frac * len(train_idx)))
                data = {'train': part(train_idx[:n]), 'val': part(val_idx),
                        'test': part(test_idx)}
                run_dir = (None if out_dir is None
                           else Path(out_dir) / f'seed{seed}' / f'{name}_{frac:g}')
                res = finetune_one(encoder, causal, data, n_classes,
                                   pad_id=tokenizer.pad_id, epochs=epochs, lr=lr,
                                   layer_decay=layer_decay, seed=seed, out_dir=run_dir,
                                   progress=progress, resume=resume)
                accs.append(res['test_acc'])
                out['runs'].setdefault(name, []).append({**res, 'n_labels': n, 'seed': seed,
                                                         'fraction': frac})
            out['accuracy_seeds'][name].append(accs)
            log.info('fine-tune %s, seed %d: %s', name, seed, accs)
    out['majority_accuracy'] = float(np.mean(out['majority_accuracy_seeds']))
    out['accuracy'] = {name: np.mean(v, axis=0).tolist()
                       for name, v in out['accuracy_seeds'].items()}
    out['accuracy_sd'] = {name: (np.std(v, axis=0, ddof=1) if len(v) > 1
                                 else np.zeros(len(fractions))).tolist()
                          for name, v in out['accuracy_seeds'].items()}
    return out
