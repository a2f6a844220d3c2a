"""`ssl-robot text-eval`: pre-train the four NLP pretext tasks and evaluate them.

One run, one table: each pretext task's own held-out metric next to the same model from
random initialisation and a simple baseline (AR perplexity vs a unigram model, MLM
accuracy vs always predicting the most frequent token, NSP vs chance, RTD vs always
answering "original"), then WordNet gloss classification (45 lexicographer files) with
1 %, 10 % and 100 % of the training labels, by a linear probe on each frozen encoder's
mean-pooled features, against the same architecture from random init and the
majority class.

Protocol of the probe: frozen encoder, features = the hidden states after the embeddings
and after every block, each averaged over the gloss tokens and concatenated (the AR
encoder runs with its causal mask, as trained), standardised
with the training subset's statistics; multinomial logistic regression trained
full-batch with L-BFGS; weight decay chosen on the validation split; accuracy on the
test split. Splits are by synset with a fixed seed; the label subsets are nested.
"""
from __future__ import annotations

from collections import Counter
import dataclasses
from dataclasses import dataclass
import json
import logging
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_robot.metrics import logistic_probe
from ssl_robot.text import TextError
from ssl_robot.text.data import (
    LEXNAMES,
    load_corpus,
    MAN_ROOT,
    MAN_SECTIONS,
    PYTHON_DOCS,
    read_man_pages,
    read_wordnet_glosses,
    split_documents,
    split_glosses,
    WORDNET_DIR,
)
from ssl_robot.text.finetune import finetune_encoders
from ssl_robot.text.model import mean_pool, TextModelConfig, TextTransformer
from ssl_robot.text.tasks import ARTask, MLMTask, pad_sequences, TASKS, TextCorpus, TextTask
from ssl_robot.text.tokenizer import TextTokenizer, train_tokenizer
from ssl_robot.train import TrainConfig, Trainer

log = logging.getLogger('ssl_robot.text')

#: Label fractions of the downstream probe.
LABEL_FRACTIONS = (0.01, 0.1, 1.0)
#: The man-section fine-tuning recipe (`benchmarks/eval_text_plateau.py --experiment
#: finetune`).
FINETUNE_RECIPE = {'lr': 5e-4, 'layer_decay': 1.0, 'epochs': 6}


@dataclass(frozen=True)
class Budget:
    """Sizes of one evaluation run.

    Attributes:
        max_chars: Corpus characters read (0: all).
        vocab_size: Tokenizer vocabulary.
        max_len, dim, depth, heads: Model size.
        steps: Optimiser steps per pretext task.
        batch_size: Sequences per step.
        lr: Peak learning rate.
        probe_train: Training glosses for the probe (0: the whole training split).
        probe_test: Test glosses (0: the whole test split).
        probe_steps: L-BFGS iterations of the logistic regression.
    """

    max_chars: int
    vocab_size: int
    max_len: int
    dim: int
    depth: int
    heads: int
    steps: int
    batch_size: int
    lr: float
    probe_train: int
    probe_test: int
    probe_steps: int


BUDGETS = {
    # ~18 min of pre-training and probing on 2 shared CPU cores with one torch thread, and
    # ~15 more for the fine-tuning over 3 seeds (--finetune-seeds 1: ~5; --no-finetune:
    # none). 800 steps: ~3 passes over the 0.57 M training tokens of the Python docs;
    # 1500 steps would take ~32 min of pre-training there.
    'small': Budget(max_chars=0, vocab_size=4000, max_len=64, dim=128, depth=2, heads=4,
                    steps=800, batch_size=32, lr=2e-3, probe_train=8000, probe_test=2000,
                    probe_steps=60),
    # Hours on a CPU; minutes on a GPU.
    'full': Budget(max_chars=0, vocab_size=8000, max_len=128, dim=256, depth=4, heads=4,
                   steps=5000, batch_size=64, lr=5e-4, probe_train=0, probe_test=0,
                   probe_steps=150),
}


def prepare_corpus(root: Path | str = PYTHON_DOCS, *, max_chars: int = 0,
                   vocab_size: int = 4000, seed: int = 0, val_fraction: float = 0.1,
                   tokenizer: TextTokenizer | None = None) -> TextCorpus:
    """Read, split (by document) and tokenise a corpus.

    The tokenizer is trained on the training documents unless one is given.

    Raises:
        TextError: When the corpus is missing or too small.
    """
    docs = load_corpus(root, max_chars=max_chars)
    train_idx, val_idx = split_documents(len(docs), val_fraction=val_fraction, seed=seed)
    if tokenizer is None:
        tokenizer = train_tokenizer((' '.join(docs[i]) for i in train_idx),
                                    vocab_size=vocab_size)
    return TextCorpus.from_sentences(docs, tokenizer, train_idx=train_idx, val_idx=val_idx)


