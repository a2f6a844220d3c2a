"""Frames resized once for training: the same pixels as the resize at each fetch."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.area_resize import AreaResize, ResizedFrames  # noqa: E402
from ssl_robot.robot import build_task  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402


@pytest.mark.parametrize(('frame_hw', 'out_hw', 'dtype'), [
    ((96, 128), (48, 64), np.uint16),     # factor 2
    ((480, 640), (48, 64), np.uint16),    # 100 pixels a cell: 25500 fits uint16
    ((100, 130), (48, 64), np.uint16),    # uneven bins
    ((960, 1280), (48, 64), np.uint32),   # 400 pixels a cell: 102000 does not
])
def test_kept_sums_give_the_fetch_resize_bit_for_bit(frame_hw: tuple[int, int],
                                                     out_hw: tuple[int, int],
                                                     dtype: type) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, *frame_hw, 3), dtype=np.uint8)
    frames[1] = 255  # saturated: the largest sums
    kept = ResizedFrames.build(frames, out_hw)
    assert kept.sums.dtype == dtype and kept.sums.shape == (6, *out_hw, 3)
    assert ResizedFrames.nbytes(frames.shape, out_hw) == kept.sums.nbytes
    rows = [4, 1, 1, 0]
    ours = kept.unit(rows)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, AreaResize.make(frame_hw, out_hw).unit(frames, rows))
    # and torch's area interpolation, independently
    unit = torch.from_numpy(frames[rows]).permute(0, 3, 1, 2).float() / 255.0
    ref = F.interpolate(unit.double(), size=out_hw, mode='area').permute(0, 2, 3, 1)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=1e-6)
    assert ours[1].max() == 1.0


def test_nothing_is_kept_for_frames_of_the_input_size() -> None:
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    assert ResizedFrames.build(frames, (48, 64)) is None
    assert ResizedFrames.nbytes(frames.shape, (48, 64)) == 0


@pytest.mark.parametrize('task_name', ['obstacle', 'terrain'])
def test_tasks_fetch_the_kept_frames_unless_over_budget(tmp_path: Path, task_name: str) -> None:
    """Kept frames give the batches the fetch's resize gives; over budget none are kept.

    The budget is `resize_cache_mib`; then the fetch resizes.
    """
    dataset = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=20)
    params = {'dataset': str(dataset), 'width': 4, 'input_hw': [24, 32]}
    task = build_task(task_name, params)
    train, val = task.datasets()
    assert train.resized is not None and train.resized is val.resized
    assert task.resized_frames() is train.resized  # made once per task
    rows = list(range(min(8, len(train))))
    kept = task.collate(train.__getitems__(rows))
    train.resized = None
    fetched = task.collate(train.__getitems__(rows))
    assert kept['frames'].shape == (len(rows), 3, 24, 32)
    assert torch.equal(kept['frames'], fetched['frames'])
    assert kept['frames'].stride() == fetched['frames'].stride()  # channels last, both
    small = build_task(task_name, {**params, 'resize_cache_mib': 1e-3})
    train, _ = small.datasets()
    assert train.resized is None
    assert torch.equal(small.collate(train.__getitems__(rows))['frames'], kept['frames'])


@pytest.mark.parametrize('frame_hw', [(480, 640), (100, 130)])
def test_every_16_bit_sum_rounds_as_the_fetch_resize(frame_hw: tuple[int, int]) -> None:
    """uint16 sums scaled in float32 round as the fetch's float64 product does.

    Every sum a cell can hold, at the cells' pixel counts of both sizes.
    """
    resize = AreaResize.make(frame_hw, (48, 64))
    cells = 48 * 64 * 3
    n = -(-(255 * int(resize.area.max()) + 1) // cells)
    sums = (np.arange(n * cells) % (255 * int(resize.area.max()) + 1)).astype(np.uint16)
    kept = ResizedFrames(resize, sums.reshape(n, 48, 64, 3))
    scale = (1.0 / (255.0 * resize.area)).astype(np.float32)
    ref = (kept.sums.astype(np.float64) * scale.astype(np.float64)).astype(np.float32)
    assert np.array_equal(kept.unit(range(n)), ref)


@pytest.mark.parametrize('task_name', ['obstacle', 'terrain'])
def test_a_gathered_batch_holds_the_dataset_rows(tmp_path: Path, task_name: str) -> None:
    """`FrameItems` gathers a batch per field: the rows `LabelledDataset[j]` reads, stacked.

    An item is that batch's row.
    """
    from torch.utils.data import default_collate

    dataset = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=20)
    task = build_task(task_name, {'dataset': str(dataset), 'width': 4, 'input_hw': [24, 32]})
    train, _ = task.datasets()
    train.input_hw = None  # whole frames: the dataset's own rows
    items = [5, 0, 3, 3]
    batch = task.collate(train.__getitems__(items))
    rows = [task.data[int(train.indices[i])] for i in items]
    assert set(batch) == {'frames', *train.fields}
    for name, value in batch.items():
        ref = torch.from_numpy(np.stack([np.asarray(r[name]) for r in rows]))
        assert value.dtype == ref.dtype and torch.equal(torch.nan_to_num(value),
                                                        torch.nan_to_num(ref)), name
    stacked = default_collate([train[i] for i in items])
    assert all(torch.equal(torch.nan_to_num(stacked[k]), torch.nan_to_num(batch[k]))
               for k in batch)


@pytest.mark.parametrize('bad', ['lots', -1, float('nan'), True])
def test_a_bad_resize_budget_is_a_clear_error(tmp_path: Path, bad: object) -> None:
    from ssl_robot.train import TrainError
    dataset = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=10)
    task = build_task('obstacle', {'dataset': str(dataset), 'width': 4, 'input_hw': [24, 32],
                                   'resize_cache_mib': bad})
    with pytest.raises(TrainError, match='resize_cache_mib must be a number of MiB >= 0'):
        task.datasets()
