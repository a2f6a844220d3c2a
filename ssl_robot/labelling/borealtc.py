"""Validation of the roughness signal on real data: BorealTC (LaRocque et al. 2024).

BorealTC holds real Husky A200 runs on several terrains; the folder of a run is its
terrain class. Each `imu_NN.csv` (time s, wx wy wz rad/s, ax ay az m/s^2, 100 Hz) goes
through the very `imu_roughness` the labeller uses; each window's features then feed

* a Kruskal-Wallis test of the scalar signal across classes, and per-pair AUCs;
* a small multinomial logistic regression on the log features, cross-validated by run
  (every window of a run is in the same fold, so no run is both trained and tested on),
  whose balanced accuracy is compared with chance (1 / number of classes).

The same runs also validate the terrain descriptor (`ssl_robot.labelling.descriptor`,
what the labeller stores for every patch): `load_runs` computes the descriptors of each
run, with the run's `pro_NN.csv` as wheel data (wheel velocity L/R, motor current L/R as
effort), and `terrain_eval` cross-validates a classifier on them by run
(scikit-learn `StratifiedGroupKFold`: every window of a run in the same fold, folds
stratified by class) for several variants on the same windows: IMU descriptor, IMU +
wheel descriptor, the old scalar roughness signal, and the best descriptor with its run
labels shuffled. The unsupervised terrain types (`TerrainTypes`, fitted without labels)
are compared with the classes by adjusted mutual information and purity.

The data set is not shipped with the package; callers pass its directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssl_robot.labelling.descriptor import (
    DescriptorParams,
    DescriptorSeries,
    IMU_AXES,
    terrain_descriptors,
    WheelData,
)
from ssl_robot.labelling.terrain import imu_roughness, TerrainParams
from ssl_robot.labelling.terrain_types import purity, TerrainTypes


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


# --------------------------------------------------------------- terrain descriptor
#: Variants of `terrain_eval`, in the order reported.
VARIANTS = ('imu', 'imu_wheel', 'old_scalar', 'shuffled')
#: Descriptor entries BorealTC has (no odometry or commands: the slip entries stay masked).
WHEEL_ENTRIES = ('wheel_speed', 'wheel_speed_std', 'wheel_yaw_rate', 'yaw_slip',
                 'effort_mean', 'effort_std', 'effort_diff')


@dataclass
class TerrainRun:
    """One run: its terrain class, name, descriptors and the old scalar signal (aligned)."""

    terrain: str
    run: str
    descriptors: DescriptorSeries
    old_signal: np.ndarray


def load_pro_csv(path: Path) -> WheelData:
    """Wheel data of a BorealTC pro_NN.csv (time s, curL, curR A, velL, velR m/s)."""
    data = np.loadtxt(path, delimiter=',', skiprows=1, dtype=np.float64, ndmin=2)
    return WheelData(np.round(data[:, 0] * 1e9).astype(np.int64), data[:, 3:5], data[:, 1:3])


def load_runs(root: Path | str, params: DescriptorParams, *,
              max_runs_per_class: int | None = None) -> list[TerrainRun]:
    """Descriptors of every run under `root` (class folders of imu_NN.csv [+ pro_NN.csv]).

    The IMU rate is read from each file's time column. A run without its pro_NN.csv has
    its wheel entries masked. The old signal uses `imu_roughness` on the same windows.
    """
    old = TerrainParams(window_s=params.window_s, hop_s=params.hop_s)
    runs = []
    for folder in sorted(Path(root).iterdir()):
        files = sorted(folder.glob('imu_*.csv')) if folder.is_dir() else []
        for path in files[:max_runs_per_class]:
            stamps, accel, gyro = load_imu_csv(path)
            pro = path.with_name(path.name.replace('imu_', 'pro_', 1))
            wheels = load_pro_csv(pro) if pro.is_file() else None
            series = terrain_descriptors(stamps, accel, gyro, params, wheels=wheels)
            rough = imu_roughness(stamps, accel, gyro, old)
            signal = np.full(len(series.stamps_ns), np.nan)
            common = min(len(signal), len(rough.signal))
            same = series.stamps_ns[:common] == rough.stamps_ns[:common]
            signal[:common][same] = rough.signal[:common][same]
            if len(series.stamps_ns):
                runs.append(TerrainRun(folder.name, path.stem, series, signal))
    return runs


def variant_columns(layout_names: tuple[str, ...], variant: str) -> list[int]:
    """Descriptor entries a descriptor variant uses ('imu' or 'imu_wheel')."""
    imu = [k for k, n in enumerate(layout_names) if n.split('_b')[0] in IMU_AXES]
    if variant == 'imu':
        return imu
    return imu + [layout_names.index(n) for n in WHEEL_ENTRIES]


def make_classifier(kind: str, seed: int) -> Any:
    """The classifier of `terrain_eval`: 'hgb' (gradient-boosted trees) or 'logreg'.

    Both weigh classes by the inverse of their frequency (balanced accuracy is the
    figure reported).
    """
    if kind == 'hgb':
        from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415
        return HistGradientBoostingClassifier(max_iter=100, class_weight='balanced',
                                              random_state=seed)
    if kind == 'logreg':
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
        from sklearn.pipeline import make_pipeline  # noqa: PLC0415
        from sklearn.preprocessing import StandardScaler  # noqa: PLC0415
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=0.1, class_weight='balanced', max_iter=2000))
    raise ValueError(f'classifier {kind!r}: use hgb or logreg')


def grouped_folds(y: np.ndarray, groups: np.ndarray, *, folds: int, seed: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run-grouped, class-stratified folds (StratifiedGroupKFold) as (train, test) indices.

    Raises:
        AssertionError: Never expected: if a group were on both sides of a fold.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # noqa: PLC0415
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = list(splitter.split(np.zeros(len(y)), y, groups))
    for train, test in out:
        assert not set(groups[train]) & set(groups[test]), 'a run on both sides of a fold'
    return out


def cross_validated_predictions(x: np.ndarray, y: np.ndarray,
                                folds: list[tuple[np.ndarray, np.ndarray]], *,
                                classifier: str, seed: int) -> np.ndarray:
    """Out-of-fold predictions [N]: each window predicted by a model not trained on its run."""
    pred = np.full(len(y), -1, np.int64)
    for train, test in folds:
        model = make_classifier(classifier, seed).fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    return pred


def terrain_eval(runs: list[TerrainRun], *, folds: int = 5, seed: int = 0,
                 classifier: str = 'hgb', variants: tuple[str, ...] = VARIANTS,
                 cluster: bool = True) -> dict[str, Any]:
    """Run-grouped cross-validation of terrain classes from descriptors (see module doc).

    Every variant is evaluated on the same windows (those whose IMU and wheel entries and
    old signal are known), with the same folds. `shuffled` uses the IMU + wheel
    descriptor with the runs' classes permuted among runs (chance by construction).

    Returns:
        dict: classes, runs, windows, chance, layout, and per variant
        balanced_accuracy, accuracy, recall per class, confusion [C, C] (rows true
        class, columns predicted); best (the descriptor variant with the higher balanced
        accuracy); types (the unsupervised types: k, BIC criterion, AMI and purity).
    """
    from sklearn.metrics import (  # noqa: PLC0415
        adjusted_mutual_info_score,
        balanced_accuracy_score,
        confusion_matrix,
    )
    classes = sorted({r.terrain for r in runs})
    names = runs[0].descriptors.layout.names
    cols = variant_columns(names, 'imu_wheel')
    values = np.concatenate([r.descriptors.values for r in runs])
    mask = np.concatenate([r.descriptors.mask for r in runs])
    old = np.concatenate([r.old_signal for r in runs])
    y = np.concatenate([np.full(len(r.old_signal), classes.index(r.terrain)) for r in runs])
    run_ids = np.concatenate([np.full(len(r.old_signal), k) for k, r in enumerate(runs)])
    keep = mask[:, cols].all(axis=1) & np.isfinite(old)
    values, mask, old, y, run_ids = values[keep], mask[keep], old[keep], y[keep], run_ids[keep]
    cv = grouped_folds(y, run_ids, folds=folds, seed=seed)
    run_class = np.array([classes.index(r.terrain) for r in runs])
    shuffled_class = np.random.default_rng(seed + 1).permutation(run_class)
    report: dict[str, Any] = {
        'classes': classes, 'runs': len({int(r) for r in run_ids}), 'windows': int(len(y)),
        'windows_per_class': {c: int((y == k).sum()) for k, c in enumerate(classes)},
        'chance': 1.0 / len(classes), 'folds': folds, 'seed': seed, 'classifier': classifier,
        'layout': runs[0].descriptors.layout.as_dict(), 'variants': {}}
    for variant in variants:
        if variant == 'old_scalar':
            x, target = np.log(np.maximum(old, 1e-6))[:, None], y
        elif variant == 'shuffled':
            x, target = values[:, cols], shuffled_class[run_ids]
        else:
            x, target = values[:, variant_columns(names, variant)], y
        folds_v = cv if variant != 'shuffled' else grouped_folds(target, run_ids, folds=folds,
                                                                 seed=seed)
        pred = cross_validated_predictions(x, target, folds_v, classifier=classifier,
                                           seed=seed)
        cm = confusion_matrix(target, pred, labels=list(range(len(classes))))
        recall = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
        report['variants'][variant] = {
            'features': int(x.shape[1]),
            'balanced_accuracy': float(balanced_accuracy_score(target, pred)),
            'accuracy': float((pred == target).mean()),
            'recall': {c: float(r) for c, r in zip(classes, recall)},
            'confusion': cm.tolist()}
    scored = [v for v in ('imu', 'imu_wheel') if v in report['variants']]
    if scored:
        report['best'] = max(scored, key=lambda v: report['variants'][v]['balanced_accuracy'])
    if cluster:
        types = TerrainTypes.fit(values, mask, columns=np.array(cols), seed=seed)
        ids, conf = types.assign(values, mask)
        report['types'] = {
            'method': 'GaussianMixture (diagonal), k by lowest BIC over 2..10',
            'k': types.n_types, 'bic': types.bic,
            'ami': float(adjusted_mutual_info_score(y, ids)), 'purity': purity(ids, y),
            'purity_chance': float(np.bincount(y).max() / len(y)),
            'mean_confidence': float(conf.mean())}
        fixed = TerrainTypes.fit(values, mask, columns=np.array(cols), seed=seed,
                                 n_types=len(classes))
        fixed_ids, _ = fixed.assign(values, mask)
        report['types_k_classes'] = {
            'k': len(classes), 'ami': float(adjusted_mutual_info_score(y, fixed_ids)),
            'purity': purity(fixed_ids, y)}
    return report
