"""`ssl-robot eval RUN --dataset D`: held-out metrics next to same-run baselines."""
from __future__ import annotations

import argparse
from typing import Any

from ssl_robot.commands.argtypes import int_at_least, out_dir


def add_parser(subparsers: Any) -> None:
    """Register `ssl-robot eval`."""
    p = subparsers.add_parser(
        'eval', help='evaluate a trained model against baselines',
        description='Per-distance/per-sensor AUC with bootstrap CI (obstacle), Spearman '
                    '(terrain), retrieval (and cross-view retrieval on a dataset with extra '
                    'camera views) and linear probe (TCN), next to chance, the same '
                    'model at random init and, for pretrained encoders, the model trained '
                    "from scratch. On simulator bags also AUC against the simulator's "
                    'geometric truth for every frame with a true pose, next to a hand-made '
                    'ground-colour detector and the model trained on the truth, and the '
                    "pseudo-labels' precision/recall vs truth. Prints a table, writes "
                    'eval.json and eval.png.')
    p.add_argument('run', help='run directory')
    p.add_argument('--dataset', default=None, help="dataset (default: the run's own)")
    p.add_argument('--out', type=out_dir, default=None,
                   help='output directory (default RUN/eval)')
    p.add_argument('--bootstrap', type=int_at_least(1), default=500, help='bootstrap resamples')
    p.add_argument('--seed', type=int_at_least(0), default=0,
                   help='seed of baselines and bootstrap')
    p.add_argument('--train-baseline', action='store_true', default=None,
                   help='also train the model from random init on the same labels')
    p.add_argument('--no-truth-upper-bound', dest='truth_upper_bound', action='store_false',
                   help='on simulator data, skip training the same model on the '
                        "simulator's truth (the upper bound of the truth table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table."""
    from ssl_robot.robot.evaluate import evaluate_run
    evaluate_run(args.run, dataset=args.dataset, out_dir=args.out, n_boot=args.bootstrap,
                 seed=args.seed, train_baseline=args.train_baseline,
                 truth_upper_bound=args.truth_upper_bound)
    return 0
