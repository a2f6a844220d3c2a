"""`ssl-robot pretext-eval --data DIR`, pixel baselines, the probe and the object crop.

On a generated labelled image folder; the shared logistic probe; the object crop and
tile canvas that jigsaw and relative position use.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ssl_robot.cli import main as cli_main
from ssl_robot.metrics import logistic_probe
from ssl_robot.vision import VisionError
from ssl_robot.vision.augment import crop_to_object, object_boxes
from ssl_robot.vision.data import labelled_image_folder
from ssl_robot.vision.evaluate import (
    evaluate_pixels,
    format_table,
    image_folder_splits,
    pretext_targets,
)
from ssl_robot.vision.pretext.jigsaw import cut_tiles, paste_tiles
from ssl_robot.vision.pretext.relative_position import (
    canvas_pairs,
    canvas_tile,
    NEIGHBOUR_OFFSETS,
    RelativePositionTask,
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shapes_folder(root: Path, *, per_class: int = 15, size: int = 20, seed: int = 0) -> Path:
    """A labelled folder of generated RGB PNGs: horizontal bars, vertical bars, discs.

    Each at a random place, size and colour on a noisy grey background.
    """
    rng = np.random.default_rng(seed)
    for name in ('bars_h', 'bars_v', 'disc'):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(90, 110, (size, size, 3)).astype(np.uint8)
            colour = tuple(int(c) for c in rng.integers(160, 256, 3))
            a, b = rng.integers(2, size // 2, 2)
            if name == 'bars_h':
                img[a:a + 3, 2:size - 2] = colour
                img[a + 6:a + 9, 2:size - 2] = colour
            elif name == 'bars_v':
                img[2:size - 2, b:b + 3] = colour
                img[2:size - 2, b + 6:b + 9] = colour
            else:
                cv2.circle(img, (int(a) + 4, int(b) + 4), 4, colour, -1)
            # Non-square on purpose: the reader centre-crops.
            cv2.imwrite(str(root / name / f'{i:03d}.png'),
                        cv2.cvtColor(np.pad(img, ((0, 0), (2, 2), (0, 0)), mode='edge'),
                                     cv2.COLOR_RGB2BGR))
    return root


def test_pretext_eval_on_a_labelled_image_folder(tmp_path: Path, capsys) -> None:
    data = shapes_folder(tmp_path / 'shapes')
    out = tmp_path / 'run'
    status = cli_main(['pretext-eval', '--data', str(data), '--image-size', '16',
                       '--budget', 'tiny', '--tasks', 'rotation', 'jigsaw',
                       '--no-export', '--no-progress', '--out', str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    for method in ('raw-pixels', 'pca', 'random-init', 'rotation', 'jigsaw', 'supervised'):
        assert method in printed
    results = json.loads((out / 'results.json').read_text())
    assert results['classes'] == ['bars_h', 'bars_v', 'disc']
    assert results['image_shape'] == [3, 16, 16]
    # 15 per class: 3 test, 2 validation (rounded), 10 pool.
    assert results['sizes'] == {'pool': 30, 'val': 6, 'test': 9,
                                'labels': {'1': 3, '10': 3, '100': 30}}
    # Bars and discs are linearly separable in pixels given every pool label.
    assert results['methods']['raw-pixels']['linear']['100']['test_acc'] >= 2 / 3
    assert set(results['targets']['per_pretext']) == {'rotation', 'jigsaw'}
    # The options that made them travel with the results.
    assert results['arguments']['budget'] == 'tiny'
    assert results['arguments']['tasks'] == ['rotation', 'jigsaw']
    assert (out / 'results.png').stat().st_size > 10_000
    report = (out / 'report.md').read_text()
    assert 'results.png' in report and 'raw-pixels' in report


def test_image_folder_needs_classes_with_images(tmp_path: Path) -> None:
    (tmp_path / 'only').mkdir()
    cv2.imwrite(str(tmp_path / 'only' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(VisionError, match='at least two'):
        labelled_image_folder(tmp_path)
    (tmp_path / 'other').mkdir()
    cv2.imwrite(str(tmp_path / 'other' / 'b.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(VisionError, match='fewer than 3 images'):
        image_folder_splits(tmp_path, image_size=8)
    with pytest.raises(VisionError, match='no such folder'):
        labelled_image_folder(tmp_path / 'missing')


def test_folder_splits_are_stratified_and_disjoint(tmp_path: Path) -> None:
    data = shapes_folder(tmp_path / 'shapes', per_class=10, size=12)
    splits = image_folder_splits(data, image_size=12, channels=1, seed=3)
    assert splits.class_names == ('bars_h', 'bars_v', 'disc')
    assert tuple(splits.train_x.shape[1:]) == (1, 12, 12)
    for y in (splits.train_y, splits.val_y, splits.test_y):
        assert torch.bincount(y, minlength=3).min() >= 1
    rows = {tuple(x.flatten().tolist()) for part in (splits.train_x, splits.val_x,
                                                      splits.test_x) for x in part}
    assert len(rows) == 30  # every image in exactly one split


def test_logistic_probe_matches_a_hand_solvable_case() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[3., 0.], [-3., 0.], [0., 3.]])

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 3
        return centres[y] + 0.5 * rng.standard_normal((n, 2)), y

    result = logistic_probe(*draw(60), *draw(60), *draw(300), n_classes=3)
    assert result['test_acc'] > 0.97 and result['l2'] in (1e-4, 1e-3, 1e-2)
    # Labels that the features do not carry: chance level, not better.
    x, _ = draw(300)
    noise = rng.integers(0, 3, 300)
    chance = logistic_probe(x[:150], noise[:150], x[150:200], noise[150:200], x[200:],
                            noise[200:], n_classes=3)
    assert chance['test_acc'] < 0.6


def test_pixel_baselines_and_targets(tmp_path: Path) -> None:
    splits = image_folder_splits(shapes_folder(tmp_path / 'shapes', per_class=12, size=12),
                                 image_size=12, channels=1)
    baselines = evaluate_pixels(splits, fractions=(100,))
    assert set(baselines) == {'raw-pixels', 'pca'}
    pca = baselines['pca']['linear']['100']
    assert pca['components'] in (16, 32, 64, 128) and 0 <= pca['test_acc'] <= 1

    def res(acc: float) -> dict:
        return {kind: {p: {'test_acc': acc} for p in ('1', '10', '100')}
                for kind in ('linear', 'knn')}
    results = {'fractions': [1, 10, 100], 'budget': 'small', 'seed': 0,
               'sizes': {'test': 10, 'labels': {'1': 1, '10': 10, '100': 100}},
               'methods': {'raw-pixels': res(0.78), 'pca': res(0.77), 'random-init': res(0.65),
                           'rotation': res(0.80), 'simclr': res(0.87)}}
    targets = pretext_targets(results)
    assert targets['per_pretext']['rotation'] == {'linear_acc': 80.0, 'over_random': 15.0,
                                                  'over_raw': 2.0, 'met': False}
    assert targets['per_pretext']['simclr']['met'] and targets['best'] == 'simclr'
    assert targets['best_met'] and not targets['all_met']
    results['targets'] = targets
    table = format_table(results)
    assert '+9.0' in table and 'missed by rotation' in table


def test_object_box_and_crop_by_hand() -> None:
    x = torch.zeros(2, 1, 10, 10)
    x[0, 0, 2:5, 3:7] = 1.0  # object rows 2-4, columns 3-6
    boxes = object_boxes(x, min_fraction=0.1)
    # Square side 4 centred on the box; the empty image keeps the whole frame.
    assert boxes.tolist() == [[1, 3, 4], [0, 0, 10]]
    assert object_boxes(x, min_fraction=0.8)[0].tolist() == [0, 1, 8]
    cropped = crop_to_object(x, min_fraction=0.1)
    assert cropped.shape == x.shape
    assert cropped[0, 0, 4:9, 1:9].min() == 1.0  # the object fills the frame
    assert torch.equal(crop_to_object(x[1:]), x[1:])


def test_paste_tiles_puts_each_tile_inside_its_cell() -> None:
    x = torch.arange(2 * 12 * 12, dtype=torch.float32).view(2, 1, 12, 12)
    tiles = cut_tiles(x, grid=3, tile=3, generator=torch.Generator().manual_seed(0))
    canvas = paste_tiles(tiles, grid=3, size=12, fill=torch.full((2, 1), -1.0),
                         generator=torch.Generator().manual_seed(1))
    assert int((canvas != -1).sum()) == 2 * 9 * 9  # nine 3x3 tiles each, nothing overlaps
    for n in range(2):
        for i in range(9):
            cy, cx = divmod(i, 3)
            cell = canvas[n, 0, 4 * cy:4 * cy + 4, 4 * cx:4 * cx + 4]
            values = cell[cell != -1]
            assert sorted(values.tolist()) == sorted(tiles[n, i].flatten().tolist())


@pytest.mark.parametrize('size, fraction, tile', [
    (28, 5 / 9, 5), (28, 7 / 9, 7), (32, 5 / 9, 6), (24, 5 / 9, 4), (3, 0.1, 1)])
def test_canvas_tile_is_its_fraction_of_a_grid_cell(size: int, fraction: float,
                                                    tile: int) -> None:
    assert canvas_tile(size, tile_fraction=fraction) == tile


def test_relative_position_default_canvas_tiles_are_5_px_at_28_px() -> None:
    fraction = RelativePositionTask.defaults['tile_fraction']
    assert RelativePositionTask.defaults['patch'] == 0
    assert canvas_tile(28, tile_fraction=fraction) == 5


def test_relative_position_canvas_shows_the_labelled_neighbour() -> None:
    # A 12x12 image whose 4x4 cells hold the values 10..18: the tile values tell the cell.
    cells = (torch.arange(9.) + 10).view(1, 1, 3, 3)
    x = cells.repeat_interleave(4, 2).repeat_interleave(4, 3).repeat(32, 1, 1, 1) / 20
    canvas, labels = canvas_pairs(x, tile=3, generator=torch.Generator().manual_seed(0))
    assert canvas.shape == x.shape and set(labels.tolist()) <= set(range(8))
    for n in range(32):
        source = int(labels[n]) + int(labels[n] >= 4)  # the grid cell, centre skipped
        values = set((canvas[n, 0] * 20).round().long().unique().tolist())
        # The centre tile (14), the labelled neighbour, and the background fill only.
        assert {14, 10 + source} <= values and len(values - {14, 10 + source}) <= 1
        dy, dx = NEIGHBOUR_OFFSETS[int(labels[n])]
        assert 10 + (1 + dy) * 3 + (1 + dx) == 10 + source


def test_cell_head_sees_the_feature_map_per_grid_cell() -> None:
    # A linear head over 3x3 cells: its input is the last map averaged per cell.
    from ssl_robot.vision.encoders import VisionEncoder
    from ssl_robot.vision.pretext.rotation import Classifier
    torch.manual_seed(0)
    encoder = VisionEncoder(1, [4, 4, 4]).eval()
    pooled = Classifier(encoder, 2, hidden=0).eval()
    cells = Classifier(encoder, 2, hidden=0, cells=3).eval()
    assert cells.head.in_features == 9 * encoder.out_dim
    x = torch.rand(3, 1, 24, 24)
    with torch.no_grad():
        expected = torch.nn.functional.adaptive_avg_pool2d(encoder(x), 3).flatten(1)
        assert torch.allclose(cells(x), cells.head(expected), atol=1e-6)
        assert torch.allclose(pooled(x), pooled.head(encoder.embed(x)), atol=1e-6)
    # Two maps with the same global mean but their halves swapped: the pooled head
    # cannot tell them apart, the cell head's input differs.
    fmap = encoder(x[:1])
    swapped = fmap.flip(-1)
    assert torch.allclose(fmap.mean(dim=(2, 3)), swapped.mean(dim=(2, 3)), atol=1e-6)
    a, b = (torch.nn.functional.adaptive_avg_pool2d(m, 3).flatten(1) for m in (fmap, swapped))
    assert not torch.allclose(a, b, atol=1e-6)


def test_relative_position_canvas_tile_jitter_changes_only_the_tiles() -> None:
    cells = (torch.arange(9.) + 10).view(1, 1, 3, 3)
    x = cells.repeat_interleave(4, 2).repeat_interleave(4, 3).repeat(16, 1, 1, 1) / 20
    plain, labels = canvas_pairs(x, tile=3, generator=torch.Generator().manual_seed(0))
    jittered, labels_j = canvas_pairs(x, tile=3, tile_jitter=True,
                                      generator=torch.Generator().manual_seed(0))
    assert jittered.shape == plain.shape and jittered.min() >= 0 and jittered.max() <= 1
    tile_values = {v / 20 for v in range(10, 19)}
    off = [(abs(jittered[n] - torch.tensor(sorted(tile_values)).view(-1, 1, 1, 1)).min(0)
            .values > 1e-4).float().mean() for n in range(16)]
    # Tiles get their own brightness and contrast: most canvases hold other values.
    assert sum(float(o) > 0 for o in off) >= 12
