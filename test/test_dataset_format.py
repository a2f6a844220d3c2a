"""The dataset on disk: round trip, append, split, atomic writes."""
from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from ssl_robot.dataset import ARRAYS, DatasetError, DatasetWriter, LabelledDataset, VIEW_ARRAYS

SHAPE = {'distances_m': [0.0, 0.1, 0.2], 'sensors': ['left', 'center'],
         'terrain_grid': [2, 3], 'image_hw': [4, 5]}


def make_rows(n: int, *, t0_ns: int = 0, period_ns: int = 200_000_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        'frames': rng.integers(0, 255, (n, 4, 5, 3), dtype=np.uint8),
        'stamps_ns': t0_ns + np.arange(n, dtype=np.int64) * period_ns,
        'proximity': rng.integers(0, 2, (n, 3, 2)).astype(np.float32),
        'proximity_mask': rng.random((n, 3, 2)) > 0.5,
        'terrain': rng.random((n, 2, 3)).astype(np.float32),
        'terrain_mask': rng.random((n, 2, 3)) > 0.5,
        'prov_t_future_ns': rng.integers(-1, 10**9, (n, 3)),
        'prov_pose_err': rng.normal(size=(n, 3, 3)).astype(np.float32),
    }


def test_round_trip_memory_mapped(tmp_path):
    rows = make_rows(7)
    with DatasetWriter(tmp_path / 'ds', **SHAPE, params={'frame_rate_hz': 5.0}) as writer:
        writer.add_bag('a.mcap', rows)
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert len(ds) == 7
    assert isinstance(ds.frames, np.memmap)
    for name in rows:
        np.testing.assert_array_equal(getattr(ds, name), rows[name])
        assert getattr(ds, name).dtype == ARRAYS[name][0]
    np.testing.assert_array_equal(ds.bag_ids, np.zeros(7, np.int32))
    meta = json.loads((tmp_path / 'ds' / 'meta.json').read_text())
    assert meta['format_version'] == 2
    assert meta['bags'] == [{'id': 0, 'path': 'a.mcap', 'n_frames': 7, 'params': {}}]
    assert meta['params'] == {'frame_rate_hz': 5.0}
    assert meta['code_version'].startswith('0.1.0')
    assert meta['terrain_grid'] == [2, 3] and meta['image_hw'] == [4, 5]
    assert ds[3]['stamps_ns'] == rows['stamps_ns'][3]
    # No temporary directory is left beside the dataset.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']


def test_chunked_rows_and_append_from_many_bags(tmp_path):
    a, b, c = make_rows(5, seed=1), make_rows(3, seed=2), make_rows(4, seed=3)
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        bag = writer.begin_bag('a.mcap')
        writer.add_rows(bag, {k: v[:2] for k, v in a.items()})
        writer.add_rows(bag, {k: v[2:] for k, v in a.items()})
    (tmp_path / 'ds' / 'report').mkdir()
    (tmp_path / 'ds' / 'report' / 'summary.json').write_text('{}')
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:
        writer.add_bag('b.mcap', b)
        writer.add_bag('c.mcap', c)
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert len(ds) == 12
    np.testing.assert_array_equal(ds.bag_ids, [0] * 5 + [1] * 3 + [2] * 4)
    for name in a:
        np.testing.assert_array_equal(getattr(ds, name),
                                      np.concatenate([a[name], b[name], c[name]]))
    assert [bag['n_frames'] for bag in ds.meta['bags']] == [5, 3, 4]
    assert (tmp_path / 'ds' / 'report' / 'summary.json').read_text() == '{}'


def test_append_with_other_label_shape_is_refused(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(2))
    with pytest.raises(DatasetError, match='distances_m'):
        DatasetWriter(tmp_path / 'ds', append=True, distances_m=[0.0, 0.5, 1.0])
    with pytest.raises(DatasetError, match='already exists'):
        DatasetWriter(tmp_path / 'ds', **SHAPE)


def test_wrong_row_shape_is_a_clear_error(tmp_path):
    rows = make_rows(3)
    rows['proximity'] = rows['proximity'][:, :2]
    with pytest.raises(DatasetError, match='proximity'):
        with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
            writer.add_bag('a', rows)
    assert not any(tmp_path.iterdir())


