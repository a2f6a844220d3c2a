"""Validation of the roughness signal on real data: BorealTC (LaRocque et al. 2024).

BorealTC holds real Husky A200 runs on several terrains; the folder of a run is its
terrain class. Each `imu_NN.csv` (time s, wx wy wz rad/s, ax ay az m/s^2, 100 Hz) goes
through the very `imu_roughness` the labeller uses; each window's features then feed

* a Kruskal-Wallis test of the scalar signal across classes, and per-pair AUCs;
* a small multinomial logistic regression on the log features, cross-validated by run
  (every window of a run is in the same fold, so no run is both trained and tested on),
  whose balanced accuracy is compared with chance (1 / number of classes).

The data set is not shipped with the package; callers pass its directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssl_robot.labelling.terrain import imu_roughness, TerrainParams


@dataclass
class RunFeatures:
    """Windows of one run: features [W, F], scalar signal [W], terrain class, run name."""

    terrain: str
    run: str
    features: np.ndarray
    signal: np.ndarray


def load_imu_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stamps_ns, accel [M, 3], gyro [M, 3]) of a BorealTC imu_NN.csv."""
    data = np.loadtxt(path, delimiter=',', skiprows=1, dtype=np.float64, ndmin=2)
    return (np.round(data[:, 0] * 1e9).astype(np.int64), data[:, 4:7], data[:, 1:4])


def run_features(root: Path | str, params: TerrainParams | None = None, *,
                 max_runs_per_class: int | None = None) -> list[RunFeatures]:
    """Roughness features of every run under `root` (class folders of imu_NN.csv)."""
    params = params or TerrainParams(window_s=1.0, hop_s=0.5)
    runs = []
    for folder in sorted(Path(root).iterdir()):
        files = sorted(folder.glob('imu_*.csv')) if folder.is_dir() else []
        for path in files[:max_runs_per_class]:
            stamps, accel, gyro = load_imu_csv(path)
            series = imu_roughness(stamps, accel, gyro, params)
            ok = np.isfinite(series.signal)
            if ok.any():
                runs.append(RunFeatures(folder.name, path.stem, series.features[ok, :2],
                                        series.signal[ok]))
    return runs


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random `pos` value exceeds a random `neg` value (ties half)."""
    from scipy.stats import rankdata  # noqa: PLC0415 - scipy only for validation
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2)
                 / (len(pos) * len(neg)))


def _fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, *, steps: int = 500,
                 lr: float = 0.5, l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression with class-balanced weights (gradient descent)."""
    w = np.zeros((x.shape[1], n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    freq = np.bincount(y, minlength=n_classes).astype(np.float64)
    weight = (1.0 / np.maximum(freq, 1))[y]
    weight /= weight.sum()
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * weight[:, None]
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return w, b


def _design(features: np.ndarray) -> np.ndarray:
    logf = np.log(np.maximum(features, 1e-6))
    return np.column_stack([logf, logf ** 2, logf[:, :1] * logf[:, 1:2]])


def separation_report(runs: list[RunFeatures], *, folds: int = 5, seed: int = 0) -> dict:
    """How well the signal separates the terrain classes of `runs`.

    Returns:
        dict with classes, windows per class, kruskal_h and kruskal_p of the scalar
        signal, pair_auc {a/b: AUC of signal(a) > signal(b)}, balanced_accuracy and
        accuracy of the run-grouped cross-validated classifier, chance (1 / classes),
        majority_rate, shuffled_balanced_accuracy (same pipeline, run labels permuted).
    """
    from scipy.stats import kruskal  # noqa: PLC0415
    classes = sorted({r.terrain for r in runs})
    per_class = {c: np.concatenate([r.signal for r in runs if r.terrain == c]) for c in classes}
    h, p = kruskal(*per_class.values())
    pair_auc = {f'{a}>{b}': auc(per_class[a], per_class[b])
                for i, a in enumerate(classes) for b in classes[i + 1:]}
    y_run = np.array([classes.index(r.terrain) for r in runs])
    acc, bal = _grouped_cv(runs, y_run, len(classes), folds, seed)
    shuffled = np.random.default_rng(seed + 1).permutation(y_run)
    _, bal_shuffled = _grouped_cv(runs, shuffled, len(classes), folds, seed)
    counts = {c: int(len(v)) for c, v in per_class.items()}
    return {'classes': classes, 'windows': counts, 'runs': len(runs),
            'kruskal_h': float(h), 'kruskal_p': float(p), 'pair_auc': pair_auc,
            'accuracy': acc, 'balanced_accuracy': bal, 'chance': 1.0 / len(classes),
            'majority_rate': max(counts.values()) / sum(counts.values()),
            'shuffled_balanced_accuracy': bal_shuffled}


def _grouped_cv(runs: list[RunFeatures], y_run: np.ndarray, n_classes: int, folds: int,
                seed: int) -> tuple[float, float]:
    """Cross-validation with whole runs per fold, stratified by class."""
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(runs), np.int64)
    for c in range(n_classes):
        members = rng.permutation(np.flatnonzero(y_run == c))
        fold_of[members] = np.arange(len(members)) % folds
    x_run = [_design(r.features) for r in runs]
    truth, pred = [], []
    for f in range(folds):
        train = [i for i in range(len(runs)) if fold_of[i] != f]
        test = [i for i in range(len(runs)) if fold_of[i] == f]
        if not test:
            continue
        x = np.concatenate([x_run[i] for i in train])
        y = np.concatenate([np.full(len(x_run[i]), y_run[i]) for i in train])
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
        w, b = _fit_softmax((x - mu) / sd, y, n_classes)
        for i in test:
            xt = (x_run[i] - mu) / sd
            pred.append(np.argmax(xt @ w + b, axis=1))
            truth.append(np.full(len(xt), y_run[i]))
    truth, pred = np.concatenate(truth), np.concatenate(pred)
    recalls = [float((pred[truth == c] == c).mean()) for c in range(n_classes)
               if (truth == c).any()]
    return float((pred == truth).mean()), float(np.mean(recalls))
