"""The collision task: trains on crash labels, exports to ONNX, loads in the inference core."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from robot_data import DISTANCES, GRID, render_bag, SENSORS  # noqa: E402, I001

from ssl_robot.dataset import DatasetWriter  # noqa: E402
from ssl_robot.export import read_metadata  # noqa: E402
from ssl_robot.inference import OnnxRobotModel  # noqa: E402
from ssl_robot.robot import build_task, ROBOT_TASKS  # noqa: E402
from ssl_robot.robot.nets import export_robot_onnx  # noqa: E402
from ssl_robot.train import TrainConfig, Trainer, TrainError  # noqa: E402


def _crash_dataset(path: Path, *, collision: bool = True) -> Path:
    """Synthetic crash dataset: approaching blocks, 'collision ahead' when one is close.

    A frame is a collision ahead when its block is close (a proximity label at 0.1 m is
    1), free otherwise; a fifth of the labels are unknown.
    """
    rng = np.random.default_rng(0)
    with DatasetWriter(path, distances_m=DISTANCES, sensors=SENSORS, terrain_grid=GRID,
                       image_hw=(48, 64), params={'collision': {'horizon_s': 1.0}},
                       collision=collision) as writer:
        for b in range(4):
            rows = render_bag(rng, 60, (48, 64))
            close = rows['proximity'][:, 1, :].max(axis=1) > 0.5
            rows['collision'] = close.astype(np.float32)
            rows['collision_mask'] = rng.random(len(close)) < 0.8
            rows['prov_collision_tti_ns'] = np.where(close, 500_000_000, -1)
            rows['prov_collision_dist_m'] = np.where(close, 0.07, np.nan)
            writer.add_bag(f'crash_{b}.mcap', rows)
    return path


def test_collision_task_trains_exports_and_serves(tmp_path: Path) -> None:
    assert 'collision' in ROBOT_TASKS
    data = _crash_dataset(tmp_path / 'crash')
    task = build_task('collision', {'dataset': str(data), 'width': 8, 'input_hw': [24, 32]})
    assert task.params['horizon_s'] == 1.0
    config = TrainConfig(out_dir=str(tmp_path / 'run'), task='collision',
                         task_params=task.params, epochs=2, batch_size=16, lr=3e-3,
                         progress=False, device='cpu')
    result = Trainer(task, config).fit()
    assert result.metrics['val_auc'] > 0.7
    from ssl_robot.robot.evaluate import evaluate_run
    report = evaluate_run(tmp_path / 'run', n_boot=20)
    assert report['models']['trained']['auc'] == pytest.approx(result.metrics['val_auc'])
    assert report['models']['random_init']['n_known'] == int(result.metrics['val_known'])
    model = task.build_model()
    from ssl_robot.train import load_checkpoint
    model.load_state_dict(load_checkpoint(result.best_checkpoint)['model'])
    model.eval()
    report = export_robot_onnx(model, tmp_path / 'collision.onnx')
    assert report.max_abs_diff < 1e-4
    meta = read_metadata(report.path)
    assert meta['kind'] == 'collision' and meta['output_names'] == '["collision_prob"]'
    core = OnnxRobotModel(report.path, expected_kind='collision', intra_op_threads=1)
    frames = np.random.default_rng(1).integers(0, 255, (3, 24, 32, 3), dtype=np.uint8)
    probs = core.run(core.preprocess(frames))
    assert probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()
    with torch.no_grad():
        logits = model(task.images(model, torch.from_numpy(frames), None))
    np.testing.assert_allclose(probs, torch.sigmoid(logits).numpy(), atol=1e-4)


def test_collision_task_refuses_a_dataset_without_crash_labels(tmp_path: Path) -> None:
    data = _crash_dataset(tmp_path / 'old', collision=False)
    with pytest.raises(TrainError, match='no crash labels'):
        build_task('collision', {'dataset': str(data)})
