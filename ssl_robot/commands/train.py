"""`ssl-robot train`: train a robot model (obstacle, terrain, tcn) with the shared trainer."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger('ssl_robot.commands.train')


def add_parser(subparsers: Any) -> None:
    """Register `ssl-robot train`."""
    p = subparsers.add_parser(
        'train', help='train a robot model on a labelled dataset',
        description='Train an obstacle, terrain or time-contrastive (TCN) model on a '
                    'labelled dataset with the shared trainer (DDP under torchrun).')
    p.add_argument('--task', choices=['obstacle', 'terrain', 'tcn'], default=None,
                   help='what to learn (required unless --resume)')
    p.add_argument('--dataset', help='labelled dataset directory (ssl-robot label)')
    p.add_argument('--out', required=True, help='run directory')
    p.add_argument('--epochs', type=int, default=None, help='passes over the data (10)')
    p.add_argument('--batch-size', type=int, default=None, help='per-process batch (64)')
    p.add_argument('--lr', type=float, default=None, help='peak learning rate (1e-3)')
    p.add_argument('--seed', type=int, default=None, help='seed (0)')
    p.add_argument('--max-steps', type=int, default=None, help='stop after N steps (0: off)')
    p.add_argument('--patience', type=int, default=None, help='early-stopping epochs (0: off)')
    p.add_argument('--device', default=None, help="'auto', 'cpu' or 'cuda'")
    p.add_argument('--init-from', default=None,
                   help='initialise the encoder from a checkpoint (e.g. a TCN run best.pt)')
    p.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                   help='task parameter (JSON value), e.g. input_hw=[72,96], flip_p=0')
    p.add_argument('--resume', action='store_true',
                   help='continue RUN/last.pt with its saved config')
    p.add_argument('--export', default=None, metavar='ONNX',
                   help='after training, export the best model to this .onnx file')
    p.add_argument('--no-progress', action='store_true', help='no progress output')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the final validation metrics. Returns the exit status."""
    from ssl_robot.config import parse_key_values
    from ssl_robot.robot import build_task
    from ssl_robot.train import load_checkpoint, TrainConfig, Trainer, TrainError

    out = Path(args.out)
    overrides = {k: v for k, v in {
        'epochs': args.epochs, 'batch_size': args.batch_size, 'lr': args.lr,
        'seed': args.seed, 'max_steps': args.max_steps, 'patience': args.patience,
        'device': args.device}.items() if v is not None}
    if args.resume and (out / 'last.pt').exists():
        # The saved config decides the run; only the stopping point may change.
        saved = load_checkpoint(out / 'last.pt')['config']
        changed = set(overrides) - {'epochs', 'max_steps'}
        if changed:
            raise TrainError(f'--resume keeps the saved config; cannot change '
                             f'{", ".join(sorted(changed))}')
        config = TrainConfig.from_dict({**saved, **overrides, 'out_dir': str(out)})
        params = dict(config.task_params)
        if args.dataset:
            params['dataset'] = args.dataset
        task = build_task(config.task, params)
    else:
        if not args.task or not args.dataset:
            raise TrainError('--task and --dataset are required for a new run')
        params = parse_key_values(args.param)
        params['dataset'] = args.dataset
        if args.init_from:
            params['init_from'] = args.init_from
        task = build_task(args.task, params)
        config = TrainConfig(out_dir=str(out), task=args.task, task_params=task.params,
                             **overrides)
    config.progress = not args.no_progress
    config.task_params = task.params
    result = Trainer(task, config).fit(resume=args.resume)
    if result.metrics:
        print('final validation metrics: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in result.metrics.items()))
    print(f'run: {result.out_dir} (best checkpoint {result.best_checkpoint})')
    if args.export and (int(os.environ.get('RANK', '0')) == 0):
        from ssl_robot.robot.export import export_run
        report = export_run(out, args.export)
        print(f'wrote {report.path}; onnxruntime vs torch max abs diff: '
              f'{report.max_abs_diff:.3g}')
    return 0
