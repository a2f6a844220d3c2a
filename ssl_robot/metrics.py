"""Metrics shared by every learning family (robot, vision, text), pure numpy/scipy.

ROC-AUC (ties count 1/2) with a block-bootstrap CI for correlated frames, Spearman rank
correlation, temporal-neighbour and cross-view retrieval, a ridge-regression probe, and
the per-distance/per-sensor AUC table, and the multinomial logistic-regression linear probe
that the vision and text wings share. Tested against hand-computed cases.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata


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


#: L2 strengths `logistic_probe` chooses from on the validation split.
PROBE_L2_GRID = (1e-4, 1e-3, 1e-2)


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float,
                 max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch L-BFGS.

    A convex fit, not a training run (no epochs, no schedule); the objective is the mean
    cross-entropy + l2 * sum(W ** 2).

    Args:
        x: Features [N, D].
        y: Integer labels [N] in 0..n_classes-1.
        n_classes: Number of classes K.
        l2: Strength of the L2 penalty on the weights (not the bias).
        max_iter: L-BFGS iterations at most.

    Returns:
        (weights [D, K], bias [K]).
    """
    from scipy.optimize import minimize
    x = np.asarray(x, np.float32)  # float32 products, float64 optimiser state
    n, d = x.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), np.asarray(y, np.int64)] = 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:-n_classes].reshape(d, n_classes)
        logits = (x @ w.astype(np.float32)).astype(np.float64) + theta[-n_classes:]
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() / n + l2 * float((w * w).sum())
        err = (np.exp(log_p) - onehot) / n
        grad_w = (x.T @ err.astype(np.float32)).astype(np.float64) + 2 * l2 * w
        grad = np.concatenate([grad_w.ravel(), err.sum(axis=0)])
        return loss, grad

    theta = minimize(objective, np.zeros(d * n_classes + n_classes), jac=True,
                     method='L-BFGS-B', options={'maxiter': max_iter}).x
    return theta[:-n_classes].reshape(d, n_classes), theta[-n_classes:]


def logistic_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                   val_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                   n_classes: int | None = None, l2_grid: tuple[float, ...] = PROBE_L2_GRID,
                   max_iter: int = 200) -> dict[str, float]:
    """The linear probe of every wing: a logistic regression with L2 chosen on validation.

    Standardises the features (train statistics), fits one multinomial logistic
    regression per L2 strength, keeps the best on validation and reports it on test.

    Args:
        train_x, train_y: Probe training features [N, D] and labels [N].
        val_x, val_y: Validation split (chooses the L2 strength).
        test_x, test_y: Test split (the reported accuracy).
        n_classes: Number of classes (default: 1 + the largest label seen).
        l2_grid: Candidate L2 strengths.
        max_iter: L-BFGS iterations per fit.

    Returns:
        {'test_acc', 'val_acc', 'l2'}.
    """
    arrays = [np.asarray(a, np.float64) for a in (train_x, val_x, test_x)]
    labels = [np.asarray(a, np.int64) for a in (train_y, val_y, test_y)]
    if n_classes is None:
        n_classes = int(max(int(a.max()) for a in labels if a.size)) + 1
    mu = arrays[0].mean(axis=0)
    sd = np.maximum(arrays[0].std(axis=0, ddof=1) if len(arrays[0]) > 1
                    else np.ones_like(mu), 1e-6)
    train, val, test = ((a - mu) / sd for a in arrays)
    best: dict[str, float] | None = None
    for l2 in l2_grid:
        w, b = fit_logistic(train, labels[0], n_classes, l2=l2, max_iter=max_iter)
        val_acc = float(((val @ w + b).argmax(axis=1) == labels[1]).mean())
        if best is None or val_acc > best['val_acc']:
            test_acc = float(((test @ w + b).argmax(axis=1) == labels[2]).mean())
            best = {'test_acc': test_acc, 'val_acc': val_acc, 'l2': l2}
    assert best is not None
    return best


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
