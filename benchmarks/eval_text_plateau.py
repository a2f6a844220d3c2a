"""Do the NLP pretexts leave their plateaus? Short recipe experiments on the Python docs.

`--experiment mlm` (the default): the same MLM (text-eval's recipe, a smaller model)
twice, with the learned relative-position attention bias and its locality prior
(`TextModelConfig.relative_positions`, the default) and with absolute position
embeddings only (the model before issue 18); held-out accuracy at [MASK] positions next
to the most-frequent-token baseline of the same run
(results/text_plateau.json).

`--experiment nsp`: next-sentence prediction alone at two peak learning rates, and
jointly with a masked-LM loss on the same pairs (BERT's recipe); held-out is-next
accuracy on unmasked pairs (results/text_plateau_nsp.json).

`--experiment rtd`: ELECTRA with generators of 1/4, 1/2 and the full discriminator
width; held-out detector ROC-AUC (results/text_plateau_rtd.json).

    python benchmarks/eval_text_plateau.py [--experiment mlm] [--steps 200]
        [--max-chars 300000]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
import tempfile
import time

import torch

from ssl_robot.text.data import PYTHON_DOCS
from ssl_robot.text.evaluate import (
    Budget,
    most_frequent_token_accuracy,
    prepare_corpus,
    train_task,
)
from ssl_robot.text.model import TextModelConfig
from ssl_robot.text.tasks import MLMTask, NSPTask, RTDTask

RESULTS = Path(__file__).resolve().parent / 'results' / 'text_plateau.json'
#: (task, constructor keywords) per experiment; NSP's lr_scale multiplies --lr.
PLAIN = {'segments': False}
EXPERIMENTS = {
    'nsp': {'nsp alone': (NSPTask, {**PLAIN, 'lr_scale': 1.0}),
            'nsp alone, lr / 4': (NSPTask, {**PLAIN, 'lr_scale': 0.25}),
            'nsp alone, lr / 8': (NSPTask, {**PLAIN, 'lr_scale': 0.125}),
            'nsp + mlm (BERT)': (NSPTask, {**PLAIN, 'mlm_weight': 1.0, 'lr_scale': 1.0}),
            'nsp + mlm, lr / 4': (NSPTask, {**PLAIN, 'mlm_weight': 1.0, 'lr_scale': 0.25}),
            'nsp segments, lr / 4': (NSPTask, {'segments': True, 'lr_scale': 0.25})},
    'rtd': {'generator 1/4 width': (RTDTask, {'generator_scale': 0.25}),
            'generator 1/2 width': (RTDTask, {'generator_scale': 0.5}),
            'generator full width': (RTDTask, {'generator_scale': 1.0})},
}
METRIC = {'nsp': 'nsp_accuracy', 'rtd': 'rtd_auc'}


def run_recipes(args: argparse.Namespace) -> int:
    """NSP or RTD variants, one table, results/text_plateau_<experiment>.json."""
    corpus = prepare_corpus(PYTHON_DOCS, max_chars=args.max_chars, vocab_size=args.vocab_size,
                            seed=args.seed)
    cfg = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=64, dim=args.dim,
                          depth=2, heads=4)
    rows = {}
    for name, (task_cls, kwargs) in EXPERIMENTS[args.experiment].items():
        if args.variants and name not in args.variants:
            continue
        budget = Budget(max_chars=args.max_chars, vocab_size=args.vocab_size, max_len=64,
                        dim=args.dim, depth=2, heads=4, steps=args.steps, batch_size=32,
                        lr=args.lr, probe_train=0, probe_test=0, probe_steps=0)
        task = task_cls(corpus, cfg, **kwargs)
        lr = args.lr * task.lr_scale
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            _, metrics, _ = train_task(task, budget, Path(tmp), seed=args.seed, progress=False)
        rows[name] = {**metrics, 'lr': lr, 'task_params': task.params(),
                      'seconds': time.monotonic() - start}
    metric = METRIC[args.experiment]
    print(f'{args.experiment}, {args.steps} steps, dim {args.dim}, '
          f'{corpus.n_tokens("train")} training tokens of the Python docs; held-out documents')
    print(f'{"variant":<24}{"lr":>8}{metric:>14}{"val loss":>10}{"seconds":>9}')
    for name, m in rows.items():
        print(f'{name:<24}{m["lr"]:>8.1e}{m[metric]:>14.3f}{m["val_loss"]:>10.3f}'
              f'{m["seconds"]:>9.0f}')
    out = RESULTS.with_name(f'text_plateau_{args.experiment}'
                            f'{"_" + str(args.steps) if args.variants else ""}.json')
    out.write_text(json.dumps({'arguments': vars(args), 'train_tokens': corpus.n_tokens('train'),
                               'runs': rows}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--experiment', choices=('mlm', 'nsp', 'rtd'), default='mlm')
    parser.add_argument('--variants', nargs='*', default=None,
                        help='nsp/rtd: run only these variants (default: all)')
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--max-chars', type=int, default=300_000)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--vocab-size', type=int, default=2000)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.experiment != 'mlm':
        return run_recipes(args)
    corpus = prepare_corpus(PYTHON_DOCS, max_chars=args.max_chars, vocab_size=args.vocab_size,
                            seed=args.seed)
    budget = Budget(max_chars=args.max_chars, vocab_size=args.vocab_size, max_len=64, dim=args.dim,
                    depth=2, heads=4, steps=args.steps, batch_size=32, lr=args.lr,
                    probe_train=0, probe_test=0, probe_steps=0)
    base = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=64, dim=args.dim,
                           depth=2, heads=4)
    rows = {}
    for name, relative in (('relative-position prior', True), ('absolute only', False)):
        task = MLMTask(corpus, dataclasses.replace(base, relative_positions=relative))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            _, metrics, _ = train_task(task, budget, Path(tmp), seed=args.seed, progress=False)
        rows[name] = {**metrics, 'seconds': time.monotonic() - start}
    baseline = most_frequent_token_accuracy(task)
    print(f'MLM, {args.steps} steps, dim {args.dim}, {corpus.n_tokens("train")} training '
          f'tokens of the Python docs; held-out documents')
    print(f'{"model":<26}{"acc at [MASK]":>14}{"val loss":>10}{"seconds":>9}')
    for name, m in rows.items():
        print(f'{name:<26}{m["mlm_masked_accuracy"]:>14.3f}{m["val_loss"]:>10.3f}'
              f'{m["seconds"]:>9.0f}')
    print(f'{"most-frequent token":<26}{baseline:>14.3f}')
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({'arguments': vars(args), 'most_frequent_accuracy': baseline,
                                   'train_tokens': corpus.n_tokens('train'),
                                   'runs': rows}, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
