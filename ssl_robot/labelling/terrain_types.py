"""Unsupervised terrain types: a diagonal Gaussian mixture over terrain descriptors.

Fitted (scikit-learn `GaussianMixture`, covariance 'diag') on the standardised
descriptors of the training bags; the number of types is configured or chosen by the
lowest BIC over a range. The fitted model is plain arrays (`as_arrays` / `from_arrays`,
stored as .npz beside the dataset, never a pickle), and assigning a type needs numpy
only: the posterior of each type given the known entries of a descriptor. A masked
entry is marginalised out (with diagonal covariances that is dropping its term), so a
patch whose wheel entries are unknown still gets a type from what is known.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TerrainTypes:
    """A fitted mixture of terrain types over descriptor entries `columns`.

    Attributes:
        columns: int [F] descriptor entries used.
        mean, scale: [F] standardisation of those entries.
        weights: [K] mixing weights; means, variances: [K, F] in standardised units.
        bic: {k: BIC} of the candidates tried (empty when k was configured).
    """

    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    bic: dict[int, float]

    @property
    def n_types(self) -> int:
        return len(self.weights)

    @classmethod
    def fit(cls, values: np.ndarray, mask: np.ndarray, *, columns: np.ndarray | None = None,
            n_types: int | None = None, k_range: tuple[int, int] = (2, 10), seed: int = 0,
            max_samples: int = 20000) -> TerrainTypes:
        """Fit on descriptors [W, D] (rows with every entry of `columns` known).

        Args:
            values, mask: Descriptors and their masks.
            columns: Entries to use (default: those known in at least 90 % of rows).
            n_types: Number of types; None chooses it by the lowest BIC in `k_range`.
            seed: Seed of the mixture's initialisation and of the subsample.
            max_samples: Rows used at most (a seeded random subsample).

        Raises:
            ValueError: With fewer complete rows than types.
        """
        from sklearn.mixture import GaussianMixture  # noqa: PLC0415 - fitting only
        values, mask = np.asarray(values, np.float64), np.asarray(mask, bool)
        if columns is None:
            columns = np.flatnonzero(mask.mean(axis=0) >= 0.9) if len(mask) else np.zeros(0)
        columns = np.asarray(columns, np.int64)
        rows = mask[:, columns].all(axis=1)
        x = values[rows][:, columns]
        rng = np.random.default_rng(seed)
        if len(x) > max_samples:
            x = x[rng.choice(len(x), max_samples, replace=False)]
        ks = [n_types] if n_types else list(range(k_range[0], k_range[1] + 1))
        if len(x) < max(ks) or not len(columns):
            raise ValueError(f'{len(x)} complete descriptors over {len(columns)} entries: too '
                             f'few to fit {max(ks)} terrain types')
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - mean) / scale
        best, bic = None, {}
        for k in ks:
            gm = GaussianMixture(k, covariance_type='diag', random_state=seed, n_init=2,
                                 reg_covar=1e-4).fit(z)
            bic[k] = float(gm.bic(z))
            if best is None or bic[k] < bic[best[0]]:
                best = (k, gm)
        gm = best[1]
        return cls(columns, mean, scale, gm.weights_.copy(), gm.means_.copy(),
                   gm.covariances_.copy(), bic if n_types is None else {})

    def posterior(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[..., K] type probabilities of descriptors [..., D]; NaN where no entry is known."""
        v = np.asarray(values, np.float64)[..., self.columns]
        m = np.asarray(mask, bool)[..., self.columns]
        z = np.where(m, (np.where(m, v, 0.0) - self.mean) / self.scale, 0.0)[..., None, :]
        logp = -0.5 * (((z - self.means) ** 2) / self.variances
                       + np.log(2 * np.pi * self.variances))             # [..., K, F]
        loglik = np.where(m[..., None, :], logp, 0.0).sum(axis=-1) + np.log(self.weights)
        loglik -= loglik.max(axis=-1, keepdims=True)
        p = np.exp(loglik)
        p /= p.sum(axis=-1, keepdims=True)
        return np.where(m.any(axis=-1, keepdims=True), p, np.nan)

    def assign(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(type id int16 [...], -1 where unknown; membership confidence float32 [...])."""
        p = self.posterior(values, mask)
        known = np.isfinite(p).all(axis=-1)
        ids = np.where(known, np.argmax(np.nan_to_num(p, nan=0.0), axis=-1), -1)
        conf = np.where(known, np.nanmax(np.where(known[..., None], p, 0.0), axis=-1), 0.0)
        return ids.astype(np.int16), conf.astype(np.float32)

    def as_arrays(self) -> dict[str, np.ndarray]:
        ks = np.array(sorted(self.bic), np.int64)
        return {'columns': self.columns, 'mean': self.mean, 'scale': self.scale,
                'weights': self.weights, 'means': self.means, 'variances': self.variances,
                'bic_k': ks, 'bic': np.array([self.bic[int(k)] for k in ks], np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TerrainTypes:
        return cls(np.asarray(arrays['columns'], np.int64), *(np.asarray(arrays[k], np.float64)
                   for k in ('mean', 'scale', 'weights', 'means', 'variances')),
                   {int(k): float(b) for k, b in zip(arrays['bic_k'], arrays['bic'])})

    def save(self, path: Path | str) -> None:
        """Write the model as a plain .npz (no pickled objects)."""
        np.savez(path, **self.as_arrays())

    @classmethod
    def load(cls, path: Path | str) -> TerrainTypes:
        with np.load(path, allow_pickle=False) as f:
            return cls.from_arrays({k: f[k] for k in f.files})


def purity(types: np.ndarray, classes: np.ndarray) -> float:
    """Share of rows whose type's most common class is their class."""
    types, classes = np.asarray(types), np.asarray(classes)
    hits = 0
    for t in np.unique(types):
        hits += np.bincount(classes[types == t]).max()
    return float(hits / max(len(types), 1))


#: File of the fitted types inside a dataset directory.
TYPES_FILE = 'terrain_types.npz'


def fit_dataset_types(series: list, *, n_types: int | None = None,
                      seed: int = 0) -> TerrainTypes | None:
    """Types fitted on the window descriptors of a dataset's bags (`DescriptorSeries`).

    Only series with the first one's layout are used. None when too few windows.
    """
    series = [s for s in series if s is not None and len(s.stamps_ns)]
    if not series:
        return None
    names = series[0].layout.names
    same = [s for s in series if s.layout.names == names]
    values = np.concatenate([s.values for s in same])
    mask = np.concatenate([s.mask for s in same])
    try:
        return TerrainTypes.fit(values, mask, n_types=n_types, seed=seed)
    except ValueError:
        return None


def save_dataset_types(types: TerrainTypes, dataset_dir: Path | str) -> Path:
    """Store the types in a dataset directory (written beside it, then renamed in)."""
    target = Path(dataset_dir) / TYPES_FILE
    tmp = target.with_name('.terrain_types.tmp.npz')
    types.save(tmp)
    tmp.replace(target)
    return target


def load_dataset_types(dataset_dir: Path | str) -> TerrainTypes | None:
    """The types stored with a dataset, or None (datasets without them)."""
    path = Path(dataset_dir) / TYPES_FILE
    return TerrainTypes.load(path) if path.is_file() else None


def patch_types(dataset: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(type id int16 [N, GH, GW], -1 unknown; confidence float32) of a dataset's patches.

    None when the dataset has no descriptors or no fitted types.
    """
    types = load_dataset_types(dataset.path)
    values = dataset.terrain_descriptor
    if types is None or values.shape[-1] == 0:
        return None
    return types.assign(np.asarray(values), np.asarray(dataset.terrain_descriptor_mask))
