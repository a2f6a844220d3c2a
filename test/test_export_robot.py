"""Export of every robot model kind: parity, metadata, and the onnxruntime core."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.export import read_metadata  # noqa: E402
from ssl_robot.inference import OnnxRobotModel  # noqa: E402
from ssl_robot.robot.nets import (  # noqa: E402
    build_robot_model,  # noqa: E402
    default_spec,
    export_robot_onnx,
)
from ssl_robot.robot.transforms import frames_to_input  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402


@pytest.mark.parametrize('input_hw', [[24, 32], [36, 48], [96, 128]])
def test_grid_readout_exports_on_maps_the_grid_does_not_divide(tmp_path: Path,
                                                                input_hw: list[int]) -> None:
    """The grid readout's ONNX export equals torch on every feature-map size.

    3x4 readout cells on 2x2, 3x3 and 6x8 feature maps: the cells' bounds (ceilings) must
    be the same in onnxruntime as in torch (ONNX integer division truncates).
    """
    torch.manual_seed(0)
    model = build_robot_model(default_spec('obstacle', input_hw=input_hw, width=4,
                                           readout='grid'))
    with torch.no_grad():  # sharper outputs: a wrong cell shows in the probabilities
        for param in model.parameters():
            param.mul_(2.0)
    report = export_robot_onnx(model, tmp_path / 'obstacle.onnx')  # raises on a mismatch
    assert report.max_abs_diff < 1e-4


@pytest.mark.parametrize('kind, extra', [
    ('obstacle', {'distances_m': [0.0, 0.1], 'sensors': ['left', 'right']}),
    ('obstacle', {'distances_m': [0.0, 0.1], 'sensors': ['left', 'right'], 'readout': 'mean'}),
    ('terrain', {'grid': [3, 5], 'target_mean': 2.0, 'target_std': 0.5}),
    ('tcn', {'embed_dim': 16}),
])
def test_export_parity_and_metadata(tmp_path: Path, kind: str, extra: dict) -> None:
    torch.manual_seed(0)
    model = build_robot_model(default_spec(kind, input_hw=[36, 48], width=8, **extra))
    report = export_robot_onnx(model, tmp_path / f'{kind}.onnx')
    assert report.max_abs_diff < 1e-4
    meta = read_metadata(report.path)
    for key in ('kind', 'input_hw', 'channel_order', 'mean', 'std', 'output_names'):
        assert key in meta
    assert meta['kind'] == kind and meta['input_hw'] == '[36, 48]'

    # The deployed core (numpy preprocessing + onnxruntime) equals torch on real frames,
    # for frames of another size too (resized inside), and for batches.
    core = OnnxRobotModel(report.path, intra_op_threads=1)
    frames = np.random.default_rng(1).integers(0, 255, (3, 72, 96, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = model.for_export().eval()(frames_to_input(
            torch.from_numpy(frames), [36, 48], model.spec['mean'], model.spec['std'])).numpy()
    got = core.run(core.preprocess(frames))
    np.testing.assert_allclose(got, ref, atol=1e-4)
    np.testing.assert_allclose(core.predict(frames[0]).values, ref[0], atol=1e-4)
    if kind == 'tcn':
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    if kind == 'obstacle':
        assert got.shape == (3, 2, 2) and ((got >= 0) & (got <= 1)).all()


def test_cli_train_export_eval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ssl_robot.cli import main
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=2, frames_per_bag=30)
    run = tmp_path / 'run'
    assert main(['train', '--task', 'terrain', '--dataset', str(data), '--out', str(run),
                 '--epochs', '1', '--batch-size', '16', '--no-progress',
                 '--param', 'width=4', '--param', 'input_hw=[24,32]']) == 0
    assert main(['export', str(run), '--out', str(tmp_path / 'terrain.onnx')]) == 0
    out = capsys.readouterr().out
    assert 'max abs diff' in out
    meta = read_metadata(tmp_path / 'terrain.onnx')
    assert meta['kind'] == 'terrain' and meta['grid'] == '[3, 4]'
    assert main(['eval', str(run), '--bootstrap', '20']) == 0
    assert 'Spearman' in capsys.readouterr().out
    # Resuming a finished run with another learning rate is refused (one clear line).
    assert main(['train', '--out', str(run), '--resume', '--lr', '0.1']) == 2
    # A missing run is a clear error, not a traceback.
    assert main(['export', str(tmp_path / 'nope'), '--out', str(tmp_path / 'x.onnx')]) == 2
