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

With a `grid` of recipes (`FINETUNE_GRID`: learning rate, schedule, pooling), every
encoder, the from-scratch ones included, is fine-tuned under each recipe and the one of
the best validation accuracy is kept (`finetune_selected`, `choose_on_validation`); only
that one is run on the test split, so the choice never sees a test label.
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
#: Recipes that `finetune_selected` chooses from on validation, per encoder: the learning
#: rate, 'constant' or 'warmup' (10 % linear warm-up, then the trainer's cosine decay to
#: 10 %: BERT's warm-up and decay, on the shared trainer's schedule) and the pooling.
FINETUNE_GRID = tuple({'lr': lr, 'schedule': schedule, 'pooling': pooling}
                      for lr in (1e-4, 3e-4, 1e-3)
                      for schedule in ('constant', 'warmup')
                      for pooling in ('mean', 'cls'))
#: `FINETUNE_GRID` widened where the pretrained encoders' choices sat, at its edge (1e-3):
#: 3e-3, and three times the steps (180, not 60, at 10 % labels), mean pooling.
FINETUNE_GRID_WIDER = FINETUNE_GRID + tuple(
    {'lr': lr, 'schedule': schedule, 'pooling': 'mean', **({'min_steps': steps} if steps else {})}
    for lr, schedule, steps in ((3e-3, 'constant', 0), (3e-3, 'warmup', 0),
                                (1e-3, 'constant', 180), (1e-3, 'warmup', 180),
                                (3e-3, 'warmup', 180)))
#: Fraction of the steps of the 'warmup' schedule spent warming up.
WARMUP_FRACTION = 0.1


