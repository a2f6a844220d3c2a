"""The labelled dataset on disk: memory-mappable arrays, written atomically, appendable.

A dataset is a directory::

    meta.json              format_version, distances_m, sensors, terrain_grid [GH, GW],
                           image_hw [H, W], bags [{id, path, n_frames, params}], params,
                           code_version
    frames.npy             uint8   [N, H, W, 3]
    stamps_ns.npy          int64   [N]          frame stamp (header.stamp)
    bag_ids.npy            int32   [N]          index into meta['bags']
    proximity.npy          float32 [N, D, S]    1 obstacle at distance d for sensor s, 0 free
    proximity_mask.npy     bool    [N, D, S]    True where the label is known
    terrain.npy            float32 [N, GH, GW]  roughness signal, higher = rougher
    terrain_mask.npy       bool    [N, GH, GW]
    prov_t_future_ns.npy   int64   [N, D]       t' that made the label, -1 unknown
    prov_pose_err.npy      float32 [N, D, 3]    (dx, dy, dyaw) of the pose at t' vs target

Training reads the arrays with ``mmap_mode='r'``: no bag decoding per epoch.

Writing never leaves half a dataset: `DatasetWriter` streams chunks into a temporary
directory beside the target, fsyncs it, and swaps it in with renames. Appending writes
old + new rows into a new temporary directory and swaps that in, so a crash (or a full
disk) at any point leaves the previous dataset untouched.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import shutil
import subprocess
import tempfile
from typing import Any, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

FORMAT_VERSION = 1

#: Array name -> (dtype, trailing shape as a function of (H, W, D, S, GH, GW)).
ARRAYS: dict[str, tuple[np.dtype, Any]] = {
    'frames': (np.dtype(np.uint8), lambda h, w, d, s, gh, gw: (h, w, 3)),
    'stamps_ns': (np.dtype(np.int64), lambda h, w, d, s, gh, gw: ()),
    'bag_ids': (np.dtype(np.int32), lambda h, w, d, s, gh, gw: ()),
    'proximity': (np.dtype(np.float32), lambda h, w, d, s, gh, gw: (d, s)),
    'proximity_mask': (np.dtype(np.bool_), lambda h, w, d, s, gh, gw: (d, s)),
    'terrain': (np.dtype(np.float32), lambda h, w, d, s, gh, gw: (gh, gw)),
    'terrain_mask': (np.dtype(np.bool_), lambda h, w, d, s, gh, gw: (gh, gw)),
    'prov_t_future_ns': (np.dtype(np.int64), lambda h, w, d, s, gh, gw: (d,)),
    'prov_pose_err': (np.dtype(np.float32), lambda h, w, d, s, gh, gw: (d, 3)),
}

#: Arrays a bag's rows must provide (bag_ids is filled in by the writer).
ROW_ARRAYS = tuple(name for name in ARRAYS if name != 'bag_ids')

_LOG = logging.getLogger(__name__)


class DatasetError(Exception):
    """A dataset cannot be opened, written or appended to; the message names the path."""


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    from ssl_robot import __version__ as version  # noqa: PLC0415 - avoid an import cycle
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ''
    return f'{version}+g{commit}' if commit else str(version)


def _trailing_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    h, w = (int(v) for v in meta['image_hw'])
    gh, gw = (int(v) for v in meta['terrain_grid'])
    d, s = len(meta['distances_m']), len(meta['sensors'])
    return {name: tuple(shape(h, w, d, s, gh, gw)) for name, (_, shape) in ARRAYS.items()}


class LabelledDataset:
    """A dataset directory opened for reading; arrays are read-only memory maps.

    Attributes:
        path: The directory.
        meta: The parsed meta.json.
        frames, stamps_ns, bag_ids, proximity, proximity_mask, terrain, terrain_mask,
        prov_t_future_ns, prov_pose_err: The arrays (see the module docstring).
    """

    def __init__(self, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.path = path
        self.meta = meta
        self._arrays = arrays
        for name, array in arrays.items():
            setattr(self, name, array)

    @classmethod
    def open(cls, path: Path | str, *, mmap: bool = True) -> LabelledDataset:
        """Open a dataset directory.

        Args:
            path: The dataset directory.
            mmap: Memory-map the arrays (default); False loads them into memory.

        Raises:
            DatasetError: When the directory, meta.json or an array is missing, of another
                format version, or inconsistent.
        """
        path = Path(path)
        _recover_interrupted_swap(path)
        meta_path = path / 'meta.json'
        if not meta_path.is_file():
            raise DatasetError(f'{path}: not a dataset (no meta.json)')
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f'{meta_path}: unreadable: {exc}') from exc
        if meta.get('format_version') != FORMAT_VERSION:
            raise DatasetError(f'{path}: dataset format {meta.get("format_version")!r}, '
                               f'this code reads format {FORMAT_VERSION}')
        trailing = _trailing_shapes(meta)
        arrays: dict[str, np.ndarray] = {}
        n = None
        for name, (dtype, _) in ARRAYS.items():
            try:
                array = np.load(path / f'{name}.npy', mmap_mode='r' if mmap else None)
            except (OSError, ValueError) as exc:
                raise DatasetError(f'{path}: array {name}.npy missing or corrupt: {exc}') \
                    from exc
            n = array.shape[0] if n is None else n
            if array.dtype != dtype or array.shape != (n, *trailing[name]):
                raise DatasetError(
                    f'{path}: {name}.npy is {array.dtype}{list(array.shape)}, expected '
                    f'{dtype}{[n, *trailing[name]]}')
            arrays[name] = array
        return cls(path, meta, arrays)

    def __len__(self) -> int:
        return int(self._arrays['stamps_ns'].shape[0])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of one frame, as a dict (views into the memory maps)."""
        return {name: array[index] for name, array in self._arrays.items()}

    @property
    def distances_m(self) -> list[float]:
        return [float(d) for d in self.meta['distances_m']]

    @property
    def sensors(self) -> list[str]:
        return list(self.meta['sensors'])

    def split(self, val_fraction: float = 0.25, *, by: str = 'bag', seed: int = 0,
              block_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """Split frame indices into train and validation, never by random frames.

        Args:
            val_fraction: Target share of frames in validation.
            by: 'bag' holds out whole bags; 'time' holds out whole `block_s` time blocks
                of each bag. 'bag' with a single bag falls back to 'time'. With fewer than
                four blocks in all, the last `val_fraction` of each bag's time span is
                held out (one contiguous tail per bag).
            seed: Seed of the choice of held-out groups.
            block_s: Length of a time block in seconds.

        Returns:
            (train_idx, val_idx): sorted int64 index arrays, disjoint, covering all frames.

        Raises:
            DatasetError: For an unknown `by` or a fraction outside (0, 1).
        """
        if by not in ('bag', 'time'):
            raise DatasetError(f"split by {by!r}: use 'bag' or 'time'")
        if not 0.0 < val_fraction < 1.0:
            raise DatasetError(f'val_fraction {val_fraction} must be in (0, 1)')
        bag_ids = np.asarray(self.bag_ids)
        stamps = np.asarray(self.stamps_ns)
        n = len(bag_ids)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if by == 'bag' and len(np.unique(bag_ids)) < 2:
            _LOG.info('%s: one bag only, splitting by %.0f s time blocks', self.path, block_s)
            by = 'time'
        if by == 'bag':
            groups = bag_ids.astype(np.int64)
        else:
            groups = _time_block_groups(bag_ids, stamps, block_s)
        unique, counts = np.unique(groups, return_counts=True)
        if by == 'time' and len(unique) < 4:
            val = _contiguous_tail(bag_ids, stamps, val_fraction)
        else:
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(unique))
            chosen, total = [], 0
            for k in order:
                # Stop before a group that would overshoot the target by more than it helps.
                if total and abs(total + counts[k] - val_fraction * n) > abs(
                        total - val_fraction * n):
                    continue
                chosen.append(unique[k])
                total += counts[k]
                if total >= val_fraction * n:
                    break
            val = np.isin(groups, chosen)
            if val.all():  # never leave training empty
                val[groups == chosen[0]] = False
        all_idx = np.arange(n, dtype=np.int64)
        return all_idx[~val], all_idx[val]


