"""The one evaluation protocol of the vision pretexts, and `ssl-robot pretext-eval`'s run.

Protocol: an encoder's frozen (eval-mode), globally pooled features of labelled images ->
(1) a multinomial logistic-regression probe (L-BFGS, L2 strength chosen on a validation
split of the train set) and (2) a cosine-similarity weighted k-NN (k chosen on the same
validation split), each with 1 %, 10 % and 100 % of the labelled pool (fixed-seed,
class-stratified subsets). Final numbers are on the test split only. Every pretext is
reported in one run with fixed seeds next to the baselines a reviewer asks for first:
the same probes on raw pixels and on PCA of the pixels (fitted on the unlabelled pool,
components chosen on validation), the same encoder at random init, and the same encoder
trained fully supervised on the same labels.

The images are Fashion-MNIST's (train split: pool and validation; test split: test) or a
user's labelled image folder (one sub-folder per class), split stratified into pool,
validation and test.
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
from ssl_robot.vision.data import fashion_mnist, FASHION_MNIST_CLASSES, pixel_stats
from ssl_robot.vision.encoders import build_encoder, VisionEncoder

log = logging.getLogger('ssl_robot.vision.evaluate')

#: Label fractions (percent of the labelled pool) of every evaluation.
FRACTIONS = (1, 10, 100)
#: Candidate probe L2 strengths and k-NN neighbourhoods, chosen on the validation split.
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
K_GRID = (1, 5, 20)
KNN_TEMPERATURE = 0.07
#: PCA baseline: numbers of components tried, chosen on validation per probe and fraction.
PCA_COMPONENTS = (16, 32, 64, 128)
#: The baselines every pretext is measured against, in table order.
BASELINES = ('raw-pixels', 'pca', 'random-init')

#: Run sizes. `small` finishes all seven pretexts in about 15 minutes on two CPU cores.
#: `pool` and `n_val` apply to Fashion-MNIST; a folder is split by fractions.
BUDGETS: dict[str, dict[str, Any]] = {
    'small': {
        'pool': 8000, 'n_val': 2000, 'widths': [16, 32, 64], 'batch_size': 128, 'lr': 2e-3,
        # inpainting 8 (was 4) and MoCo 10 (was 5): +1.7 and +2.5 points linear at 10 %
        # labels (seed 0, benchmarks/results/pretext_ablation.json); denoising 8 (was 4):
        # +0.6 linear (74.7 +- 0.5 against 74.1 +- 0.6, every seed gaining) and +1.0 k-NN
        # at 10 % over seeds 0-2 (benchmarks/results/pretext_eval_seeds_variants.json).
        'epochs': {'rotation': 3, 'jigsaw': 8, 'inpainting': 8, 'relative-position': 12,
                   'simclr': 5, 'moco': 10, 'denoising': 8},
        'supervised_steps': 250,
    },
    'tiny': {  # a smoke test of the whole run (seconds), not a measurement
        'pool': 2000, 'n_val': 500, 'widths': [8, 16, 16], 'batch_size': 32, 'lr': 2e-3,
        'epochs': {'rotation': 1, 'jigsaw': 1, 'inpainting': 1, 'relative-position': 1,
                   'simclr': 1, 'moco': 1, 'denoising': 1},
        'supervised_steps': 10,
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
    """Labelled images split for the protocol (uint8 images [N, C, S, S], int64 labels).

    Attributes:
        train_x, train_y: Labelled pool (its images, unlabelled, are the pretext pool).
        val_x, val_y: Validation split of the train set (selection only).
        test_x, test_y: The test split (final numbers only).
        subsets: Label fraction (percent) -> indices into the labelled pool.
        class_names: Name of each class (label i is class_names[i]).
        source: What the images are, for tables ('Fashion-MNIST', a folder's path).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    subsets: dict[int, np.ndarray]
    class_names: tuple[str, ...] = FASHION_MNIST_CLASSES
    source: str = 'Fashion-MNIST'

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


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
    """Fashion-MNIST split for the protocol.

    Validation and labelled pool from a fixed-seed shuffle of the train split; the test
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


def image_folder_splits(path: Path | str, *, image_size: int = 32, channels: int = 3,
                        test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0
                        ) -> EvalSplits:
    """A user's labelled image folder (one sub-folder per class) split for the protocol.

    Class-stratified, fixed-seed test and validation splits, the rest the labelled pool
    (whose images, unlabelled, the pretexts train on).

    Raises:
        VisionError: When the folder cannot be read, or a class has too few images to
            appear in test, validation and pool (3 at least).
    """
    from ssl_robot.vision.data import labelled_image_folder
    images, labels, names = labelled_image_folder(path, image_size=image_size,
                                                  channels=channels)
    counts = np.bincount(labels, minlength=len(names))
    if counts.min() < 3:
        few = ', '.join(f'{n} ({c})' for n, c in zip(names, counts) if c < 3)
        raise VisionError(f'{path}: classes with fewer than 3 images: {few}; each class '
                          f'needs images for the pool, validation and test')
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {'test': [], 'val': [], 'pool': []}
    for cls in range(len(names)):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = max(1, int(round(len(members) * test_fraction)))
        n_val = max(1, int(round(len(members) * val_fraction)))
        parts['test'].append(members[:n_test])
        parts['val'].append(members[n_test:n_test + n_val])
        parts['pool'].append(members[n_test + n_val:])
    idx = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    pool_y = labels[idx['pool']]
    subsets = {p: stratified_subset(pool_y, p, seed=seed) for p in FRACTIONS}

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return EvalSplits(t(images[idx['pool']]), t(pool_y), t(images[idx['val']]),
                      t(labels[idx['val']]), t(images[idx['test']]), t(labels[idx['test']]),
                      subsets, class_names=names, source=str(path))


#: How frozen features are read off the encoder: 'mean', the globally averaged last
#: feature map (`VisionEncoder.embed`, what heads train on and the ONNX extractor gives),
#: or 'pyramid', the 2x2-averaged maps of the last two stages concatenated (spatial layout
#: and a finer scale kept; measured in benchmarks/eval_pretext_ablation.py).
READOUTS = ('mean', 'pyramid')
DEFAULT_READOUT = 'mean'


def readout_features(encoder: VisionEncoder, x: torch.Tensor, readout: str = 'mean'
                     ) -> torch.Tensor:
    """Features [N, D] of normalised images by `readout` (one of READOUTS)."""
    if readout == 'mean':
        return encoder.embed(x)
    if readout != 'pyramid':
        raise VisionError(f'unknown readout {readout!r} (known: {", ".join(READOUTS)})')
    maps = []
    for layer in encoder.features:
        x = layer(x)
        maps.append(x)
    # The last block of each of the last two stages (each stage is two blocks).
    return torch.cat([F.adaptive_avg_pool2d(m, 2).flatten(1) for m in (maps[-1], maps[-3])],
                     dim=1)


@torch.no_grad()
def extract_features(encoder: VisionEncoder, images: torch.Tensor, mean: list[float],
                     std: list[float], *, batch_size: int = 1000, readout: str = 'mean'
                     ) -> torch.Tensor:
    """Frozen features [N, D] of uint8 images (encoder in eval mode), read by `readout`."""
    encoder.eval()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    out = [readout_features(encoder, (chunk.float() / 255.0 - m) / s, readout)
           for chunk in images.split(batch_size)]
    return torch.cat(out)


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor], *, n_classes: int = 10
                 ) -> dict[str, float]:
    """The shared linear probe on (features, labels) pairs.

    `ssl_robot.metrics.logistic_probe`: standardised features, L2 strength chosen on
    validation.

    Returns:
        {'test_acc', 'val_acc', 'l2'}.
    """
    from ssl_robot.metrics import logistic_probe
    return logistic_probe(*(t.numpy() for pair in (train, val, test) for t in pair),
                          n_classes=n_classes, l2_grid=L2_GRID)


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


def evaluate_features(feats: dict[str, torch.Tensor], splits: EvalSplits, *,
                      fractions: tuple[int, ...] = FRACTIONS
                      ) -> dict[str, dict[str, dict[str, float]]]:
    """The probes on given features {'train', 'val', 'test'}.

    Returns:
        {'linear'|'knn': {'1'|'10'|'100': {test_acc, ...}}}.
    """
    val, test = (feats['val'], splits.val_y), (feats['test'], splits.test_y)
    out: dict[str, dict[str, dict[str, float]]] = {'linear': {}, 'knn': {}}
    for pct in fractions:
        idx = torch.from_numpy(splits.subsets[pct])
        train = (feats['train'][idx], splits.train_y[idx])
        out['linear'][str(pct)] = linear_probe(train, val, test, n_classes=splits.n_classes)
        out['knn'][str(pct)] = knn_probe(train, val, test, n_classes=splits.n_classes)
    return out


def evaluate_encoder(encoder: VisionEncoder, splits: EvalSplits, *, mean: list[float],
                     std: list[float], fractions: tuple[int, ...] = FRACTIONS,
                     readout: str = 'mean') -> dict[str, dict[str, dict[str, float]]]:
    """The protocol for one encoder: {'linear'|'knn': {'1'|'10'|'100': {test_acc, ...}}}."""
    feats = {name: extract_features(encoder, x, mean, std, readout=readout) for name, x in
             (('train', splits.train_x), ('val', splits.val_x), ('test', splits.test_x))}
    return evaluate_features(feats, splits, fractions=fractions)


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """Raw pixels on [0, 1] as feature vectors [N, C*H*W] (the probes standardise them)."""
    return images.flatten(1).float().div(255.0)


def pca_basis(pixels: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and the top `components` principal directions [D, k] of pixel vectors."""
    mean = pixels.mean(0)
    _, _, v = torch.linalg.svd(pixels - mean, full_matrices=False)
    return mean, v[:components].t()


def evaluate_pixels(splits: EvalSplits, *, fractions: tuple[int, ...] = FRACTIONS
                    ) -> dict[str, dict[str, Any]]:
    """The pixel baselines: the probes on raw pixels and on their PCA projection.

    The PCA is fitted on the unlabelled pool; for each probe and fraction the number of
    components, out of PCA_COMPONENTS, with the best validation accuracy is kept.

    Returns:
        {'raw-pixels': evaluation, 'pca': evaluation (each cell with 'components')}.
    """
    pixels = {name: pixel_features(x) for name, x in
              (('train', splits.train_x), ('val', splits.val_x), ('test', splits.test_x))}
    raw = evaluate_features(pixels, splits, fractions=fractions)
    dim = pixels['train'].shape[1]
    mean, basis = pca_basis(pixels['train'], min(max(PCA_COMPONENTS), dim,
                                                 len(pixels['train'])))
    pca: dict[str, dict[str, dict[str, float]]] = {'linear': {}, 'knn': {}}
    for k in sorted({min(c, basis.shape[1]) for c in PCA_COMPONENTS}):
        proj = {name: (f - mean) @ basis[:, :k] for name, f in pixels.items()}
        for kind, cells in evaluate_features(proj, splits, fractions=fractions).items():
            for pct, cell in cells.items():
                if pct not in pca[kind] or cell['val_acc'] > pca[kind][pct]['val_acc']:
                    pca[kind][pct] = {**cell, 'components': k}
    return {'raw-pixels': raw, 'pca': pca}


def run_pretext_eval(out_dir: Path | str, *, tasks: list[str], budget: str = 'small',
                     seed: int = 0, retrain: bool = False, progress: bool = True,
                     export: bool = True, data: Path | str | None = None,
                     image_size: int = 32, channels: int = 3,
                     readout: str = DEFAULT_READOUT,
                     also_readouts: tuple[str, ...] = (),
                     task_params: dict[str, dict[str, Any]] | None = None,
                     epochs: dict[str, int] | None = None) -> dict[str, Any]:
    """Train (or load) every pretext and evaluate it next to every baseline.

    The baselines are raw pixels, PCA, random init and supervised. Writes the table
    (table.txt), results.json, the figure (results.png: probe accuracy against label
    fraction per method) and report.md into `out_dir`.

    Args:
        out_dir: Run directory (one sub-folder per trained model).
        tasks: Pretexts to evaluate.
        budget: A key of BUDGETS.
        seed: Seeds the splits, label subsets, initialisation and training.
        retrain: Train again even where a matching run exists.
        progress: Show training progress.
        export: Export each pretext's encoder to ONNX.
        data: None for Fashion-MNIST, else a labelled image folder (one sub-folder per
            class), read at `image_size` px with `channels` channels.
        image_size: Side length of a folder's images.
        channels: 1 or 3, for a folder's images.
        readout: How the probes read features off every encoder (one of READOUTS).
        also_readouts: Other readouts probed on the same encoders, kept apart under
            results['also'][readout] (with the pixel baselines, and their targets
            under results['also_targets'][readout]).
        task_params: Per pretext, parameters that override its defaults (a variant
            measured without changing the defaults).
        epochs: Per pretext, epochs that override the budget's.

    Returns:
        The results dict (also written as JSON).

    Raises:
        VisionError: On an unknown budget/task, missing Fashion-MNIST or an unusable
            image folder.
    """
    from ssl_robot.train.trainer import seed_everything
    from ssl_robot.vision.pretext import PRETEXTS
    from ssl_robot.vision.supervised import SupervisedTask
    from ssl_robot.vision.training import export_encoder, train_or_load_pretext, train_task

    if budget not in BUDGETS:
        raise VisionError(f'unknown budget {budget!r} (known: {", ".join(BUDGETS)})')
    if any(r not in READOUTS for r in (readout, *also_readouts)):
        raise VisionError(f'unknown readout in {(readout, *also_readouts)} '
                          f'(known: {", ".join(READOUTS)})')
    unknown = [t for t in tasks if t not in PRETEXTS]
    if unknown:
        raise VisionError(f'unknown pretext(s) {", ".join(unknown)} '
                          f'(known: {", ".join(PRETEXTS)})')
    b = BUDGETS[budget]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if data is None:
        splits = fashion_mnist_splits(pool=b['pool'], n_val=b['n_val'], seed=seed)
    else:
        splits = image_folder_splits(data, image_size=image_size, channels=channels,
                                     seed=seed)
    mean, std = pixel_stats(splits.train_x)
    base_params = {'widths': b['widths'], 'mean': mean, 'std': std}
    results: dict[str, Any] = {
        'data': splits.source, 'classes': list(splits.class_names),
        'image_shape': list(splits.train_x.shape[1:]),
        'budget': budget, 'seed': seed, 'fractions': list(FRACTIONS),
        'sizes': {'pool': len(splits.train_x), 'val': len(splits.val_x),
                  'test': len(splits.test_x),
                  'labels': {str(p): len(v) for p, v in splits.subsets.items()}},
        'encoder': {'widths': b['widths'], 'mean': mean, 'std': std}, 'readout': readout,
        'methods': {},
    }

    def record(name: str, evaluation: dict[str, Any], **extra: Any) -> None:
        results['methods'][name] = {**evaluation, **extra}
        lin = [evaluation['linear'][str(p)]['test_acc'] for p in FRACTIONS]
        knn = [evaluation['knn'][str(p)]['test_acc'] for p in FRACTIONS]
        log.info('%s: linear %s, kNN %s', name, _fmt(lin), _fmt(knn))

    also: dict[str, dict[str, Any]] = {r: {} for r in also_readouts}

    def probe(encoder: VisionEncoder, name: str, fractions: tuple[int, ...] = FRACTIONS
              ) -> dict[str, Any]:
        """The protocol with `readout`; the other readouts go into `also`."""
        for other in also_readouts:
            cells = evaluate_encoder(encoder, splits, mean=mean, std=std,
                                     fractions=fractions, readout=other)
            for kind, per in cells.items():
                also[other].setdefault(name, {}).setdefault(kind, {}).update(per)
        return evaluate_encoder(encoder, splits, mean=mean, std=std, fractions=fractions,
                                readout=readout)

    # (a) Pixel baselines: the probes on raw pixels and on their PCA projection.
    for name, evaluation in evaluate_pixels(splits).items():
        record(name, evaluation)
        for other in also_readouts:
            also[other][name] = evaluation

    # (b) Random init: the same encoder, seeded like every run, never trained.
    seed_everything(seed)
    random_encoder = build_encoder({'in_channels': int(splits.train_x.shape[1]),
                                    'widths': b['widths']})
    record('random-init', probe(random_encoder, 'random-init'))

    for name in tasks:
        t0 = time.monotonic()
        task_epochs = int((epochs or {}).get(name, b['epochs'][name]))
        task, model, loaded = train_or_load_pretext(
            name, splits.train_x, out_dir / name,
            params={**base_params, **(task_params or {}).get(name, {})},
            epochs=task_epochs, batch_size=b['batch_size'], lr=b['lr'], seed=seed,
            progress=progress, retrain=retrain)
        train_s = time.monotonic() - t0
        evaluation = probe(model.encoder, name)
        # The task's parameters travel with its figures: a reused results file is only
        # trusted when they still match (benchmarks/eval_pretext_seeds.py --reuse).
        extra: dict[str, Any] = {'train_seconds': round(train_s, 1), 'loaded': loaded,
                                 'params': json.loads(json.dumps(task.params)),
                                 'epochs': task_epochs}
        if export:
            report = export_encoder(model.encoder, task.encoder_spec(),
                                    out_dir / name / 'encoder.onnx',
                                    extra_metadata={'seed': seed, 'budget': budget})
            extra['onnx'] = str(report.path)
            extra['onnx_max_abs_diff'] = report.max_abs_diff
        record(name, evaluation, **extra)

    # (c) Supervised: the same encoder trained end to end on each label fraction.
    sup: dict[str, Any] = {'linear': {}, 'knn': {}, 'end_to_end': {}}
    for pct in FRACTIONS:
        idx = torch.from_numpy(splits.subsets[pct])
        n = len(idx)
        steps = int(b['supervised_steps'])
        repeats = max(1, int(np.ceil(steps * b['batch_size'] / n / 8)))  # ~8 epochs
        task = SupervisedTask((splits.train_x[idx], splits.train_y[idx]),
                              (splits.val_x, splits.val_y),
                              params={**base_params, 'repeats': repeats,
                                      'n_classes': splits.n_classes})
        model = train_task(task, out_dir / f'supervised-{pct}', epochs=8, max_steps=steps,
                           batch_size=b['batch_size'], lr=b['lr'], seed=seed,
                           progress=progress)
        evaluation = probe(model.encoder, 'supervised', (pct,))
        sup['linear'].update(evaluation['linear'])
        sup['knn'].update(evaluation['knn'])
        with torch.no_grad():
            logits = torch.cat([model(task.normalize(task.pixels(c)))
                                for c in splits.test_x.split(1000)])
        sup['end_to_end'][str(pct)] = float((logits.argmax(1) == splits.test_y).float().mean())
    record('supervised', sup)

    results['seconds'] = round(time.monotonic() - started, 1)
    results['targets'] = pretext_targets(results)
    if also:
        results['also'] = also
        results['also_targets'] = {r: pretext_targets({'fractions': results['fractions'],
                                                       'methods': m})
                                   for r, m in also.items()}
    (out_dir / 'results.json').write_text(json.dumps(results, indent=2))
    table = format_table(results)
    (out_dir / 'table.txt').write_text(table + '\n')
    plot_results(results, out_dir / 'results.png')
    write_report(results, table, out_dir / 'report.md', figure='results.png')
    return results


def _fmt(values: list[float]) -> str:
    return ' / '.join(f'{100 * v:.1f}' for v in values)


#: The issue's targets, on the linear probe at 10 % labels (points of test accuracy).
TARGET_FRACTION = '10'
TARGET_OVER_RANDOM = 10.0
TARGET_OVER_RAW = 3.0
TARGET_BEST_OVER_RAW = 8.0


def pretext_targets(results: dict[str, Any]) -> dict[str, Any]:
    """Each pretext's margin over random init and raw pixels, against the targets.

    On the linear probe at 10 % labels: >= +10 over random init and >= +3 over raw pixels
    for every pretext, >= +8 over raw pixels for the best. Empty without those baselines.
    """
    methods = results['methods']
    if TARGET_FRACTION not in [str(p) for p in results['fractions']] or not all(
            b in methods for b in ('random-init', 'raw-pixels')):
        return {}

    def acc(name: str) -> float:
        return 100 * methods[name]['linear'][TARGET_FRACTION]['test_acc']

    pretexts = [m for m in methods if m not in BASELINES and m != 'supervised']
    per = {m: {'linear_acc': round(acc(m), 2),
               'over_random': round(acc(m) - acc('random-init'), 2),
               'over_raw': round(acc(m) - acc('raw-pixels'), 2)} for m in pretexts}
    for cell in per.values():
        cell['met'] = bool(cell['over_random'] >= TARGET_OVER_RANDOM
                           and cell['over_raw'] >= TARGET_OVER_RAW)
    best = max(per, key=lambda m: per[m]['over_raw']) if per else None
    return {'fraction': TARGET_FRACTION, 'probe': 'linear', 'per_pretext': per,
            'best': best,
            'best_met': bool(best and per[best]['over_raw'] >= TARGET_BEST_OVER_RAW),
            'all_met': bool(per) and all(c['met'] for c in per.values())}


def format_table(results: dict[str, Any]) -> str:
    """The results as a text table: method x {linear, kNN} x label fractions (test %).

    With each method's wins over random init, its linear margin over raw pixels and the
    targets.
    """
    pcts = [str(p) for p in results['fractions']]
    methods = results['methods']
    raw_col = f'lin {TARGET_FRACTION}% vs raw'
    head = (['method'] + [f'lin {p}%' for p in pcts] + [f'kNN {p}%' for p in pcts]
            + ['vs rand', raw_col])
    rows = [head]
    rand, raw = methods.get('random-init'), methods.get('raw-pixels')
    for name, res in methods.items():
        lin = [res['linear'][p]['test_acc'] for p in pcts]
        knn = [res['knn'][p]['test_acc'] for p in pcts]
        verdict, margin = '', ''
        if rand is not None and name not in BASELINES:
            wins = sum(res[kind][p]['test_acc'] > rand[kind][p]['test_acc']
                       for kind in ('linear', 'knn') for p in pcts)
            verdict = f'{wins}/{2 * len(pcts)} better'
        if raw is not None and name != 'raw-pixels' and TARGET_FRACTION in pcts:
            diff = 100 * (res['linear'][TARGET_FRACTION]['test_acc']
                          - raw['linear'][TARGET_FRACTION]['test_acc'])
            margin = f'{diff:+.1f}'
        rows.append([name] + [f'{100 * v:.1f}' for v in lin + knn] + [verdict, margin])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, '-' * len(lines[0]))
    sizes = results['sizes']
    lines.append(f'{results.get("data", "Fashion-MNIST")} test accuracy (%), {sizes["test"]} '
                 f'test images; labels: '
                 + ', '.join(f'{p}% = {n}' for p, n in sizes['labels'].items())
                 + f'; budget {results["budget"]}, seed {results["seed"]}, readout '
                 + results.get('readout', 'mean'))
    targets = results.get('targets')
    if targets:
        missed = [m for m, c in targets['per_pretext'].items() if not c['met']]
        lines.append(
            f'targets (linear, {TARGET_FRACTION}% labels): every pretext >= random init '
            f'+{TARGET_OVER_RANDOM:g} and >= raw pixels +{TARGET_OVER_RAW:g}: '
            + ('met' if not missed else f'missed by {", ".join(missed)}')
            + f'; best ({targets["best"]}) >= raw pixels +{TARGET_BEST_OVER_RAW:g}: '
            + ('met' if targets['best_met'] else 'missed'))
    return '\n'.join(lines)


