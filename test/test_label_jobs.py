"""`ssl-robot label --jobs N`: N processes (or Ray tasks), one dataset.

Labelling in jobs merges into the same dataset as labelling the bags one after another.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.cli import main as cli_main
from ssl_robot.dataset import LabelledDataset
from ssl_robot.sim.bag import write_sim_bag

from bag_factory import write_sensor_bag


@pytest.fixture(scope='module')
def bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four recordings, the third without a camera (no rows).

    The others are simulator bags of different lengths, with every kind of label
    (proximity, terrain signal and descriptors, collisions).
    """
    root = tmp_path_factory.mktemp('bags')
    out = []
    for i, seconds in enumerate((2.0, 3.0, 2.0, 1.5)):
        path = root / f'run{i}'
        if i == 2:
            write_sensor_bag(path, seconds=seconds, topics={
                '/odom', '/imu', '/range/left', '/range/center', '/range/right'})
        else:
            write_sim_bag(i, seconds, path, width=32, height=24, camera_rate_hz=10.0)
        out.append(path)
    return out


@pytest.fixture(scope='module')
def in_turn(bags: list[Path], tmp_path_factory: pytest.TempPathFactory) -> LabelledDataset:
    out = tmp_path_factory.mktemp('turn') / 'data'
    assert cli_main(['label', *map(str, bags), '--out', str(out), '--no-figures']) == 0
    return LabelledDataset.open(out)


def assert_same_dataset(a: LabelledDataset, b: LabelledDataset) -> None:
    assert len(a) == len(b) > 0
    for name, array in a._arrays.items():
        other = b._arrays[name]
        assert array.dtype == other.dtype and array.shape == other.shape, name
        assert np.array_equal(array, other, equal_nan=array.dtype.kind == 'f'), name
    assert a.meta['bags'] == b.meta['bags']
    for key in ('distances_m', 'sensors', 'terrain_grid', 'image_hw', 'views', 'params',
                'n_frames'):
        assert a.meta[key] == b.meta[key], key


def test_jobs_merge_equals_one_job(bags: list[Path], in_turn: LabelledDataset,
                                   tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / 'data'
    assert cli_main(['label', *map(str, bags), '--out', str(out), '--jobs', '2']) == 0
    merged = LabelledDataset.open(out)
    assert_same_dataset(in_turn, merged)
    assert merged.meta.get('terrain_descriptor') and merged.meta.get('collision')
    # Bags keep the order given, whichever job finished first; the camera-less one adds none.
    assert [b['path'] for b in in_turn.meta['bags']] == [str(bags[i]) for i in (0, 1, 3)]
    err = capfd.readouterr().err
    for bag in bags:  # one progress line per bag
        assert sum(f'] {bag}: ' in line for line in err.splitlines()) == 1
    assert '[4/4]' in err
    assert (out / 'report' / 'example_frames.png').exists()
    assert not [p for p in tmp_path.iterdir() if '.spool-' in p.name]  # spool removed


def test_job_error_aborts_and_leaves_nothing(bags: list[Path], tmp_path: Path) -> None:
    out = tmp_path / 'data'
    missing = tmp_path / 'no_such_bag'
    assert cli_main(['label', str(bags[0]), str(missing), str(bags[1]), '--out', str(out),
                     '--jobs', '2', '--no-figures']) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert cli_main(['label', str(bags[0]), '--out', str(out), '--jobs', '0']) == 2


@pytest.mark.skipif(importlib.util.find_spec('ray') is None,
                    reason='Ray is not installed (optional extra: pip install "ssl_robot[ray]")')
def test_ray_engine_equals_one_job(bags: list[Path], in_turn: LabelledDataset,
                                   tmp_path: Path) -> None:
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
    try:
        out = tmp_path / 'data'
        assert cli_main(['label', *map(str, bags), '--out', str(out), '--engine', 'ray',
                         '--jobs', '2', '--no-figures']) == 0
        assert_same_dataset(in_turn, LabelledDataset.open(out))
    finally:
        ray.shutdown()
