"""Terrain model: per-patch descriptor and type next to the cost, export, old runs.

A small dataset in the format-2 layout whose patches carry descriptors and fitted
terrain types (stored with it, as `ssl-robot label` does); the image shows each patch's
terrain as a texture, so a model can learn it.
"""
from __future__ import annotations

import json
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.dataset import DatasetWriter  # noqa: E402
from ssl_robot.labelling.descriptor import DescriptorLayout  # noqa: E402
from ssl_robot.labelling.terrain_types import save_dataset_types, TerrainTypes  # noqa: E402
from ssl_robot.robot import build_task  # noqa: E402
from ssl_robot.robot.losses import masked_cross_entropy  # noqa: E402
from ssl_robot.train import TrainConfig, Trainer  # noqa: E402

GRID = (2, 2)
NAMES = ('accel_z_b0', 'gyro_x_b0', 'yaw_slip', 'cmd_slip')
LAYOUT = DescriptorLayout(100.0, ((2.0, 50.0),), NAMES, 0.5, 0.1)
TINY = {'width': 4, 'input_hw': [24, 32]}


def _bag(rng: np.random.Generator, n: int, hw: tuple[int, int] = (24, 32)) -> dict:
    """Frames whose patch columns are smooth or rough ground; labels felt under them."""
    h, w = hw
    rough = rng.integers(0, 2, (n, GRID[1])).astype(np.float32)          # per column
    frames = np.zeros((n, h, w, 3), np.float32) + 110
    for c in range(GRID[1]):
        x0, x1 = c * w // GRID[1], (c + 1) * w // GRID[1]
        frames[:, :, x0:x1] += rng.normal(0, 1, (n, h, x1 - x0, 1)) * (
            5 + 60 * rough[:, c])[:, None, None, None]
    per_patch = np.broadcast_to(rough[:, None, :], (n, *GRID))
    desc = np.stack([2.0 * per_patch - 3.0, 0.5 * per_patch - 4.0,
                     np.where(per_patch > 0, 0.3, -0.1), np.zeros_like(per_patch)], -1)
    desc = desc + rng.normal(0, 0.05, desc.shape)
    dmask = np.ones(desc.shape, bool)
    dmask[..., 3] = False                            # never published: not predicted
    dmask[:, 0] = False                              # the top row is never felt
    known = dmask[..., 0]
    desc = np.where(dmask, desc, np.nan).astype(np.float32)
    stamps = np.arange(n, dtype=np.int64) * 100_000_000 + 10**9
    return {'frames': np.clip(frames, 0, 255).astype(np.uint8), 'stamps_ns': stamps,
            'proximity': np.zeros((n, 1, 1), np.float32),
            'proximity_mask': np.zeros((n, 1, 1), bool),
            'terrain': (per_patch + rng.normal(0, 0.05, per_patch.shape)).astype(np.float32),
            'terrain_mask': known, 'prov_t_future_ns': np.full((n, 1), -1, np.int64),
            'prov_pose_err': np.zeros((n, 1, 3), np.float32), 'terrain_descriptor': desc,
            'terrain_descriptor_mask': dmask,
            'prov_terrain_t_future_ns': np.where(known, stamps[:, None, None] + 10**9, -1)}


def write_terrain_dataset(path: Path, *, n_bags: int = 4, frames: int = 48,
                          with_types: bool = True) -> Path:
    rng = np.random.default_rng(0)
    bags = [_bag(rng, frames) for _ in range(n_bags)]
    with DatasetWriter(path, distances_m=[0.0], sensors=['center'], terrain_grid=list(GRID),
                       image_hw=[24, 32], terrain_descriptor=LAYOUT.as_dict()) as writer:
        for k, rows in enumerate(bags):
            writer.add_bag(f'bag{k}.mcap', rows)
    if with_types:
        flat = np.concatenate([b['terrain_descriptor'].reshape(-1, 4) for b in bags])
        mask = np.concatenate([b['terrain_descriptor_mask'].reshape(-1, 4) for b in bags])
        save_dataset_types(TerrainTypes.fit(flat, mask, n_types=2, columns=np.arange(2)),
                           path)
    return path


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_terrain_dataset(tmp_path_factory.mktemp('terrain') / 'ds')


