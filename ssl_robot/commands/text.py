"""`ssl-robot text-pretrain` and `ssl-robot text-eval`: the NLP pretext tasks.

text-pretrain trains one task (mlm, nsp, ar, rtd) on a text folder (the Python docs by
default) with the shared trainer, saves the tokenizer next to the checkpoints, prints
the held-out metrics (and samples for ar) and can export the encoder to ONNX.
text-eval pre-trains all four and prints one table against random init and baselines,
with a downstream WordNet gloss probe (see `ssl_robot.text.evaluate`) and fine-tuning on
man page sections against training from scratch (`ssl_robot.text.finetune`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssl_robot.commands.argtypes import device, finite_float, int_at_least, out_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot text-pretrain` and `ssl-robot text-eval`."""
    from ssl_robot.text.data import MAN_ROOT, PYTHON_DOCS, WORDNET_DIR

    pre = subparsers.add_parser(
        'text-pretrain', help='pre-train one NLP pretext task (mlm, nsp, ar, rtd)',
        description='Pre-train one NLP pretext task on a text folder with the shared trainer.')
    pre.add_argument('--task', choices=('mlm', 'nsp', 'ar', 'rtd'), required=True)
    pre.add_argument('--corpus', type=Path, default=PYTHON_DOCS,
                     help='folder of .rst.txt/.txt/.rst/.md files (default: Python docs)')
    pre.add_argument('--out', type=out_dir, default=None, help='run directory '
                     '(default runs/text/<task>)')
    pre.add_argument('--tokenizer', type=Path, default=None,
                     help='existing tokenizer.json to use (default: train one)')
    pre.add_argument('--max-chars', type=int_at_least(0), default=0,
                     help='read at most this much text (0: all)')
    pre.add_argument('--vocab-size', type=int_at_least(16, 1_000_000), default=4000)
    pre.add_argument('--max-len', type=int_at_least(4, 8192), default=64)
    pre.add_argument('--dim', type=int_at_least(8, 8192), default=128)
    pre.add_argument('--depth', type=int_at_least(1, 64), default=2)
    pre.add_argument('--heads', type=int_at_least(1, 256), default=4,
                     help='attention heads (must divide --dim)')
    pre.add_argument('--steps', type=int_at_least(1), default=1000, help='optimiser steps')
    pre.add_argument('--batch-size', type=int_at_least(1), default=32)
    pre.add_argument('--lr', type=finite_float(0.0, low_ok=False), default=1e-3)
    pre.add_argument('--seed', type=int_at_least(0), default=0)
    pre.add_argument('--device', type=device, default='auto')
    pre.add_argument('--onnx', action='store_true', help='export the encoder to '
                     'OUT/encoder.onnx')
    pre.add_argument('--prompt', action='append', default=None,
                     help='ar: prompt(s) to continue after training')
    pre.add_argument('--rtd-replacement', choices=('generator', 'uniform'),
                     default='generator', help="rtd: ELECTRA's generator samples, or (an "
                     'ablation) tokens drawn uniformly from the vocabulary')
    pre.set_defaults(func=run_pretrain)

    ev = subparsers.add_parser(
        'text-eval', help='pre-train and evaluate all NLP pretext tasks (one table)',
        description='Pre-train MLM, NSP, AR and RTD; evaluate each vs random init and '
                    'baselines, downstream on WordNet glosses (frozen) and man page '
                    'sections (fine-tuned vs from scratch).')
    ev.add_argument('--budget', choices=('small', 'full'), default='small',
                    help='small: 800 steps per task, ~33 min on 2 shared CPU cores '
                         '(OMP_NUM_THREADS=1): ~18 of pre-training and probe, ~15 of '
                         'fine-tuning over 3 seeds (--finetune-seeds 1: ~5, --no-finetune: '
                         'none); full: bigger model, 5000 steps (hours on a CPU)')
    ev.add_argument('--out', type=Path, default=Path('runs/text_eval'))
    ev.add_argument('--corpus', type=Path, default=PYTHON_DOCS)
    ev.add_argument('--wordnet', type=Path, default=WORDNET_DIR)
    ev.add_argument('--man', type=Path, default=MAN_ROOT,
                    help='man page folder of the fine-tuning task (Debian manpages, '
                         'manpages-dev)')
    ev.add_argument('--no-finetune', action='store_true',
                    help='skip fine-tuning on man page sections')
    ev.add_argument('--steps', type=int_at_least(0), default=0,
                    help="override the budget's steps per task")
    ev.add_argument('--finetune-seeds', type=int_at_least(1, 100), default=3,
                    help='fine-tuning runs per encoder and label fraction, each with its '
                         'own split and seed (the table shows mean ± sd)')
    ev.add_argument('--seed', type=int, default=0)
    ev.add_argument('--resume', action='store_true',
                    help='continue an interrupted run in --out (same budget): finished '
                         'tasks are evaluated, not trained again; an unfinished one '
                         'continues from its last epoch')
    ev.set_defaults(func=run_eval)


