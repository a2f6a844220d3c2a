"""Fully supervised training of the same encoder: the upper reference of the evaluation."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from ssl_robot.vision.augment import ViewAugment
from ssl_robot.vision.pretext.base import accuracy, PretextTask
from ssl_robot.vision.pretext.rotation import Classifier

#: Light augmentation for supervised training (small crops and mirrors).
SUPERVISED_VIEWS = ViewAugment(crop_scale=(0.8, 1.0), flip_p=0.5, brightness=0.0,
                               contrast=0.0, saturation=0.0)


class LabelledImages(Dataset):
    """(uint8 image [C, H, W], label) pairs, optionally repeated `repeats` times per epoch.

    Repeating keeps an epoch (and so the validation interval) a sensible number of steps
    when only 1 % of the labels are used.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, repeats: int = 1) -> None:
        self.images, self.labels, self.repeats = images, labels, max(1, int(repeats))

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index %= len(self.images)
        return self.images[index], self.labels[index]


class SupervisedTask(PretextTask):
    """Encoder + linear classifier trained on labelled images (cross-entropy).

    Args:
        train: (images uint8 [N, C, S, S], labels [N]).
        val: Validation pair (selects the best epoch by accuracy).
        params: Encoder parameters (widths, mean, std, n_classes, repeats).
    """

    name = 'supervised'
    primary_metric = 'val_acc'
    higher_is_better = True
    defaults: dict[str, Any] = {'n_classes': 10, 'repeats': 1}

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor] | None = None,
                 val: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(train[0] if train is not None else None, params=params)
        self.train_pair, self.val_pair = train, val

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        train = LabelledImages(*self.train_pair, repeats=int(self.params['repeats']))
        return train, (LabelledImages(*self.val_pair) if self.val_pair is not None else None)

    def build_model(self) -> nn.Module:
        return Classifier(self.build_encoder(), int(self.params['n_classes']), hidden=0)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        images, labels = batch
        x = self.pixels(images)
        if model.training:
            x = SUPERVISED_VIEWS(x)
        logits = model(self.normalize(x))
        return F.cross_entropy(logits, labels), {'acc': accuracy(logits, labels)}

    def evaluate(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        correct, total, loss_sum = 0, 0, 0.0
        with torch.no_grad():
            for images, labels in loader:
                logits = model(self.normalize(self.pixels(images)))
                loss_sum += float(F.cross_entropy(logits, labels, reduction='sum'))
                correct += int((logits.argmax(1) == labels).sum())
                total += len(labels)
        return {'val_loss': loss_sum / max(total, 1), 'val_acc': correct / max(total, 1)}