def test_masked_cross_entropy_matches_a_hand_written_reference() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, requires_grad=True)
    target = torch.tensor([[0, 3, -1], [2, -1, 1]])
    known = target >= 0
    loss = masked_cross_entropy(logits, target, known)
    ref = [-torch.log_softmax(logits[i, j], -1)[target[i, j]]
           for i in range(2) for j in range(3) if known[i, j]]
    torch.testing.assert_close(loss, torch.stack(ref).mean())
    loss.backward()
    assert torch.all(logits.grad[~known] == 0)           # unknown patches: no gradient
    none = masked_cross_entropy(logits, target, torch.zeros_like(known))
    assert float(none.detach()) == 0.0 and none.requires_grad


def test_terrain_task_learns_descriptor_and_type_and_exports_them(
        tmp_path: Path, dataset: Path) -> None:
    from ssl_robot.inference import OnnxRobotModel
    from ssl_robot.robot.evaluate import evaluate_run
    from ssl_robot.robot.export import export_run
    task = build_task('terrain', {'dataset': str(dataset), **TINY})
    p = task.params
    # Entries never known in training are not predicted; standardisation of the others.
    assert p['descriptor_names'] == list(NAMES[:3]) and p['descriptor_columns'] == [0, 1, 2]
    assert p['descriptor_mean'][0] == pytest.approx(-2.0, abs=0.15)
    assert p['descriptor_std'][0] == pytest.approx(1.0, abs=0.1)
    assert p['type_names'] == ['type_0', 'type_1']
    assert 'vibration' in p['cost_formula'] and 'm/s^2' in p['cost_formula']
    config = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=8, batch_size=32, lr=1e-2,
                         progress=False, task='terrain', task_params=p)
    result = Trainer(task, config).fit()
    assert {'val_descriptor_r2', 'val_type_accuracy'} <= set(result.metrics)

    report = evaluate_run(tmp_path / 'run', n_boot=20)
    trained, untrained = report['models']['trained'], report['models']['random_init']
    assert trained['type_accuracy'] > 0.8 > untrained['type_accuracy'] + 0.1, report
    assert trained['type_chance'] == 0.5 and trained['descriptor_r2'] > 0.6
    assert trained['spearman'] > 0.5

    # Export: every output matches torch (the exporter checks it), the core runs them all,
    # and the metadata says what each number means.
    onnx = tmp_path / 'terrain.onnx'
    assert export_run(tmp_path / 'run', onnx).max_abs_diff < 1e-4
    core = OnnxRobotModel(onnx)
    assert core.meta['output_names'] == ['terrain', 'terrain_descriptor', 'terrain_type_prob']
    assert core.meta['descriptor_names'] == list(NAMES[:3])
    assert core.meta['descriptor_layout']['bands_hz'] == [[2.0, 50.0]]
    assert core.meta['type_names'] == ['type_0', 'type_1']
    assert core.meta['cost_formula'] == p['cost_formula']
    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.robot.tasks import model_from_checkpoint
    from ssl_robot.robot.transforms import frames_to_input
    data = LabelledDataset.open(dataset)
    frames = np.asarray(data.frames[:5])
    model, _ = model_from_checkpoint(tmp_path / 'run' / 'best.pt')
    with torch.no_grad():
        ref = model.for_export()(frames_to_input(torch.from_numpy(frames), [24, 32],
                                                 model.spec['mean'], model.spec['std']))
    got = core.session.run(None, {core.input_name: core.preprocess(frames)})
    for expected, out in zip(ref, got):
        np.testing.assert_allclose(out, expected.numpy(), atol=1e-4)
    one = core.predict(frames[0]).outputs
    assert one['terrain_descriptor'].shape == (*GRID, 3)
    np.testing.assert_allclose(one['terrain_type_prob'].sum(-1), 1.0, atol=1e-5)
    # In descriptor units: a felt patch's accel_z power (about -3 smooth, -1 rough).
    felt = np.asarray(data.terrain_descriptor[:5])[..., 0]
    known = np.isfinite(felt)
    assert np.abs(got[1][..., 0][known] - felt[known]).mean() < 0.5


