"""The one evaluation protocol of the vision pretexts, and `ssl-robot pretext-eval`'s run.

Protocol: an encoder's frozen (eval-mode), globally pooled features of Fashion-MNIST images ->
(1) a multinomial logistic-regression probe (L-BFGS, L2 strength chosen on a validation
split of the train set) and (2) a cosine-similarity weighted k-NN (k chosen on the same
validation split), each with 1 %, 10 % and 100 % of the labelled pool (fixed-seed,
class-stratified subsets). Final numbers are on the Fashion-MNIST test split only.
Every pretext is reported next to the same encoder at random init and the same encoder
trained fully supervised on the same labels, all in one run with fixed seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import logging
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ssl_robot.vision import VisionError
from ssl_robot.vision.data import fashion_mnist, pixel_stats
from ssl_robot.vision.encoders import build_encoder, VisionEncoder

log = logging.getLogger('ssl_robot.vision.evaluate')

#: Label fractions (percent of the labelled pool) of every evaluation.
FRACTIONS = (1, 10, 100)
#: Candidate probe L2 strengths and k-NN neighbourhoods, chosen on the validation split.
L2_GRID = (1e-4, 1e-3, 1e-2)
K_GRID = (1, 5, 20)
KNN_TEMPERATURE = 0.07

#: Run sizes. `small` finishes all seven pretexts in about ten minutes on two CPU cores.
BUDGETS: dict[str, dict[str, Any]] = {
    'small': {
        'pool': 8000, 'n_val': 2000, 'widths': [16, 32, 64], 'batch_size': 128, 'lr': 2e-3,
        'epochs': {'rotation': 3, 'jigsaw': 8, 'inpainting': 4, 'relative-position': 12,
                   'simclr': 5, 'moco': 5, 'denoising': 4},
        'supervised_steps': 250,
    },
    'full': {
        'pool': 58000, 'n_val': 2000, 'widths': [32, 64, 128], 'batch_size': 256, 'lr': 2e-3,
        'epochs': {'rotation': 15, 'jigsaw': 30, 'inpainting': 15, 'relative-position': 40,
                   'simclr': 30, 'moco': 30, 'denoising': 15},
        'supervised_steps': 4000,
    },
}


@dataclass
class EvalSplits:
    """Fashion-MNIST split for the protocol (uint8 images [N, 1, 28, 28], int64 labels).

    Attributes:
        train_x, train_y: Labelled pool (its images, unlabelled, are the pretext pool).
        val_x, val_y: Validation split of the train set (selection only).
        test_x, test_y: The test split (final numbers only).
        subsets: Label fraction (percent) -> indices into the labelled pool.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    subsets: dict[int, np.ndarray]