def _time_block_groups(bag_ids: np.ndarray, stamps: np.ndarray, block_s: float) -> np.ndarray:
    """Group id per frame: (bag, block of `block_s` seconds from the bag's first frame)."""
    block_ns = max(1, int(block_s * 1e9))
    groups = np.zeros(len(bag_ids), np.int64)
    for b in np.unique(bag_ids):
        sel = bag_ids == b
        blocks = (stamps[sel] - stamps[sel].min()) // block_ns
        groups[sel] = int(b) * 1_000_000 + blocks
    return groups


def _contiguous_tail(bag_ids: np.ndarray, stamps: np.ndarray, fraction: float) -> np.ndarray:
    val = np.zeros(len(bag_ids), bool)
    for b in np.unique(bag_ids):
        sel = bag_ids == b
        t0, t1 = stamps[sel].min(), stamps[sel].max()
        cut = t1 - (t1 - t0) * fraction
        val |= sel & (stamps > cut)
    return val


def _backup_path(path: Path) -> Path:
    return path.with_name(f'.{path.name}.replaced')


def _recover_interrupted_swap(path: Path) -> None:
    """Undo a swap interrupted between its two renames (target gone, backup present)."""
    backup = _backup_path(path)
    if not path.exists() and backup.is_dir():
        _LOG.warning('%s: restoring the dataset from an interrupted swap', path)
        os.replace(backup, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DatasetWriter:
    """Writes a new dataset, or appends bags to an existing one, atomically.

    Usage::

        with DatasetWriter(out, distances_m=[...], sensors=[...], terrain_grid=(6, 8),
                           image_hw=(96, 128), params={...}) as writer:
            writer.add_bag('run1.mcap', rows, params={...})   # rows: dict of arrays
        # on leaving the block without error the dataset is in place; on an error the
        # target is untouched and the temporary directory removed.

    Rows of one bag may also be streamed in chunks: ``bag = writer.begin_bag(path)``,
    ``writer.add_rows(bag, rows)`` any number of times.

    Args:
        path: Target directory.
        distances_m, sensors, terrain_grid, image_hw: Shape of the labels; when
            appending they must equal the existing dataset's (None: take them from it).
        params: Parameters that made the labels (stored in meta.json).
        append: Add to an existing dataset at `path` (created when absent).
        overwrite: Replace an existing dataset (without `append`).

    Raises:
        DatasetError: When the target exists (without append/overwrite), is not a dataset,
            has other label shapes, or its parent directory is not writable.
    """

    def __init__(self, path: Path | str, *, distances_m: Sequence[float] | None = None,
                 sensors: Sequence[str] | None = None,
                 terrain_grid: Sequence[int] | None = None,
                 image_hw: Sequence[int] | None = None,
                 params: Mapping[str, Any] | None = None,
                 append: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path).absolute()
        _recover_interrupted_swap(self.path)
        self._base: LabelledDataset | None = None
        if self.path.exists():
            if append:
                self._base = LabelledDataset.open(self.path)
            elif not overwrite:
                raise DatasetError(f'{self.path}: already exists (use append or overwrite)')
            elif not (self.path / 'meta.json').is_file():
                raise DatasetError(f'{self.path}: exists and is not a dataset; not replacing it')
        parent = self.path.parent
        if not parent.is_dir():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(f'{self.path}: cannot create parent directory: {exc}') \
                    from exc
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DatasetError(f'{self.path}: directory {parent} is not writable')
        given = {'distances_m': None if distances_m is None else [float(d) for d in distances_m],
                 'sensors': None if sensors is None else [str(s) for s in sensors],
                 'terrain_grid': None if terrain_grid is None else [int(g) for g in terrain_grid],
                 'image_hw': None if image_hw is None else [int(v) for v in image_hw]}
        if self._base is not None:
            for key, value in given.items():
                have = self._base.meta[key]
                if value is not None and (
                        not np.allclose(value, have) if key == 'distances_m' else value != have):
                    raise DatasetError(f'{self.path}: cannot append, {key} is {value} here '
                                       f'but {have} in the dataset')
                given[key] = have
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise DatasetError(f'{self.path}: a new dataset needs {", ".join(missing)}')
        self.meta: dict[str, Any] = {
            'format_version': FORMAT_VERSION, **given,
            'bags': list(self._base.meta['bags']) if self._base else [],
            'params': dict(params if params is not None
                           else (self._base.meta.get('params', {}) if self._base else {})),
            'code_version': code_version(),
        }
        self._trailing = _trailing_shapes(self.meta)
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.tmp-', dir=parent))
        except OSError as exc:
            raise DatasetError(f'{self.path}: cannot write in {parent}: {exc}') from exc
        self._parts = {name: open(self._tmp / f'{name}.part', 'wb')  # noqa: SIM115
                       for name in ARRAYS}
        self._new_rows = 0
        self._closed = False

    # ----------------------------------------------------------------- adding rows
    def begin_bag(self, bag_path: Path | str, *, params: Mapping[str, Any] | None = None,
                  **info: Any) -> int:
        """Register a source bag; returns its id (rows follow with `add_rows`)."""
        bag_id = len(self.meta['bags'])
        self.meta['bags'].append({'id': bag_id, 'path': str(bag_path), 'n_frames': 0,
                                  'params': dict(params or {}), **info})
        return bag_id

    def add_rows(self, bag_id: int, rows: Mapping[str, np.ndarray]) -> None:
        """Append rows of one bag (every array of ROW_ARRAYS, same leading length).

        Raises:
            DatasetError: For a missing array or a wrong dtype/shape.
        """
        self._check_open()
        n = len(rows['stamps_ns']) if 'stamps_ns' in rows else None
        if n is None:
            raise DatasetError('rows need stamps_ns')
        converted = {}
        for name in ROW_ARRAYS:
            if name not in rows:
                raise DatasetError(f'rows lack {name}')
            dtype, _ = ARRAYS[name]
            array = np.ascontiguousarray(rows[name], dtype=dtype)
            if array.shape != (n, *self._trailing[name]):
                raise DatasetError(f'rows {name} has shape {list(array.shape)}, expected '
                                   f'{[n, *self._trailing[name]]}')
            converted[name] = array
        converted['bag_ids'] = np.full(n, bag_id, np.int32)
        try:
            for name, array in converted.items():
                self._parts[name].write(array.tobytes())
        except OSError as exc:
            self.abort()
            raise DatasetError(f'{self.path}: write failed: {exc}') from exc
        self._new_rows += n
        self.meta['bags'][bag_id]['n_frames'] += n

    def add_bag(self, bag_path: Path | str, rows: Mapping[str, np.ndarray], *,
                params: Mapping[str, Any] | None = None, **info: Any) -> int:
        """Register a bag and append all its rows; returns the bag id."""
        bag_id = self.begin_bag(bag_path, params=params, **info)
        self.add_rows(bag_id, rows)
        return bag_id

    # ----------------------------------------------------------------- finishing
    def commit(self) -> LabelledDataset:
        """Write the final arrays and meta.json, fsync, swap into place; returns the dataset.

        Raises:
            DatasetError: When writing fails (the target is then untouched).
        """
        self._check_open()
        try:
            for part in self._parts.values():
                part.close()
            base_n = len(self._base) if self._base is not None else 0
            total = base_n + self._new_rows
            for name, (dtype, _) in ARRAYS.items():
                self._write_npy(name, dtype, total)
            self._carry_other_files()
            (self._tmp / 'meta.json').write_text(json.dumps(self.meta, indent=1))
            with open(self._tmp / 'meta.json', 'rb+') as f:
                os.fsync(f.fileno())
            _fsync_dir(self._tmp)
            self._swap()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise DatasetError(f'{self.path}: write failed, dataset unchanged: {exc}') \
                    from exc
            raise
        self._closed = True
        return LabelledDataset.open(self.path)

    def _write_npy(self, name: str, dtype: np.dtype, total: int) -> None:
        part = self._tmp / f'{name}.part'
        out = self._tmp / f'{name}.npy'
        header = {'descr': np.lib.format.dtype_to_descr(dtype), 'fortran_order': False,
                  'shape': (total, *self._trailing[name])}
        with open(out, 'wb') as f:
            np.lib.format.write_array_header_1_0(f, header)
            if self._base is not None and len(self._base):
                base_file = self._base.path / f'{name}.npy'
                with open(base_file, 'rb') as src:
                    major, _ = np.lib.format.read_magic(src)
                    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                                   else np.lib.format.read_array_header_2_0)
                    read_header(src)
                    shutil.copyfileobj(src, f, 1 << 22)
            with open(part, 'rb') as src:
                shutil.copyfileobj(src, f, 1 << 22)
            f.flush()
            os.fsync(f.fileno())
        part.unlink()

    def _carry_other_files(self) -> None:
        """Keep what else lives in an appended dataset (its report, notes) across the swap."""
        if self._base is None:
            return
        ours = {'meta.json', *(f'{name}.npy' for name in ARRAYS)}
        for entry in self._base.path.iterdir():
            if entry.name in ours:
                continue
            if entry.is_dir():
                shutil.copytree(entry, self._tmp / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, self._tmp / entry.name, follow_symlinks=False)

    def _swap(self) -> None:
        if self.path.exists():
            backup = _backup_path(self.path)
            if backup.exists():
                shutil.rmtree(backup)
            # Two renames: between them the dataset lives at `backup`, which
            # `_recover_interrupted_swap` moves back if the process dies right there.
            os.replace(self.path, backup)
            os.replace(self._tmp, self.path)
            _fsync_dir(self.path.parent)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)
            _fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Discard everything written so far; the target stays as it was."""
        if self._closed:
            return
        self._closed = True
        for part in self._parts.values():
            if not part.closed:
                # Closing flushes the buffer, which fails again on a full disk; the
                # temporary directory must go regardless.
                try:
                    part.close()
                except OSError:
                    pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(f'{self.path}: writer already committed or aborted')

    @property
    def n_frames(self) -> int:
        """Frames in the dataset once committed (existing + added)."""
        return (len(self._base) if self._base is not None else 0) + self._new_rows

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            if not self._closed:
                self.commit()
        else:
            self.abort()

    def __del__(self) -> None:  # an abandoned writer must not leave its temp dir behind
        try:
            self.abort()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

