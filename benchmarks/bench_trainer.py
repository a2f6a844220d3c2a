"""Trainer benchmark: time per step of the shared Trainer vs a plain torch loop.

The same obstacle model, the same preprocessed batches (an in-memory tensor dataset, so
data loading costs the same), the same AdamW and gradient clipping, one thread; the
ratio is the trainer's overhead (schedule, logging, progress, checkpoint at epoch end).

Usage: python benchmarks/bench_trainer.py [--steps 60] [--batch-size 64]
Writes benchmarks/results/bench_trainer.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssl_robot.robot.losses import masked_bce_with_logits
from ssl_robot.robot.nets import build_robot_model, default_spec
from ssl_robot.train import Task, TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
SPEC = default_spec('obstacle', distances_m=[round(0.05 * i, 2) for i in range(11)])


def make_data(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    h, w = SPEC['input_hw']
    x = torch.randn(n, 3, h, w, generator=g)
    y = (torch.rand(n, 11, 3, generator=g) < 0.2).float()
    m = torch.rand(n, 11, 3, generator=g) < 0.7
    return TensorDataset(x, y, m)


class BenchTask(Task):
    name = 'bench_obstacle'

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def build_model(self) -> nn.Module:
        return build_robot_model(SPEC)

    def datasets(self) -> tuple[TensorDataset, None]:
        return self.data, None

    def loss(self, model: nn.Module, batch: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        x, y, m = batch
        return masked_bce_with_logits(model(x), y, m), {}


def plain_loop(data: TensorDataset, batch_size: int, lr: float) -> tuple[float, int]:
    torch.manual_seed(0)
    model = build_robot_model(SPEC).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    steps = 0
    start = time.perf_counter()
    for x, y, m in loader:
        loss = masked_bce_with_logits(model(x), y, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    return time.perf_counter() - start, steps


def trainer_loop(data: TensorDataset, batch_size: int, lr: float) -> tuple[float, int]:
    out = tempfile.mkdtemp(prefix='bench_trainer_')
    config = TrainConfig(out_dir=out, epochs=1, batch_size=batch_size, lr=lr, progress=True,
                         device='cpu')
    start = time.perf_counter()
    result = Trainer(BenchTask(data), config).fit()
    return time.perf_counter() - start, int(result.history[-1]['step'])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=60)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = make_data(args.steps * args.batch_size)
    rows = {'plain_torch': [], 'shared_trainer': []}
    plain_loop(make_data(4 * args.batch_size), args.batch_size, 1e-3)  # warm-up
    for _ in range(args.repeats):  # interleaved, so machine load hits both alike
        t, n = plain_loop(data, args.batch_size, 1e-3)
        rows['plain_torch'].append(t / n)
        t, n = trainer_loop(data, args.batch_size, 1e-3)
        rows['shared_trainer'].append(t / n)
    # The minimum over repeats: on a shared machine other load only ever adds time.
    result = {name: {'ms_per_step_min': 1e3 * min(v),
                     'ms_per_step_median': 1e3 * sorted(v)[len(v) // 2],
                     'ms_per_step_all': [1e3 * x for x in v]} for name, v in rows.items()}
    ratio = (result['shared_trainer']['ms_per_step_min']
             / result['plain_torch']['ms_per_step_min'])
    result.update(arguments=vars(args), steps=args.steps, batch_size=args.batch_size, threads=1,
                  input_hw=SPEC['input_hw'], overhead_ratio=ratio)
    print(f'obstacle model, batch {args.batch_size}, {args.steps} steps, 1 thread '
          f'({args.repeats} interleaved repeats)')
    print(f'{"loop":<16}{"min ms/step":>12}{"median":>10}')
    for name in rows:
        print(f'{name:<16}{result[name]["ms_per_step_min"]:>12.1f}'
              f'{result[name]["ms_per_step_median"]:>10.1f}')
    print(f'overhead ratio (trainer / plain, min): {ratio:.3f} (includes one checkpoint write)')
    out = REPO / 'benchmarks' / 'results' / 'bench_trainer.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
