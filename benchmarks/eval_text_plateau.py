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

`--experiment finetune --run DIR`: the encoders of a text-eval run (DIR/<task>/best.pt,
DIR/tokenizer.json) and random init fine-tuned on man page sections at 10 % of the labels
under several recipes (learning rate, layer-wise decay, epochs), over `--seeds`
(results/text_plateau_finetune.json). `--variants 'chosen on validation' ['lr 5e-4 (old)']`:
the recipe chosen per encoder, seed and fraction on the validation split from
`FINETUNE_GRID` (learning rate 1e-4 / 3e-4 / 1e-3, constant or warm-up + decay, mean or
[CLS] pooling; 'chosen on validation, wider grid': `FINETUNE_GRID_WIDER`, also 3e-3 and
3 x the steps), the from-scratch models chosen the same way; the test split is read by the
chosen model only (results/text_plateau_finetune_lr.json; `--finetune-out DIR` keeps the
trainer runs, so an interrupted call continues).

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
from typing import Any

import torch

from ssl_robot.text.data import MAN_SECTIONS, PYTHON_DOCS, read_man_pages
from ssl_robot.text.evaluate import (
    Budget,
    most_frequent_token_accuracy,
    prepare_corpus,
    train_task,
)
from ssl_robot.text.finetune import finetune_encoders, FINETUNE_GRID, FINETUNE_GRID_WIDER
from ssl_robot.text.model import TextModelConfig, TextTransformer
from ssl_robot.text.tasks import MLMTask, NSPTask, RTDTask, TASKS
from ssl_robot.text.tokenizer import TextTokenizer
from ssl_robot.train import load_checkpoint

RESULTS = Path(__file__).resolve().parent / 'results' / 'text_plateau.json'
#: (task, constructor keywords) per experiment; NSP's lr_scale multiplies --lr.
PLAIN = {'segments': False, 'dynamic': False, 'pooling': 'cls'}
EXPERIMENTS = {
    'nsp': {'nsp alone': (NSPTask, {**PLAIN, 'lr_scale': 1.0}),
            'nsp alone, lr / 4': (NSPTask, {**PLAIN, 'lr_scale': 0.25}),
            'nsp alone, lr / 8': (NSPTask, {**PLAIN, 'lr_scale': 0.125}),
            'nsp + mlm (BERT)': (NSPTask, {**PLAIN, 'mlm_weight': 1.0, 'lr_scale': 1.0}),
            'nsp + mlm, lr / 4': (NSPTask, {**PLAIN, 'mlm_weight': 1.0, 'lr_scale': 0.25}),
            'nsp segments, lr / 4': (NSPTask, {**PLAIN, 'segments': True, 'lr_scale': 0.25}),
            # Issue 18, round 2: pairs drawn afresh per read, segment pooling.
            'fixed pairs, lr / 4': (NSPTask, {**PLAIN, 'lr_scale': 0.25, 'dynamic': False}),
            'fresh pairs, lr / 4': (NSPTask, {**PLAIN, 'lr_scale': 0.25, 'dynamic': True}),
            'fresh segments, lr / 4': (NSPTask, {**PLAIN, 'segments': True, 'lr_scale': 0.25,
                                                 'dynamic': True}),
            'fresh segments, pair features, lr / 4': (NSPTask, {
                'segments': True, 'lr_scale': 0.25, 'dynamic': True, 'pooling': 'segments'}),
            'fresh segments, pair features, lr': (NSPTask, {
                'segments': True, 'lr_scale': 1.0, 'dynamic': True, 'pooling': 'segments'}),
            'fresh segments, pair features + mlm, lr / 4': (NSPTask, {
                'segments': True, 'lr_scale': 0.25, 'dynamic': True, 'pooling': 'segments',
                'mlm_weight': 1.0})},
    'rtd': {'generator 1/4 width': (RTDTask, {'generator_scale': 0.25}),
            'generator 1/2 width': (RTDTask, {'generator_scale': 0.5}),
            'generator full width': (RTDTask, {'generator_scale': 1.0})},
}
METRIC = {'nsp': 'nsp_accuracy', 'rtd': 'rtd_auc'}
#: Fine-tuning recipes: (lr, layer_decay, epochs).
FINETUNE_RECIPES = {'lr 5e-4 (old)': (5e-4, 1.0, 6), 'lr 5e-4, decay 0.8': (5e-4, 0.8, 6),
                    'lr 1e-3, decay 0.8': (1e-3, 0.8, 6), 'lr 2e-4': (2e-4, 1.0, 6),
                    'lr 5e-4, 12 epochs': (5e-4, 1.0, 12),
                    'lr 1e-3, decay 0.5, 12 epochs': (1e-3, 0.5, 12),
                    'lr 2e-3, decay 0.5': (2e-3, 0.5, 6)}
