"""`ssl-robot train`: train a robot model (obstacle, terrain, tcn) with the shared trainer."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from ssl_robot.commands.argtypes import device, finite_float, int_at_least, new_file, out_dir

log = logging.getLogger('ssl_robot.commands.train')


def add_parser(subparsers: Any) -> None:
    """Register `ssl-robot train`."""
    p = subparsers.add_parser(
        'train', help='train a robot model on a labelled dataset',
        description='Train an obstacle, terrain, time-contrastive (TCN) or collision model '
                    'on a labelled dataset with the shared trainer (DDP under torchrun).')
    p.add_argument('--task', choices=['obstacle', 'terrain', 'tcn', 'collision'], default=None,
                   help='what to learn (required unless --resume)')
    p.add_argument('--dataset', help='labelled dataset directory (ssl-robot label)')
    p.add_argument('--out', required=True, type=out_dir, help='run directory')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the checkpoints and logs of an existing run in --out')
    p.add_argument('--epochs', type=int_at_least(1), default=None,
                   help='passes over the data (10)')
    p.add_argument('--batch-size', type=int_at_least(1), default=None,
                   help='per-process batch (64)')
    p.add_argument('--lr', type=finite_float(0.0, low_ok=False), default=None,
                   help='peak learning rate (1e-3)')
    p.add_argument('--seed', type=int_at_least(0), default=None, help='seed (0)')
    p.add_argument('--max-steps', type=int_at_least(0), default=None,
                   help='stop after N steps (0: off)')
    p.add_argument('--patience', type=int_at_least(0), default=None,
                   help='early-stopping epochs (0: off)')
    p.add_argument('--device', type=device, default=None, help="'auto', 'cpu' or 'cuda'")
    p.add_argument('--num-workers', type=int_at_least(0), default=None,
                   help='DataLoader worker processes (0: the main process loads the data, '
                        'the fastest for the robot tasks at any camera size: their frames '
                        'are resized once per run; benchmarks/bench_trainer.py --data)')
    p.add_argument('--threads', type=int_at_least(0), default=None,
                   help="torch CPU threads (0: torch's default, one per core; where other "
                        'processes keep cores busy, the idle ones: the trainer warns)')
    p.add_argument('--init-from', default=None,
                   help='initialise the encoder from a checkpoint (e.g. a TCN run best.pt)')
    p.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                   help='task parameter (JSON value), e.g. input_hw=[72,96], flip_p=0')
    p.add_argument('--resume', action='store_true',
                   help='continue RUN/last.pt with its saved config')
    p.add_argument('--export', default=None, metavar='ONNX', type=new_file,
                   help='after training, export the best model to this .onnx file')
    p.add_argument('--no-progress', action='store_true', help='no progress output')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; prints the final validation metrics. Returns the exit status."""
    from ssl_robot.config import parse_key_values
    from ssl_robot.robot import build_task
    from ssl_robot.train import load_checkpoint, TrainConfig, Trainer, TrainError

    out = Path(args.out)
    if args.export is not None and args.export.suffix != '.onnx':
        raise TrainError(f'--export {args.export}: an ONNX file name must end in .onnx')
    overrides = {k: v for k, v in {
        'epochs': args.epochs, 'batch_size': args.batch_size, 'lr': args.lr,
        'seed': args.seed, 'max_steps': args.max_steps, 'patience': args.patience,
        'device': args.device, 'num_workers': args.num_workers,
        'threads': args.threads}.items() if v is not None}
    if args.resume and (out / 'last.pt').exists():
        # The saved config decides the run; only the stopping point may change.
        saved = load_checkpoint(out / 'last.pt')['config']
        # The worker count changes no result (each batch is fetched under its own seed);
        # the thread count only the rounding of the sums.
        changed = set(overrides) - {'epochs', 'max_steps', 'num_workers', 'threads'}
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
        _refuse_existing_run(out, overwrite=args.overwrite)
        params = parse_key_values(args.param)
        check_task_params(args.task, params)
        params['dataset'] = args.dataset
        if args.init_from:
            params['init_from'] = args.init_from
        task = build_task(args.task, params)
        config = TrainConfig(out_dir=str(out), task=args.task, task_params=task.params,
                             **overrides)
    config.progress = not args.no_progress
    config.task_params = task.params
    check_known_labels(task)
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


