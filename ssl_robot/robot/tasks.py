"""Robot tasks on the shared trainer: obstacle (proximity), terrain, time-contrastive.

Each task reads a labelled dataset (`ssl_robot.dataset.LabelledDataset`), splits it by
bag (never by random frames), and feeds its frames to the trainer, resized to the model's
input by the inference core's own resize (`ssl_robot.area_resize`): once for the whole
run (`RobotTask.resized_frames`), else as they are fetched (`FrameItems`); normalisation
and augmentation happen on the batch in torch, drawing from torch's global generator
that the trainer seeds per epoch (so a resumed run repeats an uninterrupted one). A
task's `params` are complete after construction (defaults, dataset shapes, label
statistics) and are saved in the run's config, so `model_spec` rebuilds the model
without the dataset.
"""
from __future__ import annotations

from collections.abc import Sequence
import logging
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_robot.area_resize import ResizedFrames
from ssl_robot.augment import color_jitter, hflip, random_blur, random_grayscale, random_hue
from ssl_robot.metrics import (
    cross_view_retrieval_accuracy,
    roc_auc,
    spearman,
    temporal_retrieval_accuracy,
)
from ssl_robot.robot.heads import READOUT_GRID, READOUTS
from ssl_robot.robot.losses import (
    masked_bce_with_logits,
    masked_cross_entropy,
    masked_smooth_l1,
    npairs_loss,
    triplet_loss,
)
from ssl_robot.robot.nets import (
    build_robot_model,
    default_spec,
    OBSTACLE_INPUT_HW,
    OBSTACLE_READOUT,
    RobotNet,
)
from ssl_robot.robot.transforms import mirror_permutation, normalize, resize, unit_frames
from ssl_robot.train import GatheredBatch, Task, TrainError

log = logging.getLogger('ssl_robot.robot.tasks')

#: Parameters shared by every robot task, with their defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    'dataset': '',
    'val_fraction': 0.25,
    'split_by': 'bag',
    'split_seed': 0,
    'input_hw': [48, 64],
    'width': 16,
    'flip_p': 0.5,
    'jitter': 0.2,
    'init_from': '',
    'resize_cache_mib': 2048,
}


def open_dataset(path: str) -> Any:
    """Open a labelled dataset, turning its error into a TrainError for the CLI."""
    from ssl_robot.dataset import DatasetError, LabelledDataset
    if not path:
        raise TrainError('no dataset given (task parameter "dataset")')
    try:
        return LabelledDataset.open(path)
    except DatasetError as exc:
        raise TrainError(str(exc)) from exc


class FrameItems(Dataset):
    """Frames of the given indices with the named label arrays, as torch tensors.

    `arrays` (name -> array over every dataset row) stand in for the dataset's own
    arrays of those names (e.g. the simulator's truth in place of the pseudo-labels).
    With `input_hw` (the model's input size) a frame of another size comes area-resized
    to it, as float [3, h, w] in 0..1, what `RobotTask.images` would make of it: a
    640x480 frame is not carried whole to the step. `resized` (the dataset's frames
    resized once, `RobotTask.resized_frames`) gives those pixels by a gather; without it
    the resize runs in the data loading (in the DataLoader's workers, when it has them).
    """

    def __init__(self, data: Any, indices: np.ndarray, fields: tuple[str, ...],
                 arrays: dict[str, np.ndarray] | None = None, *, with_row: bool = False,
                 input_hw: Sequence[int] | None = None,
                 resized: ResizedFrames | None = None) -> None:
        self.data, self.indices, self.fields = data, np.asarray(indices, np.int64), fields
        self.arrays = arrays or {}
        self.with_row = with_row  # also the item's dataset row ('row')
        self.input_hw = tuple(int(v) for v in input_hw) if input_hw else None
        self.resized = resized if 'frames' not in self.arrays else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: value[0] for name, value in self.__getitems__([i]).items()}

    def __getitems__(self, items: list[int]) -> GatheredBatch:
        """The batch of items `items`, each field gathered at once (the DataLoader calls this).

        The same tensors as the items stacked by torch's default collate, but one gather
        per field from plain ndarray views of the memory-mapped arrays: indexing an
        `np.memmap` row by row cost ~10 us of bookkeeping per row and field, and
        splitting a batch into items to stack them again ~1 ms a batch
        (benchmarks/bench_trainer.py --data). Resized frames come as NCHW in the
        channels-last layout of `unit_frames`.
        """
        rows = self.indices[np.asarray(items, np.int64)]
        names = ('frames', *self.fields)
        sources = [np.asarray(self.arrays[name] if name in self.arrays
                              else getattr(self.data, name)) for name in names]
        batch = GatheredBatch({name: torch.from_numpy(np.take(source, rows, axis=0))
                               for name, source in zip(names[1:], sources[1:])})
        if self.input_hw is None or sources[0].shape[1:3] == self.input_hw:
            batch['frames'] = torch.from_numpy(np.take(sources[0], rows, axis=0))
        elif self.resized is not None and self.resized.resize.out_hw == self.input_hw:
            batch['frames'] = torch.from_numpy(self.resized.unit(rows)).permute(0, 3, 1, 2)
        else:
            batch['frames'] = unit_frames(sources[0], self.input_hw, rows)
        if self.with_row:
            batch['row'] = torch.from_numpy(rows.copy())
        return batch


