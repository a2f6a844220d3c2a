"""The collision task on the shared trainer: image -> probability of a collision ahead.

Labels are the crash labels of `ssl_robot.labelling.collision` (after Gandhi et al.,
"Learning to Fly by Crashing", IROS 2017): 1 for frames up to the horizon before a
collision the robot drove into, 0 for frames of collision-free forward driving, the
rest unknown and masked out of the loss. Augmentation: left-right flip (a collision
ahead stays one) and colour jitter. Primary metric: ROC-AUC over the known validation
labels. `CollisionTask.truth_auc` scores a model against the simulator's geometric
truth instead (`collision_truth`), which is what the benchmark reports.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_robot.robot.losses import masked_bce_with_logits
from ssl_robot.robot.tasks import FrameItems, predict_probabilities, probability_metrics, RobotTask
from ssl_robot.train import TrainError


class CollisionTask(RobotTask):
    """Frames -> collision-ahead logit [N]; masked BCE on the known crash labels."""

    name = 'collision'
    kind = 'collision'
    primary_metric = 'val_auc'
    higher_is_better = True
    defaults = {'pos_weight': 0.0}

    def _prepare(self) -> None:
        super()._prepare()
        meta = self.data.meta
        if not meta.get('collision'):
            raise TrainError(f'{self.params["dataset"]}: no crash labels (a dataset labelled '
                             'before collisions existed; label its bags again)')
        crash = meta.get('params', {}).get('collision', {})
        self.params.setdefault('horizon_s', float(crash.get('horizon_s', 1.0)))

    def model_spec(self) -> dict[str, Any]:
        spec = super().model_spec()
        spec['horizon_s'] = float(self.params.get('horizon_s', spec.get('horizon_s', 1.0)))
        return spec

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = self.split()
        known = np.asarray(self.data.collision_mask, bool)
        if not known[train].any():
            raise TrainError(f'{self.params["dataset"]}: no known crash label in the training '
                             'bags (record with collisions: ssl-robot sim --crash-rate R)')
        fields = ('collision', 'collision_mask')
        return FrameItems(self.data, train, fields), FrameItems(self.data, val, fields)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        labels, mask = batch['collision'].float(), batch['collision_mask']
        flip = self.flip_mask(model, labels.shape[0], labels.device)
        logits = model(self.images(model, batch['frames'], flip))
        pw = float(self.params['pos_weight']) or None
        loss = masked_bce_with_logits(logits, labels, mask, pos_weight=pw)
        return loss, {'known': float(mask.float().mean())}

    def predict(self, model: torch.nn.Module, loader: Any) -> tuple[np.ndarray, ...]:
        """(probabilities, labels, masks) over a loader, as numpy [N]."""
        return predict_probabilities(self, model, loader, 'collision', 'collision_mask')

    def evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        probs, labels, masks = self.predict(model, loader)
        return {**probability_metrics(probs, labels, masks), 'val_known': float(masks.sum())}
