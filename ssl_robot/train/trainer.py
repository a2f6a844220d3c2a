"""The one training loop of the package, shared by robot, vision and NLP tasks.

A task supplies datasets, a model, a loss and metrics (`Task`); the trainer owns the
loop, optimiser and schedule, seeding, device choice, checkpoints (with the config
inside), resume, early stopping on the validation metric, progress with rate and ETA,
CSV logs and the final evaluation. Under ``torchrun`` it trains with PyTorch's own
DistributedDataParallel (gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

from collections import OrderedDict
import csv
import dataclasses
from dataclasses import dataclass, field
import json
import logging
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, TYPE_CHECKING

import numpy as np
import torch
from torch import nn
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from ssl_robot.train.cpu import (
    busy_cores_of_others,
    usable_cores,
    warn_if_oversubscribed,
)
from ssl_robot.train.errors import TrainError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from torch.utils.data import Dataset

log = logging.getLogger('ssl_robot.train')


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved into every checkpoint.

    Attributes:
        out_dir: Run directory (checkpoints, metrics.csv, config.json).
        epochs: Passes over the training set.
        max_steps: Stop after this many optimiser steps (0: no limit).
        batch_size: Per-process batch size.
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps before the cosine decay.
        schedule: 'cosine' or 'constant'.
        grad_clip: Max global gradient norm (0: off).
        seed: Seeds python, numpy and torch; data order and augmentation per epoch
            derive from it, so a resumed run repeats an uninterrupted one.
        device: 'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.
        num_workers: DataLoader workers (0: the main process fetches the batches, the
            fastest on 2 cores for the robot tasks, `benchmarks/bench_trainer.py --data`).
        threads: torch CPU threads while training (0: torch's default, one per core). On
            a computer whose other processes keep cores busy, the idle cores' count: the
            trainer warns at its start when its threads and theirs do not fit
            (`ssl_robot.train.cpu`).
        persistent_workers: Keep the workers from epoch to epoch (False: start them
            anew each epoch and for each validation, as torch does by default).
        patience: Early stopping: epochs without improvement of the primary metric
            (0: off).
        progress: Show a progress bar (TTY) or periodic log lines with rate and ETA.
        task: Name of the task (informational; the CLI uses it to rebuild the task).
        task_params: The task's own parameters (saved so a run can be rebuilt).
    """

    out_dir: str = 'runs/train'
    epochs: int = 10
    max_steps: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    schedule: str = 'cosine'
    grad_clip: float = 1.0
    seed: int = 0
    device: str = 'auto'
    num_workers: int = 0
    threads: int = 0
    persistent_workers: bool = True
    patience: int = 0
    progress: bool = True
    task: str = ''
    task_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict, rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TrainError(f'unknown training options: {", ".join(sorted(unknown))}')
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every option's type and range.

        Raises:
            TrainError: Naming the first bad option and its allowed range.
        """
        ints = {'epochs': 1, 'max_steps': 0, 'batch_size': 1, 'warmup_steps': 0,
                'num_workers': 0, 'threads': 0, 'patience': 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TrainError(f'{name} must be an integer >= {low}, not {value!r}')
        for name, low, low_ok in (('lr', 0.0, False), ('weight_decay', 0.0, True),
                                  ('grad_clip', 0.0, True)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < low or (value == low and not low_ok)):
                raise TrainError(f'{name} must be a finite number {">=" if low_ok else ">"} '
                                 f'{low:g}, not {value!r}')
        if not isinstance(self.persistent_workers, bool):
            raise TrainError(f'persistent_workers must be true or false, not '
                             f'{self.persistent_workers!r}')
        if self.schedule not in ('cosine', 'constant'):
            raise TrainError(f"schedule must be 'cosine' or 'constant', not {self.schedule!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TrainError(f'seed must be an integer >= 0, not {self.seed!r}')
        resolve_device(self.device)


class Task:
    """What a task gives the trainer. Subclass and override the methods.

    `loss` must call ``model(...)`` (not its submodules) for the forward pass: under
    DistributedDataParallel the trainer passes the wrapper, whose forward syncs the
    gradients.

    Attributes:
        name: Task name.
        primary_metric: Validation metric for early stopping and the best checkpoint.
        higher_is_better: Direction of `primary_metric`.
    """

    name = 'task'
    primary_metric = 'val_loss'
    higher_is_better = False

    def build_model(self) -> nn.Module:
        """Return a freshly initialised model (seeded by the trainer)."""
        raise NotImplementedError

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        """Return (train, validation) datasets; validation may be None."""
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        """Collate dataset items to a batch (torch's default collate unless overridden).

        A `GatheredBatch` (a dataset's `__getitems__` gathered the batch at once) is the
        batch already.
        """
        if isinstance(items, GatheredBatch):
            return dict(items)
        return torch.utils.data.default_collate(items)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (scalar loss to minimise, extra scalars to log) for one batch."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        """Return validation metrics; by default the mean loss as 'val_loss'."""
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                loss, _ = self.loss(model, batch)
                total += float(loss)
                count += 1
        return {'val_loss': total / max(count, 1)}

    def after_step(self, model: nn.Module, step: int) -> None:
        """Hook after each optimiser step (e.g. a momentum-encoder update)."""

    def optimizer_groups(self, model: nn.Module) -> Iterable[Any]:
        """Parameters (or groups) to optimise; all trainable parameters by default.

        A group dict may carry ``'lr_scale'``: its learning rate is the schedule's times
        that (e.g. layer-wise decay when fine-tuning).
        """
        return [p for p in model.parameters() if p.requires_grad]


@dataclass
class TrainResult:
    """What a finished run returns.

    Attributes:
        model: The model with the best validation weights loaded (unwrapped).
        metrics: Final validation metrics of that model.
        history: One dict per epoch (epoch, step, train_loss, validation metrics, seconds).
        out_dir: Run directory.
        best_checkpoint: Path of best.pt.
    """

    model: nn.Module
    metrics: dict[str, float]
    history: list[dict[str, float]]
    out_dir: Path
    best_checkpoint: Path


def resolve_device(device: str) -> torch.device:
    """Map 'auto' to CUDA when available, else CPU.

    Raises:
        TrainError: For a malformed device or one this machine does not have.
    """
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TrainError(f"device {device!r}: not a device ('auto', 'cpu', 'cuda', "
                         f"'cuda:N'): {exc}") from None
    if resolved.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            raise TrainError(f'device {device!r}: not available here ({count} CUDA devices)')
    elif resolved.type != 'cpu':
        raise TrainError(f"device {device!r}: only 'auto', 'cpu' and 'cuda' are supported")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's generators."""
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_lr(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at `step`: linear warm-up, then cosine decay to 10 % (or constant)."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == 'constant' or total_steps <= config.warmup_steps:
        return config.lr
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def unwrap(model: nn.Module) -> nn.Module:
    """Return the module inside a DistributedDataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class _Progress:
    """A tqdm bar on a TTY; elsewhere a log line every few seconds with rate and ETA."""

    def __init__(self, total: int, desc: str, enabled: bool, every_s: float = 10.0) -> None:
        self.total, self.desc, self.enabled, self.every_s = total, desc, enabled, every_s
        self.done = 0
        self.start = self.last = time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit='step', dynamic_ncols=True)

    def update(self, postfix: dict[str, float]) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: f'{v:.4g}' for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            extra = ' '.join(f'{k} {v:.4g}' for k, v in postfix.items())
            print(f'[{self.desc}] step {self.done}/{self.total} {extra} '
                  f'{rate:.1f} steps/s ETA {eta:.0f}s', file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Trains a `Task` under a `TrainConfig`.

    Example::

        result = Trainer(task, TrainConfig(out_dir='runs/x', epochs=5)).fit()
    """

    def __init__(self, task: Task, config: TrainConfig) -> None:
        config.validate()
        self.task = task
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.distributed = int(os.environ.get('WORLD_SIZE', '1')) > 1
        self.rank = int(os.environ.get('RANK', '0'))
        self.world_size = int(os.environ.get('WORLD_SIZE', '1'))
        self.device = resolve_device(config.device)
        if self.distributed and self.device.type == 'cuda':
            self.device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
        self._loaders: dict[str, DataLoader] = {}  # of the fit under way

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress."""
        return self.rank == 0

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        """The loader of `dataset` for the whole fit; `_EpochBatches.set_epoch` per epoch.

        With workers it keeps them between epochs (`persistent_workers`): starting them
        anew each epoch cost 10-15 % of the step time on the robot datasets
        (benchmarks/bench_trainer.py --data). Each batch is fetched under its own seed
        (`_EpochBatches`), so data order and any randomness drawn inside a dataset
        depend only on (seed, epoch, batch), not on the worker count or on where a run
        resumed.
        """
        cfg = self.config
        if train and self.distributed:
            sampler: Any = DistributedSampler(dataset, shuffle=True, seed=cfg.seed)
        elif train:
            sampler = RandomSampler(dataset, generator=torch.Generator())
        else:
            sampler = range(len(dataset))
        batches = _EpochBatches(sampler, batch_size=cfg.batch_size, seed=cfg.seed,
                                rank=self.rank)
        workers = cfg.num_workers
        # Its own generator: starting an iterator draws a seed from it, not from the global
        # generator that the step's augmentation uses.
        return DataLoader(_SeededFetch(dataset), batch_sampler=batches, num_workers=workers,
                          collate_fn=self.task.collate,
                          persistent_workers=workers > 0 and cfg.persistent_workers,
                          generator=torch.Generator().manual_seed(cfg.seed))

    def _checkpoint(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                    epoch: int, step: int, best: float | None, bad_epochs: int,
                    history: list[dict[str, float]]) -> dict[str, Any]:
        return {
            'model': unwrap(model).state_dict(),
            'optimizer': optimizer.state_dict(),
            'epoch': epoch, 'step': step, 'best': best, 'bad_epochs': bad_epochs,
            'history': history,
            'config': dataclasses.asdict(self.config),
            'task': self.task.name,
            'torch_rng': torch.get_rng_state(),
        }

    def _save(self, state: dict[str, Any], name: str) -> Path:
        path = self.out_dir / name
        tmp = path.with_suffix('.tmp')
        torch.save(plain_state(state), tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves a half checkpoint
        return path

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train, validate each epoch, keep the best checkpoint, and evaluate it.

        Args:
            resume: Continue from ``out_dir/last.pt`` when it exists.

        Returns:
            The run's result with the best model loaded.

        Raises:
            TrainError: On an empty training set or a checkpoint of another task.
        """
        threads_before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        # A process group this fit starts, it also ends: left to the interpreter's exit,
        # gloo's threads can abort a rank that finished first ("terminate called without
        # an active exception", seen once in a clean-clone CI run of the torchrun test).
        owns_group = self.distributed and not dist.is_initialized()
        if owns_group:
            dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
        try:
            if self.device.type == 'cpu' and self.is_main:
                warn_if_oversubscribed(torch.get_num_threads(), busy_cores_of_others(),
                                       usable_cores())
            return self._fit(resume)
        finally:
            torch.set_num_threads(threads_before)
            if owns_group and dist.is_initialized():
                dist.destroy_process_group()

    def _fit(self, resume: bool) -> TrainResult:
        """`fit` with its CPU threads set (and its process group, when distributed)."""
        cfg = self.config
        seed_everything(cfg.seed)
        train_set, val_set = self.task.datasets()
        if len(train_set) == 0:
            raise TrainError(f'task {self.task.name}: the training set is empty')
        model = self.task.build_model().to(self.device)
        optimizer = torch.optim.AdamW(self.task.optimizer_groups(model), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        self._write_config()
        run = self._resume(model, optimizer) if resume else _RunState()
        train_model: nn.Module = model
        if self.distributed:
            train_model = nn.parallel.DistributedDataParallel(model)
        steps_per_epoch = math.ceil(len(train_set) / (cfg.batch_size * self.world_size))
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            total_steps = min(total_steps, cfg.max_steps)
        progress = _Progress(total_steps, self.task.name, cfg.progress and self.is_main)
        progress.done = run.step
        self._loaders = {'train': self._loader(train_set, train=True)}
        if val_set is not None and len(val_set):
            self._loaders['val'] = self._loader(val_set, train=False)

        for epoch in range(run.start_epoch, cfg.epochs):
            if cfg.max_steps and run.step >= cfg.max_steps:
                break
            record = self._train_epoch(train_model, optimizer, epoch=epoch, run=run,
                                       total_steps=total_steps, progress=progress)
            if 'val' in self._loaders and self.is_main:
                record.update(self._validate(model))
            run.history.append(record)
            if not self.is_main:
                continue
            append_csv(self.out_dir / 'metrics.csv', record)
            self._keep_best(train_model, optimizer, record, epoch=epoch, run=run)
            log.info('epoch %d: %s', epoch,
                     ', '.join(f'{k} {v:.4g}' for k, v in record.items()))
            if cfg.patience and run.bad_epochs >= cfg.patience:
                log.info('early stop: %s did not improve for %d epochs',
                         self.task.primary_metric, run.bad_epochs)
                break
        progress.close()

        best_path = self.out_dir / 'best.pt'
        final = self._final_metrics(model, best_path)
        self._loaders = {}  # ends their workers
        if self.distributed:
            dist.barrier()
        return TrainResult(model=model, metrics=final, history=run.history,
                           out_dir=self.out_dir, best_checkpoint=best_path)

    # -- the pieces of fit, in the order it calls them
    def _write_config(self) -> None:
        """The run directory and its config.json (the main process only)."""
        if not self.is_main:
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / 'config.json').write_text(
                json.dumps(dataclasses.asdict(self.config), indent=2, default=str))
        except OSError as exc:
            raise TrainError(f'{self.out_dir}: cannot write the run there: '
                             f'{exc.strerror or exc}') from None

    def _resume(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> _RunState:
        """Model, optimizer and counters from ``last.pt`` (a fresh state without one)."""
        last_path = self.out_dir / 'last.pt'
        if not last_path.exists():
            return _RunState()
        state = load_checkpoint(last_path, map_location=self.device)
        if state.get('task') != self.task.name:
            raise TrainError(f'{last_path}: checkpoint of task {state.get("task")!r}, '
                             f'not {self.task.name!r}')
        unwrap(model).load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        run = _RunState(start_epoch=state['epoch'] + 1, step=state['step'], best=state['best'],
                        bad_epochs=state['bad_epochs'], history=state['history'])
        log.info('resumed %s at epoch %d, step %d', last_path, run.start_epoch, run.step)
        return run

    def _train_epoch(self, train_model: nn.Module, optimizer: torch.optim.Optimizer, *,
                     epoch: int, run: _RunState, total_steps: int,
                     progress: _Progress) -> dict[str, float]:
        """One pass over the training set; the epoch's record (loss, lr, time, data wait)."""
        cfg = self.config
        # Per-epoch seed: augmentation and order do not depend on where a run resumed.
        torch.manual_seed(cfg.seed * 1000 + epoch + self.rank)
        np.random.seed((cfg.seed * 1000 + epoch + self.rank) % 2**32)
        train_model.train()
        epoch_start = time.monotonic()
        loss_sum, batches, data_wait, first_wait = 0.0, 0, 0.0, 0.0
        lr = get_lr(cfg, run.step, total_steps)
        loader = self._loaders['train']
        loader.batch_sampler.set_epoch(epoch)
        batches_iter = iter(loader)
        while not (cfg.max_steps and run.step >= cfg.max_steps):
            fetch_start = time.monotonic()
            batch = next(batches_iter, None)
            waited = time.monotonic() - fetch_start  # the step waiting for data
            data_wait += waited
            if batch is None:
                break
            if not batches:  # workers, if any, start fetching only at the epoch's start
                first_wait = waited
            lr = get_lr(cfg, run.step, total_steps)
            for group in optimizer.param_groups:
                # A task's groups may run at a fraction of the schedule (layer-wise decay).
                group['lr'] = lr * group.get('lr_scale', 1.0)
            loss, extras = self.task.loss(train_model, move_to(batch, self.device))
            if not torch.isfinite(loss):
                raise TrainError(f'task {self.task.name}: loss is {float(loss)} at step '
                                 f'{run.step}; lower the learning rate')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(train_model.parameters(), cfg.grad_clip)
            optimizer.step()
            self.task.after_step(unwrap(train_model), run.step)
            run.step += 1
            loss_value = float(loss.detach())
            loss_sum += loss_value
            batches += 1
            progress.update({'loss': loss_value, **extras})
        seconds = time.monotonic() - epoch_start
        return {'epoch': epoch, 'step': run.step, 'lr': lr,
                'train_loss': loss_sum / max(batches, 1), 'seconds': seconds,
                'data_wait_fraction': data_wait / max(seconds, 1e-9),
                'data_wait_first_s': first_wait}

    def _validate(self, model: nn.Module) -> dict[str, float]:
        """The task's validation metrics of `model` on the held-out set."""
        model.eval()
        return self.task.evaluate(model, move_batches(self._loaders['val'], self.device))

    def _keep_best(self, train_model: nn.Module, optimizer: torch.optim.Optimizer,
                   record: dict[str, float], *, epoch: int, run: _RunState) -> None:
        """Save ``last.pt`` every epoch and ``best.pt`` when the primary metric improved."""
        metric = record.get(self.task.primary_metric, record['train_loss'])
        improved = run.best is None or (metric > run.best if self.task.higher_is_better
                                        else metric < run.best)
        if improved:
            run.best, run.bad_epochs = metric, 0
        else:
            run.bad_epochs += 1
        state = self._checkpoint(train_model, optimizer, epoch=epoch, step=run.step,
                                 best=run.best, bad_epochs=run.bad_epochs, history=run.history)
        if improved:
            self._save(state, 'best.pt')
        self._save(state, 'last.pt')

    def _final_metrics(self, model: nn.Module, best_path: Path) -> dict[str, float]:
        """Load the best checkpoint into `model`, evaluate it, write final_metrics.json."""
        if not (self.is_main and best_path.exists()):
            return {}
        model.load_state_dict(load_checkpoint(best_path, map_location=self.device)['model'])
        final = self._validate(model) if 'val' in self._loaders else {}
        (self.out_dir / 'final_metrics.json').write_text(json.dumps(final, indent=2))
        return final


@dataclass
class _RunState:
    """What a run carries from epoch to epoch (and what `last.pt` resumes)."""

    start_epoch: int = 0
    step: int = 0
    best: float | None = None
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class _EpochBatches(Sampler):
    """Batches of `sampler`'s indices, each index paired with its batch's seed.

    The seed derives from (run seed, epoch, rank, batch number) only; `_SeededFetch`
    fetches the batch under it, in a worker or in the main process alike.
    """

    def __init__(self, sampler: Any, *, batch_size: int, seed: int, rank: int) -> None:
        self.sampler, self.batch_size, self.seed, self.rank = sampler, batch_size, seed, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Order and seeds of `epoch` (the same epoch gives the same batches)."""
        self.epoch = epoch
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif isinstance(self.sampler, RandomSampler):
            generator = self.sampler.generator.manual_seed(self.seed * 1000 + epoch)
            # The draw torch's DataLoader made from this generator (its workers' base
            # seed) before the permutation when the trainer made one loader per epoch:
            # kept, so the order of every epoch is the one runs had before.
            torch.empty((), dtype=torch.int64).random_(generator=generator)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = list(self.sampler)
        for number, start in enumerate(range(0, len(indices), self.batch_size)):
            seed = int(np.random.SeedSequence(
                [self.seed, self.epoch, self.rank, number]).generate_state(1)[0])
            yield [(int(i), seed) for i in indices[start:start + self.batch_size]]


class GatheredBatch(dict):
    """A batch (name -> stacked tensor) that a dataset's `__getitems__` gathered at once.

    `Task.collate` passes it on as it is: no batch split into items to be stacked again.
    """


class _SeededFetch(torch.utils.data.Dataset):
    """`dataset`'s items of one batch, drawn under the batch's seed (`_EpochBatches`).

    In the main process (no workers) the global generators are restored afterwards, so
    the step's own draws (augmentation in the task's loss) do not depend on the fetch.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        in_worker = torch.utils.data.get_worker_info() is not None
        saved = None if in_worker else (torch.get_rng_state(), np.random.get_state())
        # The CPU generator only (what a dataset draws from): torch.manual_seed also seeds
        # every accelerator, ~0.2 ms a batch, and the CUDA state is not restored below.
        torch.default_generator.manual_seed(keys[0][1])
        np.random.seed(keys[0][1])
        try:
            indices = [index for index, _ in keys]
            if getattr(self.dataset, '__getitems__', None):  # the dataset reads a batch at once
                return self.dataset.__getitems__(indices)
            return [self.dataset[index] for index in indices]
        finally:
            if saved is not None:
                torch.set_rng_state(saved[0])
                np.random.set_state(saved[1])


def move_batches(loader: Iterable[Any], device: torch.device) -> Iterable[Any]:
    """Yield the loader's batches moved to `device`."""
    for batch in loader:
        yield move_to(batch, device)


def load_checkpoint(path: Path | str, *, map_location: Any = 'cpu') -> dict[str, Any]:
    """Load a checkpoint written by the trainer, with its config inside.

    Checkpoints hold only tensors and plain data (`plain_state`), so they load with
    ``weights_only=True``: a file whose unpickling would import or call anything (a
    crafted pickle) is refused before any of its code runs.

    Args:
        path: The checkpoint file.
        map_location: Device to load the tensors onto (CPU by default).

    Raises:
        TrainError: When the file is missing, not a regular file, not plain data, or not
            a trainer checkpoint.
    """
    import pickle
    path = Path(path)
    if not path.exists():
        raise TrainError(f'{path}: no such checkpoint')
    if not path.is_file():
        raise TrainError(f'{path}: not a regular file')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).split('\n')[-1].strip() or 'unsupported global'
        for line in str(exc).splitlines():
            if 'GLOBAL' in line or 'Unsupported' in line:
                first = line.strip()
                break
        raise TrainError(f'{path}: refused: not a plain-data checkpoint (loading it would '
                         f'run code: {first[:160]})') from None
    except Exception as exc:
        message = ' '.join(str(exc).split())[:200]
        raise TrainError(f'{path}: not a readable checkpoint: {message}') from None
    if not isinstance(state, dict) or 'model' not in state or 'config' not in state:
        raise TrainError(f'{path}: not an ssl_robot trainer checkpoint')
    if not isinstance(state['config'], dict) or not isinstance(state['model'], dict):
        raise TrainError(f'{path}: not an ssl_robot trainer checkpoint (config/model)')
    return state


def plain_state(value: Any, where: str = 'checkpoint') -> Any:
    """`value` as tensors and plain data only (what ``weights_only=True`` loads).

    numpy scalars become Python numbers, numpy arrays tensors, paths strings.

    Raises:
        TrainError: For any other object (it would need code to load).
    """
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {k: plain_state(v, f'{where}[{k!r}]') for k, v in value.items()}
        if isinstance(value, OrderedDict):  # a state_dict keeps its type and _metadata
            out = OrderedDict(out)
            if hasattr(value, '_metadata'):
                out._metadata = plain_state(value._metadata, where)
        return out
    if isinstance(value, (list, tuple)):
        items = [plain_state(v, f'{where}[{i}]') for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, torch.device):
        return str(value)
    raise TrainError(f'{where}: {type(value).__name__} is not plain data; checkpoints hold '
                     'only tensors, numbers, strings, lists and dicts')


def append_csv(path: Path, record: dict[str, float]) -> None:
    """Append `record` to the CSV log, widening its header when a new column appears."""
    existing: list[str] = []
    if path.exists():
        with path.open(newline='') as f:
            existing = next(csv.reader(f), [])
    fields = list(existing) or list(record)  # a copy: `existing` is compared below
    for key in record:
        if key not in fields:
            fields.append(key)
    if existing and fields != existing:
        with path.open(newline='') as f:
            rows = list(csv.DictReader(f))
        tmp = path.with_name(path.name + '.tmp')
        with tmp.open('w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    with path.open('a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if not existing:
            writer.writeheader()
        writer.writerow(record)