#: Recipes chosen on validation from a grid (per encoder, seed and fraction): name -> grid.
FINETUNE_GRIDS = {'chosen on validation': FINETUNE_GRID,
                  'chosen on validation, wider grid': FINETUNE_GRID_WIDER}


def load_encoders(run: Path) -> tuple[dict[str, tuple[TextTransformer, bool]], TextTokenizer]:
    """The pretrained encoders of a text-eval run and the random-init baselines."""
    tokenizer = TextTokenizer.load(run / 'tokenizer.json')
    encoders = {}
    for name, task_cls in TASKS.items():
        state = load_checkpoint(run / name / 'best.pt')
        cfg = TextModelConfig(**state['config']['task_params']['model'])
        encoder = TextTransformer(cfg)
        encoder.load_state_dict({k.removeprefix('encoder.'): v for k, v in state['model'].items()
                                 if k.startswith('encoder.')})
        encoders[name] = (encoder, task_cls.causal)
    torch.manual_seed(0)
    encoders['random'] = (TextTransformer(cfg), False)
    encoders['random_causal'] = (encoders['random'][0], True)
    return encoders, tokenizer


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tuning recipes at 10 % labels, one table, results/text_plateau_finetune.json.

    With a grid variant among `--variants`: results/text_plateau_finetune_lr.json, with
    each run's chosen recipe and every candidate's validation figures.
    """
    encoders, tokenizer = load_encoders(args.run)
    pages = read_man_pages()
    recipes = {**{name: {'lr': lr, 'layer_decay': decay, 'epochs': epochs, 'grid': None}
                  for name, (lr, decay, epochs) in FINETUNE_RECIPES.items()},
               **{name: {'lr': 5e-4, 'layer_decay': 1.0, 'epochs': 6, 'grid': grid}
                  for name, grid in FINETUNE_GRIDS.items()}}
    wanted = args.variants or list(FINETUNE_RECIPES)
    unknown = set(wanted) - set(recipes)
    if unknown:
        raise SystemExit(f'unknown variants {sorted(unknown)}; known: {list(recipes)}')
    with_grid = any(recipes[name]['grid'] for name in wanted)
    results = RESULTS.with_name('text_plateau_finetune_lr.json' if with_grid
                                else 'text_plateau_finetune.json')
    rows = {}
    for name in wanted:
        recipe = recipes[name]
        start = time.monotonic()
        out = finetune_encoders(
            encoders, pages, len(MAN_SECTIONS), tokenizer, epochs=recipe['epochs'],
            lr=recipe['lr'], layer_decay=recipe['layer_decay'], grid=recipe['grid'],
            seeds=args.seeds, fractions=(0.1,), resume=args.finetune_out is not None,
            # Grids share one folder per recipe (a larger grid re-uses a smaller one's runs).
            out_dir=None if args.finetune_out is None
            else args.finetune_out / ('grid' if recipe['grid'] else name))
        rows[name] = {**{k: v for k, v in recipe.items() if k != 'grid'},
                      'accuracy': {k: v[0] for k, v in out['accuracy'].items()},
                      'accuracy_sd': {k: v[0] for k, v in out['accuracy_sd'].items()},
                      'accuracy_seeds': {k: [a[0] for a in v]
                                         for k, v in out['accuracy_seeds'].items()},
                      'majority_accuracy': out['majority_accuracy'],
                      'seconds': time.monotonic() - start}
        if recipe['grid']:
            rows[name]['grid'] = list(recipe['grid'])
            rows[name]['chosen'] = {k: [{key: r[key] for key in (
                'seed', 'recipe', 'val_acc', 'val_loss', 'test_acc', 'best_epoch')} for r in v]
                for k, v in out['runs'].items()}
            rows[name]['candidates'] = {k: [r['candidates'] for r in v]
                                        for k, v in out['runs'].items()}
        print(name, {k: f'{v:.3f}' for k, v in rows[name]['accuracy'].items()}, flush=True)
        save_runs(results, args, rows)
    names = list(encoders)
    print(f'man section fine-tuning at 10 % labels ({out["n_train"]} training pages), '
          f'test accuracy, mean +- sd over seeds {args.seeds}')
    print(f'{"recipe":<32}' + ''.join(f'{n:>15}' for n in names))
    for name, row in rows.items():
        print(f'{name:<32}' + ''.join(f'{row["accuracy"][n]:>8.3f}+-{row["accuracy_sd"][n]:.3f}'
                                      for n in names))
        for n, chosen in row.get('chosen', {}).items():
            print(f'  {n:<14} chose ' + '; '.join(
                f'seed {c["seed"]}: {c["recipe"]} (val {c["val_acc"]:.3f})' for c in chosen))
    return 0


def save_runs(out: Path, args: argparse.Namespace, rows: dict[str, Any],
              extra: dict[str, Any] | None = None) -> None:
    """Write `rows` to `out` after every variant, merged with the runs of earlier calls.

    Variants run in several calls of the same other arguments add up in one file.
    """
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if args.variants and out.exists():
        old = json.loads(out.read_text())
        same = {k: v for k, v in old['arguments'].items() if k != 'variants'} == {
            k: v for k, v in arguments.items() if k != 'variants'}
        if same:
            rows = {**old['runs'], **rows}
            arguments = {**arguments, 'variants': list(rows)}
    out.write_text(json.dumps({'arguments': arguments, **(extra or {}), 'runs': rows},
                              indent=2))


def run_recipes(args: argparse.Namespace) -> int:
    """NSP or RTD variants, one table, results/text_plateau_<experiment>.json."""
    corpus = prepare_corpus(PYTHON_DOCS, max_chars=args.max_chars, vocab_size=args.vocab_size,
                            seed=args.seed)
    cfg = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=64, dim=args.dim,
                          depth=2, heads=4)
    rows = {}
    out = RESULTS.with_name(f'text_plateau_{args.experiment}'
                            f'{"_" + str(args.steps) if args.variants else ""}.json')
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
            model, metrics, _ = train_task(task, budget, Path(tmp), seed=args.seed,
                                           progress=False)
        rows[name] = {**metrics, 'lr': lr, 'task_params': task.params(),
                      'seconds': time.monotonic() - start}
        if isinstance(task, NSPTask):
            # Training documents, as many pairs as held out: seen pairs (fixed pairs) or
            # seen positives and mostly unseen negatives (fresh pairs). Far above the
            # held-out figure: over-fitting; level with it: under-fitting.
            n_val = len(task.datasets()[1])
            train_pairs = task.examples(corpus.train, task.seed)[:n_val]
            loader = [task.collate(train_pairs[i:i + 64])
                      for i in range(0, len(train_pairs), 64)]
            rows[name]['train_nsp_accuracy'] = task.evaluate(model.eval(),
                                                             loader)['nsp_accuracy']
        print(name, {k: v for k, v in rows[name].items() if k != 'task_params'}, flush=True)
        save_runs(out, args, rows, {'train_tokens': corpus.n_tokens('train')})
    metric = METRIC[args.experiment]
    print(f'{args.experiment}, {args.steps} steps, dim {args.dim}, '
          f'{corpus.n_tokens("train")} training tokens of the Python docs; held-out documents')
    print(f'{"variant":<40}{"lr":>8}{metric:>14}{"train docs":>11}{"val loss":>10}'
          f'{"seconds":>9}')
    for name, m in rows.items():
        print(f'{name:<40}{m["lr"]:>8.1e}{m[metric]:>14.3f}'
              f'{m.get("train_" + metric, float("nan")):>11.3f}{m["val_loss"]:>10.3f}'
              f'{m["seconds"]:>9.0f}')
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--experiment', choices=('mlm', 'nsp', 'rtd', 'finetune'),
                        default='mlm')
    parser.add_argument('--variants', nargs='*', default=None,
                        help='nsp/rtd: run only these variants (default: all)')
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--max-chars', type=int, default=300_000)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--vocab-size', type=int, default=2000)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--run', type=Path, default=None,
                        help='finetune: a text-eval run directory')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='finetune: seeds (split, subset, training)')
    parser.add_argument('--finetune-out', type=Path, default=None,
                        help='finetune: keep the trainer runs here and continue them')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.experiment == 'finetune':
        if args.run is None:
            parser.error('--experiment finetune needs --run DIR (a text-eval run)')
        return run_finetune(args)
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
