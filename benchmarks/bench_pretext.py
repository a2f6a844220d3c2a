"""Vision pretext benchmark: training throughput and the shared trainer's overhead.

Training throughput per pretext on CPU, and the shared trainer's overhead against a plain
torch loop for one pretext (rotation).

Throughput counts source images per second (a rotation batch of N images trains on 4N
rotated copies, SimCLR/MoCo on 2N views, jigsaw on 9N tiles): the rate at which a
pretext consumes an unlabelled pool. The plain loop runs the same task's `loss` on the
same batches with the same AdamW, schedule and clipping, so the ratio is the trainer's
own cost (data loader, progress, validation hook, checkpoint at epoch end).

Usage: python benchmarks/bench_pretext.py [--images 1024] [--batch-size 128] [--threads 1]
Writes benchmarks/results/bench_pretext.json.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from ssl_robot.train import TrainConfig, Trainer
from ssl_robot.train.trainer import get_lr
from ssl_robot.vision.data import fashion_mnist
from ssl_robot.vision.evaluate import BUDGETS
from ssl_robot.vision.pretext import build_pretext, PRETEXTS
from ssl_robot.vision.pretext.base import PretextTask

REPO = Path(__file__).resolve().parent.parent


def pool(n: int) -> tuple[torch.Tensor, str]:
    """Fashion-MNIST train images if installed, else random uint8 images of its shape."""
    try:
        images = fashion_mnist('train')[0][:n]
        return torch.from_numpy(np.ascontiguousarray(images[:, None])), 'fashion-mnist'
    except Exception:
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8), 'random'


def config(out: str, task: PretextTask, epochs: int, batch_size: int) -> TrainConfig:
    return TrainConfig(out_dir=out, epochs=epochs, batch_size=batch_size, lr=2e-3,
                       warmup_steps=0, seed=0, device='cpu', progress=False, task=task.name,
                       task_params=task.params)


def trainer_run(task: PretextTask, epochs: int, batch_size: int) -> float:
    """Seconds of `Trainer.fit` (training images only: validation is off)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        Trainer(task, config(out, task, epochs, batch_size)).fit()
        return time.perf_counter() - start


def plain_loop(task: PretextTask, epochs: int, batch_size: int) -> float:
    """The same training as `trainer_run`, written as a bare torch loop."""
    torch.manual_seed(0)
    images = task.datasets()[0].images
    model = task.build_model().train()
    opt = torch.optim.AdamW(task.optimizer_groups(model), lr=2e-3, weight_decay=1e-4)
    cfg = config('', task, epochs, batch_size)
    total = math.ceil(len(images) / batch_size) * epochs
    step = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch))
        for idx in order.split(batch_size):
            for group in opt.param_groups:
                group['lr'] = get_lr(cfg, step, total)
            loss, _ = task.loss(model, images[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            task.after_step(model, step)
            step += 1
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=1024, help='pool size (1024)')
    parser.add_argument('--batch-size', type=int, default=128, help='batch size (128)')
    parser.add_argument('--epochs', type=int, default=1, help='epochs per pretext (1)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1: on a shared 2-core machine a second thread '
                             'mostly waits)')
    parser.add_argument('--out', default=str(REPO / 'benchmarks/results/bench_pretext.json'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, source = pool(args.images)
    widths = BUDGETS['small']['widths']
    params = {'widths': widths, 'val_fraction': 0.0}
    rows = []
    print(f'pool: {len(images)} {source} images 28x28, widths {widths}, batch '
          f'{args.batch_size}, {args.threads} threads')
    print(f'{"pretext":<18} {"images/s":>9} {"seconds":>8}')
    for name in PRETEXTS:
        task = build_pretext(name, images, params)
        trainer_run(task, 1, args.batch_size) if name == 'rotation' else None  # warm-up
        seconds = trainer_run(task, args.epochs, args.batch_size)
        rate = len(images) * args.epochs / seconds
        rows.append({'pretext': name, 'images_per_s': round(rate, 1),
                     'seconds': round(seconds, 2)})
        print(f'{name:<18} {rate:9.1f} {seconds:8.2f}')

    task = build_pretext('rotation', images, params)
    plain = min(plain_loop(task, args.epochs, args.batch_size) for _ in range(2))
    shared = min(trainer_run(task, args.epochs, args.batch_size) for _ in range(2))
    overhead = {'pretext': 'rotation', 'plain_loop_s': round(plain, 3),
                'trainer_s': round(shared, 3), 'ratio': round(shared / plain, 3)}
    print(f'trainer vs plain loop (rotation, best of 2): {shared:.2f} s vs {plain:.2f} s '
          f'= {shared / plain:.3f}x')
    result = {'arguments': vars(args), 'pool': len(images), 'source': source, 'widths': widths,
              'batch_size': args.batch_size, 'epochs': args.epochs,
              'threads': args.threads, 'throughput': rows, 'trainer_overhead': overhead}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
