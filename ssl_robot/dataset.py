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
    views.npy              uint8   [N, V, H, W, 3]  other cameras' frames (multi-view)
    views_mask.npy         bool    [N, V]       True where view v has a frame for row n
    collision.npy          float32 [N]          1 collision ahead within the horizon, 0 free
    collision_mask.npy     bool    [N]          True where the crash label is known
    prov_collision_tti_ns.npy int64 [N]         time to impact of 'ahead' frames, -1 else
    prov_collision_dist_m.npy float32 [N]       odometry distance to impact, NaN else
    terrain_descriptor.npy float32 [N, GH, GW, DT] mean terrain descriptor felt in the patch
                                                (NaN where unknown)
    terrain_descriptor_mask.npy bool [N, GH, GW, DT] True where that entry is known
    prov_terrain_t_future_ns.npy int64 [N, GH, GW] earliest t' felt in the patch, -1 none
    terrain_types.npz                           fitted terrain types (plain arrays)

Terrain descriptors (format 2; `ssl_robot.labelling.descriptor`; meta.json
``terrain_descriptor``: the layout, DT = len(names)) are on disk only in datasets written
with them; format-1 datasets, and any written without them, read as DT = 0 with
empty [N, GH, GW, 0] arrays and t' -1. The unsupervised terrain types fitted on the
dataset's descriptors (`ssl_robot.labelling.terrain_types`) sit beside them.

Crash labels (`ssl_robot.labelling.collision`; meta.json ``collision``: true) are on
disk only in datasets written with them; any other dataset reads them as unknown
(mask False).

Extra cameras (meta.json ``views``: their image topics, V = len(views)) are matched to
each main-camera frame by header stamp (`ssl_robot.labelling.streams.match_views`); a
view without a frame close enough in time is masked, its pixels zero. The two view
arrays exist only when V > 0: a single-camera dataset, and any dataset written before
views existed (no ``views`` key), reads as V = 0 with empty [N, 0, ...] arrays.

Training reads the arrays with ``mmap_mode='r'``: no bag decoding per epoch.

