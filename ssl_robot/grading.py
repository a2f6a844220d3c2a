"""The robot grades its own perception while it drives (no rclpy).

The inference node records what the deployed model predicted for each camera frame t
(obstacle probabilities per distance and sensor); the labeller's self-labels of that
frame arrive later, once the robot has driven to the spot. `PerceptionGrader` matches
them by the frame's stamp and keeps, per model, a rolling window of (prediction, label)
pairs: its live ROC-AUC, overall and per distance, with the number of labelled cells
behind it. A model is WARNed about when its AUC falls below a floor over enough samples
(after a model swap, in a new environment). Predictions and labels of a frame always
go to the model that made the prediction, so a swap never mixes two models' grades.
"""
from __future__ import annotations

import bisect
from collections import deque, OrderedDict
from dataclasses import dataclass

import numpy as np

from ssl_robot.diagnostics import OK, WARN
from ssl_robot.metrics import roc_auc


@dataclass(frozen=True)
class Grade:
    """A model's live grade over its window."""

    model_id: str
    auc: float
    samples: int
    frames: int
    per_distance: tuple[tuple[float, int], ...]  # (AUC, labelled cells) per distance
    level: int
    message: str

    def as_dict(self) -> dict[str, object]:
        return {'model_id': self.model_id, 'auc': None if np.isnan(self.auc) else self.auc,
                'samples': self.samples, 'frames': self.frames,
                'auc_per_distance': [None if np.isnan(a) else a for a, _ in self.per_distance],
                'samples_per_distance': [n for _, n in self.per_distance],
                'level': self.level, 'message': self.message}


class PerceptionGrader:
    """Scores predictions for frame t against the labels of t that arrive later.

    Args:
        window_frames: Labelled frames per model kept in its rolling window.
        floor_auc: WARN below this AUC ...
        min_samples: ... once the window holds at least this many labelled cells.
        match_tolerance_ns: A label matches the prediction of the nearest frame stamp
            within this.
        keep_predictions: Predictions kept while their labels are awaited.
    """

    def __init__(self, *, window_frames: int = 1000, floor_auc: float = 0.6,
                 min_samples: int = 50, match_tolerance_ns: int = 5_000_000,
                 keep_predictions: int = 5000) -> None:
        self.window_frames = int(window_frames)
        self.floor_auc = float(floor_auc)
        self.min_samples = int(min_samples)
        self.tolerance_ns = int(match_tolerance_ns)
        self.keep = int(keep_predictions)
        self._predictions: OrderedDict[int, tuple[str, np.ndarray]] = OrderedDict()
        self._stamps: list[int] = []  # sorted keys of _predictions
        self._windows: dict[str, deque] = {}
        self.labels_matched = 0
        self.labels_unmatched = 0

    def predicted(self, stamp_ns: int, model_id: str, probs: np.ndarray) -> None:
        """Record a model's prediction [D, S] for the frame stamped `stamp_ns`."""
        stamp_ns = int(stamp_ns)
        if stamp_ns not in self._predictions:
            bisect.insort(self._stamps, stamp_ns)
        self._predictions[stamp_ns] = (model_id, np.asarray(probs, np.float64))
        while len(self._predictions) > self.keep:
            old, _ = self._predictions.popitem(last=False)
            self._stamps.pop(bisect.bisect_left(self._stamps, old))

    def _match(self, stamp_ns: int) -> int | None:
        i = bisect.bisect_left(self._stamps, stamp_ns)
        near = [self._stamps[j] for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        best = min(near, key=lambda s: abs(s - stamp_ns), default=None)
        if best is None or abs(best - stamp_ns) > self.tolerance_ns:
            return None
        return best

    def labelled(self, stamp_ns: int, labels: np.ndarray, mask: np.ndarray) -> str | None:
        """Score the labels [D, S] (mask: known cells) of a frame; the model graded, if any."""
        stamp = self._match(int(stamp_ns))
        if stamp is None:
            self.labels_unmatched += 1
            return None
        model_id, probs = self._predictions[stamp]
        labels, mask = np.asarray(labels, np.float64), np.asarray(mask, bool)
        if probs.shape != labels.shape:
            self.labels_unmatched += 1
            return None
        self.labels_matched += 1
        window = self._windows.setdefault(model_id, deque(maxlen=self.window_frames))
        window.append((probs, labels, mask))
        return model_id

    def grade(self, model_id: str) -> Grade:
        """The live grade of `model_id` over its window."""
        window = self._windows.get(model_id, ())
        if not window:
            return Grade(model_id, float('nan'), 0, 0, (), OK, 'no labelled frames yet')
        probs = np.stack([w[0] for w in window])
        labels = np.stack([w[1] for w in window])
        mask = np.stack([w[2] for w in window])
        samples = int(mask.sum())
        auc = roc_auc(probs[mask], labels[mask]) if samples else float('nan')
        per_distance = tuple(
            (roc_auc(probs[:, d][mask[:, d]], labels[:, d][mask[:, d]])
             if mask[:, d].any() else float('nan'), int(mask[:, d].sum()))
            for d in range(probs.shape[1]))
        if np.isnan(auc):
            level, message = OK, f'{samples} labelled cells, one class only: no AUC yet'
        elif samples < self.min_samples:
            level, message = OK, f'AUC {auc:.3f} over {samples} labelled cells (too few to judge)'
        elif auc < self.floor_auc:
            level, message = WARN, (f'AUC {auc:.3f} over {samples} labelled cells, below the '
                                    f'floor {self.floor_auc:g}')
        else:
            level, message = OK, f'AUC {auc:.3f} over {samples} labelled cells'
        return Grade(model_id, auc, samples, len(window), per_distance, level, message)