def run_pretrain(args: argparse.Namespace) -> int:
    """Train one task; print its held-out metrics."""
    from ssl_robot.text.evaluate import Budget, prepare_corpus, train_task
    from ssl_robot.text.model import export_text_encoder, TextModelConfig
    from ssl_robot.text.tasks import ARTask, TASKS
    from ssl_robot.text.tokenizer import TextTokenizer

    if args.dim % args.heads:
        from ssl_robot.errors import ConfigError
        raise ConfigError(f'--heads {args.heads} does not divide --dim {args.dim}')
    out = args.out or Path('runs/text') / args.task
    tokenizer = TextTokenizer.load(args.tokenizer) if args.tokenizer else None
    corpus = prepare_corpus(args.corpus, max_chars=args.max_chars,
                            vocab_size=args.vocab_size, seed=args.seed, tokenizer=tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    corpus.tokenizer.save(out / 'tokenizer.json')
    cfg = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=args.max_len,
                          dim=args.dim, depth=args.depth, heads=args.heads)
    extra = {'replacement': args.rtd_replacement} if args.task == 'rtd' else {}
    task = TASKS[args.task](corpus, cfg, **extra)
    budget = Budget(max_chars=args.max_chars, vocab_size=args.vocab_size,
                    max_len=args.max_len, dim=args.dim, depth=args.depth, heads=args.heads,
                    steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                    probe_train=0, probe_test=0, probe_steps=0)
    model, metrics, seconds = train_task(task, budget, out, seed=args.seed)
    print(f'{args.task}: {corpus.n_tokens("train")} training tokens, {seconds:.0f} s')
    print(json.dumps(metrics, indent=2))
    if isinstance(task, ARTask):
        for prompt in args.prompt or ['The', 'To create a']:
            print(f'sample: {task.generate(prompt, 40, temperature=0.8, top_k=40)!r}')
    if args.onnx:
        report = export_text_encoder(model.encoder, out / 'encoder.onnx', causal=task.causal,
                                     task=args.task, extra={'tokenizer': 'tokenizer.json'})
        print(f'exported {report.path} (max |torch - onnxruntime| {report.max_abs_diff:.2g})')
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run the whole text evaluation; print the table."""
    from ssl_robot.text.evaluate import run_text_eval

    results = run_text_eval(args.out, budget=args.budget, corpus_root=args.corpus,
                            wordnet_root=args.wordnet,
                            man_root=None if args.no_finetune else args.man,
                            seed=args.seed, steps=args.steps,
                            resume=args.resume, finetune_seeds=args.finetune_seeds)
    print(results['table'])
    print(f'results: {args.out / "results.json"}, plot: {args.out / "text_eval.png"} '
          f'({results["seconds"]:.0f} s)')
    return 0