Writing never leaves half a dataset. A new dataset is streamed into a temporary
directory beside the target, fsynced, and swapped in with renames. Appending costs only
the new rows: they are written past the end of each array file, fsynced, and then
meta.json (which holds ``n_frames``, the number of committed rows) is replaced
atomically; that replace is the commit point, after which the .npy headers are updated
to the new length. Readers trust ``n_frames``, so rows of an append that crashed or ran
out of disk are invisible (and cut off by the next writer), and a dataset opened for
training while the live labeller appends keeps reading the rows it saw. One writer at a
time: an append holds an exclusive lock on the dataset directory.
"""
from __future__ import annotations

import fcntl
import io
import json
import logging
import os
from pathlib import Path
import shutil
import subprocess
import tempfile
from typing import Any, TYPE_CHECKING

import numpy as np

from ssl_robot.errors import SslRobotError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

FORMAT_VERSION = 2
#: Formats this code reads (1: before terrain descriptors).
READABLE_FORMATS = (1, 2)

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

#: Arrays of the extra camera views: name -> (dtype, trailing shape of (V, H, W)); on
#: disk only when the dataset has views (V > 0).
VIEW_ARRAYS: dict[str, tuple[np.dtype, Any]] = {
    'views': (np.dtype(np.uint8), lambda v, h, w: (v, h, w, 3)),
    'views_mask': (np.dtype(np.bool_), lambda v, h, w: (v,)),
}

#: Arrays of the crash labels: name -> dtype (one value per row); on disk only when the
#: dataset has them (meta ``collision``).
COLLISION_ARRAYS: dict[str, np.dtype] = {
    'collision': np.dtype(np.float32), 'collision_mask': np.dtype(np.bool_),
    'prov_collision_tti_ns': np.dtype(np.int64), 'prov_collision_dist_m': np.dtype(np.float32),
}
_COLLISION_UNKNOWN = {'collision': 0.0, 'collision_mask': False, 'prov_collision_tti_ns': -1,
                      'prov_collision_dist_m': np.nan}

#: Arrays of the terrain descriptor labels: name -> (dtype, trailing shape of (GH, GW, DT));
#: on disk only when the dataset has them (meta ``terrain_descriptor``).
DESCRIPTOR_ARRAYS: dict[str, tuple[np.dtype, Any]] = {
    'terrain_descriptor': (np.dtype(np.float32), lambda gh, gw, dt: (gh, gw, dt)),
    'terrain_descriptor_mask': (np.dtype(np.bool_), lambda gh, gw, dt: (gh, gw, dt)),
    'prov_terrain_t_future_ns': (np.dtype(np.int64), lambda gh, gw, dt: (gh, gw)),
}
_DESCRIPTOR_UNKNOWN = {'terrain_descriptor': np.nan, 'terrain_descriptor_mask': False,
                       'prov_terrain_t_future_ns': -1}

#: Arrays a bag's rows must provide (bag_ids is filled in by the writer; views and
#: views_mask too when the dataset has views).
ROW_ARRAYS = tuple(name for name in ARRAYS if name != 'bag_ids')

_DTYPES = {**{name: dtype for name, (dtype, _) in {**ARRAYS, **VIEW_ARRAYS}.items()},
           **COLLISION_ARRAYS, **{name: dtype for name, (dtype, _) in DESCRIPTOR_ARRAYS.items()}}

_LOG = logging.getLogger(__name__)


class DatasetError(SslRobotError):
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
    v = len(meta.get('views', []))
    shapes = {name: tuple(shape(h, w, d, s, gh, gw)) for name, (_, shape) in ARRAYS.items()}
    shapes.update({name: tuple(shape(v, h, w)) for name, (_, shape) in VIEW_ARRAYS.items()})
    shapes.update({name: () for name in COLLISION_ARRAYS})
    dt = len((meta.get('terrain_descriptor') or {}).get('names', []))
    shapes.update({name: tuple(shape(gh, gw, dt))
                   for name, (_, shape) in DESCRIPTOR_ARRAYS.items()})
    return shapes


def _stored_arrays(meta: Mapping[str, Any]) -> list[str]:
    """Names of the array files a dataset of this meta has (view arrays only with views)."""
    return [*ARRAYS, *(VIEW_ARRAYS if meta.get('views') else ()),
            *(COLLISION_ARRAYS if meta.get('collision') else ()),
            *(DESCRIPTOR_ARRAYS if meta.get('terrain_descriptor') else ())]


class _NpyHeader:
    """Where an .npy file's rows start, their dtype and the shape its header records."""

    def __init__(self, offset: int, shape: tuple[int, ...], fortran_order: bool,
                 dtype: np.dtype) -> None:
        self.offset, self.shape, self.fortran_order, self.dtype = (
            offset, shape, fortran_order, dtype)

    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


def _read_npy_header(path: Path) -> _NpyHeader:
    with open(path, 'rb') as f:
        major, _ = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read(f)
        return _NpyHeader(f.tell(), tuple(shape), fortran_order, dtype)


def _map_rows(path: Path, header: _NpyHeader, n: int, *, mmap: bool) -> np.ndarray:
    """The first `n` rows of an .npy file (read-only memory map, or loaded)."""
    shape = (n, *header.shape[1:])
    need = header.offset + n * header.row_bytes()
    have = path.stat().st_size
    if have < need:
        raise DatasetError(f"{path}: truncated: {have} bytes, the dataset's {n} rows need "
                           f'{need}')
    if n == 0 or header.row_bytes() == 0:
        empty = np.zeros(shape, header.dtype)
        empty.flags.writeable = False
        return empty
    if mmap:
        return np.memmap(path, dtype=header.dtype, mode='r', offset=header.offset, shape=shape)
    with open(path, 'rb') as f:
        f.seek(header.offset)
        return np.fromfile(f, dtype=header.dtype, count=int(np.prod(shape))).reshape(shape)


def _npy_header_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header; numpy pads it so that axis 0 can grow in place."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {'descr': np.lib.format.dtype_to_descr(dtype), 'fortran_order': False,
                 'shape': shape})
    return buffer.getvalue()


