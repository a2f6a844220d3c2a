"""`ssl-robot pretext` and `ssl-robot pretext-eval`: the vision pretexts' commands.

`pretext` trains one vision pretext; `pretext-eval` trains and evaluates them all against
raw pixels, PCA, random init and supervised training (one table, one figure, a report).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ssl_robot.commands.argtypes import finite_float, int_at_least

#: Names listed in --help without importing torch.
PRETEXT_NAMES = ('rotation', 'jigsaw', 'inpainting', 'relative-position', 'simclr', 'moco',
                 'denoising')


def add_parser(subparsers: Any) -> None:
    """Register `ssl-robot pretext` and `ssl-robot pretext-eval`."""
    p = subparsers.add_parser(
        'pretext', help='train a self-supervised vision pretext on unlabelled images',
        description='Train one vision pretext with the shared trainer on an unlabelled '
                    'image pool and export its encoder to ONNX (RUN/encoder.onnx).')
    p.add_argument('--task', required=True, choices=PRETEXT_NAMES, help='the pretext')
    p.add_argument('--data', default='fashion-mnist',
                   help='fashion-mnist (train images, labels unused), a labelled dataset '
                        'directory, an image folder, or a uint8 .npy array [N,H,W(,C)]')
    p.add_argument('--out', required=True, help='run directory')
    p.add_argument('--image-size', type=int, default=None,
                   help='square side the images are cropped/resized to (28 for '
                        'fashion-mnist, else 64)')
    p.add_argument('--channels', type=int, choices=(1, 3), default=None,
                   help='1 (grey) or 3 (RGB); default 1 for fashion-mnist, else 3')
    p.add_argument('--max-images', type=int, default=None,
                   help='use at most this many images (fixed-seed subset)')
    p.add_argument('--epochs', type=int_at_least(1), default=5, help='passes over the pool (5)')
    p.add_argument('--batch-size', type=int_at_least(1), default=128, help='batch size (128)')
    p.add_argument('--lr', type=finite_float(0.0, low_ok=False), default=2e-3,
                   help='peak learning rate (2e-3)')
    p.add_argument('--seed', type=int_at_least(0), default=0, help='seed (0)')
    p.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                   help='pretext parameter (JSON value), e.g. widths=[32,64,128], '
                        'temperature=0.2')
    p.add_argument('--no-export', action='store_true', help='skip the ONNX export')
    p.add_argument('--no-progress', action='store_true', help='no progress output')
    p.set_defaults(func=run_pretext)

    e = subparsers.add_parser(
        'pretext-eval', help='evaluate the vision pretexts on Fashion-MNIST or your images',
        description='Train (or reuse) each pretext on the pool images without labels, then '
                    'a linear probe and k-NN on frozen features with 1/10/100 %% of the '
                    'labels, next to the same probes on raw pixels and on PCA of the pixels, '
                    'the same encoder at random init, and the same encoder trained '
                    'supervised. Prints one table; writes results.json, table.txt, '
                    'results.png (accuracy against label fraction) and report.md into --out.')
    e.add_argument('--data', default=None, metavar='DIR',
                   help='a labelled image folder (one sub-folder of images per class), split '
                        'stratified into 70 %% pool, 10 %% validation, 20 %% test; default: '
                        'Fashion-MNIST')
    e.add_argument('--image-size', type=int, default=32,
                   help="square side a folder's images are cropped/resized to (32)")
    e.add_argument('--channels', type=int, choices=(1, 3), default=3,
                   help="1 (grey) or 3 (RGB) for a folder's images (3)")
    e.add_argument('--tasks', nargs='+', choices=PRETEXT_NAMES, default=list(PRETEXT_NAMES),
                   help='pretexts to evaluate (all)')
    e.add_argument('--budget', choices=('tiny', 'small', 'full'), default='small',
                   help='small: 13-17 min on 2 CPU cores with every task and baseline '
                        '(678-744 s per seed measured with rotation, SimCLR and denoising '
                        'reused, which train in ~200 s; '
                        'benchmarks/results/pretext_eval_seeds_cell_head.json); '
                        'full: the whole train set, longer; '
                        'tiny: a smoke test of the run in seconds (not a measurement)')
    e.add_argument('--out', default='runs/pretext-eval', help='output directory')
    e.add_argument('--seed', type=int, default=0, help='seed (0)')
    e.add_argument('--retrain', action='store_true',
                   help='train again even where OUT/<task>/best.pt matches the settings')
    e.add_argument('--readout', choices=('mean', 'pyramid'), default=None,
                   help="how the probes read each encoder's features: mean (the globally "
                        'averaged last feature map, what the exported encoder gives) or '
                        'pyramid (the 2x2-averaged maps of the last two stages); default: '
                        'ssl_robot.vision.evaluate.DEFAULT_READOUT')
    e.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (0: torch default; 1 is faster on a busy machine)')
    e.add_argument('--no-export', action='store_true', help='skip the ONNX exports')
    e.add_argument('--no-progress', action='store_true', help='no progress output')
    e.set_defaults(func=run_pretext_eval)


def run_pretext(args: argparse.Namespace) -> int:
    """Train one pretext and export its encoder. Returns the exit status."""
    from ssl_robot.config import parse_key_values
    from ssl_robot.vision.data import load_pool
    from ssl_robot.vision.pretext import build_pretext
    from ssl_robot.vision.training import export_encoder, train_task

    images = load_pool(args.data, image_size=args.image_size, channels=args.channels,
                       limit=args.max_images, seed=args.seed)
    task = build_pretext(args.task, images, parse_key_values(args.param))
    print(f'{args.task}: {len(images)} images {tuple(images.shape[1:])} from {args.data}')
    model = train_task(task, args.out, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed, progress=not args.no_progress)
    metrics = json.loads((Path(args.out) / 'final_metrics.json').read_text())
    if metrics:
        print('final validation metrics: ' + ', '.join(f'{k} {v:.4f}'
                                                       for k, v in metrics.items()))
    if not args.no_export:
        report = export_encoder(model.encoder, task.encoder_spec(),
                                Path(args.out) / 'encoder.onnx',
                                extra_metadata={'data': str(args.data), 'seed': args.seed})
        print(f'encoder: {report.path} (onnxruntime vs torch max abs diff '
              f'{report.max_abs_diff:.2e})')
    print(f'run: {args.out}')
    return 0


def run_pretext_eval(args: argparse.Namespace) -> int:
    """Run the evaluation and print its table. Returns the exit status."""
    import torch

    from ssl_robot.vision.evaluate import DEFAULT_READOUT, format_table
    from ssl_robot.vision.evaluate import run_pretext_eval as run_eval
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run_eval(args.out, tasks=list(args.tasks), budget=args.budget, seed=args.seed,
                       retrain=args.retrain, progress=not args.no_progress,
                       export=not args.no_export, data=args.data,
                       image_size=args.image_size, channels=args.channels,
                       readout=args.readout or DEFAULT_READOUT)
    # The options that made the results, next to them (results.json is run_eval's).
    results['arguments'] = {k: v for k, v in vars(args).items() if k != 'func'}
    path = Path(args.out) / 'results.json'
    path.write_text(json.dumps(results, indent=2, default=str))
    print(format_table(results))
    print(f'results: {Path(args.out) / "results.json"}, figure: '
          f'{Path(args.out) / "results.png"}, report: {Path(args.out) / "report.md"} '
          f'({results["seconds"]:.0f} s)')
    return 0
