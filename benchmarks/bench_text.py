"""Tokens/s of NLP pre-training on CPU, per pretext task, through the shared trainer.

Each task trains the same small transformer (the text-eval 'small' size) for a fixed
number of optimiser steps on the Python docs corpus (or a synthetic corpus when the
Debian data is missing). The baseline in the same run is the bare encoder's forward +
backward on the same token blocks (no head, no masking, no trainer); each task's ratio
to it shows what its head, masking/sampling and the trainer cost.

    python benchmarks/bench_text.py [--steps 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import torch

from ssl_robot.text.data import PYTHON_DOCS, split_documents
from ssl_robot.text.evaluate import prepare_corpus
from ssl_robot.text.model import TextModelConfig, TextTransformer
from ssl_robot.text.tasks import TASKS, TextCorpus
from ssl_robot.text.tokenizer import train_tokenizer
from ssl_robot.train import TrainConfig, Trainer

RESULTS = Path(__file__).resolve().parent / 'results' / 'text.json'


def _corpus(max_chars: int) -> tuple[TextCorpus, str]:
    if PYTHON_DOCS.exists():
        return prepare_corpus(PYTHON_DOCS, max_chars=max_chars, vocab_size=4000), 'python-docs'
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
    from text_fixtures import synthetic_docs
    docs = synthetic_docs(n_docs=200, n_sentences=60)
    tok = train_tokenizer([' '.join(d) for d in docs], vocab_size=1000)
    train, val = split_documents(len(docs), seed=0)
    return TextCorpus.from_sentences(docs, tok, train_idx=train, val_idx=val), 'synthetic'


def bench_encoder(cfg: TextModelConfig, batch: int, steps: int) -> float:
    """Tokens/s of forward + backward + AdamW step of the bare encoder."""
    torch.manual_seed(0)
    enc = TextTransformer(cfg)
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    ids = torch.randint(5, cfg.vocab_size, (batch, cfg.max_len))
    mask = torch.ones_like(ids)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()  # after warm-up
        loss = enc(ids, mask).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * cfg.max_len * steps / (time.perf_counter() - start)


def bench_task(name: str, corpus: TextCorpus, cfg: TextModelConfig, batch: int,
               steps: int) -> float:
    """Tokens/s of `steps` trainer steps of a task (validation excluded)."""
    task = TASKS[name](corpus, cfg, max_train_blocks=batch * steps)
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(out_dir=tmp, epochs=1, max_steps=steps, batch_size=batch,
                             progress=False, device='cpu')
        result = Trainer(task, config).fit()
    seconds = result.history[0]['seconds']
    # Tokens per step: sequences x tokens the model reads (NSP pairs are padded).
    train, _ = task.datasets()
    if name == 'nsp':
        tokens = sum(len(train[i][0]) for i in range(min(len(train), batch * steps)))
    else:
        tokens = min(len(train), batch * steps) * cfg.max_len
    return tokens / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus, source = _corpus(max_chars=1_500_000)
    cfg = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=64, dim=128,
                          depth=2, heads=4)
    base = bench_encoder(cfg, args.batch_size, args.steps)
    rows = {'encoder fwd+bwd (baseline)': base}
    for name in TASKS:
        rows[name] = bench_task(name, corpus, cfg, args.batch_size, args.steps)
    print(f'NLP pre-training throughput on CPU ({args.threads} threads, corpus {source}, '
          f'dim {cfg.dim} depth {cfg.depth} len {cfg.max_len} batch {args.batch_size})')
    print(f'{"run":<28} {"tokens/s":>10} {"vs baseline":>12}')
    for name, rate in rows.items():
        print(f'{name:<28} {rate:>10.0f} {rate / base:>11.2f}x')
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        'arguments': vars(args), 'benchmark': 'text', 'threads': args.threads, 'steps': args.steps,
        'batch_size': args.batch_size, 'corpus': source, 'model': cfg.to_dict(),
        'tokens_per_s': rows, 'ratio_vs_baseline': {k: v / base for k, v in rows.items()},
    }, indent=2))
    print(f'wrote {RESULTS}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