def test_exception_mid_write_leaves_target_untouched(tmp_path, monkeypatch):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(4))
    before = {p.name: p.read_bytes() for p in (tmp_path / 'ds').iterdir()}

    calls = {'n': 0}
    real = DatasetWriter._finish_array

    def failing(self, name, total):
        calls['n'] += 1
        if calls['n'] == 3:  # after two arrays are already durable
            raise OSError(28, 'No space left on device')
        return real(self, name, total)

    monkeypatch.setattr(DatasetWriter, '_finish_array', failing)
    with pytest.raises(DatasetError, match='No space left'):
        with DatasetWriter(tmp_path / 'ds', append=True) as writer:
            writer.add_bag('b', make_rows(3))
    after = {p.name: p.read_bytes() for p in (tmp_path / 'ds').iterdir()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']
    assert len(LabelledDataset.open(tmp_path / 'ds')) == 4


def test_append_writes_only_the_new_rows_in_place(tmp_path):
    a, b = make_rows(6, seed=1), make_rows(4, seed=2)
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', a)
    frames = tmp_path / 'ds' / 'frames.npy'
    inode, head = frames.stat().st_ino, frames.read_bytes()[:frames.stat().st_size]
    reader = LabelledDataset.open(tmp_path / 'ds')  # e.g. a trainer, open during the append
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:
        writer.add_bag('b', b)
    assert frames.stat().st_ino == inode  # the same file, grown: no copy of the old rows
    grown = frames.read_bytes()
    header_len = len(grown) - 10 * 4 * 5 * 3
    assert grown[header_len:len(head)] == head[header_len:]
    np.testing.assert_array_equal(reader.frames, a['frames'])  # still its 6 rows
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert len(ds) == 10 and ds.meta['n_frames'] == 10
    np.testing.assert_array_equal(ds.frames, np.concatenate([a['frames'], b['frames']]))
    for name in ARRAYS:  # plain np.load sees the new length too
        assert np.load(tmp_path / 'ds' / f'{name}.npy').shape[0] == 10
    assert sorted(p.name for p in (tmp_path / 'ds').iterdir()) == sorted(
        ['meta.json', *(f'{name}.npy' for name in ARRAYS)])


def with_views(rows, v: int, *, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = len(rows['stamps_ns'])
    return {**rows, 'views': rng.integers(0, 255, (n, v, 4, 5, 3), dtype=np.uint8),
            'views_mask': rng.random((n, v)) > 0.3}


def test_views_round_trip_and_append_in_place(tmp_path):
    a, b = with_views(make_rows(6, seed=1), 2, seed=1), with_views(make_rows(4, seed=2), 2)
    topics = ['/camera2/image_raw', '/camera3/image_raw']
    with DatasetWriter(tmp_path / 'ds', **SHAPE, views=topics) as writer:
        writer.add_bag('a', a)
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:  # views taken from the meta
        writer.add_bag('b', b)
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.view_names == topics and ds.meta['n_frames'] == 10
    assert isinstance(ds.views, np.memmap) and ds.views.shape == (10, 2, 4, 5, 3)
    for name in VIEW_ARRAYS:
        np.testing.assert_array_equal(getattr(ds, name), np.concatenate([a[name], b[name]]))
        assert np.load(tmp_path / 'ds' / f'{name}.npy').shape[0] == 10
    assert ds[7]['views_mask'].tolist() == b['views_mask'][1].tolist()
    with pytest.raises(DatasetError, match='views'):
        DatasetWriter(tmp_path / 'ds', append=True, views=topics[:1])
    with pytest.raises(DatasetError, match='rows lack views_mask'):
        with DatasetWriter(tmp_path / 'ds', append=True) as writer:
            writer.add_bag('c', {k: v for k, v in a.items() if k != 'views_mask'})
    assert len(LabelledDataset.open(tmp_path / 'ds')) == 10


def test_single_camera_and_older_datasets_read_as_no_views(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(3))  # rows without views: fine with V = 0
    assert not (tmp_path / 'ds' / 'views.npy').exists()
    # A dataset written before views existed has no 'views' key in its meta.
    meta_path = tmp_path / 'ds' / 'meta.json'
    meta = json.loads(meta_path.read_text())
    meta.pop('views')
    meta_path.write_text(json.dumps(meta))
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.view_names == [] and ds.views.shape == (3, 0, 4, 5, 3)
    assert ds.views_mask.shape == (3, 0) and ds[1]['views_mask'].shape == (0,)
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:
        writer.add_bag('b', with_views(make_rows(2), 0))
    assert len(LabelledDataset.open(tmp_path / 'ds')) == 5
    with pytest.raises(DatasetError, match='views'):
        DatasetWriter(tmp_path / 'ds', append=True, views=['/camera2/image_raw'])


def test_rows_of_a_crashed_append_are_invisible_and_cut_off(tmp_path):
    a, b = make_rows(5, seed=1), make_rows(3, seed=2)
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', a)
    # A crash after writing rows but before meta.json was replaced: garbage at the ends.
    for name in ARRAYS:
        with open(tmp_path / 'ds' / f'{name}.npy', 'ab') as f:
            f.write(b'\xff' * 37)
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert len(ds) == 5
    np.testing.assert_array_equal(ds.proximity, a['proximity'])
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:
        writer.add_bag('b', b)
    ds = LabelledDataset.open(tmp_path / 'ds', mmap=False)
    for name in a:
        np.testing.assert_array_equal(getattr(ds, name), np.concatenate([a[name], b[name]]))


def test_commit_without_header_update_still_reads_every_row(tmp_path):
    """A crash between meta.json's replace and the .npy header update loses nothing."""
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(5, seed=1))
    old_headers = {name: (tmp_path / 'ds' / f'{name}.npy').read_bytes()[:128]
                   for name in ARRAYS}
    with DatasetWriter(tmp_path / 'ds', append=True) as writer:
        writer.add_bag('b', make_rows(3, seed=2))
    for name, header in old_headers.items():  # put the 5-row headers back
        with open(tmp_path / 'ds' / f'{name}.npy', 'r+b') as f:
            f.write(header)
    assert len(LabelledDataset.open(tmp_path / 'ds')) == 8


def test_a_truncated_array_is_a_clear_error(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(5))
    path = tmp_path / 'ds' / 'terrain.npy'
    os.truncate(path, path.stat().st_size - 10)
    with pytest.raises(DatasetError, match='terrain.npy: truncated'):
        LabelledDataset.open(tmp_path / 'ds')


def test_appending_writers_take_turns(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(2, seed=1))
    first = DatasetWriter(tmp_path / 'ds', append=True)
    first.add_bag('b', make_rows(3, seed=2))
    second_done = threading.Event()

    def second() -> None:
        with DatasetWriter(tmp_path / 'ds', append=True) as writer:
            writer.add_bag('c', make_rows(4, seed=3))
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not second_done.wait(0.5)  # waits for the first writer's lock
    first.commit()
    thread.join(10)
    assert second_done.is_set()
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert [bag['path'] for bag in ds.meta['bags']] == ['a', 'b', 'c']
    np.testing.assert_array_equal(ds.bag_ids, [0] * 2 + [1] * 3 + [2] * 4)


def test_interrupted_swap_is_recovered(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('a', make_rows(4))
    # A crash between the two renames of a swap leaves the old dataset at the backup name.
    os.replace(tmp_path / 'ds', tmp_path / '.ds.replaced')
    assert len(LabelledDataset.open(tmp_path / 'ds')) == 4


def test_unwritable_output_is_a_clear_error(tmp_path):
    (tmp_path / 'a_file').write_text('x')
    with pytest.raises(DatasetError, match='cannot create parent'):
        DatasetWriter(tmp_path / 'a_file' / 'sub' / 'ds', **SHAPE)
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    mounted = False
    try:
        if os.access(locked, os.W_OK):
            # Root ignores permissions: a read-only filesystem refuses root too.
            from test_faults_disk import _mount_tmpfs
            mounted = _mount_tmpfs(locked, 'size=64k,ro')
            if not mounted:
                pytest.skip('root ignores permissions and no read-only tmpfs can be mounted')
        with pytest.raises(DatasetError, match='not writable'):
            DatasetWriter(locked / 'ds', **SHAPE)
    finally:
        if mounted:
            from test_faults_disk import _umount
            _umount(locked)
        locked.chmod(0o700)
    with pytest.raises(DatasetError, match='needs'):
        DatasetWriter(tmp_path / 'new', sensors=['x'])


def test_open_rejects_non_dataset(tmp_path):
    with pytest.raises(DatasetError, match='no meta.json'):
        LabelledDataset.open(tmp_path)


def _minutes(ds, idx):
    return {(int(b), int(s // 60_000_000_000)) for b, s in zip(ds.bag_ids[idx],
                                                               ds.stamps_ns[idx])}


@pytest.mark.parametrize('by', ['bag', 'time'])
@pytest.mark.parametrize('seed', [0, 1])
def test_split_never_shares_a_bag_minute(tmp_path, by, seed):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        for k in range(4):  # four bags of 5 minutes at 1 Hz
            writer.add_bag(f'b{k}', make_rows(300, period_ns=10**9, seed=k))
    ds = LabelledDataset.open(tmp_path / 'ds')
    train, val = ds.split(0.25, by=by, seed=seed)
    assert len(np.intersect1d(train, val)) == 0
    assert len(train) + len(val) == len(ds)
    assert 0.15 * len(ds) <= len(val) <= 0.35 * len(ds)
    assert not _minutes(ds, train) & _minutes(ds, val)
    if by == 'bag':
        assert not set(ds.bag_ids[train]) & set(ds.bag_ids[val])
    again = ds.split(0.25, by=by, seed=seed)
    np.testing.assert_array_equal(again[1], val)


def test_split_of_one_short_bag_holds_out_a_contiguous_tail(tmp_path):
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('only', make_rows(100, period_ns=200_000_000))  # 20 s
    ds = LabelledDataset.open(tmp_path / 'ds')
    train, val = ds.split(0.25)
    assert 20 <= len(val) <= 30
    assert ds.stamps_ns[train].max() < ds.stamps_ns[val].min()
    np.testing.assert_array_equal(val, np.arange(val[0], val[-1] + 1))
