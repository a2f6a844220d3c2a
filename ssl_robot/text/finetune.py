"""Downstream fine-tuning: the whole encoder + a linear head, against training from scratch.

The second downstream test of the NLP pretexts (the first, `ssl_robot.text.evaluate`'s
gloss probe, keeps the encoder frozen): each pre-trained encoder and the same
architecture from random initialisation are trained end to end on the same labelled
texts with 1 %, 10 % and 100 % of the training labels. The task shipped with Debian is
the man page section of a page from its prose (`read_man_pages`: the NAME description and
the start of DESCRIPTION of the manpages and manpages-dev pages of sections 2, 3, 4, 5, 7).

Protocol: split by page (70 % train, 10 % validation, 20 % test, fixed seed); the label
subsets are nested prefixes of one permutation that starts with one page of every class;
head = linear layer on the mean-pooled final hidden states; AdamW (lr 5e-4, weight decay
0.01), batch 32, dropout as in pre-training; validation accuracy every epoch, the test
accuracy of the best validation epoch is reported.
"""
from __future__ import annotations

import copy
import logging
import math
import random
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ssl_robot.text.data import ManPage
from ssl_robot.text.model import mean_pool, TextTransformer
from ssl_robot.text.tasks import pad_sequences
from ssl_robot.text.tokenizer import TextTokenizer

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


def _batches(seqs: list[list[int]], ys: list[int], batch_size: int, pad_id: int, *,
             shuffle: random.Random | None = None):
    order = list(range(len(seqs)))
    if shuffle is not None:
        shuffle.shuffle(order)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_sequences([seqs[i] for i in idx], pad_id)
        yield ids, mask, torch.tensor([ys[i] for i in idx])


def _accuracy(model: nn.Module, seqs: list[list[int]], ys: list[int], pad_id: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for ids, mask, y in _batches(seqs, ys, 128, pad_id):
            correct += int((model(ids, mask).argmax(-1) == y).sum())
    return correct / max(len(ys), 1)


def finetune_one(encoder: TextTransformer, causal: bool, data: dict[str, tuple[list, list]],
                 n_classes: int, *, pad_id: int, epochs: int, min_steps: int = 60,
                 lr: float = 5e-4, batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Fine-tune a copy of `encoder` + a head; test accuracy at the best validation epoch.

    An epoch is at least `min_steps` / `epochs` steps (a 1 % subset would otherwise take
    a handful of steps in all).
    """
    torch.manual_seed(seed)
    model = TextClassifier(copy.deepcopy(encoder), n_classes, causal=causal)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    train_x, train_y = data['train']
    per_epoch = max(math.ceil(len(train_x) / batch_size), math.ceil(min_steps / epochs))
    rng = random.Random(seed)
    best_val, best_state, best_epoch = -1.0, None, 0
    for epoch in range(epochs):
        model.train()
        steps = 0
        while steps < per_epoch:
            for ids, mask, y in _batches(train_x, train_y, batch_size, pad_id, shuffle=rng):
                loss = F.cross_entropy(model(ids, mask), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
                if steps >= per_epoch:
                    break
        val = _accuracy(model, *data['val'], pad_id)
        if val > best_val:
            best_val, best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return {'val_acc': best_val, 'test_acc': _accuracy(model, *data['test'], pad_id),
            'best_epoch': best_epoch, 'steps': epochs * per_epoch}


def finetune_encoders(encoders: dict[str, tuple[TextTransformer, bool]],
                      pages: list[ManPage], n_classes: int, tokenizer: TextTokenizer, *,
                      epochs: int = 6, lr: float = 5e-4, seed: int = 0,
                      fractions: tuple[float, ...] = FINETUNE_FRACTIONS) -> dict[str, Any]:
    """Fine-tune every encoder at every label fraction on the same splits and subsets.

    Args:
        encoders: name -> (encoder, causal); the from-scratch baselines are entries too.
        pages: The labelled texts.
        n_classes: Number of labels.
        tokenizer: The pre-training tokenizer.
        epochs: Epochs per run (validation after each).
        lr: AdamW learning rate.
        seed: Seeds the split, the subsets' order, the heads and the batches.
        fractions: Label fractions.

    Returns:
        Split sizes, the majority-class test accuracy and test accuracy per encoder and
        fraction.
    """
    max_len = next(iter(encoders.values()))[0].cfg.max_len
    labels = [p.label for p in pages]
    train_idx, val_idx, test_idx = split_labelled(labels, seed=seed)
    # [CLS] text [SEP], truncated to the encoders' max_len.
    seqs = [[tokenizer.cls_id, *ids[:max_len - 2], tokenizer.sep_id]
            for ids in tokenizer.encode_batch([p.text for p in pages])]

    def part(idx: list[int]) -> tuple[list, list]:
        return [seqs[i] for i in idx], [labels[i] for i in idx]

    train_counts = [sum(labels[i] == c for i in train_idx) for c in range(n_classes)]
    majority = max(range(n_classes), key=train_counts.__getitem__)
    out: dict[str, Any] = {
        'n_train': len(train_idx), 'n_val': len(val_idx), 'n_test': len(test_idx),
        'classes': n_classes, 'fractions': list(fractions), 'epochs': epochs, 'lr': lr,
        'majority_accuracy': sum(labels[i] == majority for i in test_idx) / len(test_idx),
        'accuracy': {}, 'runs': {}}
    for name, (encoder, causal) in encoders.items():
        accs, runs = [], []
        for frac in fractions:
            n = max(n_classes, round(frac * len(train_idx)))
            data = {'train': part(train_idx[:n]), 'val': part(val_idx), 'test': part(test_idx)}
            res = finetune_one(encoder, causal, data, n_classes, pad_id=tokenizer.pad_id,
                               epochs=epochs, lr=lr, seed=seed)
            accs.append(res['test_acc'])
            runs.append({**res, 'n_labels': n})
        out['accuracy'][name], out['runs'][name] = accs, runs
        log.info('fine-tune %s: %s', name, accs)
    return out