#: Task parameters a run derives from its dataset (saved in its config; may be given).
DERIVED_PARAMS = frozenset({'distances_m', 'sensors', 'grid', 'image_hw', 'target_mean',
                            'target_std'})
#: The files of a run that a new run in the same directory would replace.
RUN_FILES = ('best.pt', 'last.pt', 'metrics.csv', 'final_metrics.json', 'config.json')
#: Largest model input side (a bigger one takes minutes per step on a robot's CPU).
MAX_INPUT_SIDE = 1024


def _refuse_existing_run(out: Path, *, overwrite: bool) -> None:
    """Refuse to train into a run directory that holds a run (unless `overwrite`)."""
    from ssl_robot.train import TrainError
    present = [name for name in RUN_FILES if (out / name).exists()]
    if not present:
        return
    if not overwrite:
        raise TrainError(f'{out}: holds a run already ({", ".join(present)}); use --resume '
                         'to continue it, --overwrite to replace it, or another --out')
    for name in present:
        (out / name).unlink()
    log.warning('%s: replaced the earlier run (%s)', out, ', '.join(present))


def check_task_params(task: str, params: dict[str, Any]) -> None:
    """Refuse unknown task parameter names and out-of-range common values.

    Raises:
        TrainError: Naming the parameter, what is allowed and what was given.
    """
    from ssl_robot.robot import build_task, ROBOT_TASKS
    from ssl_robot.train import TrainError
    if task not in ROBOT_TASKS:
        raise TrainError(f'unknown task {task!r} (known: {", ".join(ROBOT_TASKS)})')
    known = set(build_task(task, {}).params) | DERIVED_PARAMS
    unknown = sorted(set(params) - known)
    if unknown:
        raise TrainError(f'task {task}: unknown parameter(s) {", ".join(unknown)} '
                         f'(known: {", ".join(sorted(known))})')

    def bad(name: str, rule: str) -> TrainError:
        return TrainError(f'--param {name}={params[name]!r}: must be {rule}')

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if 'input_hw' in params:
        hw = params['input_hw']
        if (not isinstance(hw, list) or len(hw) != 2 or not all(map(is_int, hw))
                or not all(8 <= v <= MAX_INPUT_SIDE for v in hw)):
            raise bad('input_hw', f'[H, W], two integers between 8 and {MAX_INPUT_SIDE}')
    if 'width' in params and not (is_int(params['width']) and 1 <= params['width'] <= 512):
        raise bad('width', 'an integer between 1 and 512')
    if 'embed_dim' in params and not (is_int(params['embed_dim'])
                                      and 1 <= params['embed_dim'] <= 4096):
        raise bad('embed_dim', 'an integer between 1 and 4096')
    for name, low, high, low_ok in (('val_fraction', 0.0, 1.0, False), ('flip_p', 0.0, 1.0, True),
                                    ('jitter', 0.0, 1.0, True), ('hue', 0.0, 1.0, True),
                                    ('grayscale_p', 0.0, 1.0, True),
                                    ('blur_p', 0.0, 1.0, True)):
        if name in params:
            value = params[name]
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not (low < value < high or (low_ok and value in (low, high)))):
                interval = f'[{low:g}, {high:g}]' if low_ok else f'({low:g}, {high:g})'
                raise bad(name, f'a number in {interval}')
    for name in ('dataset', 'init_from'):
        if name in params and not isinstance(params[name], str):
            raise bad(name, 'a path')


#: The label mask each supervised robot task learns from.
LABEL_MASKS = {'obstacle': 'proximity_mask', 'terrain': 'terrain_mask'}


def check_known_labels(task: Any) -> None:
    """Refuse to train on a split without one known label (the loss would be 0 throughout).

    Raises:
        TrainError: Naming the dataset and the mask.
    """
    import numpy as np

    from ssl_robot.train import TrainError
    name = LABEL_MASKS.get(task.name)
    if name is None or task.params.get('labels', 'pseudo') != 'pseudo':
        return
    train, _ = task.split()
    mask = getattr(task.data, name)
    known = int(np.count_nonzero(np.asarray(mask[np.sort(np.asarray(train))]))) \
        if len(train) else 0
    if known == 0:
        raise TrainError(f'{task.params["dataset"]}: no known {task.name} label in the '
                         f'{len(train)} training frames ({name} all false); nothing to learn')
    log.info('%s: %d known labels in %d training frames', task.name, known, len(train))