def stratified_subset(labels: np.ndarray, percent: float, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of `percent` % of each class (at least one per class), fixed seed."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = max(1, int(round(len(members) * percent / 100.0)))
        chosen.append(rng.choice(members, min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def fashion_mnist_splits(*, pool: int, n_val: int, seed: int = 0,
                         root: Path | str | None = None) -> EvalSplits:
    """Validation and labelled pool from a fixed-seed shuffle of the train split; the test
    split as it is.

    Raises:
        VisionError: When Fashion-MNIST is not installed or `pool + n_val` exceeds 60000.
    """
    train_x, train_y = fashion_mnist('train', root=root)
    test_x, test_y = fashion_mnist('test', root=root)
    if pool + n_val > len(train_x):
        raise VisionError(f'pool {pool} + validation {n_val} > {len(train_x)} train images')
    order = np.random.default_rng(seed).permutation(len(train_x))
    val_idx, pool_idx = order[:n_val], order[n_val:n_val + pool]
    labels = train_y[pool_idx]
    subsets = {p: stratified_subset(labels, p, seed=seed) for p in FRACTIONS}

    def t(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images[:, None]))

    return EvalSplits(t(train_x[pool_idx]), torch.from_numpy(labels),
                      t(train_x[val_idx]), torch.from_numpy(train_y[val_idx]),
                      t(test_x), torch.from_numpy(test_y), subsets)


@torch.no_grad()
def extract_features(encoder: VisionEncoder, images: torch.Tensor, mean: list[float],
                     std: list[float], *, batch_size: int = 1000) -> torch.Tensor:
    """Frozen, globally pooled features [N, D] of uint8 images (encoder in eval mode)."""
    encoder.eval()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    out = [encoder.embed((chunk.float() / 255.0 - m) / s)
           for chunk in images.split(batch_size)]
    return torch.cat(out)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, l2: float,
                 max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS (a convex fit, not a training
    run: no epochs, no schedule). Returns (weights [D, K], bias [K])."""
    w = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor], *, n_classes: int = 10
                 ) -> dict[str, float]:
    """Standardise features (train statistics), fit one probe per L2 strength, keep the best
    on validation, report it on test.

    Returns:
        {'test_acc', 'val_acc', 'l2'}.
    """
    mu, sd = train[0].mean(0), train[0].std(0).clamp(min=1e-6)

    def z(f: torch.Tensor) -> torch.Tensor:
        return (f - mu) / sd

    best: dict[str, float] | None = None
    for l2 in L2_GRID:
        w, b = fit_logistic(z(train[0]), train[1], n_classes, l2=l2)
        val_acc = float(((z(val[0]) @ w + b).argmax(1) == val[1]).float().mean())
        if best is None or val_acc > best['val_acc']:
            test_acc = float(((z(test[0]) @ w + b).argmax(1) == test[1]).float().mean())
            best = {'test_acc': test_acc, 'val_acc': val_acc, 'l2': l2}
    assert best is not None
    return best


def knn_predict(train_f: torch.Tensor, train_y: torch.Tensor, query_f: torch.Tensor, *,
                k: int, n_classes: int = 10, temperature: float = KNN_TEMPERATURE,
                chunk: int = 2048) -> torch.Tensor:
    """Weighted k-NN on cosine similarity (votes exp(sim / temperature)); labels [Q]."""
    train_n = F.normalize(train_f, dim=1)
    k = min(k, len(train_f))
    preds = []
    for q in F.normalize(query_f, dim=1).split(chunk):
        sim, idx = (q @ train_n.t()).topk(k, dim=1)
        votes = torch.zeros(len(q), n_classes)
        votes.scatter_add_(1, train_y[idx], torch.exp(sim / temperature))
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
              test: tuple[torch.Tensor, torch.Tensor], *, n_classes: int = 10
              ) -> dict[str, float]:
    """k-NN accuracy on test with k chosen on validation. Returns {'test_acc', 'val_acc', 'k'}."""
    best: dict[str, float] | None = None
    for k in K_GRID:
        val_acc = float((knn_predict(*train, val[0], k=k, n_classes=n_classes)
                         == val[1]).float().mean())
        if best is None or val_acc > best['val_acc']:
            best = {'val_acc': val_acc, 'k': k}
    assert best is not None
    pred = knn_predict(*train, test[0], k=int(best['k']), n_classes=n_classes)
    best['test_acc'] = float((pred == test[1]).float().mean())
    return best


def evaluate_encoder(encoder: VisionEncoder, splits: EvalSplits, *, mean: list[float],
                     std: list[float], fractions: tuple[int, ...] = FRACTIONS
                     ) -> dict[str, dict[str, dict[str, float]]]:
    """The protocol for one encoder: {'linear'|'knn': {'1'|'10'|'100': {test_acc, ...}}}."""
    feats = {name: extract_features(encoder, x, mean, std) for name, x in
             (('train', splits.train_x), ('val', splits.val_x), ('test', splits.test_x))}
    val, test = (feats['val'], splits.val_y), (feats['test'], splits.test_y)
    out: dict[str, dict[str, dict[str, float]]] = {'linear': {}, 'knn': {}}
    for pct in fractions:
        idx = torch.from_numpy(splits.subsets[pct])
        train = (feats['train'][idx], splits.train_y[idx])
        out['linear'][str(pct)] = linear_probe(train, val, test)
        out['knn'][str(pct)] = knn_probe(train, val, test)
    return out


def run_pretext_eval(out_dir: Path | str, *, tasks: list[str], budget: str = 'small',
                     seed: int = 0, retrain: bool = False, progress: bool = True,
                     export: bool = True) -> dict[str, Any]:
    """Train (or load) every pretext, evaluate it, random init and supervised; write the
    table (table.txt), results.json and a bar plot (results.png) into `out_dir`.

    Returns:
        The results dict (also written as JSON).

    Raises:
        VisionError: On an unknown budget/task or missing Fashion-MNIST.
    """
    from ssl_robot.train.trainer import seed_everything
    from ssl_robot.vision.pretext import PRETEXTS
    from ssl_robot.vision.supervised import SupervisedTask
    from ssl_robot.vision.training import export_encoder, train_or_load_pretext, train_task

    if budget not in BUDGETS:
        raise VisionError(f'unknown budget {budget!r} (known: {", ".join(BUDGETS)})')
    unknown = [t for t in tasks if t not in PRETEXTS]
    if unknown:
        raise VisionError(f'unknown pretext(s) {", ".join(unknown)} '
                          f'(known: {", ".join(PRETEXTS)})')
    b = BUDGETS[budget]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    splits = fashion_mnist_splits(pool=b['pool'], n_val=b['n_val'], seed=seed)
    mean, std = pixel_stats(splits.train_x)
    base_params = {'widths': b['widths'], 'mean': mean, 'std': std}
    results: dict[str, Any] = {
        'budget': budget, 'seed': seed, 'fractions': list(FRACTIONS),
        'sizes': {'pool': len(splits.train_x), 'val': len(splits.val_x),
                  'test': len(splits.test_x),
                  'labels': {str(p): len(v) for p, v in splits.subsets.items()}},
        'encoder': {'widths': b['widths'], 'mean': mean, 'std': std},
        'methods': {},
    }

    def record(name: str, evaluation: dict[str, Any], **extra: Any) -> None:
        results['methods'][name] = {**evaluation, **extra}
        lin = [evaluation['linear'][str(p)]['test_acc'] for p in FRACTIONS]
        knn = [evaluation['knn'][str(p)]['test_acc'] for p in FRACTIONS]
        log.info('%s: linear %s, kNN %s', name, _fmt(lin), _fmt(knn))

    # (a) Random init: the same encoder, seeded like every run, never trained.
    seed_everything(seed)
    random_encoder = build_encoder({'in_channels': 1, 'widths': b['widths']})
    record('random-init', evaluate_encoder(random_encoder, splits, mean=mean, std=std))

    for name in tasks:
        t0 = time.monotonic()
        task, model, loaded = train_or_load_pretext(
            name, splits.train_x, out_dir / name, params=base_params,
            epochs=b['epochs'][name], batch_size=b['batch_size'], lr=b['lr'], seed=seed,
            progress=progress, retrain=retrain)
        train_s = time.monotonic() - t0
        evaluation = evaluate_encoder(model.encoder, splits, mean=mean, std=std)
        extra: dict[str, Any] = {'train_seconds': round(train_s, 1), 'loaded': loaded}
        if export:
            report = export_encoder(model.encoder, task.encoder_spec(),
                                    out_dir / name / 'encoder.onnx',
                                    extra_metadata={'seed': seed, 'budget': budget})
            extra['onnx'] = str(report.path)
            extra['onnx_max_abs_diff'] = report.max_abs_diff
        record(name, evaluation, **extra)

    # (b) Supervised: the same encoder trained end to end on each label fraction.
    sup: dict[str, Any] = {'linear': {}, 'knn': {}, 'end_to_end': {}}
    for pct in FRACTIONS:
        idx = torch.from_numpy(splits.subsets[pct])
        n = len(idx)
        steps = int(b['supervised_steps'])
        repeats = max(1, int(np.ceil(steps * b['batch_size'] / n / 8)))  # ~8 epochs
        task = SupervisedTask((splits.train_x[idx], splits.train_y[idx]),
                              (splits.val_x, splits.val_y),
                              params={**base_params, 'repeats': repeats})
        model = train_task(task, out_dir / f'supervised-{pct}', epochs=8, max_steps=steps,
                           batch_size=b['batch_size'], lr=b['lr'], seed=seed,
                           progress=progress)
        evaluation = evaluate_encoder(model.encoder, splits, mean=mean, std=std,
                                      fractions=(pct,))
        sup['linear'].update(evaluation['linear'])
        sup['knn'].update(evaluation['knn'])
        with torch.no_grad():
            logits = torch.cat([model(task.normalize(task.pixels(c)))
                                for c in splits.test_x.split(1000)])
        sup['end_to_end'][str(pct)] = float((logits.argmax(1) == splits.test_y).float().mean())
    record('supervised', sup)

    results['seconds'] = round(time.monotonic() - started, 1)
    (out_dir / 'results.json').write_text(json.dumps(results, indent=2))
    table = format_table(results)
    (out_dir / 'table.txt').write_text(table + '\n')
    plot_results(results, out_dir / 'results.png')
    return results


def _fmt(values: list[float]) -> str:
    return ' / '.join(f'{100 * v:.1f}' for v in values)


def format_table(results: dict[str, Any]) -> str:
    """The results as a text table: method x {linear, kNN} x label fractions (test %)."""
    pcts = [str(p) for p in results['fractions']]
    head = ['method'] + [f'lin {p}%' for p in pcts] + [f'kNN {p}%' for p in pcts] + ['vs rand']
    rows = [head]
    rand = results['methods'].get('random-init')
    for name, res in results['methods'].items():
        lin = [res['linear'][p]['test_acc'] for p in pcts]
        knn = [res['knn'][p]['test_acc'] for p in pcts]
        verdict = ''
        if rand is not None and name != 'random-init':
            wins = sum(res[kind][p]['test_acc'] > rand[kind][p]['test_acc']
                       for kind in ('linear', 'knn') for p in pcts)
            verdict = f'{wins}/{2 * len(pcts)} better'
        rows.append([name] + [f'{100 * v:.1f}' for v in lin + knn] + [verdict])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, '-' * len(lines[0]))
    sizes = results['sizes']
    lines.append(f'Fashion-MNIST test accuracy (%), {sizes["test"]} test images; labels: '
                 + ', '.join(f'{p}% = {n}' for p, n in sizes['labels'].items())
                 + f'; budget {results["budget"]}, seed {results["seed"]}')
    return '\n'.join(lines)


def plot_results(results: dict[str, Any], path: Path | str) -> None:
    """Grouped bar plot: one panel per probe, bars per method and label fraction."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    methods = list(results['methods'])
    pcts = [str(p) for p in results['fractions']]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    width = 0.8 / len(pcts)
    x = np.arange(len(methods))
    for ax, kind, title in zip(axes, ('linear', 'knn'), ('linear probe', 'k-NN')):
        for j, p in enumerate(pcts):
            values = [100 * results['methods'][m][kind][p]['test_acc'] for m in methods]
            ax.bar(x + (j - (len(pcts) - 1) / 2) * width, values, width, label=f'{p}% labels')
        rand = results['methods'].get('random-init')
        if rand is not None:
            for j, p in enumerate(pcts):
                ax.axhline(100 * rand[kind][p]['test_acc'], color=f'C{j}', lw=0.8, ls='--')
        ax.set_xticks(x, methods, rotation=30, ha='right')
        ax.set_title(f'{title} on frozen features (dashed: random init)')
        ax.grid(axis='y', alpha=0.3)
    axes[0].set_ylabel('Fashion-MNIST test accuracy (%)')
    axes[0].legend()
    lo = min(100 * results['methods'][m][k][p]['test_acc']
             for m in methods for k in ('linear', 'knn') for p in pcts)
    axes[0].set_ylim(max(0, lo - 10), 100)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
