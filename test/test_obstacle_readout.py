"""The obstacle head's readout: global mean vs a grid of cells that keeps where things are."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_robot.inference import OnnxRobotModel
from ssl_robot.robot import build_task
from ssl_robot.robot.heads import grid_mean, ObstacleHead
from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
from ssl_robot.train import TrainError

sys.path.insert(0, str(Path(__file__).parent))
from robot_data import write_synthetic_dataset  # noqa: E402


@pytest.mark.parametrize('hw', [(3, 4), (3, 3), (6, 8), (2, 5), (5, 7)])
def test_grid_mean_is_adaptive_average_pooling(hw: tuple[int, int]) -> None:
    feats = torch.randn(2, 5, *hw)
    torch.testing.assert_close(grid_mean(feats, (3, 4)), F.adaptive_avg_pool2d(feats, (3, 4)))


def test_grid_readout_sees_where_a_feature_is() -> None:
    torch.manual_seed(0)
    low, high = torch.zeros(1, 8, 3, 4), torch.zeros(1, 8, 3, 4)
    low[:, :, 2, 1] = 1.0   # the same feature, low in the image (near) ...
    high[:, :, 0, 1] = 1.0  # ... and high in it (far)
    mean_head = ObstacleHead(8, 2, 3, readout='mean')
    grid_head = ObstacleHead(8, 2, 3, readout='grid')
    with torch.no_grad():
        torch.testing.assert_close(mean_head(low), mean_head(high))
        assert (grid_head(low) - grid_head(high)).abs().max() > 1e-3
    with pytest.raises(ValueError, match='readout'):
        ObstacleHead(8, 2, 3, readout='max')


def test_spec_without_readout_is_a_mean_head() -> None:
    spec = default_spec('obstacle', distances_m=[0.0, 0.1], sensors=['left', 'right'])
    del spec['readout'], spec['readout_grid']  # a spec saved before the readout existed
    old = build_robot_model(spec)
    assert old.head.readout == 'mean'
    new = build_robot_model(default_spec('obstacle', distances_m=[0.0, 0.1],
                                         sensors=['left', 'right'], readout='mean'))
    new.load_state_dict(old.state_dict())  # same parameters: old checkpoints still load


def test_grid_readout_exports_at_sizes_the_grid_does_not_divide(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_robot_model(default_spec('obstacle', input_hw=[36, 48], width=8,
                                           readout='grid', distances_m=[0.0, 0.1],
                                           sensors=['left', 'right']))
    report = export_robot_onnx(model, tmp_path / 'grid.onnx')
    assert report.max_abs_diff < 1e-4
    core = OnnxRobotModel(report.path, intra_op_threads=1)
    frames = np.random.default_rng(1).integers(0, 255, (2, 36, 48, 3), dtype=np.uint8)
    got = core.run(core.preprocess(frames))
    assert got.shape == (2, 2, 2) and ((got >= 0) & (got <= 1)).all()


@pytest.mark.parametrize('params, message', [
    ({'readout': 'max'}, 'readout must be one of mean, grid'),
    ({'readout': 'grid', 'readout_grid': [3]}, 'readout_grid must be'),
    ({'readout': 'grid', 'readout_grid': [0, 4]}, 'readout_grid must be'),
])
def test_a_bad_readout_is_a_clear_training_error(tmp_path: Path, params: dict,
                                                 message: str) -> None:
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=10)
    with pytest.raises(TrainError, match=message):
        build_task('obstacle', {'dataset': str(data), **params})
