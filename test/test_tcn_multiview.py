"""Multi-view TCN.

Multi-view TCN: the triple sampler and cross-view retrieval against hand-computed cases,
and simulator (two cameras) -> `ssl-robot label` -> multi-view training end to end.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_robot.metrics import cross_view_retrieval_accuracy
from ssl_robot.robot.tasks import MultiViewTCNItems, TCNItems

S = 1_000_000_000


def _fake_data() -> SimpleNamespace:
    """Bag 0: 10 frames 1 s apart, bag 1: 3 frames; 2 views.

    Pixel values say what a picture is: frame j is all j, view v of frame j all
    100 + 20 v + j. Frame 2 has no view, frame 3 only view 1.
    """
    n, v = 13, 2
    frames = np.repeat(np.arange(n, dtype=np.uint8), 2 * 2 * 3).reshape(n, 2, 2, 3)
    views = np.zeros((n, v, 2, 2, 3), np.uint8)
    for j in range(n):
        for k in range(v):
            views[j, k] = 100 + 20 * k + j
    mask = np.ones((n, v), bool)
    mask[2] = False
    mask[3, 0] = False
    return SimpleNamespace(
        frames=frames, views=views, views_mask=mask,
        bag_ids=np.array([0] * 10 + [1] * 3, np.int32),
        stamps_ns=np.concatenate([np.arange(10) * S, np.arange(3) * S]).astype(np.int64),
        view_names=['/camera2/image_raw', '/camera3/image_raw'])


def test_multi_view_triples_hand_computed() -> None:
    data = _fake_data()
    # Frames 0-12 minus 5 (held out); negatives at >= 3 s.
    items = MultiViewTCNItems(data, np.array([12, 11, 10, 9, 8, 7, 6, 4, 3, 2, 1, 0]), 3.0)
    # Frame 2 has no view; bag 1's frames (10-12, 2 s span) have no negative.
    assert sorted(int(items.idx[k]) for k in items.anchors) == [0, 1, 3, 4, 6, 7, 8, 9]
    torch.manual_seed(0)
    views_used: dict[int, set[int]] = {}
    negatives: dict[int, set[int]] = {}
    for _ in range(30):
        for i in range(len(items)):
            item = items[i]
            j = int(item['anchor'][0, 0, 0])                  # the main camera at t
            v = int(item['view'])
            assert int(item['positive'][0, 0, 0]) == 100 + 20 * v + j   # view v at the same t
            assert data.views_mask[j, v]                       # never a masked view
            q = int(item['negative'][0, 0, 0])                 # the main camera again
            assert data.bag_ids[q] == 0 and abs(q - j) >= 3 and q != 5
            assert int(item['stamp_ns']) == int(item['pos_stamp_ns']) == j * S
            views_used.setdefault(j, set()).add(v)
            negatives.setdefault(j, set()).add(q)
    assert views_used[3] == {1} and views_used[0] == {0, 1}
    assert negatives[0] == {3, 4, 6, 7, 8, 9} and negatives[4] == {0, 1, 7, 8, 9}


def test_single_view_triples_hand_computed() -> None:
    data = _fake_data()
    # Positives within 1 s (inclusive), negatives at >= 3 s, frame 5 held out.
    items = TCNItems(data, np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]), 1.0, 3.0)
    # Frame 9's only neighbour is 8 (5 is held out, so 4 and 6 each keep one); bag 1 has
    # no negative.
    assert sorted(int(items.idx[k]) for k in items.anchors) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    torch.manual_seed(0)
    positives: dict[int, set[int]] = {}
    negatives: dict[int, set[int]] = {}
    for _ in range(30):
        for i in range(len(items)):
            item = items[i]
            j, p, q = (int(item[k][0, 0, 0]) for k in ('anchor', 'positive', 'negative'))
            assert int(item['pos_stamp_ns']) == p * S
            positives.setdefault(j, set()).add(p)
            negatives.setdefault(j, set()).add(q)
    assert positives[0] == {1} and positives[2] == {1, 3} and positives[4] == {3}
    assert positives[6] == {7} and positives[9] == {8}
    assert negatives[3] == {0, 6, 7, 8, 9} and negatives[9] == {0, 1, 2, 3, 4, 6}


def test_cross_view_retrieval_hand_computed() -> None:
    # Frames 0, 1 (0 s, 1 s) of bag 0 and frame 2 (0 s) of bag 1; one view each.
    main = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    bags = np.array([0, 0, 1])
    stamps = np.array([0, S, 0])
    # Frame 0's nearest view is its own (hit); frame 1's nearest is frame 0's view, 1 s
    # away (miss at radius 0.5 s, hit at 1 s); frame 2's only view is masked: skipped at
    # 0.5 s, and at 1 s it has no match in its bag either.
    views = np.array([[[1.0, 0.0]], [[20.0, 0.0]], [[0.0, 10.0]]])
    mask = np.array([[True], [True], [False]])
    assert cross_view_retrieval_accuracy(main, views, mask, bags, stamps,
                                         radius_s=0.5) == pytest.approx(1 / 2)
    assert cross_view_retrieval_accuracy(main, views, mask, bags, stamps,
                                         radius_s=1.0) == pytest.approx(2 / 2)
    assert np.isnan(cross_view_retrieval_accuracy(main, views, np.zeros_like(mask), bags,
                                                  stamps, radius_s=1.0))


def test_two_camera_sim_label_and_multi_view_training(tmp_path: Path) -> None:
    from ssl_robot.cli import main as cli_main
    from ssl_robot.dataset import LabelledDataset
    from ssl_robot.robot import build_task
    from ssl_robot.train import TrainConfig, Trainer
    bag, ds_path = tmp_path / 'bag', tmp_path / 'ds'
    assert cli_main(['sim', '--seed', '3', '--duration', '24', '--out', str(bag),
                     '--width', '32', '--height', '24', '--camera-rate', '10',
                     '--extra-cameras', '1']) == 0
    assert cli_main(['label', str(bag), '--out', str(ds_path), '--no-figures',
                     '--remap', 'views:=/camera2/image_raw']) == 0
    ds = LabelledDataset.open(ds_path)
    assert ds.view_names == ['/camera2/image_raw']
    assert ds.views.shape == (len(ds), 1, 24, 32, 3) and ds.views_mask.all()
    assert not np.array_equal(ds.views[:, 0], ds.frames)
    params = {'dataset': str(ds_path), 'width': 4, 'input_hw': [24, 32],
              'split_by': 'time'}
    for loss in ('triplet', 'npairs'):
        task = build_task('tcn', {**params, 'loss': loss})
        assert task.multi_view
        result = Trainer(task, TrainConfig(
            out_dir=str(tmp_path / loss), epochs=6, batch_size=16, lr=3e-3, progress=False,
            task='tcn', task_params=task.params)).fit()
        losses = [h['train_loss'] for h in result.history]
        assert losses[-1] < losses[0], (loss, losses)
        assert 0.0 <= result.metrics['val_cross_view'] <= 1.0
    # The exported model is unchanged: one camera image in, a unit-norm embedding out.
    from ssl_robot.inference import OnnxRobotModel
    from ssl_robot.robot.export import export_run
    report = export_run(tmp_path / 'triplet', tmp_path / 'tcn.onnx')
    assert report.max_abs_diff < 1e-4 and report.metadata['kind'] == 'tcn'
    core = OnnxRobotModel(report.path, intra_op_threads=1)
    emb = core.run(core.preprocess(np.asarray(ds.frames[:2])))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # The switch back to single-view on the same dataset.
    single = build_task('tcn', {**params, 'multi_view': False})
    assert not single.multi_view
    assert 'view' not in single.datasets()[0][0]
