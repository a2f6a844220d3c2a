"""`ssl-robot terrain-eval DIR`: how well the terrain descriptor tells real ground apart.

DIR is in the BorealTC layout: one folder per terrain class holding `imu_NN.csv`
(time s, wx wy wz rad/s, ax ay az m/s^2; the IMU rate is read from the time column)
and, where present, `pro_NN.csv` (time, motor current L/R, wheel velocity L/R). The
command computes the labeller's descriptors of every run and cross-validates a
classifier by run (no run both trained and tested on) for the IMU descriptor, the IMU +
wheel descriptor, the old scalar roughness signal and shuffled labels, all in one run.
It prints balanced accuracy and confusion matrices, compares the unsupervised terrain
types with the classes (AMI, purity), writes a PNG of the confusion matrices and, with
`--json`, the figures; its last line is `balanced accuracy X (chance Y)` of the better
descriptor variant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot terrain-eval`."""
    p = subparsers.add_parser(
        'terrain-eval', help='validate terrain descriptors on real runs (BorealTC layout)',
        description="Run-grouped cross-validation of terrain classes from the labeller's "
                    'proprioceptive descriptors, next to the old scalar signal and '
                    'shuffled labels; unsupervised types against the classes.')
    p.add_argument('root', type=Path, metavar='DIR',
                   help='class folders of imu_NN.csv (+ pro_NN.csv)')
    p.add_argument('--json', type=Path, default=None, metavar='OUT', help='write the figures')
    p.add_argument('--figure', type=Path, default=None, metavar='PNG',
                   help='confusion matrices (default: OUT with .png, or '
                        'terrain_eval_confusion.png)')
    p.add_argument('--window-s', type=float, default=2.0, help='descriptor window (s)')
    p.add_argument('--hop-s', type=float, default=1.0, help='hop between windows (s)')
    p.add_argument('--bands', type=int, default=12, help='bands per IMU axis (at most)')
    p.add_argument('--folds', type=int, default=5, help='cross-validation folds')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--classifier', choices=('hgb', 'logreg'), default='hgb',
                   help='gradient-boosted trees (default) or logistic regression')
    p.add_argument('--max-runs-per-class', type=int, default=None, help='for quick runs')
    p.add_argument('--no-types', action='store_true', help='skip the unsupervised types')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print, write the figure (and JSON); returns the exit status."""
    from ssl_robot.labelling.borealtc import load_runs, terrain_eval  # noqa: PLC0415
    from ssl_robot.labelling.descriptor import DescriptorParams  # noqa: PLC0415
    from ssl_robot.labelling.errors import LabelError  # noqa: PLC0415 - fast --help
    if not args.root.is_dir():
        raise LabelError(f'{args.root}: not a directory')
    params = DescriptorParams(window_s=args.window_s, hop_s=args.hop_s, n_bands=args.bands)
    runs = load_runs(args.root, params, max_runs_per_class=args.max_runs_per_class)
    classes = sorted({r.terrain for r in runs})
    if len(classes) < 2:
        raise LabelError(f'{args.root}: needs class folders of imu_NN.csv for at least two '
                         f'classes, found {classes or "none"}')
    report = terrain_eval(runs, folds=args.folds, seed=args.seed, classifier=args.classifier,
                          cluster=not args.no_types)
    report['root'] = str(args.root)
    report['arguments'] = {k: str(v) if isinstance(v, Path) else v
                           for k, v in vars(args).items() if k != 'func'}
    report['command'] = (f'ssl-robot terrain-eval {args.root} --window-s {args.window_s} '
                         f'--hop-s {args.hop_s} --bands {args.bands} --folds {args.folds} '
                         f'--seed {args.seed} --classifier {args.classifier}')
    print(format_report(report))
    figure = args.figure or (args.json.with_suffix('.png') if args.json
                             else Path('terrain_eval_confusion.png'))
    write_confusion_figure(report, figure)
    print(f'figure: {figure}')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f'json: {args.json}')
    best = report['variants'][report['best']]
    print(f'balanced accuracy {best["balanced_accuracy"]:.3f} (chance {report["chance"]:.3f})')
    return 0


def format_report(report: dict[str, Any]) -> str:
    """The printed table: variants, confusion matrices, unsupervised types."""
    classes = report['classes']
    layout = report['layout']
    bands = ', '.join(f'{lo:.1f}-{hi:.1f}' for lo, hi in layout['bands_hz'])
    lines = [f'{report["runs"]} runs, {report["windows"]} windows of {layout["window_s"]} s '
             f'(hop {layout["hop_s"]} s), classes {", ".join(classes)}; chance '
             f'{report["chance"]:.3f}',
             f'IMU {layout["sample_rate_hz"]:.0f} Hz, {len(layout["bands_hz"])} bands per axis '
             f'(Hz): {bands}',
             f'{report["folds"]}-fold run-grouped, class-stratified CV, classifier '
             f'{report["classifier"]}', '',
             f'{"variant":<12} {"features":>8} {"bal. acc.":>9} {"accuracy":>9}']
    for name, v in report['variants'].items():
        lines.append(f'{name:<12} {v["features"]:>8} {v["balanced_accuracy"]:>9.3f} '
                     f'{v["accuracy"]:>9.3f}')
    for name, v in report['variants'].items():
        lines += ['', f'confusion ({name}; rows true, columns predicted):',
                  ' ' * 12 + ''.join(f'{c[:10]:>11}' for c in classes)]
        for c, row in zip(classes, v['confusion']):
            lines.append(f'{c[:12]:<12}' + ''.join(f'{n:>11}' for n in row))
    if 'types' in report:
        t, f = report['types'], report['types_k_classes']
        lines += ['', f'unsupervised types ({t["method"]}): k = {t["k"]}, AMI with classes '
                      f'{t["ami"]:.3f}, purity {t["purity"]:.3f} (majority class '
                      f'{t["purity_chance"]:.3f}), mean confidence {t["mean_confidence"]:.3f}',
                  f'  with k = {f["k"]} (the number of classes): AMI {f["ami"]:.3f}, purity '
                  f'{f["purity"]:.3f}']
    return '\n'.join(lines)


def write_confusion_figure(report: dict[str, Any], path: Path) -> None:
    """Row-normalised confusion matrices of every variant, side by side."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    classes = report['classes']
    variants = report['variants']
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.2),
                             squeeze=False)
    for ax, (name, v) in zip(axes[0], variants.items()):
        cm = np.asarray(v['confusion'], np.float64)
        rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rate, vmin=0, vmax=1, cmap='Blues')
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f'{rate[i, j]:.2f}', ha='center', va='center', fontsize=7,
                        color='white' if rate[i, j] > 0.5 else 'black')
        ax.set_xticks(range(len(classes)), [c[:6] for c in classes], rotation=45, fontsize=7)
        ax.set_yticks(range(len(classes)), [c[:6] for c in classes], fontsize=7)
        ax.set_title(f'{name}: bal. acc. {v["balanced_accuracy"]:.3f}', fontsize=9)
        ax.set_xlabel('predicted')
    axes[0][0].set_ylabel('true')
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
