"""Does a second camera help the time-contrastive network? Multi-view vs single-view TCN.

Simulates seeded worlds with one extra camera (`extra_cameras=1`), labels them with the
extra view (`views:=/camera2/image_raw`), then trains the TCN twice per seed on the same
dataset: multi-view triples (positive = the other camera at the same instant) and
single-view triples (positive = the main camera within `pos_radius_s`). Each run is
evaluated on the held-out world by `ssl-robot eval` next to the same network at random
init: cross-view retrieval (main-camera frame -> the other camera's frame of the same
instant among all held-out frames), temporal-neighbour retrieval, and the linear probe of
obstacle labels on frozen features. Figures are means over training seeds, with each
seed's value in the JSON.

Writes benchmarks/results/tcn_multiview.json and prints a table.
Usage: python benchmarks/eval_tcn_multiview.py [--worlds 1 2 3] [--duration 120]
       [--seeds 0 1] [--epochs 10]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / '.cache'
RESULTS = ROOT / 'results'

#: Reported metrics: (label, key in the per-model entry of eval.json).
METRICS = (('cross-view retrieval', 'cross_view_retrieval'),
           ('temporal retrieval', 'retrieval_accuracy'),
           ('probe AUC (obstacle)', 'probe_auc'))


def _cli(*argv: str) -> None:
    from ssl_robot.cli import main as cli_main
    code = cli_main([str(a) for a in argv])
    if code:
        raise SystemExit(f'ssl-robot {" ".join(map(str, argv))}: exit {code}')


def _metrics(entry: dict) -> dict[str, float]:
    return {'cross_view_retrieval': float(entry['cross_view_retrieval']),
            'retrieval_accuracy': float(entry['retrieval_accuracy']),
            'probe_auc': float(entry['probe']['overall']['auc'])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--worlds', type=int, nargs='+', default=[1, 2, 3, 4],
                    help='world seeds (the TCN task holds out whole worlds, ~1 in 4)')
    ap.add_argument('--duration', type=float, default=180.0, help='simulated s per world')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds')
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--out', type=Path, default=RESULTS / 'tcn_multiview.json')
    args = ap.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    start = time.monotonic()

    tag = f'mv_{args.duration:.0f}s'
    bags = []
    for w in args.worlds:
        bag = CACHE / f'{tag}_world{w}'
        if not bag.exists():
            _cli('sim', '--seed', w, '--duration', args.duration, '--out', bag,
                 '--extra-cameras', 1)
        bags.append(bag)
    dataset = CACHE / f'{tag}_{"_".join(map(str, args.worlds))}_ds'
    if not (dataset / 'meta.json').exists():
        _cli('label', *bags, '--out', dataset, '--overwrite', '--no-figures',
             '--remap', 'views:=/camera2/image_raw')

    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.robot.tasks import COMMON_DEFAULTS as split
    data = LabelledDataset.open(dataset)
    _, val = data.split(split['val_fraction'], by=split['split_by'], seed=split['split_seed'])
    held_out = [args.worlds[b] for b in np.unique(np.asarray(data.bag_ids)[val])]

    results: dict[str, dict[str, list[float]]] = {}
    per_run = []
    for variant, multi in (('multi-view', 'true'), ('single-view', 'false')):
        for seed in args.seeds:
            run = CACHE / f'{tag}_{variant}_seed{seed}'
            shutil.rmtree(run, ignore_errors=True)
            _cli('train', '--task', 'tcn', '--dataset', dataset, '--out', run,
                 '--epochs', args.epochs, '--seed', seed, '--param', f'multi_view={multi}',
                 '--no-progress')
            _cli('eval', run, '--seed', seed)
            report = json.loads((run / 'eval' / 'eval.json').read_text())
            for name, key in ((variant, 'trained'), ('random init', 'random_init')):
                m = _metrics(report['models'][key])
                per_run.append({'model': name, 'variant': variant, 'seed': seed, **m})
                if name == 'random init' and variant != 'multi-view':
                    continue  # one random-init entry per seed is enough
                for k, v in m.items():
                    results.setdefault(name, {}).setdefault(k, []).append(v)
            n_val, n_train = report['n_val_frames'], report['n_train_frames']

    names = ['multi-view', 'single-view', 'random init']
    lines = [f'TCN on worlds {[w for w in args.worlds if w not in held_out]} ({n_train} '
             f'frames), held-out world(s) {held_out} ({n_val} frames), 1 extra camera, '
             f'{args.duration:.0f} s per world, {args.epochs} epochs, mean ± sd over training '
             f'seeds {args.seeds}',
             f'{"metric":<24}' + ''.join(f'{n:>14}' for n in names)]
    summary: dict[str, dict[str, float]] = {n: {} for n in names}
    for label, key in METRICS:
        cells = []
        for n in names:
            vals = results[n][key]
            summary[n][key] = float(np.mean(vals))
            cells.append(f'{np.mean(vals):>8.3f}±{np.std(vals):.3f}')
        lines.append(f'{label:<24}' + ''.join(f'{c:>14}' for c in cells))
    ratio = (summary['multi-view']['cross_view_retrieval']
             / max(summary['single-view']['cross_view_retrieval'], 1e-9))
    lines.append(f'ratio multi/single cross-view retrieval: {ratio:.2f}x; '
                 f'chance of retrieval 1/{n_val} = {1 / n_val:.4f}')
    table = '\n'.join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        'arguments': vars(args),
        'worlds': args.worlds, 'duration_s': args.duration, 'seeds': args.seeds,
        'epochs': args.epochs, 'held_out_worlds': held_out, 'n_train_frames': n_train,
        'n_val_frames': n_val,
        'chance_retrieval': 1.0 / n_val, 'mean': summary, 'runs': per_run,
        'wall_s': round(time.monotonic() - start, 1), 'table': table}, indent=2,
        default=str))
    print(f'wrote {args.out} ({time.monotonic() - start:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