def _val_loader(task: TextTask, batch_size: int) -> list[Any]:
    _, val = task.datasets()
    return [task.collate([val[i] for i in range(j, min(j + batch_size, len(val)))])
            for j in range(0, len(val), batch_size)]


def unigram_perplexity(corpus: TextCorpus, task: ARTask) -> float:
    """Held-out perplexity of an add-one unigram model of the training tokens.

    Measured on the same targets the AR model predicts.
    """
    train, val = task.datasets()
    counts = np.bincount(train.rows.reshape(-1).numpy(), minlength=corpus.tokenizer.vocab_size)
    logp = np.log((counts + 1) / (counts.sum() + len(counts)))
    targets = val.rows[:, 1:].reshape(-1).numpy()
    return float(math.exp(-logp[targets].mean()))


def most_frequent_token_accuracy(task: MLMTask) -> float:
    """MLM accuracy of always predicting the most frequent training token.

    Measured on the maskable held-out tokens, which masking selects uniformly.
    """
    train, val = task.datasets()
    num_special = task.tok.num_special
    train_ids = train.rows[train.rows >= num_special]
    top = int(torch.bincount(train_ids).argmax())
    val_ids = val.rows[val.rows >= num_special]
    return float((val_ids == top).float().mean())


def train_task(task: TextTask, budget: Budget, out_dir: Path, *, seed: int = 0,
               progress: bool = True,
               resume: bool = False) -> tuple[nn.Module, dict[str, float], float]:
    """Train one task on the shared trainer; returns (model, final metrics, seconds).

    Seconds are the training epochs' own (the run's history), so a resumed run reports
    the time of all its epochs, not of this call.

    Args:
        task: The task.
        budget: Steps, batch size and peak learning rate (times the task's `lr_scale`).
        out_dir: Run directory.
        seed: Seeds initialisation and data order.
        progress: Show progress.
        resume: Continue the run in `out_dir` from its last epoch (a finished run is not
            trained again: its best checkpoint is evaluated).

    Raises:
        TextError: When `resume` finds a run of other settings in `out_dir`.
    """
    config = TrainConfig(out_dir=str(out_dir), epochs=10_000, max_steps=budget.steps,
                         batch_size=budget.batch_size, lr=budget.lr * task.lr_scale,
                         weight_decay=0.01,
                         warmup_steps=max(1, budget.steps // 20), seed=seed, device='auto',
                         progress=progress, task=task.name, task_params=task.params())
    saved = Path(out_dir) / 'config.json'
    if resume and saved.exists():
        old = json.loads(saved.read_text())
        keys = ('max_steps', 'batch_size', 'lr', 'warmup_steps', 'seed', 'task')
        changed = [k for k in keys if old.get(k) != getattr(config, k)]
        if changed:
            raise TextError(f'{out_dir}: cannot resume, the run there differs in '
                            f'{", ".join(changed)} (use another --out)')
    result = Trainer(task, config).fit(resume=resume)
    return result.model, result.metrics, sum(r.get('seconds', 0.0) for r in result.history)


# ----------------------------------------------------------------------------- probe

def encode_glosses(texts: list[str], tokenizer: TextTokenizer,
                   max_len: int) -> list[list[int]]:
    """[CLS] gloss [SEP], truncated to `max_len`."""
    return [[tokenizer.cls_id, *ids[:max_len - 2], tokenizer.sep_id]
            for ids in tokenizer.encode_batch(texts)]


def encoder_features(encoder: TextTransformer, seqs: list[list[int]], *, causal: bool,
                     pad_id: int, batch_size: int = 256) -> torch.Tensor:
    """Features [N, (depth + 1) * D] of a frozen encoder.

    The hidden states after the embeddings and after every block, each mean-pooled over
    the real tokens, concatenated (the feature-based protocol of BERT, which pooled its
    last layers; a linear probe then weighs the layers itself).
    """
    encoder = encoder.eval()
    device = next(encoder.parameters()).device
    feats = torch.empty(len(seqs), (encoder.cfg.depth + 1) * encoder.cfg.dim)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # batches with less padding
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = pad_sequences([seqs[i] for i in idx], pad_id)
            ids, mask = ids.to(device), mask.to(device)
            states = encoder.layer_states(ids, mask, causal=causal)
            feats[idx] = torch.cat([mean_pool(h, mask) for h in states], 1).float().cpu()
    return feats


# ----------------------------------------------------------------------------- run

def run_text_eval(out_dir: Path | str, *, budget: str = 'small',
                  corpus_root: Path | str = PYTHON_DOCS,
                  wordnet_root: Path | str = WORDNET_DIR,
                  man_root: Path | str | None = MAN_ROOT, seed: int = 0,
                  steps: int = 0, progress: bool = True, resume: bool = False,
                  finetune_seeds: int = 3) -> dict[str, Any]:
    """Pre-train MLM, NSP, AR and RTD and evaluate them.

    Each is evaluated against random init and a baseline, every encoder is probed on
    WordNet glosses; results.json and text_eval.png are written under `out_dir`.

    Args:
        out_dir: Run directory (one sub-folder per pretext run).
        budget: 'small' (~33 min on 2 shared CPU cores, 15 of them the fine-tuning over
            3 seeds) or 'full'.
        corpus_root: Pre-training text folder.
        wordnet_root: WordNet data folder.
        man_root: Man page folder of the fine-tuning task (`ssl_robot.text.finetune`;
            Debian's manpages and manpages-dev); None: no fine-tuning.
        seed: Seeds the splits, initialisation and training.
        steps: Override the budget's optimiser steps per task (0: keep).
        progress: Show training progress.
        resume: Continue an interrupted run in `out_dir` (its tokenizer; each task from
            its last epoch, a finished one only evaluated).
        finetune_seeds: Fine-tuning seeds (seed, seed + 1, ...: one split, subset order
            and training seed each); the table shows their mean and standard deviation.

    Returns:
        The results (also in results.json), with the printed table under 'table'.

    Raises:
        TextError: When the corpus or WordNet is missing.
    """
    if budget not in BUDGETS:
        raise TextError(f'unknown budget {budget!r} (choose from {", ".join(BUDGETS)})')
    b = BUDGETS[budget]
    if steps:
        b = dataclasses.replace(b, steps=steps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    # Read both data sets first, so a missing one fails before any training.
    glosses = read_wordnet_glosses(wordnet_root)
    pages = read_man_pages(man_root) if man_root is not None else None
    saved_tokenizer = out_dir / 'tokenizer.json'
    corpus = prepare_corpus(corpus_root, max_chars=b.max_chars, vocab_size=b.vocab_size,
                            seed=seed, tokenizer=TextTokenizer.load(saved_tokenizer)
                            if resume and saved_tokenizer.exists() else None)
    corpus.tokenizer.save(saved_tokenizer)
    cfg = TextModelConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=b.max_len,
                          dim=b.dim, depth=b.depth, heads=b.heads)
    results: dict[str, Any] = {
        'arguments': {'budget': budget, 'steps': steps, 'seed': seed,
                      'finetune_seeds': finetune_seeds,
                      'corpus': str(corpus_root), 'wordnet': str(wordnet_root),
                      'man': None if man_root is None else str(man_root), 'resume': resume},
        'budget': budget, 'budget_params': b.__dict__, 'model': cfg.to_dict(), 'seed': seed,
        'torch_threads': torch.get_num_threads(), 'resumed': resume,
        'corpus': {'root': str(corpus_root), 'train_docs': len(corpus.train),
                   'val_docs': len(corpus.val), 'train_tokens': corpus.n_tokens('train'),
                   'val_tokens': corpus.n_tokens('val')},
        'pretext': {}, 'probe': {}}
    log.info('corpus: %d train / %d held-out documents, %d / %d tokens',
             len(corpus.train), len(corpus.val), corpus.n_tokens('train'),
             corpus.n_tokens('val'))

    encoders: dict[str, tuple[TextTransformer, bool]] = {}
    for name, task_cls in TASKS.items():
        task = task_cls(corpus, cfg)
        torch.manual_seed(seed)
        random_model = task.build_model()
        random_metrics = task.evaluate(random_model.eval(), _val_loader(task, b.batch_size))
        model, metrics, seconds = train_task(task, b, out_dir / name, seed=seed,
                                             progress=progress, resume=resume)
        entry = {'metrics': metrics, 'random_init': random_metrics, 'train_seconds': seconds}
        if isinstance(task, ARTask):
            entry['unigram_perplexity'] = unigram_perplexity(corpus, task)
            entry['samples'] = [task.generate(p, 30, temperature=0.8, top_k=40, seed=i)
                                for i, p in enumerate(['The', 'A list is', 'To create a'])]
        elif type(task) is MLMTask:  # noqa: E721 (RTDTask subclasses MLMTask)
            entry['most_frequent_accuracy'] = most_frequent_token_accuracy(task)
        results['pretext'][name] = entry
        encoders[name] = (model.encoder.cpu(), task.causal)
        log.info('%s: %s (%.0f s)', name, metrics, seconds)
    torch.manual_seed(seed)
    encoders['random'] = (TextTransformer(cfg), False)
    encoders['random_causal'] = (encoders['random'][0], True)

    results['probe'] = probe_encoders(encoders, glosses, corpus.tokenizer, b, seed=seed)
    if pages is not None:
        results['finetune'] = {
            'task': 'man page section from its prose (Debian manpages, manpages-dev)',
            'sections': list(MAN_SECTIONS),
            **finetune_encoders(encoders, pages, len(MAN_SECTIONS), corpus.tokenizer,
                                seeds=[seed + i for i in range(finetune_seeds)],
                                out_dir=out_dir / 'finetune', progress=False,
                                resume=resume, **FINETUNE_RECIPE)}
    results['seconds'] = time.monotonic() - start
    results['table'] = format_table(results)
    (out_dir / 'results.json').write_text(json.dumps(results, indent=2))
    plot_results(results, out_dir / 'text_eval.png')
    return results


def probe_encoders(encoders: dict[str, tuple[TextTransformer, bool]], glosses: list,
                   tokenizer: TextTokenizer, b: Budget, *, seed: int = 0) -> dict[str, Any]:
    """Linear probes on WordNet glosses for every encoder and label fraction."""
    train_idx, val_idx, test_idx = split_glosses(glosses, seed=seed)
    rng = np.random.default_rng(seed)
    # Fixed-seed subsets; the label fractions below are nested prefixes of train_idx.
    train_idx = list(rng.permutation(train_idx))
    if b.probe_train:
        train_idx = train_idx[:b.probe_train]
    if b.probe_test:
        test_idx = list(rng.permutation(test_idx))[:b.probe_test]
        val_idx = list(rng.permutation(val_idx))[:b.probe_test]
    ys = {k: torch.tensor([glosses[i].label for i in idx])
          for k, idx in (('train', train_idx), ('val', val_idx), ('test', test_idx))}
    seqs = {k: encode_glosses([glosses[i].text for i in idx], tokenizer,
                              encoders['random'][0].cfg.max_len)
            for k, idx in (('train', train_idx), ('val', val_idx), ('test', test_idx))}
    majority = Counter(ys['train'].tolist()).most_common(1)[0][0]
    out: dict[str, Any] = {
        'n_train': len(train_idx), 'n_val': len(val_idx), 'n_test': len(test_idx),
        'classes': len(LEXNAMES), 'fractions': list(LABEL_FRACTIONS),
        'majority_accuracy': float((ys['test'] == majority).float().mean()),
        'accuracy': {}, 'l2': {}}
    for name, (encoder, causal) in encoders.items():
        start = time.monotonic()
        feats = {k: encoder_features(encoder, s, causal=causal, pad_id=tokenizer.pad_id)
                 for k, s in seqs.items()}
        accs, wds = [], []
        for frac in LABEL_FRACTIONS:
            n = max(len(LEXNAMES), round(frac * len(train_idx)))
            # The probe of every wing (ssl_robot.metrics), L2 chosen on validation.
            res = logistic_probe(feats['train'][:n].numpy(), ys['train'][:n].numpy(),
                                 feats['val'].numpy(), ys['val'].numpy(),
                                 feats['test'].numpy(), ys['test'].numpy(),
                                 n_classes=len(LEXNAMES), max_iter=b.probe_steps)
            accs.append(res['test_acc'])
            wds.append(res['l2'])
        out['accuracy'][name], out['l2'][name] = accs, wds
        log.info('probe %s: %s (%.0f s)', name, accs, time.monotonic() - start)
    return out


def format_table(results: dict[str, Any]) -> str:
    """The one table `ssl-robot text-eval` prints."""
    p, probe = results['pretext'], results['probe']
    rows = [('task', 'metric (held out)', 'pretrained', 'random init', 'baseline')]
    ar = p['ar']
    rows.append(('ar', 'perplexity (lower better)', f'{ar["metrics"]["perplexity"]:.1f}',
                 f'{ar["random_init"]["perplexity"]:.1f}',
                 f'unigram {ar["unigram_perplexity"]:.1f}'))
    mlm = p['mlm']
    most_frequent = mlm['most_frequent_accuracy']
    if 'mlm_masked_accuracy' in mlm['metrics']:
        # The [MASK] positions: no copying the input there.
        rows.append(('mlm', 'accuracy at [MASK] positions',
                     f'{mlm["metrics"]["mlm_masked_accuracy"]:.3f}',
                     f'{mlm["random_init"]["mlm_masked_accuracy"]:.3f}',
                     f'most-frequent {most_frequent:.3f}'))
        # BERT's figure over all selected tokens, 10 % of which are shown unchanged: its
        # baseline copies the input where it is not [MASK] (80/10/10 in expectation).
        rows.append(('mlm', 'accuracy, all selected tokens',
                     f'{mlm["metrics"]["mlm_accuracy"]:.3f}',
                     f'{mlm["random_init"]["mlm_accuracy"]:.3f}',
                     f'copy, else most-frequent {0.8 * most_frequent + 0.1:.3f}'))
    else:
        rows.append(('mlm', 'masked-token accuracy', f'{mlm["metrics"]["mlm_accuracy"]:.3f}',
                     f'{mlm["random_init"]["mlm_accuracy"]:.3f}',
                     f'most-frequent {most_frequent:.3f}'))
    nsp = p['nsp']
    rows.append(('nsp', 'is-next accuracy', f'{nsp["metrics"]["nsp_accuracy"]:.3f}',
                 f'{nsp["random_init"]["nsp_accuracy"]:.3f}', 'chance 0.500'))
    rtd = p['rtd']
    rows.append(('rtd', 'replaced-token accuracy', f'{rtd["metrics"]["rtd_accuracy"]:.3f}',
                 f'{rtd["random_init"]["rtd_accuracy"]:.3f}',
                 f'all-original {rtd["metrics"]["all_original_accuracy"]:.3f}'))
    if 'rtd_auc' in rtd['metrics']:
        rows.append(('rtd', 'replaced-token ROC-AUC', f'{rtd["metrics"]["rtd_auc"]:.3f}',
                     f'{rtd["random_init"]["rtd_auc"]:.3f}', 'chance 0.500'))
        rows.append(('rtd', 'detector BCE (lower better)',
                     f'{rtd["metrics"]["disc_loss"]:.4f}',
                     f'{rtd["random_init"]["disc_loss"]:.4f}',
                     f'prior {rtd["metrics"]["prior_disc_loss"]:.4f}'))
    random_acc = probe['accuracy']
    for i, frac in enumerate(probe['fractions']):
        label = f'gloss probe {frac:.0%} labels'
        for name in ('mlm', 'nsp', 'ar', 'rtd'):
            rand = random_acc['random_causal' if name == 'ar' else 'random'][i]
            rows.append((name, label, f'{probe["accuracy"][name][i]:.3f}', f'{rand:.3f}',
                         f'majority {probe["majority_accuracy"]:.3f}'))
    tune = results.get('finetune')
    for i, frac in enumerate(tune['fractions'] if tune else ()):
        label = f'man section fine-tune {frac:.0%}'
        sd = tune.get('accuracy_sd', {})

        def cell(name: str, i: int = i) -> str:
            mean = f'{tune["accuracy"][name][i]:.3f}'
            return f'{mean} ± {sd[name][i]:.3f}' if len(tune.get('seeds', ())) > 1 else mean
        for name in ('mlm', 'nsp', 'ar', 'rtd'):
            rows.append((name, label, cell(name),
                         cell('random_causal' if name == 'ar' else 'random'),
                         f'majority {tune["majority_accuracy"]:.3f}'))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    n = probe
    lines.append(f'(gloss probe: 45 WordNet lexicographer classes, frozen encoder + linear '
                 f'probe, train {n["n_train"]} / test {n["n_test"]} synsets; random init = '
                 f'the same architecture untrained, causal for ar)')
    if tune:
        seeds = tune.get('seeds', [results.get('seed', 0)])
        lines.append(f'(man section fine-tune: whole encoder + linear head, '
                     f'{tune["classes"]} sections, train {tune["n_train"]} / test '
                     f'{tune["n_test"]} pages; random init = the same architecture '
                     f'trained from scratch on the same labels; mean ± sd over '
                     f'{len(seeds)} seed(s) of split and training)')
    return '\n'.join(lines)


def plot_results(results: dict[str, Any], path: Path) -> None:
    """Bar plot of the gloss probe accuracy per encoder and label fraction."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    probe = results['probe']
    names = list(probe['accuracy'])
    fractions = probe['fractions']
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    x = np.arange(len(fractions))
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, probe['accuracy'][name], width, label=name)
    ax.axhline(probe['majority_accuracy'], color='k', linestyle='--', linewidth=1,
               label='majority class')
    ax.set_xticks(x, [f'{f:.0%} labels' for f in fractions])
    ax.set_ylabel('test accuracy (45 classes)')
    ax.set_title('WordNet gloss classification: linear probe on frozen encoders')
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
