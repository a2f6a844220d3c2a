"""Fault suite: a full disk or an unwritable output path.

Fault suite: a full disk or an unwritable output path gives a clear error and leaves no
partial dataset or bag behind; an existing dataset survives a failed append.

The full disk is a real one: a tiny tmpfs mounted for the test (needs root; the tests
that need it are skipped, with the reason, where mounting is not allowed).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from ssl_robot.bags.reader import BagError, BagReader
from ssl_robot.bags.writer import BagWriter
from ssl_robot.dataset import DatasetError, DatasetWriter, LabelledDataset

from bag_factory import write_sensor_bag

SHAPE = dict(distances_m=[0.1, 0.2], sensors=['left', 'center', 'right'],
             terrain_grid=(2, 3), image_hw=(24, 32))


def _rows(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, s, (gh, gw), (h, w) = 2, 3, SHAPE['terrain_grid'], SHAPE['image_hw']
    return {
        'frames': rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8),
        'stamps_ns': np.arange(n, dtype=np.int64) * 100_000_000,
        'proximity': rng.integers(0, 2, (n, d, s)).astype(np.float32),
        'proximity_mask': np.ones((n, d, s), bool),
        'terrain': rng.random((n, gh, gw), dtype=np.float32),
        'terrain_mask': np.ones((n, gh, gw), bool),
        'prov_t_future_ns': np.full((n, d), -1, np.int64),
        'prov_pose_err': np.zeros((n, d, 3), np.float32),
    }


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def _umount(path: Path) -> None:
    if subprocess.run(['umount', str(path)], capture_output=True).returncode != 0:
        subprocess.run(['umount', '-l', str(path)], capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB filesystem (a real ENOSPC once it is full)."""
    path = tmp_path / 'tiny'
    if not _mount_tmpfs(path, 'size=256k'):
        pytest.skip('cannot mount a tmpfs here (needs root); full-disk cases not run')
    try:
        yield path
    finally:
        _umount(path)


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only filesystem (root cannot write to it either, unlike a chmod'ed dir)."""
    path = tmp_path / 'ro'
    if not _mount_tmpfs(path, 'size=64k,ro'):
        pytest.skip('cannot mount a tmpfs here (needs root); read-only cases not run')
    try:
        yield path
    finally:
        _umount(path)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != 'lost+found')


def test_dataset_on_a_full_disk_is_a_clear_error_and_leaves_nothing(tiny_disk, fault_case):
    # 300 frames of 24x32x3 are 690 KB: far more than the disk holds.
    with pytest.raises(DatasetError, match='No space left on device') as info:
        with DatasetWriter(tiny_disk / 'ds', **SHAPE) as writer:
            for chunk in range(10):
                bag = writer.begin_bag(f'bag{chunk}')
                writer.add_rows(bag, _rows(30, chunk))
    assert str(tiny_disk / 'ds') in str(info.value)
    assert _leftovers(tiny_disk) == []


def test_append_on_a_full_disk_keeps_the_existing_dataset(tiny_disk, fault_case):
    with DatasetWriter(tiny_disk / 'ds', **SHAPE) as writer:
        writer.add_bag('first', _rows(20))
    before = {p.name: p.read_bytes() for p in (tiny_disk / 'ds').iterdir()}
    with pytest.raises(DatasetError, match='No space left on device'):
        with DatasetWriter(tiny_disk / 'ds', append=True) as writer:
            writer.add_bag('second', _rows(150, 1))  # 390 KB: more than the disk
    after = {p.name: p.read_bytes() for p in (tiny_disk / 'ds').iterdir()}
    assert after == before
    assert _leftovers(tiny_disk) == ['ds']
    dataset = LabelledDataset.open(tiny_disk / 'ds')
    fault_case.lost = 20 - len(dataset)
    assert len(dataset) == 20


def test_dataset_on_a_read_only_disk_is_a_clear_error(read_only_disk, fault_case):
    with pytest.raises(DatasetError) as info:
        with DatasetWriter(read_only_disk / 'ds', **SHAPE) as writer:
            writer.add_bag('a', _rows(2))
    assert str(read_only_disk / 'ds') in str(info.value)
    assert _leftovers(read_only_disk) == []


def test_bag_on_a_full_disk_is_a_bag_error(tiny_disk, fault_case):
    """A bag writer that runs out of space says so (naming the bag) instead of crashing."""
    with pytest.raises(BagError) as info:
        write_sensor_bag(tiny_disk / 'bag', seconds=20.0)
    assert str(tiny_disk / 'bag') in str(info.value)


def test_bag_on_a_read_only_disk_is_a_bag_error(read_only_disk, fault_case):
    with pytest.raises(BagError, match='cannot create bag') as info:
        with BagWriter(read_only_disk / 'bag'):
            pass
    assert str(read_only_disk / 'bag') in str(info.value)


def test_bag_under_a_file_is_a_bag_error(tmp_path, fault_case):
    (tmp_path / 'a_file').write_text('x')
    with pytest.raises(BagError, match='cannot create bag'):
        with BagWriter(tmp_path / 'a_file' / 'bag'):
            pass


# ---------------------------------------------------------------- `ssl-robot label`
@pytest.fixture
def sensor_bag(tmp_path) -> Path:
    bag = tmp_path / 'bag'
    write_sensor_bag(bag, seconds=3.0)
    with BagReader(bag) as reader:
        assert reader.message_counts['/image_raw'] == 30
    return bag


def _label(bag: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'label', str(bag), '--out',
                           str(out)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('where', ['full-disk', 'under-a-file'])
def test_label_to_a_bad_output_is_one_clear_line_and_no_dataset(where, sensor_bag, tmp_path,
                                                                fault_case, request):
    if where == 'full-disk':
        disk = request.getfixturevalue('tiny_disk')
        with contextlib.suppress(OSError):  # leave ~8 KiB: too little for 30 frames
            (disk / 'filler').write_bytes(b'\0' * (248 * 1024))
        out = disk / 'dataset'
    else:
        (tmp_path / 'a_file').write_text('x')
        disk, out = tmp_path, tmp_path / 'a_file' / 'dataset'
    proc = _label(sensor_bag, out)
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and str(out) in errors[0], proc.stderr
    assert not out.exists()
    assert not [n for n in _leftovers(disk) if n.startswith('.dataset')]
    if where == 'full-disk':
        os.remove(disk / 'filler')