def test_a_run_saved_before_the_descriptor_outputs_still_loads_evaluates_and_exports(
        tmp_path: Path, dataset: Path) -> None:
    from ssl_robot.export import read_metadata
    from ssl_robot.robot.evaluate import evaluate_run
    from ssl_robot.robot.export import export_run
    from ssl_robot.train import load_checkpoint
    task = build_task('terrain', {'dataset': str(dataset), 'descriptor': False,
                                  'types': False, **TINY})
    assert task.params['descriptor_names'] == [] and task.params['type_names'] == []
    config = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=1, batch_size=32,
                         progress=False, task='terrain', task_params=task.params)
    Trainer(task, config).fit()
    # As an older version saved it: no descriptor or type parameters, a one-channel head.
    for name in ('best.pt', 'last.pt'):
        state = load_checkpoint(tmp_path / 'run' / name)
        for key in ('descriptor', 'types', 'descriptor_names', 'descriptor_columns',
                    'descriptor_mean', 'descriptor_std', 'descriptor_layout', 'type_names',
                    'cost_formula', 'descriptor_weight', 'type_weight'):
            state['config']['task_params'].pop(key)
        assert state['model']['head.conv.2.weight'].shape[0] == 1
        torch.save(state, tmp_path / 'run' / name)
    report = evaluate_run(tmp_path / 'run', n_boot=10)      # on the format-2 dataset
    assert 'type_accuracy' not in report['models']['trained']
    export_run(tmp_path / 'run', tmp_path / 'old.onnx')
    assert json.loads(read_metadata(tmp_path / 'old.onnx')['output_names']) == ['terrain']


def test_a_mirrored_frame_mirrors_the_patches_and_negates_signed_entries() -> None:
    task = build_task('terrain', {
        'descriptor_names': ['accel_z_b0', 'wheel_yaw_rate'], 'descriptor_columns': [0, 2],
        'descriptor_mean': [1.0, 0.0], 'descriptor_std': [2.0, 0.5], 'type_names': []})
    values = torch.tensor([[[[3.0, 9.0, 0.2], [5.0, 9.0, -0.4]]]])        # [1, 1, 2, 3]
    mask = torch.tensor([[[[True, True, True], [True, True, False]]]])
    batch = {'terrain_descriptor': values, 'terrain_descriptor_mask': mask}
    target, known = task._descriptor_targets(batch, None)
    torch.testing.assert_close(target, torch.tensor([[[[1.0, 0.4], [2.0, 0.0]]]]))
    target, known = task._descriptor_targets(batch, torch.tensor([True]))
    # Right and left patches swap; the right-minus-left yaw rate changes sign.
    torch.testing.assert_close(target, torch.tensor([[[[2.0, 0.0], [1.0, -0.4]]]]))
    assert known.tolist() == [[[[True, False], [True, True]]]]


def test_terrain_grid_layout_hand_computed() -> None:
    from ssl_robot.inference import obstacle_grid_data, patch_image, terrain_grid_layout
    k = np.array([[80.0, 0.0, 63.5], [0.0, 80.0, 47.5], [0.0, 0.0, 1.0]])    # 128 x 96
    layout = terrain_grid_layout(k, (96, 128), (3, 3), camera_xyz=(0.1, 0.0, 0.12),
                                 camera_pitch=0.35, resolution_m=0.02, range_m=1.0)

    def cell(x: float, y: float) -> int:
        col = int((x - layout.origin_xy[0]) // layout.resolution)
        row = int((y - layout.origin_xy[1]) // layout.resolution)
        return row * layout.width + col

    cost = np.arange(9, dtype=np.float64).reshape(3, 3) / 10
    data = obstacle_grid_data(cost, layout)
    # The optical axis meets the ground 0.12 / tan(0.35) = 0.329 m ahead of the camera:
    # the image centre, the middle patch (1, 1).
    assert data[cell(0.1 + 0.12 / np.tan(0.35), 0.0)] == 40
    # 0.1 m to the left there: u = 63.5 - 80 * 0.1 / 0.351 = 40.7, the left column (1, 0).
    assert data[cell(0.43, 0.1)] == 30
    # Far ahead: the top row (0, 1).
    assert data[cell(0.95, 0.0)] == 10
    # The grid starts at the first cell whose centre lies beyond the ground the bottom
    # image row sees (0.196 m); near it, 0.6 m to the side is outside the image: unseen.
    bottom = 0.1 + 0.12 / np.tan(0.35 + np.arctan2(96 - 47.5, 80))
    assert layout.origin_xy[0] == pytest.approx(np.ceil((bottom - 0.01) / 0.02) * 0.02)
    assert data[cell(0.21, 0.6)] == -1 and data[cell(0.21, 0.0)] >= 0
    assert set(np.unique(data)) <= {-1, *range(0, 90, 10)}
    ids = patch_image(np.array([[0, 1], [2, 3]], np.uint8), (4, 6))
    np.testing.assert_array_equal(ids, [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2)