class RobotTask(Task):
    """Common part of the robot tasks: parameters, dataset split, model, preprocessing.

    Args:
        params: Task parameters; missing ones take `COMMON_DEFAULTS` and the subclass's
            `defaults`.
    """

    kind = ''
    defaults: dict[str, Any] = {}

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = {**COMMON_DEFAULTS, **self.defaults, **params}
        self._data = None
        self._split: tuple[np.ndarray, np.ndarray] | None = None
        self._resized: tuple[Any, ResizedFrames | None] | None = None  # (made for, frames)
        if self.params['dataset']:
            self._prepare()

    # ------------------------------------------------------------------ data
    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = open_dataset(self.params['dataset'])
        return self._data

    def use_data(self, data: Any) -> None:
        """Read the rows from `data` (e.g. the same dataset opened in memory, not mapped)."""
        self._data = data
        self._resized = None

    def resized_frames(self) -> ResizedFrames | None:
        """The dataset's frames resized to the model's input once, for every epoch.

        None when the frames are of the input's size already, or when their sums would
        take more than `resize_cache_mib` (then each batch is resized as it is fetched).
        Made in the trainer's process before its DataLoader workers start, which share
        it (fork).
        """
        hw = tuple(self.model_spec()['input_hw'])
        made_for, resized = self._resized or (None, None)
        if made_for == (id(self.data), hw):
            return resized
        frames = self.data.frames
        nbytes = ResizedFrames.nbytes(frames.shape, hw)
        mib = self.params['resize_cache_mib']
        if isinstance(mib, bool) or not isinstance(mib, (int, float)) or not mib >= 0:
            raise TrainError(f'resize_cache_mib must be a number of MiB >= 0, not {mib!r}')
        budget = float(mib) * 2**20
        resized = None
        if nbytes and nbytes > budget:
            log.info('frames %s -> %s resized at each fetch: kept resized they would take '
                     '%.0f MiB, over resize_cache_mib %g', list(frames.shape[1:3]), list(hw),
                     nbytes / 2**20, self.params['resize_cache_mib'])
        elif nbytes:
            start = time.monotonic()
            last = [start]

            def progress(done: int, total: int) -> None:
                if time.monotonic() - last[0] > 10.0:
                    last[0] = time.monotonic()
                    log.info('resizing frames once for training: %d of %d', done, total)
            resized = ResizedFrames.build(frames, hw, progress)
            log.info('%d frames %s -> %s resized once for training (%.0f MiB, %.1f s)',
                     len(frames), list(frames.shape[1:3]), list(hw), nbytes / 2**20,
                     time.monotonic() - start)
        self._resized = ((id(self.data), hw), resized)
        return resized

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train_idx, val_idx) of the dataset, by bag (time blocks with one bag)."""
        if self._split is None:
            self._split = self.data.split(float(self.params['val_fraction']),
                                          by=self.params['split_by'],
                                          seed=int(self.params['split_seed']))
        return self._split

    def _prepare(self) -> None:
        """Fill dataset-derived parameters (label shapes, statistics)."""
        meta = self.data.meta
        self.params.setdefault('distances_m', list(meta['distances_m']))
        self.params.setdefault('sensors', list(meta['sensors']))
        self.params.setdefault('grid', list(meta['terrain_grid']))
        self.params.setdefault('image_hw', list(meta['image_hw']))

    # ------------------------------------------------------------------ model
    def model_spec(self) -> dict[str, Any]:
        """The model spec (kind, input size, normalisation, label shapes)."""
        p = self.params
        spec = default_spec(self.kind, input_hw=list(p['input_hw']), width=int(p['width']))
        for key in ('distances_m', 'sensors', 'grid', 'embed_dim', 'target_mean',
                    'target_std', 'descriptor_names', 'descriptor_mean', 'descriptor_std',
                    'descriptor_layout', 'type_names', 'cost_formula', 'readout',
                    'readout_grid'):
            if key in p and key in spec:
                spec[key] = p[key]
        return spec

    def build_model(self) -> RobotNet:
        model = build_robot_model(self.model_spec())
        if self.params.get('init_from'):
            load_encoder(model, self.params['init_from'])
        return model

    # ------------------------------------------------------------------ batches
    def images(self, model: torch.nn.Module, frames: torch.Tensor,
               flip: torch.Tensor | None) -> torch.Tensor:
        """uint8 NHWC frames -> normalised model input; augmented in training mode.

        Frames that `FrameItems` resized already (float NCHW in 0..1) skip the resize.
        """
        spec = self.model_spec()
        if frames.dtype == torch.uint8:
            x = unit_frames(frames, spec['input_hw'])
        else:  # in the channels-last layout of `unit_frames` (the faster convolutions
            # on the CPU)
            x = resize(frames.contiguous(memory_format=torch.channels_last), spec['input_hw'])
        if model.training:
            if flip is not None and flip.any():
                x = torch.where(flip.view(-1, 1, 1, 1), hflip(x), x)
            jitter = float(self.params['jitter'])
            if jitter:
                x = color_jitter(x, brightness=jitter, contrast=jitter, saturation=jitter)
            # Photometric augmentation beyond the jitter (obstacle task parameters).
            x = random_hue(x, max_turn=float(self.params.get('hue', 0.0)))
            x = random_grayscale(x, p=float(self.params.get('grayscale_p', 0.0)))
            x = random_blur(x, p=float(self.params.get('blur_p', 0.0)))
        return normalize(x, spec['mean'], spec['std'])

    def flip_mask(self, model: torch.nn.Module, n: int, device: torch.device
                  ) -> torch.Tensor | None:
        """Which samples of the batch to mirror (training mode only)."""
        p = float(self.params['flip_p'])
        if not model.training or p <= 0:
            return None
        return (torch.rand(n) < p).to(device)


def load_encoder(model: RobotNet, checkpoint: str) -> None:
    """Initialise `model`'s encoder from any robot checkpoint (e.g. a TCN run's best.pt).

    Raises:
        TrainError: When the checkpoint is missing or holds no matching encoder.
    """
    from ssl_robot.train import load_checkpoint
    state = load_checkpoint(checkpoint)['model']
    enc = {k[len('encoder.'):]: v for k, v in state.items() if k.startswith('encoder.')}
    try:
        model.encoder.load_state_dict(enc)
    except RuntimeError as exc:
        raise TrainError(f'{checkpoint}: encoder does not match this model: {exc}') from exc
    log.info('encoder initialised from %s', checkpoint)


class ObstacleTask(RobotTask):
    """Frames -> obstacle probability per distance x sensor; masked BCE on known labels.

    Augmentation: left-right flip that also mirrors the sensor order (left <-> right),
    colour jitter, with `hue` > 0 a hue turn of up to `hue` x 180 degrees per frame
    (`ssl_robot.augment.random_hue`), and with `grayscale_p` / `blur_p` > 0 grey and
    blurred frames at those rates. Primary metric: ROC-AUC over every known validation label.

    The model reads a 96x128 frame by default (`input_hw`; the simulator's camera size,
    other cameras are area-resized to it) and its head reads the feature map through a
    3x4 grid of cells (`readout: grid`), so that where in the image an obstacle is can
    tell its distance and side.

    With `labels: truth` (simulator datasets only) it trains and validates on the
    simulator's geometric truth instead of the pseudo-labels: the upper bound of what
    the same network learns from perfect labels of the same frames (a frame without a
    true pose keeps its pseudo-labels, `truth_labels`).

    With `label_weighting` each label's loss is weighted by how much it can be trusted
    (`label_weights`): the pose error of its match at t' (in units of the labeller's
    tolerances) and the odometry drift since t (time t' - t, in units of
    `weight_drift_s`).

    With `state_consistency` > 0 (its weight in the loss), each training frame that has
    a partner frame taken where the robot later stood (`ssl_robot.robot.consistency`)
    adds the state-consistency loss of the pair (Nava et al., RA-L 2021), labelled or not.

    With `label_completion` (default 'auto': on where the dataset has the straight-ahead
    sensor `completion_sensor`) the unknown labels behind an obstacle that this sensor
    felt become 'obstacle' (`completed_labels`): the robot cannot stand there, so the
    labeller never labels those poses itself.
    """

    name = 'obstacle'
    kind = 'obstacle'
    primary_metric = 'val_auc'
    higher_is_better = True
    defaults = {'pos_weight': 0.0, 'labels': 'pseudo', 'label_weighting': False,
                'weight_drift_s': 5.0, 'state_consistency': 0.0, 'consistency_tolerance_s': 0.1,
                'label_completion': 'auto', 'completion_sensor': 'center',
                'completion_margin_m': 0.0, 'grayscale_p': 0.0, 'blur_p': 0.0, 'hue': 0.0,
                # The camera's full 96x128 frame read through a 3x4 grid of the feature
                # map (benchmarks/eval_truth.py: +0.070 AUC vs truth over 48x64 with the
                # global mean, three seeds, every distance gaining).
                'input_hw': list(OBSTACLE_INPUT_HW), 'readout': OBSTACLE_READOUT,
                'readout_grid': list(READOUT_GRID)}

    def _prepare(self) -> None:
        super()._prepare()
        if self.params['readout'] not in READOUTS:
            raise TrainError(f'readout must be one of {", ".join(READOUTS)}, not '
                             f'{self.params["readout"]!r}')
        grid = self.params['readout_grid']
        if not (isinstance(grid, (list, tuple)) and len(grid) == 2
                and all(isinstance(v, int) and v >= 1 for v in grid)):
            raise TrainError(f'readout_grid must be [rows, columns] of positive integers, '
                             f'not {grid!r}')
        prox = self.data.meta.get('params', {}).get('proximity', {})
        self.params.setdefault('label_tolerances', [
            float(prox.get('tol_x_m', 0.02)), float(prox.get('tol_y_m', 0.02)),
            float(prox.get('tol_yaw_rad', 0.15))])
        self.mirror = mirror_permutation(self.params['sensors']) \
            if float(self.params['flip_p']) > 0 else list(range(len(self.params['sensors'])))

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = self.split()
        fields = ('proximity', 'proximity_mask')
        if self.params['label_weighting']:
            fields += ('prov_pose_err', 'prov_t_future_ns', 'stamps_ns')
        arrays = None
        if self.params['labels'] == 'truth':
            arrays = self.truth_labels()
        elif self.params['labels'] != 'pseudo':
            raise TrainError(f'labels must be pseudo or truth, not {self.params["labels"]!r}')
        elif self.completion_on():
            arrays = self.completed_labels()
        consistency = float(self.params['state_consistency']) > 0
        if consistency:
            from ssl_robot.robot.consistency import consistency_partners
            allowed = np.zeros(len(self.data), bool)
            allowed[train] = True
            self.partners = consistency_partners(
                np.asarray(self.data.stamps_ns), np.asarray(self.data.bag_ids),
                np.asarray(self.data.prov_t_future_ns), allowed,
                tolerance_ns=int(float(self.params['consistency_tolerance_s']) * 1e9))
        hw, resized = self.model_spec()['input_hw'], self.resized_frames()
        return (FrameItems(self.data, train, fields, arrays, with_row=consistency, input_hw=hw,
                           resized=resized),
                FrameItems(self.data, val, fields, arrays, input_hw=hw, resized=resized))

    def completion_on(self) -> bool:
        """Whether `label_completion` applies: true, or 'auto' with the sensor it needs."""
        value = self.params['label_completion']
        if value == 'auto':
            return str(self.params['completion_sensor']) in self.params['sensors']
        if isinstance(value, str):
            if value.lower() not in ('true', 'false'):
                raise TrainError(f'label_completion must be auto, true or false, not {value!r}')
            return value.lower() == 'true'
        return bool(value)

    def completed_labels(self) -> dict[str, np.ndarray]:
        """The pseudo-labels with what the path implies behind obstacles (`label_completion`).

        See `ssl_robot.robot.consistency.complete_labels_beyond_obstacles`; the margin
        (`completion_margin_m`, 0: the dataset's obstacle range + 1 cm) is how far beyond
        the distance where the straight-ahead sensor (`completion_sensor`) felt an obstacle
        the robot's front would meet it.

        Raises:
            TrainError: When the dataset has no such sensor.
        """
        from ssl_robot.robot.consistency import complete_labels_beyond_obstacles
        sensor = str(self.params['completion_sensor'])
        if sensor not in self.params['sensors']:
            raise TrainError(f'label_completion: no sensor {sensor!r} in '
                             f'{self.params["sensors"]}')
        margin = float(self.params['completion_margin_m']) or 0.01 + float(
            self.data.meta.get('params', {}).get('proximity', {}).get('obstacle_range_m', 0.12))
        known = np.asarray(self.data.proximity_mask)
        labels, mask = complete_labels_beyond_obstacles(
            np.asarray(self.data.proximity), known,
            distances_m=list(self.params['distances_m']),
            sensor_index=list(self.params['sensors']).index(sensor), margin_m=margin)
        felt = int(known.astype(bool).sum())
        log.info('label_completion: %d labels added to %d (margin %.3f m)',
                 int(mask.sum()) - felt, felt, margin)
        return {'proximity': labels, 'proximity_mask': mask}

    def truth_labels(self) -> dict[str, np.ndarray]:
        """The simulator's truth in place of the pseudo-labels, for `labels: truth`.

        Every frame with a true pose gets its truth at every distance and sensor. A frame
        without one (its bag has no `/ground_truth/odom`, e.g. a bag that the recorder
        node wrote over DDS) keeps its pseudo-labels: the upper bound trains on the same
        frames as the model it bounds. Dropping them instead dropped whole worlds (the
        demo's only training world of a family), and the "bound" scored below the model.

        Raises:
            TrainError: When no frame of the dataset has a true pose.
        """
        from ssl_robot.labelling.sim_truth import dataset_proximity_truth
        truth, known = dataset_proximity_truth(self.data)
        if not known.any():
            raise TrainError(f'{self.params["dataset"]}: labels=truth needs simulator '
                             'bags (world and true poses) behind the dataset')
        untrue = ~known.any(axis=(1, 2))[:, None, None]
        if untrue.any():
            log.info('labels=truth: %d of %d frames have no true pose and keep their '
                     'pseudo-labels', int(untrue.sum()), len(untrue))
        return {'proximity': np.where(untrue, np.asarray(self.data.proximity, np.float32),
                                      truth.astype(np.float32)),
                'proximity_mask': np.where(untrue, np.asarray(self.data.proximity_mask, bool),
                                           known)}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        labels, mask = batch['proximity'], batch['proximity_mask']
        flip = self.flip_mask(model, labels.shape[0], labels.device)
        if flip is not None:
            # Mirroring the image swaps what the left and right sensors see.
            perm = torch.as_tensor(self.mirror, device=labels.device)
            sel = flip.view(-1, 1, 1)
            labels = torch.where(sel, labels[..., perm], labels)
            mask = torch.where(sel, mask[..., perm], mask)
        logits = model(self.images(model, batch['frames'], flip))
        pw = float(self.params['pos_weight']) or None
        weight = self.label_weights(batch) if 'prov_pose_err' in batch else None
        loss = masked_bce_with_logits(logits, labels, mask, pos_weight=pw, weight=weight)
        extra = {'known': float(mask.float().mean())}
        if 'row' in batch and model.training:
            consistency = self.consistency_loss(model, batch['row'], logits, flip)
            loss = loss + float(self.params['state_consistency']) * consistency
            extra['consistency'] = float(consistency.detach())
        return loss, extra

    def consistency_loss(self, model: torch.nn.Module, rows: torch.Tensor,
                         logits: torch.Tensor, flip: torch.Tensor | None) -> torch.Tensor:
        """State-consistency loss of the batch's frames with one random partner each."""
        from ssl_robot.robot.consistency import state_consistency_loss
        partners = torch.from_numpy(self.partners[rows.cpu().numpy()])  # [B, D]
        has = partners >= 0
        # One random distance step k among the frame's partners (torch's seeded generator).
        pick = torch.where(has, torch.rand(has.shape), torch.full(has.shape, -1.0)).argmax(1)
        sel = has.any(1)
        if not sel.any():
            return logits.sum() * 0.0
        k = pick[sel]
        later = partners[sel, k].numpy()
        frames = torch.from_numpy(np.stack([np.asarray(self.data.frames[j]) for j in later]))
        sub_flip = None if flip is None else flip[sel.to(flip.device)]
        later_logits = model(self.images(model, frames.to(logits.device), sub_flip))
        return state_consistency_loss(logits[sel.to(logits.device)], later_logits,
                                      k.to(logits.device))

    def label_weights(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Trust in each label [B, D, 1]: pose error of the match and drift since t.

        w = exp(-0.5 * ((dx / tol_x)^2 + (dy / tol_y)^2 + (dyaw / tol_yaw)^2))
            / (1 + ((t' - t) / weight_drift_s)^2)
        (a match at the centre of the tolerance box soon after t weighs 1).
        """
        tol = torch.tensor([float(v) for v in self.params['label_tolerances']])
        # Unknown labels have no match (NaN error, t' = -1): their weight is never used.
        err = torch.nan_to_num(batch['prov_pose_err'].float(), nan=0.0) / tol.to(
            batch['prov_pose_err'].device)
        dt_s = (batch['prov_t_future_ns'] - batch['stamps_ns'][:, None]).clamp(min=0).float()
        dt_s = dt_s / 1e9 / float(self.params['weight_drift_s'])
        w = torch.exp(-0.5 * (err ** 2).sum(-1)) / (1.0 + dt_s ** 2)
        return w.unsqueeze(-1)

    def predict(self, model: torch.nn.Module, loader: Any) -> tuple[np.ndarray, ...]:
        """(probabilities, labels, masks) over a loader, as numpy [N, D, S]."""
        return predict_probabilities(self, model, loader, 'proximity', 'proximity_mask')

    def evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        return probability_metrics(*self.predict(model, loader))


def predict_probabilities(task: RobotTask, model: torch.nn.Module, loader: Any, label: str,
                          mask: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigmoid of the model's logits, the batches' `label`, their `mask`) over a loader."""
    probs, labels, masks = [], [], []
    with torch.no_grad():
        for batch in loader:
            logits = model(task.images(model, batch['frames'], None))
            probs.append(torch.sigmoid(logits).cpu().numpy())
            labels.append(batch[label].cpu().numpy())
            masks.append(batch[mask].cpu().numpy())
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(masks)


def probability_metrics(probs: np.ndarray, labels: np.ndarray, masks: np.ndarray
                        ) -> dict[str, float]:
    """ROC-AUC and masked BCE of probabilities over the known labels (validation)."""
    known = masks.astype(bool)
    auc = roc_auc(probs[known], labels[known])
    with torch.no_grad():
        loss = float(masked_bce_with_logits(
            torch.logit(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6)),
            torch.from_numpy(labels.astype(np.float32)), torch.from_numpy(known)))
    # AUC is undefined with one class only; report chance so early stopping works.
    return {'val_auc': 0.5 if np.isnan(auc) else auc, 'val_loss': loss}


class TerrainTask(RobotTask):
    """Frames -> terrain per grid patch: scalar cost, descriptor and type (masked losses).

    The scalar cost (the dataset's `terrain` signal): masked smooth-L1 on the signal
    standardised by its mean and std over the known training labels, which the model
    stores (the exported model outputs the signal in label units).

    On a dataset with terrain descriptors (format 2) and `descriptor` on, the model also
    regresses each descriptor entry known in training (`descriptor_names`; masked
    smooth-L1 on the entry standardised by its training mean and std, weight
    `descriptor_weight`), and with the dataset's fitted terrain types and `types` on, it
    classifies each patch's type (masked cross-entropy on the types' ids, weight
    `type_weight`). Datasets without them (and runs made before) train the scalar only.

    Flip mirrors the grid (and negates the descriptor's left-right signed entries).
    Primary metric: Spearman rank correlation of the cost over known validation patches;
    with the extra outputs also `val_descriptor_r2` (mean over entries of 1 - SSE / SST,
    standardised) and `val_type_accuracy` / `val_type_balanced_accuracy`.
    """

    name = 'terrain'
    kind = 'terrain'
    primary_metric = 'val_spearman'
    higher_is_better = True
    defaults = {'beta': 1.0, 'descriptor': True, 'types': True, 'descriptor_weight': 1.0,
                'type_weight': 1.0}
    #: Descriptor entries whose sign flips when the image is mirrored (right - left).
    MIRRORED_SIGN = ('wheel_yaw_rate', 'effort_diff')
    #: Training patches an entry must be known in to be predicted.
    MIN_KNOWN = 10

    def _prepare(self) -> None:
        super()._prepare()
        # A run's saved parameters hold the label statistics; one saved before the
        # descriptor outputs existed has no 'descriptor_names' and stays scalar-only.
        fresh = 'target_mean' not in self.params
        if fresh:
            train, _ = self.split()
            values = np.asarray(self.data.terrain[train])[np.asarray(
                self.data.terrain_mask[train], bool)]
            mean = float(values.mean()) if values.size else 0.0
            std = float(values.std()) if values.size > 1 else 1.0
            self.params['target_mean'], self.params['target_std'] = mean, max(std, 1e-6)
            if 'descriptor_names' not in self.params:
                self.params.update(self._descriptor_params(train))
            if 'type_names' not in self.params:
                from ssl_robot.labelling.terrain_types import load_dataset_types
                types = load_dataset_types(self.data.path) if self.params['types'] else None
                self.params['type_names'] = [] if types is None else [
                    f'type_{k}' for k in range(types.n_types)]
        self.params.setdefault('cost_formula', cost_formula(self.data.meta))

    @property
    def _sign(self) -> np.ndarray:
        """+1, or -1 for the descriptor entries whose sign a mirror flips."""
        return np.array([-1.0 if n in self.MIRRORED_SIGN else 1.0
                         for n in self.params.get('descriptor_names', [])], np.float32)

    def _descriptor_params(self, train: np.ndarray) -> dict[str, Any]:
        """Entries known in training, their mean and std, and the dataset's layout."""
        layout = dict(self.data.meta.get('terrain_descriptor') or {})
        none = {'descriptor_names': [], 'descriptor_columns': [], 'descriptor_mean': [],
                'descriptor_std': [], 'descriptor_layout': {}}
        names = list(layout.get('names', []))
        if not (self.params['descriptor'] and names):
            return none
        dt = len(names)
        count, total, squares = np.zeros(dt), np.zeros(dt), np.zeros(dt)
        for start in range(0, len(train), 512):  # chunks: [N, GH, GW, DT] may be large
            rows = np.sort(train[start:start + 512])
            v = np.asarray(self.data.terrain_descriptor[rows], np.float64).reshape(-1, dt)
            m = np.asarray(self.data.terrain_descriptor_mask[rows], bool).reshape(-1, dt)
            v = np.where(m, v, 0.0)
            count += m.sum(axis=0)
            total += v.sum(axis=0)
            squares += (v ** 2).sum(axis=0)
        columns = np.flatnonzero(count >= self.MIN_KNOWN)
        if not len(columns):
            return none
        mean = total[columns] / count[columns]
        std = np.sqrt(np.maximum(squares[columns] / count[columns] - mean ** 2, 0.0))
        return {'descriptor_names': [names[c] for c in columns],
                'descriptor_columns': columns.tolist(), 'descriptor_mean': mean.tolist(),
                'descriptor_std': np.maximum(std, 1e-6).tolist(), 'descriptor_layout': layout}

    @property
    def has_descriptor(self) -> bool:
        return bool(self.params.get('descriptor_names'))

    @property
    def has_types(self) -> bool:
        return bool(self.params.get('type_names'))

    def patch_type_ids(self) -> np.ndarray:
        """Type id of every dataset patch, int64 [N, GH, GW], -1 unknown (stored types)."""
        from ssl_robot.labelling.terrain_types import load_dataset_types
        types = load_dataset_types(self.data.path)
        n, (gh, gw) = len(self.data), self.params['grid']
        ids = np.full((n, int(gh), int(gw)), -1, np.int64)
        if types is None or types.n_types != len(self.params['type_names']):
            raise TrainError(f'{self.params["dataset"]}: the model has '
                             f'{len(self.params["type_names"])} terrain types, the dataset '
                             f'{0 if types is None else types.n_types}')
        for start in range(0, n, 256):  # chunks: the posterior is [rows, GH, GW, K, F]
            sl = slice(start, start + 256)
            ids[sl] = types.assign(np.asarray(self.data.terrain_descriptor[sl]),
                                   np.asarray(self.data.terrain_descriptor_mask[sl]))[0]
        return ids

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = self.split()
        fields = ('terrain', 'terrain_mask')
        arrays = {}
        if self.has_descriptor:
            fields += ('terrain_descriptor', 'terrain_descriptor_mask')
        if self.has_types:
            fields += ('terrain_type',)
            arrays['terrain_type'] = self.patch_type_ids()
        hw, resized = self.model_spec()['input_hw'], self.resized_frames()
        return (FrameItems(self.data, train, fields, arrays, input_hw=hw, resized=resized),
                FrameItems(self.data, val, fields, arrays, input_hw=hw, resized=resized))

    def _targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = float(self.params['target_mean']), float(self.params['target_std'])
        mask = batch['terrain_mask'].bool()
        target = torch.where(mask, (batch['terrain'] - mean) / std, torch.zeros_like(
            batch['terrain']))
        return target, mask

    def _descriptor_targets(self, batch: dict[str, torch.Tensor], flip: torch.Tensor | None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised descriptor targets [B, GH, GW, DT'] and masks, mirrored by `flip`."""
        cols = torch.as_tensor(self.params['descriptor_columns'])
        raw = batch['terrain_descriptor'][..., cols].float()
        mask = batch['terrain_descriptor_mask'][..., cols].bool()
        if flip is not None:
            sel = flip.view(-1, 1, 1, 1)
            sign = torch.from_numpy(self._sign).to(raw.device)
            raw = torch.where(sel, torch.flip(raw, dims=(2,)) * sign, raw)
            mask = torch.where(sel, torch.flip(mask, dims=(2,)), mask)
        mean = torch.tensor(self.params['descriptor_mean'], dtype=raw.dtype, device=raw.device)
        std = torch.tensor(self.params['descriptor_std'], dtype=raw.dtype, device=raw.device)
        return torch.where(mask, (raw - mean) / std, torch.zeros_like(raw)), mask

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        target, mask = self._targets(batch)
        flip = self.flip_mask(model, target.shape[0], target.device)
        if flip is not None:
            sel = flip.view(-1, 1, 1)
            target = torch.where(sel, hflip(target), target)
            mask = torch.where(sel, hflip(mask), mask)
        images = self.images(model, batch['frames'], flip)
        beta = float(self.params['beta'])
        if not (self.has_descriptor or self.has_types):
            return masked_smooth_l1(model(images), target, mask, beta=beta), {}
        out = model(images, all_outputs=True)
        loss = masked_smooth_l1(out['cost'], target, mask, beta=beta)
        extra = {'cost_loss': float(loss.detach())}
        if self.has_descriptor:
            d_target, d_mask = self._descriptor_targets(batch, flip)
            d_loss = masked_smooth_l1(out['descriptor'], d_target, d_mask, beta=beta)
            loss = loss + float(self.params['descriptor_weight']) * d_loss
            extra['descriptor_loss'] = float(d_loss.detach())
        if self.has_types:
            ids = batch['terrain_type']
            if flip is not None:
                ids = torch.where(flip.view(-1, 1, 1), hflip(ids), ids)
            t_loss = masked_cross_entropy(out['type_logits'], ids, ids >= 0)
            loss = loss + float(self.params['type_weight']) * t_loss
            extra['type_loss'] = float(t_loss.detach())
        return loss, extra

    def predict(self, model: torch.nn.Module, loader: Any) -> tuple[np.ndarray, ...]:
        """(standardised predictions, standardised targets, masks) as numpy [N, GH, GW]."""
        out = self.predict_patches(model, loader)
        return out['cost'], out['cost_target'], out['cost_mask']

    def predict_patches(self, model: torch.nn.Module, loader: Any) -> dict[str, np.ndarray]:
        """Every output and target over a loader, as numpy (standardised units).

        'cost', 'cost_target', 'cost_mask' [N, GH, GW]; with descriptors 'descriptor',
        'descriptor_target', 'descriptor_mask' [N, GH, GW, DT']; with types
        'type_prob' [N, GH, GW, K] and 'type' [N, GH, GW] (-1 unknown).
        """
        parts: dict[str, list[np.ndarray]] = {}

        def keep(name: str, value: torch.Tensor) -> None:
            parts.setdefault(name, []).append(value.cpu().numpy())

        rich = self.has_descriptor or self.has_types
        with torch.no_grad():
            for batch in loader:
                target, mask = self._targets(batch)
                images = self.images(model, batch['frames'], None)
                out = model(images, all_outputs=True) if rich else {'cost': model(images)}
                keep('cost', out['cost'])
                keep('cost_target', target)
                keep('cost_mask', mask)
                if self.has_descriptor:
                    d_target, d_mask = self._descriptor_targets(batch, None)
                    keep('descriptor', out['descriptor'])
                    keep('descriptor_target', d_target)
                    keep('descriptor_mask', d_mask)
                if self.has_types:
                    keep('type_prob', torch.softmax(out['type_logits'], dim=-1))
                    keep('type', batch['terrain_type'])
        return {name: np.concatenate(values) for name, values in parts.items()}

    def evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        out = self.predict_patches(model, loader)
        pred, target, mask = out['cost'], out['cost_target'], out['cost_mask']
        rho = spearman(pred[mask], target[mask])
        loss = float(masked_smooth_l1(torch.from_numpy(pred), torch.from_numpy(target),
                                      torch.from_numpy(mask)))
        return {'val_spearman': 0.0 if np.isnan(rho) else rho, 'val_loss': loss,
                **patch_metrics(out)}


def patch_metrics(out: dict[str, np.ndarray]) -> dict[str, float]:
    """Descriptor R^2 and type accuracies of `TerrainTask.predict_patches` output.

    'val_descriptor_r2': mean over entries with known validation patches of
    1 - sum (pred - target)^2 / sum (target - mean target)^2 (0: no better than the
    validation mean); 'val_type_accuracy' and 'val_type_balanced_accuracy' (mean recall
    over the types present) of the most probable type against the felt one, with
    'val_type_chance' (1 / types present) and 'val_type_patches'.
    """
    metrics: dict[str, float] = {}
    if 'descriptor' in out:
        pred, target, mask = out['descriptor'], out['descriptor_target'], out['descriptor_mask']
        r2 = []
        for k in range(pred.shape[-1]):
            m = mask[..., k]
            if m.sum() < 2:
                continue
            y, p = target[..., k][m], pred[..., k][m]
            sst = float(((y - y.mean()) ** 2).sum())
            if sst > 0:
                r2.append(1.0 - float(((p - y) ** 2).sum()) / sst)
        metrics['val_descriptor_r2'] = float(np.mean(r2)) if r2 else 0.0
    if 'type' in out:
        known = out['type'] >= 0
        felt = out['type'][known]
        guess = out['type_prob'].argmax(-1)[known]
        present = np.unique(felt)
        metrics['val_type_patches'] = float(known.sum())
        metrics['val_type_accuracy'] = float((guess == felt).mean()) if felt.size else 0.0
        metrics['val_type_balanced_accuracy'] = float(np.mean(
            [(guess[felt == c] == c).mean() for c in present])) if felt.size else 0.0
        metrics['val_type_chance'] = 1.0 / max(len(present), 1)
    return metrics


def cost_formula(meta: dict[str, Any]) -> str:
    """The scalar terrain cost's formula with the dataset's parameters, in words."""
    t = (meta.get('params') or {}).get('terrain') or {}
    band = t.get('band_hz', [5.0, 30.0])
    return (f'cost = vibration + {t.get("gyro_weight", 1.0):g} * attitude_rate + '
            f'{t.get("slip_weight", 1.0):g} * slip (m/s^2; ssl_robot.labelling.terrain): '
            f'vibration = RMS of the vertical acceleration in {band[0]:g}-{band[1]:g} Hz '
            'clipped to the IMU Nyquist frequency, attitude_rate = RMS of the roll and pitch '
            'rates (rad/s), slip = mean |commanded - odometry forward speed| (m/s), over '
            f'windows of {t.get("window_s", 0.5):g} s every {t.get("hop_s", 0.1):g} s')


class _BagTimeline(Dataset):
    """Frames of the given indices in (bag, time) order, with each one's negatives.

    Frames of the given indices in (bag, time) order, with each frame's negatives:
    the frames of its bag at least `neg_radius_s` away (Sermanet et al.).
    """

    def __init__(self, data: Any, indices: np.ndarray, neg_radius_s: float) -> None:
        self.data = data
        idx = np.asarray(indices, np.int64)
        bags = np.asarray(data.bag_ids)[idx]
        stamps = np.asarray(data.stamps_ns)[idx]
        order = np.lexsort((stamps, bags))
        self.idx, self.bags, self.stamps = idx[order], bags[order], stamps[order]
        neg_ns = int(neg_radius_s * 1e9)
        # Per position in the (bag, time)-sorted order: bag segment and radius window.
        self.seg_start = np.searchsorted(self.bags, self.bags, side='left')
        self.seg_end = np.searchsorted(self.bags, self.bags, side='right')
        # Negatives: [seg_start, neg_lo) U [neg_hi, seg_end), i.e. |dt| >= neg_radius_s.
        self.neg_lo, self.neg_hi = self._window(neg_ns, inclusive=False)
        self.n_neg = (self.neg_lo - self.seg_start) + (self.seg_end - self.neg_hi)
        self.anchors = np.zeros(0, np.int64)

    def _window(self, radius_ns: int, *, inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per position, [lo, hi) of the same bag's positions within `radius_ns`.

        Per position, [lo, hi) of the same bag's positions within `radius_ns` in time
        (|dt| <= radius when `inclusive`, else |dt| < radius).
        """
        lo = np.empty(len(self.idx), np.int64)
        hi = np.empty(len(self.idx), np.int64)
        left, right = ('left', 'right') if inclusive else ('right', 'left')
        for b in np.unique(self.bags):
            s, e = np.searchsorted(self.bags, b, 'left'), np.searchsorted(self.bags, b, 'right')
            t = self.stamps[s:e]
            lo[s:e] = s + np.searchsorted(t, t - radius_ns, left)
            hi[s:e] = s + np.searchsorted(t, t + radius_ns, right)
        return lo, hi

    def __len__(self) -> int:
        return len(self.anchors)

    def _frame(self, k: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.data.frames[int(self.idx[k])]))

    def _negative(self, k: int) -> int:
        """A random negative of position k (torch's global generator)."""
        left = int(self.neg_lo[k] - self.seg_start[k])
        right = int(self.seg_end[k] - self.neg_hi[k])
        r = int(torch.randint(left + right, ()))
        return int(self.seg_start[k]) + r if r < left else int(self.neg_hi[k]) + r - left


class TCNItems(_BagTimeline):
    """Single-view (anchor, positive, negative) frame triples from the same bag.

    The positive lies within `pos_radius_s` of the anchor, the negative at least
    `neg_radius_s` away; both are drawn from torch's global generator at each access.
    Anchors without a valid positive and negative are left out.
    """

    def __init__(self, data: Any, indices: np.ndarray, pos_radius_s: float,
                 neg_radius_s: float) -> None:
        super().__init__(data, indices, neg_radius_s)
        self.pos_lo, self.pos_hi = self._window(int(pos_radius_s * 1e9), inclusive=True)
        n_pos = self.pos_hi - self.pos_lo - 1
        self.anchors = np.flatnonzero((n_pos > 0) & (self.n_neg > 0))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = int(self.anchors[i])
        lo, hi = int(self.pos_lo[k]), int(self.pos_hi[k])
        p = lo + int(torch.randint(hi - lo - 1, ()))
        p += p >= k  # skip the anchor itself
        q = self._negative(k)
        return {'anchor': self._frame(k), 'positive': self._frame(p), 'negative': self._frame(q),
                'bag': torch.tensor(int(self.bags[k])),
                'stamp_ns': torch.tensor(int(self.stamps[k])),
                'pos_stamp_ns': torch.tensor(int(self.stamps[p]))}


class MultiViewTCNItems(_BagTimeline):
    """Multi-view triples (Sermanet et al.

    2018): the main camera at t as anchor, another
    camera at the same t as positive, the main camera at |dt| >= `neg_radius_s` in the
    same bag as negative.

    The positive's view is drawn among the views present at t (masked views are never
    used); anchors without any view or without a negative are left out.
    """

    def __init__(self, data: Any, indices: np.ndarray, neg_radius_s: float) -> None:
        super().__init__(data, indices, neg_radius_s)
        self.views_mask = np.asarray(data.views_mask, bool)[self.idx]
        self.anchors = np.flatnonzero(self.views_mask.any(1) & (self.n_neg > 0))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = int(self.anchors[i])
        present = np.flatnonzero(self.views_mask[k])
        v = int(present[int(torch.randint(len(present), ()))])
        q = self._negative(k)
        positive = torch.from_numpy(np.array(self.data.views[int(self.idx[k]), v]))
        return {'anchor': self._frame(k), 'positive': positive, 'negative': self._frame(q),
                'bag': torch.tensor(int(self.bags[k])),
                'stamp_ns': torch.tensor(int(self.stamps[k])),
                'pos_stamp_ns': torch.tensor(int(self.stamps[k])),
                'view': torch.tensor(v)}


class TCNTask(RobotTask):
    """Time-contrastive network: L2-normalised embeddings of frames (Sermanet et al.).

    On a dataset with extra camera views (`views`, V >= 1) and `multi_view` true (the
    default) it is multi-view: anchor the main camera at t, positive another camera at t,
    negative the main camera at least `neg_radius_s` away (`MultiViewTCNItems`). Without
    views, or with `multi_view` false, it is single-view: the positive is a main-camera
    frame within `pos_radius_s` (`TCNItems`). The model takes one camera image either way.
    Loss 'triplet' (margin) or 'npairs' (in-batch softmax; positives of other anchors in
    the same bag closer than `neg_radius_s` are masked out of the negatives).
    Primary metric: temporal-neighbour retrieval accuracy on validation frames; with views
    also `val_cross_view` (`cross_view_retrieval_accuracy`).
    """

    name = 'tcn'
    kind = 'tcn'
    primary_metric = 'val_retrieval'
    higher_is_better = True
    defaults = {'embed_dim': 32, 'pos_radius_s': 0.2, 'neg_radius_s': 1.0,
                'loss': 'triplet', 'margin': 0.2, 'temperature': 0.1, 'multi_view': True}

    def _prepare(self) -> None:
        super()._prepare()
        if self.params['loss'] not in ('triplet', 'npairs'):
            raise TrainError(f'tcn loss {self.params["loss"]!r}: use triplet or npairs')
        if not 0 < float(self.params['pos_radius_s']) < float(self.params['neg_radius_s']):
            raise TrainError('tcn: need 0 < pos_radius_s < neg_radius_s')
        views = self.data.view_names
        log.info('tcn: %s', f'multi-view, main camera vs {", ".join(views)}' if self.multi_view
                 else 'single-view' + (' (multi_view false)' if views else ''))

    @property
    def multi_view(self) -> bool:
        """Whether triples pair cameras (the dataset has views and `multi_view` is on)."""
        return bool(self.params['multi_view']) and bool(self.data.view_names)

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = self.split()
        pos, neg = float(self.params['pos_radius_s']), float(self.params['neg_radius_s'])
        if self.multi_view:
            return (MultiViewTCNItems(self.data, train, neg),
                    MultiViewTCNItems(self.data, val, neg))
        return TCNItems(self.data, train, pos, neg), TCNItems(self.data, val, pos, neg)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        n = batch['anchor'].shape[0]
        frames = torch.cat([batch['anchor'], batch['positive'], batch['negative']])
        flip = self.flip_mask(model, n, frames.device)
        if flip is not None:
            flip = flip.repeat(3)  # a triple is mirrored as a whole
        emb = model(self.images(model, frames, flip))
        a, p, q = emb[:n], emb[n:2 * n], emb[2 * n:]
        if self.params['loss'] == 'triplet':
            loss = triplet_loss(a, p, q, margin=float(self.params['margin']))
        else:
            neg_ns = float(self.params['neg_radius_s']) * 1e9
            same_bag = batch['bag'].view(-1, 1) == batch['bag'].view(1, -1)
            dt = (batch['stamp_ns'].view(-1, 1) - batch['pos_stamp_ns'].view(1, -1)).abs()
            negative_mask = ~same_bag | (dt.double() >= neg_ns)
            loss = npairs_loss(a, p, negative_mask=negative_mask,
                               temperature=float(self.params['temperature']))
        return loss, {}

    def evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        metrics = super().evaluate(model, loader)  # the mean validation loss
        _, val = self.split()
        emb = embed_frames(model, self, val)
        bags, stamps = np.asarray(self.data.bag_ids)[val], np.asarray(self.data.stamps_ns)[val]
        radius = float(self.params['pos_radius_s'])
        metrics['val_retrieval'] = temporal_retrieval_accuracy(emb, bags, stamps,
                                                               radius_s=radius)
        if self.data.view_names:
            metrics['val_cross_view'] = cross_view_retrieval_accuracy(
                emb, embed_views(model, self, val), np.asarray(self.data.views_mask)[val],
                bags, stamps, radius_s=radius)
        return metrics


def embed_frames(model: torch.nn.Module, task: RobotTask, indices: np.ndarray, *,
                 pooled: bool = False, batch_size: int = 128,
                 view: int | None = None) -> np.ndarray:
    """Model outputs (or pooled encoder features) for dataset frames, as numpy [N, ...].

    Args:
        model: A RobotNet in eval mode (or a DDP wrapper of one).
        task: The task (for preprocessing and the dataset).
        indices: Dataset frame indices.
        pooled: Return globally pooled encoder features instead of the head's output.
        batch_size: Frames per forward pass.
        view: Embed extra camera view `view` of the frames (None: the main camera).
    """
    net = model.module if hasattr(model, 'module') else model
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    outs = []
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = np.asarray(indices[start:start + batch_size], np.int64)
            images = task.data.frames[chunk] if view is None else task.data.views[chunk, view]
            frames = torch.from_numpy(np.asarray(images)).to(device)
            x = task.images(net, frames, None)
            out = net.embed(x) if pooled else net(x)
            outs.append(out.cpu().numpy())
    net.train(was_training)
    if not outs:
        return np.zeros((0, 1), np.float32)
    return np.concatenate(outs)


def embed_views(model: torch.nn.Module, task: RobotTask, indices: np.ndarray, *,
                batch_size: int = 128) -> np.ndarray:
    """Model outputs for every extra camera view of dataset frames, [N, V, E].

    Model outputs for every extra camera view of dataset frames, [N, V, E] (masked
    views are embedded too, as the zero images they are stored as).
    """
    views = [embed_frames(model, task, indices, batch_size=batch_size, view=v)
             for v in range(len(task.data.view_names))]
    if not views:
        return np.zeros((len(indices), 0, 1), np.float32)
    return np.stack(views, axis=1)


def model_from_checkpoint(path: Any) -> tuple[RobotNet, dict[str, Any]]:
    """Rebuild a run's robot model with its weights, without needing its dataset.

    Returns:
        (model in eval mode, checkpoint state).

    Raises:
        TrainError: When the checkpoint is missing, unreadable or not a robot task's.
    """
    from ssl_robot.robot import build_task, ROBOT_TASKS
    from ssl_robot.train import load_checkpoint
    state = load_checkpoint(path)
    config = state['config']
    if config.get('task') not in ROBOT_TASKS:
        raise TrainError(f'{path}: a checkpoint of task {config.get("task")!r}, not a robot '
                         f'model ({", ".join(ROBOT_TASKS)})')
    task = build_task(config['task'], {**config['task_params'], 'dataset': '',
                                       'init_from': ''})
    model = build_robot_model(task.model_spec())
    model.load_state_dict(state['model'])
    return model.eval(), state