class TextClassifier(nn.Module):
    """An encoder and a linear head on its pooled final hidden states.

    Args:
        encoder: The encoder.
        n_classes: Number of labels.
        causal: Run it with the causal mask.
        pooling: 'mean' over the text, or 'cls': the state of the [CLS] token in front
            (BERT's), for a causal encoder the state of the last token ([SEP], the only
            one that has seen the whole text: GPT's).
    """

    def __init__(self, encoder: TextTransformer, n_classes: int, *, causal: bool,
                 pooling: str = 'mean') -> None:
        super().__init__()
        if pooling not in ('mean', 'cls'):
            raise ValueError(f"pooling {pooling!r}: use 'mean' or 'cls'")
        self.encoder = encoder
        self.causal = causal
        self.pooling = pooling
        self.head = nn.Linear(encoder.cfg.dim, n_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(ids, mask, causal=self.causal)
        if self.pooling == 'mean':
            return self.head(mean_pool(hidden, mask))
        if not self.causal:
            return self.head(hidden[:, 0])
        last = mask.long().sum(1).clamp(min=1) - 1
        return self.head(hidden[torch.arange(len(hidden)), last])


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
        pooling: What the head sees (`TextClassifier`).
    """

    name = 'text_finetune'
    primary_metric = 'accuracy'
    higher_is_better = True

    def __init__(self, encoder: TextTransformer, causal: bool,
                 data: dict[str, tuple[list, list]], n_classes: int, *, pad_id: int,
                 epoch_items: int = 0, layer_decay: float = 1.0,
                 pooling: str = 'mean') -> None:
        self.encoder, self.causal, self.data = encoder, causal, data
        self.n_classes, self.pad_id = n_classes, pad_id
        self.epoch_items, self.layer_decay = epoch_items, layer_decay
        self.pooling = pooling

    def params(self) -> dict[str, Any]:
        """Task parameters saved with the run."""
        return {'causal': self.causal, 'n_classes': self.n_classes,
                'n_train': len(self.data['train'][0]), 'epoch_items': self.epoch_items,
                'layer_decay': self.layer_decay, 'pooling': self.pooling,
                'model': self.encoder.cfg.to_dict()}

    def build_model(self) -> nn.Module:
        return TextClassifier(copy.deepcopy(self.encoder), self.n_classes, causal=self.causal,
                              pooling=self.pooling)

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


def _fit(encoder: TextTransformer, causal: bool, data: dict[str, tuple[list, list]],
         n_classes: int, *, pad_id: int, epochs: int, min_steps: int, lr: float,
         layer_decay: float, schedule: str, pooling: str, batch_size: int, seed: int,
         out_dir: Path | str | None, progress: bool, resume: bool
         ) -> tuple[dict[str, Any], nn.Module]:
    """Train on data['train'], validate on data['val'] (only those two are read).

    Returns:
        The best validation epoch's accuracy, loss, index and the steps run, and the
        model with that epoch's weights.
    """
    if schedule not in ('constant', 'warmup'):
        raise ValueError(f"schedule {schedule!r}: use 'constant' or 'warmup'")
    train_x = data['train'][0]
    per_epoch = max(math.ceil(len(train_x) / batch_size), math.ceil(min_steps / epochs))
    task = SectionTask(encoder, causal, {k: data[k] for k in ('train', 'val')}, n_classes,
                       pad_id=pad_id, layer_decay=layer_decay, pooling=pooling,
                       epoch_items=per_epoch * batch_size
                       if per_epoch > math.ceil(len(train_x) / batch_size) else 0)
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix='finetune_'))
        # 'constant': no warm-up and no clipping, the recipe of the loop this replaced.
        # 'warmup': a linear warm-up over the first 10 % of the steps, then the trainer's
        # cosine decay (to 10 % of the peak) over the rest.
        warmup = (max(1, round(WARMUP_FRACTION * per_epoch * epochs))
                  if schedule == 'warmup' else 0)
        config = TrainConfig(out_dir=str(out_dir), epochs=epochs, batch_size=batch_size,
                             lr=lr, weight_decay=0.01, warmup_steps=warmup,
                             schedule='constant' if schedule == 'constant' else 'cosine',
                             grad_clip=0.0, seed=seed, device='auto', progress=progress,
                             task=task.name, task_params=task.params())
        result = Trainer(task, config).fit(resume=resume and out_dir is not None)
    accs = [r['accuracy'] for r in result.history]
    best_epoch = accs.index(max(accs))
    return ({'val_acc': accs[best_epoch], 'val_loss': result.history[best_epoch]['val_loss'],
             'best_epoch': best_epoch, 'steps': result.history[-1]['step']}, result.model)


def finetune_one(encoder: TextTransformer, causal: bool, data: dict[str, tuple[list, list]],
                 n_classes: int, *, pad_id: int, epochs: int, min_steps: int = 60,
                 lr: float = 5e-4, layer_decay: float = 1.0, schedule: str = 'constant',
                 pooling: str = 'mean', batch_size: int = 32,
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
        schedule: 'constant', or 'warmup': 10 % linear warm-up, then cosine decay.
        pooling: What the head sees, 'mean' or 'cls' (`TextClassifier`).
        batch_size: Texts per step.
        seed: Seeds the head, the batches and dropout.
        out_dir: Run directory of the trainer (None: a temporary one).
        progress: Show the trainer's progress.
        resume: Continue the run in `out_dir` (a finished one is only evaluated).
    """
    record, model = _fit(encoder, causal, data, n_classes, pad_id=pad_id, epochs=epochs,
                         min_steps=min_steps, lr=lr, layer_decay=layer_decay,
                         schedule=schedule, pooling=pooling, batch_size=batch_size,
                         seed=seed, out_dir=out_dir, progress=progress, resume=resume)
    return {**record, 'test_acc': _accuracy(model, *data['test'], pad_id)}


def choose_on_validation(candidates: Sequence[dict[str, Any]]) -> int:
    """Index of the candidate of the highest 'val_acc' (ties: lower 'val_loss', then first).

    Reads nothing but those two keys (a candidate's test figures, if any, play no part).
    """
    if not candidates:
        raise ValueError('choose_on_validation: no candidates')
    return min(range(len(candidates)),
               key=lambda i: (-candidates[i]['val_acc'], candidates[i]['val_loss'], i))


def recipe_name(recipe: dict[str, Any]) -> str:
    """A short folder-safe name of a recipe: 'lr0.0003_warmup_cls', 'lr0.001_mean_min_steps180'.

    The learning rate first, then the values in the recipe's order: strings as they are,
    numbers after their key.
    """
    return '_'.join(f'{k}{v:g}' if not isinstance(v, str) else v
                    for k, v in sorted(recipe.items(), key=lambda kv: kv[0] != 'lr'))


def finetune_selected(encoder: TextTransformer, causal: bool,
                      data: dict[str, tuple[list, list]], n_classes: int, *, pad_id: int,
                      grid: Sequence[dict[str, Any]], epochs: int, seed: int = 0,
                      out_dir: Path | str | None = None, progress: bool = False,
                      resume: bool = False, **fixed: Any) -> dict[str, Any]:
    """Fine-tune under every recipe of `grid`, keep the best on validation, test only it.

    Every recipe trains on data['train'] and is scored on data['val'] alone
    (`choose_on_validation`); data['test'] is read once, by the chosen model.

    Args:
        encoder, causal, data, n_classes, pad_id, epochs, seed, progress, resume: As
            `finetune_one`.
        grid: Recipes, each a dict of `finetune_one` keywords (lr, schedule, pooling,
            layer_decay).
        out_dir: Parent of one trainer run directory per recipe (None: temporary ones).
        **fixed: More `finetune_one` keywords shared by every recipe.

    Returns:
        The chosen recipe and its validation and test accuracy, and every recipe's
        validation figures under 'candidates'.
    """
    candidates: list[dict[str, Any]] = []
    best_model = None
    for recipe in grid:
        run_dir = None if out_dir is None else Path(out_dir) / recipe_name(recipe)
        record, model = _fit(encoder, causal, {k: data[k] for k in ('train', 'val')},
                             n_classes, pad_id=pad_id, epochs=epochs, seed=seed,
                             out_dir=run_dir, progress=progress, resume=resume,
                             **{'min_steps': 60, 'lr': 5e-4, 'layer_decay': 1.0,
                                'schedule': 'constant', 'pooling': 'mean',
                                'batch_size': 32, **fixed, **recipe})
        candidates.append({**recipe, **record})
        if choose_on_validation(candidates) == len(candidates) - 1:
            best_model = model  # keep one model, not one per recipe
    index = choose_on_validation(candidates)
    chosen = candidates[index]
    return {**chosen, 'recipe': dict(grid[index]),
            'test_acc': _accuracy(best_model, *data['test'], pad_id),
            'candidates': candidates}


def finetune_encoders(encoders: dict[str, tuple[TextTransformer, bool]],
                      pages: list[ManPage], n_classes: int, tokenizer: TextTokenizer, *,
                      epochs: int = 6, lr: float = 5e-4, layer_decay: float = 1.0,
                      grid: Sequence[dict[str, Any]] | None = None,
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
        grid: Recipes (e.g. `FINETUNE_GRID`) to choose from on validation, per encoder,
            seed and fraction (`finetune_selected`; its keys override `lr` and
            `layer_decay`); None: the one recipe of `lr` and `layer_decay`.
        seeds: One split, subset order and training seed each; accuracy is the mean
            over them.
        fractions: Label fractions.
        out_dir: Where the trainer's runs go (one folder per seed, encoder and
            fraction; None: temporary folders).
        progress: Show the trainer's progress.
        resume: Continue the runs in `out_dir` (finished ones are only evaluated).

    Returns:
        Split sizes, the majority-class test accuracy, test accuracy per encoder and
        fraction (mean over seeds, with its sample standard deviation and every seed's);
        with a grid, every run's chosen recipe and candidates under 'runs'.
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
        'layer_decay': layer_decay, 'grid': None if grid is None else list(grid),
        'seeds': list(seeds), 'majority_accuracy_seeds': [],
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
                if grid is None:
                    res = finetune_one(encoder, causal, data, n_classes,
                                       pad_id=tokenizer.pad_id, epochs=epochs, lr=lr,
                                       layer_decay=layer_decay, seed=seed, out_dir=run_dir,
                                       progress=progress, resume=resume)
                else:
                    res = finetune_selected(encoder, causal, data, n_classes,
                                            pad_id=tokenizer.pad_id, grid=grid,
                                            epochs=epochs, seed=seed, out_dir=run_dir,
                                            progress=progress, resume=resume, lr=lr,
                                            layer_decay=layer_decay)
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
