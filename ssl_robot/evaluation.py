"""Evaluation of robot models on a held-out split, next to baselines from the same run.

Metrics (pure numpy, tested against hand-computed cases): ROC-AUC with bootstrap CI,
Spearman rank correlation, temporal-neighbour and cross-view retrieval, a
ridge-regression linear probe.
`evaluate_run` loads a run's best checkpoint and compares it with chance, with the same
model at random init, and (for a model initialised from a self-supervised encoder) with
the same model trained from random init on the same labels; it prints a table and
writes JSON and a PNG figure.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

log = logging.getLogger('ssl_robot.evaluation')


# ---------------------------------------------------------------------------- metrics
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC = P(score of a random positive > score of a random negative), ties 1/2.

    Args:
        scores: Predicted scores, any shape.
        labels: 0/1 labels, same shape.

    Returns:
        The AUC, NaN when only one class is present.
    """
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ranks = rankdata(scores)  # average ranks handle ties (Mann-Whitney U)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_ci(metric: Any, *arrays: np.ndarray, n_boot: int = 500, alpha: float = 0.05,
                 seed: int = 0, groups: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of `metric(*arrays)`, resampling rows with replacement.

    Neighbouring camera frames are strongly correlated, so resampling single frames
    gives too narrow an interval; with `groups` (e.g. a time block of a bag per frame)
    whole groups are resampled instead (block bootstrap).

    Args:
        metric: Function of the (resampled) arrays returning a float.
        arrays: Arrays sharing their first axis (the rows).
        n_boot: Resamples.
        alpha: 1 - confidence level.
        seed: Seed of the resampling.
        groups: Group id per row, or None to resample rows independently.

    Returns:
        (low, high); NaN when the metric is undefined on most resamples.
    """
    n = len(arrays[0])
    if n == 0:
        return float('nan'), float('nan')
    rng = np.random.default_rng(seed)
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    values = []
    for _ in range(n_boot):
        if groups is None:
            pick = rng.integers(0, n, n)
        else:
            pick = np.concatenate([members[g] for g in rng.integers(0, len(members),
                                                                   len(members))])
        v = metric(*(a[pick] for a in arrays))
        if np.isfinite(v):
            values.append(v)
    if len(values) < n_boot // 2:
        return float('nan'), float('nan')
    return (float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN if constant."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.size < 2:
        return float('nan')
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float('nan')


def temporal_retrieval_accuracy(embeddings: np.ndarray, bag_ids: np.ndarray,
                                stamps_ns: np.ndarray, *, radius_s: float) -> float:
    """Share of frames whose nearest other frame in embedding space is a temporal neighbour.

    A neighbour is a frame of the same bag within `radius_s` of the query. Queries
    without any temporal neighbour are skipped.

    Args:
        embeddings: [N, E].
        bag_ids: [N].
        stamps_ns: [N].
        radius_s: Temporal neighbour radius (the TCN positive radius).

    Returns:
        Accuracy in [0, 1]; NaN when no query has a neighbour.
    """
    emb = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
    bags = np.asarray(bag_ids)
    t = np.asarray(stamps_ns, np.int64)
    radius = int(radius_s * 1e9)
    sq = (emb ** 2).sum(1)
    hits, queries = 0, 0
    for start in range(0, len(emb), 512):
        q = slice(start, min(start + 512, len(emb)))
        d = sq[q, None] + sq[None, :] - 2 * emb[q] @ emb.T
        rows = np.arange(q.start, q.stop)
        d[rows - q.start, rows] = np.inf
        near = (bags[q, None] == bags[None, :]) & (np.abs(t[q, None] - t[None, :]) <= radius)
        near[rows - q.start, rows] = False
        has = near.any(1)
        nn = d.argmin(1)
        hits += int(near[np.arange(len(nn)), nn][has].sum())
        queries += int(has.sum())
    return hits / queries if queries else float('nan')


def cross_view_retrieval_accuracy(embeddings: np.ndarray, view_embeddings: np.ndarray,
                                  views_mask: np.ndarray, bag_ids: np.ndarray,
                                  stamps_ns: np.ndarray, *, radius_s: float) -> float:
    """Share of main-camera frames whose nearest other-camera embedding is a temporal match.

    The gallery is every present view (`views_mask`) of every frame; a query (a frame's
    main-camera embedding) is a hit when its nearest gallery entry belongs to a frame of
    the same bag within `radius_s` (its own other views are at dt = 0). Queries with no
    such gallery entry are skipped.

    Args:
        embeddings: [N, E] main-camera embeddings.
        view_embeddings: [N, V, E] embeddings of the other cameras' views.
        views_mask: [N, V] True where a view is present.
        bag_ids: [N].
        stamps_ns: [N].
        radius_s: Temporal match radius (the TCN positive radius).

    Returns:
        Accuracy in [0, 1]; NaN when no query has a match in the gallery.
    """
    emb = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
    mask = np.asarray(views_mask, bool).reshape(len(emb), -1)
    rows, _ = np.nonzero(mask)
    if not len(rows):
        return float('nan')
    gallery = np.asarray(view_embeddings, np.float64)[mask].reshape(len(rows), -1)
    bags, t = np.asarray(bag_ids), np.asarray(stamps_ns, np.int64)
    radius = int(radius_s * 1e9)
    sq_g = (gallery ** 2).sum(1)
    hits, queries = 0, 0
    for start in range(0, len(emb), 512):
        q = slice(start, min(start + 512, len(emb)))
        d = (emb[q] ** 2).sum(1)[:, None] + sq_g[None, :] - 2 * emb[q] @ gallery.T
        match = (bags[q, None] == bags[rows][None, :]) & (
            np.abs(t[q, None] - t[rows][None, :]) <= radius)
        has = match.any(1)
        nn = d.argmin(1)
        hits += int(match[np.arange(len(nn)), nn][has].sum())
        queries += int(has.sum())
    return hits / queries if queries else float('nan')


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray, train_mask: np.ndarray,
                test_x: np.ndarray, *, l2: float = 1.0) -> np.ndarray:
    """Linear probe in closed form: one ridge regression per output on known labels.

    Closed-form least squares (no training loop) on standardised features; the scores
    rank test samples, which is all ROC-AUC needs.

    Args:
        train_x: Frozen features [N, F].
        train_y: Labels [N, K] (0/1).
        train_mask: Known labels [N, K].
        test_x: Features [M, F].
        l2: Ridge penalty.

    Returns:
        Scores [M, K].
    """
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xa = np.hstack([(train_x - mu) / sd, np.ones((len(train_x), 1))])
    xt = np.hstack([(test_x - mu) / sd, np.ones((len(test_x), 1))])
    reg = l2 * np.eye(xa.shape[1])
    reg[-1, -1] = 0.0
    scores = np.zeros((len(test_x), train_y.shape[1]))
    for k in range(train_y.shape[1]):
        m = train_mask[:, k].astype(bool)
        if m.sum() < 2:
            continue
        w = np.linalg.solve(xa[m].T @ xa[m] + reg, xa[m].T @ train_y[m, k])
        scores[:, k] = xt @ w
    return scores


def auc_table(probs: np.ndarray, labels: np.ndarray, masks: np.ndarray, *,
              distances: list[float], sensors: list[str], n_boot: int = 500,
              seed: int = 0, groups: np.ndarray | None = None) -> dict[str, Any]:
    """AUC with bootstrap CI overall, per distance (all sensors) and per sensor.

    Args:
        probs, labels, masks: [N, D, S] per frame.
        distances, sensors: Names of the D and S axes.
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap.
        groups: Group id per frame for a block bootstrap (see `bootstrap_ci`).

    Returns:
        {'overall': {...}, 'per_distance': [...], 'per_sensor': [...]}, each entry with
        auc, ci_low, ci_high, n_known, n_pos.
    """
    known = masks.astype(bool)

    def masked_auc(p: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
        return roc_auc(p[m], y[m])

    def entry(sel: np.ndarray) -> dict[str, float]:
        low, high = bootstrap_ci(masked_auc, probs, labels, sel, n_boot=n_boot, seed=seed,
                                 groups=groups)
        return {'auc': masked_auc(probs, labels, sel), 'ci_low': low, 'ci_high': high,
                'n_known': int(sel.sum()), 'n_pos': int((labels[sel] > 0.5).sum())}

    out: dict[str, Any] = {'overall': entry(known), 'per_distance': [], 'per_sensor': []}
    for d, dist in enumerate(distances):
        sel = np.zeros_like(known)
        sel[:, d, :] = known[:, d, :]
        out['per_distance'].append({'distance_m': float(dist), **entry(sel)})
    for s, name in enumerate(sensors):
        sel = np.zeros_like(known)
        sel[:, :, s] = known[:, :, s]
        out['per_sensor'].append({'sensor': name, **entry(sel)})
    return out


def time_blocks(bag_ids: np.ndarray, stamps_ns: np.ndarray, block_s: float = 5.0
                ) -> np.ndarray:
    """Group id per frame: its bag and its `block_s` time block (for block bootstrap)."""
    block = (np.asarray(stamps_ns, np.int64) // int(block_s * 1e9)).astype(np.int64)
    return np.asarray(bag_ids, np.int64) * (1 << 40) + (block - block.min())


# ---------------------------------------------------------------------------- runs
def evaluate_run(run_dir: Path | str, *, dataset: str | None = None,
                 out_dir: Path | str | None = None, n_boot: int = 500, seed: int = 0,
                 train_baseline: bool | None = None) -> dict[str, Any]:
    """Evaluate a run's best model on the held-out split, next to same-run baselines.

    Args:
        run_dir: Training run directory (best.pt inside).
        dataset: Dataset to evaluate on (default: the one the run trained on).
        out_dir: Where to write eval.json and eval.png (default: run_dir/eval).
        n_boot: Bootstrap resamples for the CIs.
        seed: Seed of the random-init baseline and the bootstrap.
        train_baseline: Also train the model from random init on the same labels
            (default: only for a model initialised from a pretrained encoder).

    Returns:
        The report (also written as JSON).

    Raises:
        TrainError: When the run or the dataset cannot be read.
    """
    import torch

    from ssl_robot.models import build_robot_model
    from ssl_robot.tasks import build_task
    from ssl_robot.train import load_checkpoint, TrainError

    run_dir = Path(run_dir)
    ckpt = run_dir / 'best.pt'
    if not ckpt.exists():
        ckpt = run_dir / 'last.pt'
    state = load_checkpoint(ckpt)
    config = state['config']
    params = dict(config['task_params'])
    if dataset:
        params['dataset'] = str(dataset)
    task = build_task(config['task'], params)
    _, val = task.split()
    if len(val) == 0:
        raise TrainError(f'{params["dataset"]}: the held-out split is empty')
    out_dir = Path(out_dir) if out_dir else run_dir / 'eval'
    out_dir.mkdir(parents=True, exist_ok=True)

    spec = task.model_spec()
    trained = build_robot_model(spec)
    trained.load_state_dict(state['model'])
    torch.manual_seed(seed)
    random_init = build_robot_model(spec)
    random_init.load_state_dict({k: v for k, v in state['model'].items()
                                 if k in ('target_mean', 'target_std')}, strict=False)
    models = {'trained': trained, 'random_init': random_init}
    if train_baseline is None:
        train_baseline = bool(params.get('init_from'))
    if train_baseline:
        models['scratch'] = _train_scratch(config, params, out_dir / 'scratch_run')
    for m in models.values():
        m.eval()

    report: dict[str, Any] = {'run': str(run_dir), 'checkpoint': str(ckpt),
                              'task': config['task'], 'dataset': params['dataset'],
                              'n_val_frames': int(len(val)),
                              'n_train_frames': int(len(task.split()[0])),
                              'split_by': params.get('split_by'), 'chance_auc': 0.5}
    data = task.data
    # Block bootstrap over 5 s blocks of each bag: neighbouring frames are not independent.
    groups = time_blocks(np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val])
    report['bootstrap'] = {'resamples': n_boot, 'unit': '5 s time blocks per bag',
                           'blocks': int(len(np.unique(groups)))}
    if config['task'] == 'obstacle':
        report['models'] = {}
        for name, model in models.items():
            probs, labels, masks = task.predict(model, _val_loader(task))
            report['models'][name] = auc_table(
                probs, labels, masks, distances=list(spec['distances_m']),
                sensors=list(spec['sensors']), n_boot=n_boot, seed=seed, groups=groups)
    elif config['task'] == 'terrain':
        report['models'] = {}
        for name, model in models.items():
            pred, target, mask = task.predict(model, _val_loader(task))

            def masked_rho(p: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
                return spearman(p[m], y[m])

            low, high = bootstrap_ci(masked_rho, pred, target, mask, n_boot=min(n_boot, 200),
                                     seed=seed, groups=groups)
            report['models'][name] = {'spearman': masked_rho(pred, target, mask),
                                      'ci_low': low, 'ci_high': high,
                                      'n_known': int(mask.sum())}
    elif config['task'] == 'tcn':
        report['models'] = _evaluate_tcn(task, models, n_boot=n_boot, seed=seed,
                                         groups=groups)
    (out_dir / 'eval.json').write_text(json.dumps(report, indent=2, default=float))
    print(format_report(report))
    try:
        plot_report(report, out_dir / 'eval.png')
    except Exception as exc:  # a missing figure must not lose the numbers
        log.warning('figure not written: %s', exc)
    return report


def _val_loader(task: Any) -> Any:
    from torch.utils.data import DataLoader
    _, val = task.datasets()
    return DataLoader(val, batch_size=128, shuffle=False, collate_fn=task.collate)


def _train_scratch(config: dict[str, Any], params: dict[str, Any], out: Path) -> Any:
    """The same model and labels, trained from random init through the shared trainer."""
    from ssl_robot.tasks import build_task
    from ssl_robot.train import TrainConfig, Trainer
    cfg = copy.deepcopy(config)
    cfg['out_dir'] = str(out)
    cfg['task_params'] = {**params, 'init_from': ''}
    cfg['progress'] = False
    log.info('training the random-init baseline in %s', out)
    task = build_task(cfg['task'], cfg['task_params'])
    return Trainer(task, TrainConfig.from_dict(cfg)).fit().model


def _evaluate_tcn(task: Any, models: dict[str, Any], *, n_boot: int, seed: int,
                  groups: np.ndarray) -> dict[str, Any]:
    from ssl_robot.tasks.robot import embed_frames, embed_views
    train, val = task.split()
    data = task.data
    rng = np.random.default_rng(seed)
    # A probe needs a few thousand frames at most; more only costs time.
    probe_train = np.sort(rng.choice(train, min(len(train), 4000), replace=False))
    out: dict[str, Any] = {}
    for name, model in models.items():
        emb = embed_frames(model, task, val)
        acc = temporal_retrieval_accuracy(
            emb, np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val],
            radius_s=float(task.params['pos_radius_s']))
        ftr = embed_frames(model, task, probe_train, pooled=True)
        fva = embed_frames(model, task, val, pooled=True)
        d, s = np.asarray(data.proximity).shape[1:]
        ytr = np.asarray(data.proximity[probe_train]).reshape(len(probe_train), -1)
        mtr = np.asarray(data.proximity_mask[probe_train]).reshape(len(probe_train), -1)
        scores = ridge_probe(ftr, ytr, mtr, fva).reshape(len(val), d, s)
        probe = auc_table(scores, np.asarray(data.proximity[val]),
                          np.asarray(data.proximity_mask[val]),
                          distances=task.params['distances_m'], sensors=task.params['sensors'],
                          n_boot=n_boot, seed=seed, groups=groups)
        out[name] = {'retrieval_accuracy': acc, 'probe': probe}
        if data.view_names:
            out[name]['cross_view_retrieval'] = cross_view_retrieval_accuracy(
                emb, embed_views(model, task, val), np.asarray(data.views_mask)[val],
                np.asarray(data.bag_ids)[val], np.asarray(data.stamps_ns)[val],
                radius_s=float(task.params['pos_radius_s']))
    return out


def _fmt_auc(e: dict[str, float]) -> str:
    if not np.isfinite(e.get('auc', np.nan)):
        return '   n/a            '
    return f'{e["auc"]:.3f} [{e["ci_low"]:.3f},{e["ci_high"]:.3f}]'


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (models side by side)."""
    names = list(report['models'])
    lines = [f'{report["task"]} on {report["dataset"]}: {report["n_val_frames"]} held-out '
             f'frames (split by {report["split_by"]}), {report["n_train_frames"]} train; '
             f'95% CI: block bootstrap over {report["bootstrap"]["blocks"]} '
             f'{report["bootstrap"]["unit"]}']
    if report['task'] in ('obstacle', 'tcn'):
        tables = {n: (report['models'][n] if report['task'] == 'obstacle'
                      else report['models'][n]['probe']) for n in names}
        if report['task'] == 'tcn':
            lines.append('temporal-neighbour retrieval: ' + ', '.join(
                f'{n} {report["models"][n]["retrieval_accuracy"]:.3f}' for n in names))
            if 'cross_view_retrieval' in report['models'][names[0]]:
                lines.append('cross-view retrieval (main camera -> other cameras): ' + ', '.join(
                    f'{n} {report["models"][n]["cross_view_retrieval"]:.3f}' for n in names))
            lines.append('linear probe (ridge) of obstacle labels on frozen features, AUC:')
        header = f'{"":>14} ' + ' '.join(f'{n:>22}' for n in names) + '   chance'
        lines.append(header)
        first = tables[names[0]]
        rows = [('overall', 'overall', None)]
        rows += [(f'd={e["distance_m"]:.2f}m', 'per_distance', i)
                 for i, e in enumerate(first['per_distance'])]
        rows += [(f's={e["sensor"]}', 'per_sensor', i) for i, e in enumerate(first['per_sensor'])]
        for label, key, i in rows:
            cells = [tables[n][key] if i is None else tables[n][key][i] for n in names]
            known = cells[0]['n_known']
            lines.append(f'{label:>14} ' + ' '.join(f'{_fmt_auc(c):>22}' for c in cells)
                         + f'   0.500  (n={known}, pos={cells[0]["n_pos"]})')
    else:
        for n in names:
            e = report['models'][n]
            lines.append(f'{n:>14} Spearman {e["spearman"]:.3f} '
                         f'[{e["ci_low"]:.3f},{e["ci_high"]:.3f}] (n={e["n_known"]})')
    return '\n'.join(lines)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """AUC per distance with CI and baseline lines (obstacle, TCN probe); bars for terrain."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(report['models'])
    if report['task'] in ('obstacle', 'tcn'):
        for n in names:
            t = report['models'][n] if report['task'] == 'obstacle' else \
                report['models'][n]['probe']
            xs = [e['distance_m'] for e in t['per_distance']]
            ys = np.array([e['auc'] for e in t['per_distance']], float)
            lo = np.array([e['ci_low'] for e in t['per_distance']], float)
            hi = np.array([e['ci_high'] for e in t['per_distance']], float)
            ax.errorbar(xs, ys, yerr=[np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)],
                        marker='o', capsize=3, label=n)
        ax.axhline(0.5, color='grey', linestyle='--', label='chance')
        ax.set_xlabel('distance ahead (m)')
        ax.set_ylabel('ROC-AUC (95% bootstrap CI)')
        title = 'obstacle' if report['task'] == 'obstacle' else 'TCN linear probe'
        ax.set_title(f'{title}: held-out AUC per distance')
        ax.set_ylim(0.0, 1.0)
        ax.legend()
    else:
        ys = [report['models'][n]['spearman'] for n in names]
        ax.bar(names, ys)
        ax.axhline(0.0, color='grey', linestyle='--')
        ax.set_ylabel('Spearman rank correlation')
        ax.set_title('terrain: held-out rank correlation')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