def plot_accuracy_vs_labels(curves: dict[str, dict[str, tuple[list[float], list[float]]]],
                            fractions: list[int], path: Path | str, *, title: str) -> None:
    """Probe accuracy against label fraction, one line per method, one panel per probe.

    Args:
        curves: method -> {'linear'|'knn': (mean accuracy % per fraction, sd per
            fraction, zeros for one run)}.
        fractions: The label fractions (percent), the x axis (log scale).
        path: Output PNG.
        title: Figure title.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, kind, name in zip(axes, ('linear', 'knn'), ('linear probe', 'k-NN')):
        for i, (method, per_kind) in enumerate(curves.items()):
            mean, sd = per_kind[kind]
            style = ({'ls': '--', 'lw': 1.4} if method in BASELINES
                     else {'ls': ':', 'lw': 1.4} if method == 'supervised'
                     else {'ls': '-', 'lw': 1.8})
            colour = 'black' if method == 'supervised' else f'C{i % 10}'
            ax.errorbar(fractions, mean, yerr=sd if any(sd) else None, marker='o', ms=4,
                        capsize=3, color=colour, label=method, **style)
        ax.set_xscale('log')
        ax.set_xticks(fractions, [f'{p}%' for p in fractions])
        ax.set_xlabel('labelled fraction of the pool')
        ax.set_title(f'{name} on frozen features')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('test accuracy (%)')
    axes[1].legend(fontsize=8, loc='lower right')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_results(results: dict[str, Any], path: Path | str) -> None:
    """One run's figure: probe accuracy against label fraction per method.

    Baselines dashed, supervised dotted.
    """
    pcts = [str(p) for p in results['fractions']]
    curves = {m: {k: ([100 * res[k][p]['test_acc'] for p in pcts], [0.0] * len(pcts))
                  for k in ('linear', 'knn')} for m, res in results['methods'].items()}
    plot_accuracy_vs_labels(curves, list(results['fractions']), path,
                            title=f'{results.get("data", "Fashion-MNIST")}, budget '
                                  f'{results["budget"]}, seed {results["seed"]}')


def write_report(results: dict[str, Any], table: str, path: Path | str, *,
                 figure: str) -> None:
    """The run's report: the table, the figure and the targets, as Markdown."""
    lines = [f'# Vision pretexts on {results.get("data", "Fashion-MNIST")}', '',
             '```', table, '```', '', f'![probe accuracy against label fraction]({figure})', '',
             f'Images {results.get("image_shape")}, classes: '
             f'{", ".join(results.get("classes", []))}; {results["seconds"]:.0f} s.']
    Path(path).write_text('\n'.join(lines) + '\n')
