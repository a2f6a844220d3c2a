"""Vision pretexts over several seeds: mean ± sd of `ssl-robot pretext-eval`'s table.

One seed's table moves by a few points with the seed and even with the thread count
(another float summation order), enough to flip a weak pretext against random init. This
runs the whole protocol (pixel and PCA baselines, random init, pretexts, supervised) once
per seed — each seed also draws its own label subsets and validation split — and prints
the mean ± sample standard deviation of every cell, in how many seeds each pretext beat
random init, and each pretext's mean margin over random init and raw pixels on the linear
probe at 10 % labels against the targets (>= +10 and >= +3; the best >= +8 over raw).

Writes benchmarks/results/pretext_eval_seeds.json (with the arguments) and
pretext_eval_seeds.png (probe accuracy against label fraction, mean ± sd), prints a table.
Usage: python benchmarks/eval_pretext_seeds.py [--seeds 0 1 2] [--budget small]
       [--tasks ...] [--out-root runs/pretext_seeds] [--reuse] [--only-run]
(a seed's trained pretexts are reused; with --reuse its whole results.json, so the seeds
can run as separate jobs: `--seeds 0 --only-run`, ..., then `--seeds 0 1 2 --reuse`)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'
COLUMNS = tuple((kind, pct) for kind in ('linear', 'knn') for pct in ('1', '10', '100'))


def summarise(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and column ('linear 1', ...): mean, sd and per-seed test accuracy (%)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in runs[0]['methods']:
        for kind, pct in COLUMNS:
            acc = np.array([100 * r['methods'][method][kind][pct]['test_acc'] for r in runs])
            out.setdefault(method, {})[f'{kind} {pct}'] = {
                'mean': float(acc.mean()), 'sd': float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                'per_seed': acc.round(2).tolist()}
    return out


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def same_settings(previous: dict, tasks: list[str], *,
                  task_params: dict[str, dict[str, Any]] | None = None,
                  epochs: dict[str, int] | None = None) -> bool:
    """Whether a seed's results were made with every pretext's current settings.

    Settings are the pretext's parameters (its defaults, updated by `task_params`) and its
    epochs (the budget's, or `epochs`). Results written before the settings were recorded
    never match, so a changed default (e.g. SimCLR's temperature, or the epochs of a
    budget) can not hide behind an old figure.
    """
    from ssl_robot.vision.evaluate import BUDGETS
    from ssl_robot.vision.pretext import PRETEXTS
    budget_epochs = {**BUDGETS.get(previous.get('budget', 'small'), {}).get('epochs', {}),
                     **(epochs or {})}
    for name in tasks:
        method = previous.get('methods', {}).get(name, {})
        made = method.get('params')
        if made is None or method.get('epochs') != budget_epochs.get(name):
            if made is not None:
                print(f'{name}: its epochs changed since seed {previous.get("seed")} ran: '
                      'training it again instead of reusing the results')
            return False
        defaults = json.loads(json.dumps({**PRETEXTS[name].defaults,
                                          **(task_params or {}).get(name, {})}))
        if any(made.get(key) != value for key, value in defaults.items()):
            print(f'{name}: its settings changed since seed {previous.get("seed")} ran: '
                  'training it again instead of reusing the results')
            return False
    return True


def parse_overrides(settings: list[str], epochs: list[str]
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """`--set TASK.KEY=VALUE` and `--epochs TASK=N` as run_pretext_eval's overrides.

    A VALUE is read as JSON (5, 0.5, true, [0.2, 1.0]), else kept as a string.

    Raises:
        ValueError: On a setting without its '.' or '=', or epochs that are not an int.
    """
    params: dict[str, dict[str, Any]] = {}
    for item in settings:
        key, sep, value = item.partition('=')
        task, dot, name = key.partition('.')
        if not (sep and dot and task and name):
            raise ValueError(f'--set {item!r}: expected TASK.KEY=VALUE')
        try:
            params.setdefault(task, {})[name] = json.loads(value)
        except json.JSONDecodeError:
            params.setdefault(task, {})[name] = value
    task_epochs: dict[str, int] = {}
    for item in epochs:
        task, sep, value = item.partition('=')
        if not (sep and task and value.isdigit()):
            raise ValueError(f'--epochs {item!r}: expected TASK=N')
        task_epochs[task] = int(value)
    return params, task_epochs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--budget', default='small', choices=('tiny', 'small', 'full'),
                    help='small (default), full, or tiny: a smoke test, not a measurement')
    ap.add_argument('--out-root', type=Path, default=Path('runs/pretext_seeds'))
    ap.add_argument('--tasks', nargs='+', default=None, help='pretexts (default: all)')
    ap.add_argument('--readout', choices=('mean', 'pyramid'), default=None,
                    help='feature readout of the probes (default: the evaluation default)')
    ap.add_argument('--also-readout', nargs='*', choices=('mean', 'pyramid'), default=[],
                    help='more readouts probed on the same encoders, each with its own table '
                         'and targets')
    ap.add_argument('--set', nargs='+', default=[], metavar='TASK.KEY=VALUE',
                    help='a pretext parameter other than its default (a variant measured '
                         'over the seeds; VALUE as JSON), e.g. relative-position.patch=5')
    ap.add_argument('--epochs', nargs='+', default=[], metavar='TASK=N',
                    help="a pretext's epochs other than the budget's, e.g. denoising=8")
    ap.add_argument('--out', type=Path, default=RESULTS / 'pretext_eval_seeds.json')
    ap.add_argument('--reuse', action='store_true',
                    help="reuse a seed's finished OUT_ROOT/seedN/results.json of the same "
                         'budget and tasks (run the seeds as separate jobs, then summarise)')
    ap.add_argument('--only-run', action='store_true',
                    help='run the seeds and stop (no summary, nothing written to --out)')
    args = ap.parse_args(argv)
    try:
        task_params, task_epochs = parse_overrides(args.set, args.epochs)
    except ValueError as exc:
        ap.error(str(exc))

    from ssl_robot.vision.evaluate import (
        BASELINES,
        DEFAULT_READOUT,
        FRACTIONS,
        plot_accuracy_vs_labels,
        pretext_targets,
        run_pretext_eval,
        TARGET_BEST_OVER_RAW,
        TARGET_OVER_RANDOM,
        TARGET_OVER_RAW,
    )
    from ssl_robot.vision.pretext import PRETEXTS
    tasks = list(args.tasks or PRETEXTS)
    stray = sorted((set(task_params) | set(task_epochs)) - set(tasks))
    if stray:
        ap.error(f'--set/--epochs name pretexts not run: {", ".join(stray)}')
    readout = args.readout or DEFAULT_READOUT
    also_readouts = tuple(r for r in args.also_readout if r != readout)
    runs = []
    for s in args.seeds:
        out = args.out_root / f'seed{s}'
        done = out / 'results.json'
        previous = json.loads(done.read_text()) if args.reuse and done.exists() else None
        if previous is not None and same_settings(
                previous, tasks, task_params=task_params, epochs=task_epochs) and (
                previous.get('budget'), previous.get('seed'),
                                     [m for m in previous['methods'] if m in tasks],
                                     previous.get('readout', 'mean'),
                                     sorted(previous.get('also', {}))) == (
                                         args.budget, s, tasks, readout,
                                         sorted(also_readouts)):
            print(f'seed {s}: reusing {done}')
            runs.append(previous)
            continue
        runs.append(run_pretext_eval(out, tasks=tasks, budget=args.budget, seed=s,
                                     export=False, progress=False, readout=readout,
                                     also_readouts=also_readouts,
                                     task_params=task_params, epochs=task_epochs))
        print(f'seed {s}: {runs[-1]["seconds"]:.0f} s', flush=True)
    if args.only_run:
        return 0
    def report(method_runs: list[dict], name: str) -> tuple[dict, dict, dict, list[str]]:
        """Summary, wins, targets and table lines of one readout's methods per seed."""
        summary = summarise(method_runs)
        short = {'linear': 'lin', 'knn': 'kNN'}
        header = f'{"method":<18}' + ''.join(f'{f"{short[k]} {p}%":>12}' for k, p in COLUMNS)
        lines = [f'Fashion-MNIST test accuracy (%), mean ± sd over seeds {args.seeds}, '
                 f'budget {args.budget}, readout {name}', header]
        wins: dict[str, list[int]] = {}
        for method, cells in summary.items():
            lines.append(f'{method:<18}' + ''.join(
                f'{cells[f"{k} {p}"]["mean"]:>7.1f}±{cells[f"{k} {p}"]["sd"]:<4.1f}'
                for k, p in COLUMNS))
            if method not in (*BASELINES, 'supervised'):
                wins[method] = [sum(r['methods'][method][k][p]['test_acc']
                                    > r['methods']['random-init'][k][p]['test_acc']
                                    for k, p in COLUMNS) for r in method_runs]
        lines.append('columns beating random init, per seed: ' + ', '.join(
            f'{m} {"/".join(map(str, w))}' for m, w in wins.items()) + ' (of 6)')
        # The targets on the seeds' mean linear accuracy at 10 % labels (one shared rule).
        targets = pretext_targets({'fractions': [10], 'methods': {
            m: {'linear': {'10': {'test_acc': cells['linear 10']['mean'] / 100}}}
            for m, cells in summary.items()}})
        lines.append('linear 10 % vs random init / vs raw pixels (mean over seeds): '
                     + ', '.join(f'{m} {c["over_random"]:+.1f}/{c["over_raw"]:+.1f}'
                                 + ('' if c['met'] else ' (missed)')
                                 for m, c in targets['per_pretext'].items()))
        lines.append(f'targets: every pretext >= random init +{TARGET_OVER_RANDOM:g} and >= '
                     f'raw pixels +{TARGET_OVER_RAW:g}: '
                     + ('met' if targets['all_met'] else 'missed by ' + ', '.join(
                         m for m, c in targets['per_pretext'].items() if not c['met']))
                     + f'; best ({targets["best"]}) >= raw pixels +{TARGET_BEST_OVER_RAW:g}: '
                     + ('met' if targets['best_met'] else 'missed'))
        return summary, wins, targets, lines

    summary, wins, targets, lines = report(runs, readout)
    also = {}
    for other in also_readouts:
        o_summary, o_wins, o_targets, o_lines = report(
            [{'methods': r['also'][other]} for r in runs], other)
        also[other] = {'summary': o_summary, 'wins_per_seed': o_wins, 'targets': o_targets,
                       'table': '\n'.join(o_lines)}
        lines += [''] + o_lines
    table = '\n'.join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure = args.out.with_suffix('.png')
    pcts = [str(p) for p in FRACTIONS]
    curves = {m: {k: ([cells[f'{k} {p}']['mean'] for p in pcts],
                      [cells[f'{k} {p}']['sd'] for p in pcts]) for k in ('linear', 'knn')}
              for m, cells in summary.items()}
    plot_accuracy_vs_labels(curves, list(FRACTIONS), figure,
                            title=f'Fashion-MNIST, budget {args.budget}, readout {readout}, '
                                  f'mean ± sd over seeds {args.seeds}')
    args.out.write_text(json.dumps({
        'arguments': {'seeds': args.seeds, 'budget': args.budget, 'tasks': tasks,
                      'out_root': str(args.out_root), 'readout': readout,
                      'also_readout': list(also_readouts), 'set': task_params,
                      'epochs': task_epochs,
                      'torch_threads': _threads()},
        'command': 'python benchmarks/eval_pretext_seeds.py ' + ' '.join(
            argv if argv is not None else sys.argv[1:]),
        'seeds': args.seeds, 'budget': args.budget, 'summary': summary,
        'wins_per_seed': wins, 'targets': targets, 'readout': readout, 'also': also,
        'seconds_per_seed': [r['seconds'] for r in runs],
        'train_seconds_per_seed': {m: [r['methods'][m].get('train_seconds') for r in runs]
                                   for m in tasks},
        'figure': figure.name,
        'table': table}, indent=2))
    print(f'wrote {args.out} and {figure}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