class LabelledDataset:
    """A dataset directory opened for reading; arrays are read-only memory maps.

    Attributes:
        path: The directory.
        meta: The parsed meta.json.
        frames, stamps_ns, bag_ids, proximity, proximity_mask, terrain, terrain_mask,
        prov_t_future_ns, prov_pose_err, views, views_mask: The arrays (see the module
        docstring; views [N, 0, H, W, 3] and views_mask [N, 0] without views).
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
        if not isinstance(meta, dict):
            raise DatasetError(f'{meta_path}: not a dataset description (a JSON object)')
        if meta.get('format_version') not in READABLE_FORMATS:
            raise DatasetError(f'{path}: dataset format {meta.get("format_version")!r}, '
                               f'this code reads formats '
                               f'{", ".join(map(str, READABLE_FORMATS))}')
        try:
            trailing = _trailing_shapes(meta)
            if not isinstance(meta.get('bags', []), list) or not all(
                    isinstance(b, dict) for b in meta.get('bags', [])):
                raise ValueError('bags is not a list of objects')
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f'{meta_path}: malformed ({type(exc).__name__}: {exc})') \
                from None
        n = meta.get('n_frames')  # absent in datasets written before in-place appends
        arrays: dict[str, np.ndarray] = {}
        for name in _stored_arrays(meta):
            dtype = _DTYPES[name]
            array_path = path / f'{name}.npy'
            try:
                header = _read_npy_header(array_path)
            except (OSError, ValueError) as exc:
                raise DatasetError(f'{path}: array {name}.npy missing or corrupt: {exc}') \
                    from exc
            n = header.shape[0] if n is None and header.shape else n
            if header.dtype != dtype or header.fortran_order \
                    or tuple(header.shape[1:]) != trailing[name]:
                raise DatasetError(
                    f'{path}: {name}.npy is {header.dtype}{list(header.shape)}, expected '
                    f'{dtype}{[n, *trailing[name]]}')
            arrays[name] = _map_rows(array_path, header, int(n), mmap=mmap)
        if not meta.get('views'):
            for name in VIEW_ARRAYS:
                empty = np.zeros((int(n or 0), *trailing[name]), _DTYPES[name])
                empty.flags.writeable = False
                arrays[name] = empty
        if not meta.get('collision'):
            for name, dtype in COLLISION_ARRAYS.items():
                unknown = np.full(int(n or 0), _COLLISION_UNKNOWN[name], dtype)
                unknown.flags.writeable = False
                arrays[name] = unknown
        if not meta.get('terrain_descriptor'):
            for name in DESCRIPTOR_ARRAYS:
                unknown = np.full((int(n or 0), *trailing[name]), _DESCRIPTOR_UNKNOWN[name],
                                  _DTYPES[name])
                unknown.flags.writeable = False
                arrays[name] = unknown
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

    @property
    def view_names(self) -> list[str]:
        """Image topics of the extra camera views (empty for a single-camera dataset)."""
        return [str(v) for v in self.meta.get('views', [])]

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


def rows_digest(rows: Mapping[str, np.ndarray]) -> str:
    """A content hash of a bag's rows: every stamp and up to 64 evenly spaced frames."""
    import hashlib
    digest = hashlib.sha256()
    stamps = np.ascontiguousarray(rows.get('stamps_ns', np.zeros(0, np.int64)), np.int64)
    digest.update(stamps.tobytes())
    frames = rows.get('frames')
    if frames is not None and len(frames):
        step = max(1, len(frames) // 64)
        digest.update(np.ascontiguousarray(frames[::step]).tobytes())
    return digest.hexdigest()


def _same_existing_paths(stored: str, new: str) -> bool:
    """Whether two bag path lists (', '-joined) name one existing file or directory."""
    def resolved(text: str) -> set[Path]:
        return {Path(part).resolve() for part in text.split(', ') if part and
                Path(part).exists()}
    return bool(resolved(stored) & resolved(new))


class DatasetWriter:
    """Writes a new dataset, or appends bags to an existing one, atomically.

    Usage::

        with DatasetWriter(out, distances_m=[...], sensors=[...], terrain_grid=(6, 8),
                           image_hw=(96, 128), params={...}) as writer:
            writer.add_bag('run1.mcap', rows, params={...})   # rows: dict of arrays
        # on leaving the block without error the dataset is in place; on an error the
        # target is as it was before and nothing is left beside it.

    Rows of one bag may also be streamed in chunks: ``bag = writer.begin_bag(path)``,
    ``writer.add_rows(bag, rows)`` any number of times. An append writes only the new
    rows (see the module docstring), so appending every few seconds from a live robot
    stays cheap however large the dataset grows.

    Args:
        path: Target directory.
        distances_m, sensors, terrain_grid, image_hw: Shape of the labels; when
            appending they must equal the existing dataset's (None: take them from it).
        views: Names (image topics) of the extra camera views, [] for one camera;
            when appending they must equal the dataset's (None: take them from it).
        params: Parameters that made the labels (stored in meta.json).
        collision: Store crash labels (rows then need the COLLISION_ARRAYS); when
            appending it must equal the dataset's (None: take it from it, else False).
        terrain_descriptor: The descriptor layout (`DescriptorLayout.as_dict()`) to store
            descriptor patch labels (rows then need the DESCRIPTOR_ARRAYS); when
            appending it must equal the dataset's (None: take it from it, else none).
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
                 append: bool = False, overwrite: bool = False,
                 views: Sequence[str] | None = None, collision: bool | None = None,
                 terrain_descriptor: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path).absolute()
        self._overwrite = overwrite
        _recover_interrupted_swap(self.path)
        self._closed = True  # until the output files are open
        self._lock_fd: int | None = None
        self._base: LabelledDataset | None = None
        if self.path.exists():
            if append:
                self._lock()
                self._base = LabelledDataset.open(self.path)
            elif not overwrite:
                raise DatasetError(f'{self.path}: already exists (use append or overwrite)')
            elif not (self.path / 'meta.json').is_file():
                raise DatasetError(f'{self.path}: exists and is not a dataset; not replacing it')
        try:
            self._open_output(distances_m, sensors, terrain_grid, image_hw, params, views,
                              collision, terrain_descriptor)
        except BaseException:
            self._unlock()
            raise

    def _open_output(self, distances_m: Sequence[float] | None, sensors: Sequence[str] | None,
                     terrain_grid: Sequence[int] | None, image_hw: Sequence[int] | None,
                     params: Mapping[str, Any] | None, views: Sequence[str] | None,
                     collision: bool | None = None,
                     terrain_descriptor: Mapping[str, Any] | None = None) -> None:
        parent = self.path.parent
        if not parent.is_dir():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatasetError(f'{self.path}: cannot create parent directory: {exc}') \
                    from exc
        writable = self.path if self._base is not None else parent
        if not os.access(writable, os.W_OK | os.X_OK):
            raise DatasetError(f'{self.path}: directory {writable} is not writable')
        given = {'distances_m': None if distances_m is None else [float(d) for d in distances_m],
                 'sensors': None if sensors is None else [str(s) for s in sensors],
                 'terrain_grid': None if terrain_grid is None else [int(g) for g in terrain_grid],
                 'image_hw': None if image_hw is None else [int(v) for v in image_hw],
                 'views': None if views is None else [str(v) for v in views],
                 'collision': None if collision is None else bool(collision),
                 'terrain_descriptor': None if terrain_descriptor is None
                 else json.loads(json.dumps(dict(terrain_descriptor)))}
        if self._base is not None:
            for key, value in given.items():
                have = (self._base.meta.get(key, []) if key == 'views' else
                        bool(self._base.meta.get(key)) if key == 'collision' else
                        self._base.meta.get(key) if key == 'terrain_descriptor' else
                        self._base.meta[key])
                if value is not None and (
                        not np.allclose(value, have) if key == 'distances_m' else value != have):
                    raise DatasetError(f'{self.path}: cannot append, {key} is {value} here '
                                       f'but {have} in the dataset')
                given[key] = have
        if given['views'] is None:
            given['views'] = []
        if given['collision'] is None:
            given['collision'] = False
        if given['terrain_descriptor'] is None:
            given['terrain_descriptor'] = {}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise DatasetError(f'{self.path}: a new dataset needs {", ".join(missing)}')
        self.meta: dict[str, Any] = {
            'format_version': FORMAT_VERSION, **given,
            'bags': [dict(bag) for bag in self._base.meta['bags']] if self._base else [],
            'params': dict(params if params is not None
                           else (self._base.meta.get('params', {}) if self._base else {})),
            'code_version': code_version(),
            # Content hash of each bag added whole (add_bag), by bag id: a bag already in
            # the dataset is refused (see add_bag).
            'bag_content_sha256': dict(self._base.meta.get('bag_content_sha256', {})
                                       if self._base else {}),
        }
        self._trailing = _trailing_shapes(self.meta)
        self._names = _stored_arrays(self.meta)
        self._new_rows = 0
        if self._base is None:
            try:
                self._tmp = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.tmp-', dir=parent))
            except OSError as exc:
                raise DatasetError(f'{self.path}: cannot write in {parent}: {exc}') from exc
            self._parts = {name: open(self._tmp / f'{name}.part', 'wb')  # noqa: SIM115
                           for name in self._names}
        else:
            self._parts = self._open_for_append()
        self._closed = False

    def _lock(self) -> None:
        """Take the dataset directory's exclusive lock (waits for another writer)."""
        try:
            self._lock_fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise DatasetError(f'{self.path}: cannot open: {exc}') from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _LOG.info('%s: another writer is appending; waiting for it', self.path)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _open_for_append(self) -> dict[str, Any]:
        """Open every array file for writing past its committed rows.

        Bytes beyond the committed rows (an append that crashed or hit a full disk) are
        cut off first; `_end` remembers each file's committed size for `abort`.
        """
        assert self._base is not None
        n = len(self._base)
        self._end: dict[str, int] = {}
        self._headers: dict[str, _NpyHeader] = {}
        parts = {}
        try:
            for name in self._names:
                file = self.path / f'{name}.npy'
                header = _read_npy_header(file)
                grown = _npy_header_bytes(_DTYPES[name], (10 ** 18, *self._trailing[name]))
                if len(grown) != header.offset:
                    raise DatasetError(f'{file}: its header leaves no room to grow; '
                                       'cannot append in place (re-create the dataset)')
                self._headers[name] = header
                self._end[name] = header.offset + n * header.row_bytes()
                part = open(file, 'r+b')  # noqa: SIM115
                parts[name] = part
                part.truncate(self._end[name])
                part.seek(self._end[name])
        except OSError as exc:
            for part in parts.values():
                part.close()
            raise DatasetError(f'{self.path}: cannot append: {exc}') from exc
        except DatasetError:
            for part in parts.values():
                part.close()
            raise
        return parts

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

        With views, rows also need views and views_mask (ignored without views).

        Raises:
            DatasetError: For a missing array or a wrong dtype/shape.
        """
        self._check_open()
        n = len(rows['stamps_ns']) if 'stamps_ns' in rows else None
        if n is None:
            raise DatasetError('rows need stamps_ns')
        converted = {}
        for name in self._names:
            if name == 'bag_ids':
                continue
            if name not in rows:
                raise DatasetError(f'rows lack {name}')
            array = np.ascontiguousarray(rows[name], dtype=_DTYPES[name])
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
        """Register a bag and append all its rows; returns the bag id.

        Raises:
            DatasetError: When the dataset holds this bag already (the same bag file, or
                the same frames and stamps): the same frames in train and validation
                would inflate every held-out metric.
        """
        self._check_open()
        missing = [name for name in self._names if name != 'bag_ids' and name not in rows]
        if missing:  # the rows' own errors first (add_rows checks them all)
            raise DatasetError(f'rows lack {missing[0]}')
        digest = rows_digest(rows)
        hashes = self.meta['bag_content_sha256']
        for bag in self.meta['bags']:
            if hashes.get(str(bag['id'])) == digest:
                raise DatasetError(f'{self.path}: holds these frames already (bag '
                                   f'{bag["path"]!r}, same content hash); refusing to add '
                                   f'{str(bag_path)!r} again')
            if _same_existing_paths(bag['path'], str(bag_path)):
                raise DatasetError(f'{self.path}: holds bag {bag["path"]!r} already; refusing '
                                   'to label it again')
        bag_id = self.begin_bag(bag_path, params=params, **info)
        hashes[str(bag_id)] = digest
        self.add_rows(bag_id, rows)
        return bag_id

    # ----------------------------------------------------------------- finishing
    def commit(self) -> LabelledDataset:
        """Make the rows durable and visible; returns the dataset.

        Raises:
            DatasetError: When writing fails (the target is then as it was).
        """
        self._check_open()
        total = self.n_frames
        self.meta['n_frames'] = total
        try:
            for name in self._names:
                self._finish_array(name, total)
            if self._base is None:
                self._write_meta(self._tmp / 'meta.json')
                _fsync_dir(self._tmp)
                self._swap()
            else:
                self._write_meta(self.path / 'meta.json')  # the commit point
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise DatasetError(f'{self.path}: write failed, dataset unchanged: {exc}') \
                    from exc
            raise
        self._closed = True
        if self._base is not None:
            self._update_headers(total)
            self._unlock()
        return LabelledDataset.open(self.path)

    def _finish_array(self, name: str, total: int) -> None:
        """Make one array's rows durable (a new dataset: write its .npy from the part)."""
        part = self._parts[name]
        if self._base is not None:
            part.flush()
            os.fsync(part.fileno())
            return
        part.close()
        part_path = self._tmp / f'{name}.part'
        with open(self._tmp / f'{name}.npy', 'wb') as f:
            f.write(_npy_header_bytes(_DTYPES[name], (total, *self._trailing[name])))
            with open(part_path, 'rb') as src:
                shutil.copyfileobj(src, f, 1 << 22)
            f.flush()
            os.fsync(f.fileno())
        part_path.unlink()

    def _write_meta(self, target: Path) -> None:
        """Write meta.json through a temporary file and an atomic replace.

        Raises only before the replace: once it is done the rows are committed.
        """
        tmp = target.with_name('.meta.json.tmp')
        with open(tmp, 'w') as f:
            f.write(json.dumps(self.meta, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        try:
            _fsync_dir(target.parent)
        except OSError as exc:
            _LOG.warning('%s: fsync of the directory failed after the commit: %s',
                         target.parent, exc)

    def _update_headers(self, total: int) -> None:
        """After an append's commit: record the new length in each .npy header.

        Readers go by meta.json's n_frames, so a failure here loses nothing; the headers
        only keep the files loadable by plain `np.load`.
        """
        for name, part in self._parts.items():
            try:
                part.seek(0)
                part.write(_npy_header_bytes(_DTYPES[name], (total, *self._trailing[name])))
                part.flush()
                os.fsync(part.fileno())
            except OSError as exc:
                _LOG.warning('%s: %s.npy header not updated (%s); meta.json has the rows',
                             self.path, name, exc)
            finally:
                part.close()

    def _swap(self) -> None:
        if self.path.exists() and not self._overwrite:
            # Absent when this writer started: another writer (a concurrent `label --out`)
            # created it meanwhile. Replacing it would silently lose that dataset.
            raise DatasetError(f'{self.path}: created by another writer while this one ran; '
                               'not replacing it (use --overwrite, or another --out)')
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
            self._unlock()
            return
        self._closed = True
        for name, part in self._parts.items():
            if self._base is not None:
                try:  # cut the appended bytes off again
                    part.truncate(self._end[name])
                except (OSError, ValueError):
                    pass  # readers ignore them anyway; the next writer cuts them
            if not part.closed:
                # Closing flushes the buffer, which fails again on a full disk.
                try:
                    part.close()
                except OSError:
                    pass
                if self._base is not None:
                    try:
                        os.truncate(self.path / f'{name}.npy', self._end[name])
                    except OSError:
                        pass
        if self._base is None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            (self.path / '.meta.json.tmp').unlink(missing_ok=True)
        self._unlock()

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
