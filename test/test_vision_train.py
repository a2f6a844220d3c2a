"""Short runs of every vision pretext on the shared trainer, ONNX export, data readers."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_robot.train import TrainConfig, Trainer
from ssl_robot.vision import VisionError
from ssl_robot.vision.data import fashion_mnist, load_pool, read_idx
from ssl_robot.vision.pretext import build_pretext, load_pretext_model, PRETEXTS
from ssl_robot.vision.training import export_encoder

TINY = {'widths': [8, 16, 16]}


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions gain nothing from a second thread, and on a shared machine
    # OpenMP threads waiting for each other make them several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def t_shapes(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 1, size, size] upright 'T' shapes of random place, size and brightness.

    Structured enough for every pretext to learn something in a few steps.
    """
    rng = np.random.default_rng(seed)
    out = np.full((n, 1, size, size), 10, np.uint8)
    for i in range(n):
        w = rng.integers(size // 3, size // 2 + 1)
        h = rng.integers(size // 3, size // 2 + 1)
        top, left = rng.integers(1, size - h - 1), rng.integers(1, size - w - 1)
        out[i, 0, top:top + 3, left:left + w] = rng.integers(180, 255)
        mid = left + w // 2
        out[i, 0, top:top + h, mid - 1:mid + 1] = rng.integers(90, 170)
    return torch.from_numpy(out)


@pytest.mark.parametrize('name', list(PRETEXTS))
def test_short_run_decreases_the_loss(name: str, tmp_path: Path) -> None:
    extra = {'queue_size': 32} if name == 'moco' else {}
    epochs = 5
    if name == 'relative-position':
        # One 8-way label per image (not four, as rotation): 48 images need more passes.
        extra, epochs = {'patch': 5}, 10
    task = build_pretext(name, t_shapes(64, 24), {**TINY, 'val_fraction': 0.25, **extra})
    config = TrainConfig(out_dir=str(tmp_path), epochs=epochs, batch_size=16, lr=3e-3,
                         warmup_steps=0, schedule='constant', seed=0, device='cpu',
                         progress=False, task=name, task_params=task.params)
    result = Trainer(task, config).fit()
    trained = result.model.eval()
    # The same seeded validation batches before training.
    initial = task.build_model().eval()
    if name == 'moco':
        # At init the key encoder is a copy of the query encoder, so queries match keys
        # trivially; compare untrained and trained queries against the trained keys+queue.
        fresh = {k: v for k, v in initial.state_dict().items()
                 if k.startswith(('encoder.', 'projector.'))}
        initial.load_state_dict({**trained.state_dict(), **fresh})
    val = task.datasets()[1]
    loader = torch.utils.data.DataLoader(val, batch_size=16)
    before = task.evaluate(initial, loader)['val_loss']
    after = task.evaluate(trained, loader)['val_loss']
    assert after < before, (before, after, [h['train_loss'] for h in result.history])
    # The checkpoint rebuilds the same model.
    _, model = load_pretext_model(result.best_checkpoint)
    assert type(model) is type(result.model)


def test_moco_queue_and_key_encoder_move_during_training(tmp_path: Path) -> None:
    task = build_pretext('moco', t_shapes(64), {**TINY, 'queue_size': 48, 'momentum': 0.5})
    model = task.build_model()
    key_before = [p.clone() for p in model.key_encoder.parameters()]
    queue_before = model.queue.clone()
    batch = t_shapes(16)
    model.train()
    loss, _ = task.loss(model, batch)
    assert int(model.queue_ptr) == 16 and not torch.equal(model.queue[:16], queue_before[:16])
    assert torch.equal(model.queue[16:], queue_before[16:])
    loss.backward()
    torch.optim.SGD(task.optimizer_groups(model), lr=0.5).step()  # only the query side
    task.after_step(model, 0)
    for old, key, query in zip(key_before, model.key_encoder.parameters(),
                               model.encoder.parameters()):
        assert torch.allclose(key, 0.5 * old + 0.5 * query)
    assert any(not torch.equal(a, b) for a, b in zip(key_before,
                                                      model.key_encoder.parameters()))
    assert all(not p.requires_grad for p in model.key_encoder.parameters())
    model.eval()
    task.loss(model, batch)  # validation batches never enter the queue
    assert int(model.queue_ptr) == 16


@pytest.mark.parametrize('channels', [1, 3])
def test_encoder_exports_with_parity_and_loads_as_feature_extractor(
        tmp_path: Path, channels: int) -> None:
    from ssl_robot.inference import OnnxRobotModel
    images = t_shapes(8, 32).repeat(1, channels, 1, 1)
    task = build_pretext('rotation', images, TINY)
    model = task.build_model().eval()
    report = export_encoder(model.encoder, task.encoder_spec(), tmp_path / 'enc.onnx')
    assert report.max_abs_diff <= 1e-4
    loaded = OnnxRobotModel(tmp_path / 'enc.onnx', expected_kind='encoder')
    assert loaded.input_hw == (32, 32)
    assert json.loads(report.metadata['encoder_channels']) == channels
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert loaded.predict(rgb).values.shape == (16,)
    if channels == 1:
        # A grey frame through the RGB graph equals the grey encoder on the luma image.
        grey = np.full((32, 32, 3), 120, np.uint8)
        x = (torch.full((1, 1, 32, 32), 120 / 255) - task.params['mean'][0]) \
            / task.params['std'][0]
        with torch.no_grad():
            ref = model.encoder.embed(x)[0].numpy()
        assert np.allclose(loaded.predict(grey).values, ref, atol=1e-4)


def write_idx(path: Path, array: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.astype(array.dtype.newbyteorder('>')).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == '.gz' else data)


def test_idx_reader_round_trip_and_errors(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / 'imgs-idx3-ubyte.gz', images, 0x08)
    assert np.array_equal(read_idx(tmp_path / 'imgs-idx3-ubyte.gz'), images)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / 'ints-idx1', ints, 0x0C)
    assert read_idx(tmp_path / 'ints-idx1').tolist() == [1, -2, 70000]
    (tmp_path / 'bad').write_bytes(b'\x01\x02\x08\x01')
    with pytest.raises(VisionError, match='magic'):
        read_idx(tmp_path / 'bad')
    (tmp_path / 'short').write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, 'big') + b'abc')
    with pytest.raises(VisionError, match='needs 5'):
        read_idx(tmp_path / 'short')
    # A Fashion-MNIST root without the files says what to install.
    with pytest.raises(VisionError, match='dataset-fashion-mnist'):
        fashion_mnist('train', root=tmp_path)
    # A complete tiny root reads.
    write_idx(tmp_path / 'train-images-idx3-ubyte.gz', images, 0x08)
    write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.array([3, 7], np.uint8), 0x08)
    x, y = fashion_mnist('train', root=tmp_path)
    assert x.shape == (2, 3, 4) and y.tolist() == [3, 7]


def test_pools_from_array_folder_and_dataset(tmp_path: Path) -> None:
    import cv2
    rgb = np.zeros((5, 48, 64, 3), np.uint8)
    rgb[..., 0] = 200  # red
    np.save(tmp_path / 'frames.npy', rgb)
    pool = load_pool(tmp_path / 'frames.npy', image_size=32)
    assert pool.shape == (5, 3, 32, 32) and int(pool[0, 0, 0, 0]) == 200
    grey = load_pool(tmp_path / 'frames.npy', image_size=16, channels=1, limit=3)
    assert grey.shape == (3, 1, 16, 16) and int(grey[0, 0, 0, 0]) == round(0.299 * 200)
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i}.png'), rgb[i][..., ::-1])  # cv2 writes BGR
    pool = load_pool(folder, image_size=24)
    assert pool.shape == (3, 3, 24, 24) and int(pool[0, 0, 5, 5]) == 200
    with pytest.raises(VisionError, match='no such image source'):
        load_pool(tmp_path / 'missing')
    with pytest.raises(VisionError, match='no .png'):
        load_pool(_empty_dir(tmp_path))


def _empty_dir(tmp_path: Path) -> Path:
    path = tmp_path / 'empty'
    path.mkdir()
    return path


def test_pool_from_labelled_dataset(tmp_path: Path) -> None:
    from test_dataset_format import make_rows, SHAPE  # the dataset helper's fixture rows

    from ssl_robot.dataset import DatasetWriter, LabelledDataset
    with DatasetWriter(tmp_path / 'ds', **SHAPE) as writer:
        writer.add_bag('bag0.mcap', make_rows(4))
    frames = LabelledDataset.open(tmp_path / 'ds').frames
    pool = load_pool(tmp_path / 'ds', image_size=16)
    assert pool.shape == (len(frames), 3, 16, 16)


def test_fashion_mnist_installed_or_skip() -> None:
    try:
        x, y = fashion_mnist('test')
    except VisionError as exc:
        pytest.skip(str(exc))
    assert x.shape == (10000, 28, 28) and y.min() == 0 and y.max() == 9


#: (pretext, epochs, held-out pretext accuracy it must reach, chance). An untrained network
#: sits at chance (measured: rotation 0.25, jigsaw 0.0, relative position 0.125); 256
#: images of upright T shapes, 8-12 epochs: rotation 0.99, jigsaw 0.77, relative position
#: 0.27 when written.
LEARNED_ACCURACY = [('rotation', 8, 0.9, 0.25), ('jigsaw', 12, 0.5, None),
                    ('relative-position', 12, 0.2, 0.125)]


def _fit(name: str, epochs: int, tmp_path: Path, **extra: object):
    task = build_pretext(name, t_shapes(256, 24), {**TINY, 'val_fraction': 0.25, **extra})
    config = TrainConfig(out_dir=str(tmp_path), epochs=epochs, batch_size=32, lr=3e-3,
                         warmup_steps=0, schedule='constant', seed=0, device='cpu',
                         progress=False, task=name, task_params=task.params)
    result = Trainer(task, config).fit()
    loader = torch.utils.data.DataLoader(task.datasets()[1], batch_size=32)
    return task, loader, task.evaluate(result.model.eval(), loader), \
        task.evaluate(task.build_model().eval(), loader)


@pytest.mark.parametrize('name, epochs, reach, chance', LEARNED_ACCURACY)
def test_pretext_learns_its_task_past_chance_and_an_untrained_network(
        name: str, epochs: int, reach: float, chance: float | None, tmp_path: Path) -> None:
    extra = {'patch': 5} if name == 'relative-position' else {}
    _, _, trained, untrained = _fit(name, epochs, tmp_path, **extra)
    assert trained['val_acc'] >= reach, (trained, untrained)
    assert trained['val_acc'] >= untrained['val_acc'] + 0.5 * reach, (trained, untrained)
    if chance is not None:
        assert untrained['val_acc'] <= chance + 0.1, untrained


def test_denoising_beats_both_trivial_answers(tmp_path: Path) -> None:
    # Two answers need no learning of images: hand back the corrupted image (its loss is
    # the corruption), or the mean image (the pixels' variance, ~1 in normalised units;
    # an untrained network sits there). A denoiser must get well below the better one
    # (identity ~2.3, mean ~1.0, untrained ~0.98, trained ~0.35 when written).
    from ssl_robot.vision.augment import MILD
    from ssl_robot.vision.pretext.denoising import corrupt
    task, loader, trained, untrained = _fit('denoising', 12, tmp_path)
    identity = mean = 0.0
    count = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for batch in loader:
            clean = MILD(task.pixels(batch))
            noisy = corrupt(clean, noise_std=float(task.params['noise_std']),
                            drop_p=float(task.params['drop_p']), fill=task._mean)
            target = task.normalize(clean)
            identity += float(torch.nn.functional.mse_loss(task.normalize(noisy), target))
            mean += float(torch.nn.functional.mse_loss(torch.zeros_like(target), target))
            count += 1
    trivial = min(identity, mean) / count
    assert untrained['val_loss'] > 0.8 * trivial, (untrained, trivial)
    assert trained['val_loss'] < 0.6 * trivial, (trained, identity / count, mean / count)


def test_inpainting_fills_the_hole_better_than_the_mean_image(tmp_path: Path) -> None:
    # The answer that needs no learning of images is the mean pixel in the hole (0 in
    # normalised units, what the hole is filled with; an untrained network sits there or
    # above). An inpainter must get well below it (mean ~1.66, untrained ~1.70, trained
    # ~0.93 when written: 256 T shapes, 12 epochs).
    from ssl_robot.vision.augment import MILD
    from ssl_robot.vision.losses import masked_mse
    from ssl_robot.vision.pretext.base import VAL_SEED
    from ssl_robot.vision.pretext.inpainting import square_hole_mask
    task, loader, trained, untrained = _fit('inpainting', 12, tmp_path)
    mean_answer = 0.0
    count = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(VAL_SEED)
        for batch in loader:
            target = task.normalize(MILD(task.pixels(batch)))
            hole = int(round(target.shape[-1] * float(task.params['hole_fraction'])))
            mask = square_hole_mask(target.shape[0], target.shape[-1], hole)
            mean_answer += float(masked_mse(
                torch.zeros_like(target), target, mask,
                outside_weight=float(task.params['outside_weight'])))
            count += 1
    mean_answer /= count
    assert untrained['val_loss'] > 0.9 * mean_answer, (untrained, mean_answer)
    assert trained['val_loss'] < 0.7 * mean_answer, (trained, mean_answer)


def smooth_patterns(n: int, size: int = 24, cells: int = 3, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 1, size, size] images, each its own random 3x3 grey pattern, upsampled.

    Unlike the T shapes (which differ only in what the views change: place, size,
    brightness), each image here is an instance its crops and jitter leave recognisable.
    """
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.integers(0, 256, (n, 1, cells, cells)).astype(np.float32))
    up = torch.nn.functional.interpolate(low, size=(size, size), mode='bilinear',
                                         align_corners=False)
    return up.clamp(0, 255).to(torch.uint8)


#: (pretext, extra parameters, view-matching accuracy it must reach). Held-out images, two
#: views each: the fraction whose first view's nearest second view (cosine, encoder
#: features) is its own, among 64. Untrained 0.08 / 0.06 when written, trained (40 epochs
#: of 192 images) 0.83 / 0.58; chance 1/64.
VIEW_MATCHING = [('simclr', {}, 0.5), ('moco', {'queue_size': 64}, 0.4)]


@pytest.mark.parametrize('name, extra, reach', VIEW_MATCHING)
def test_contrastive_pretext_tells_its_views_from_other_images(
        name: str, extra: dict, reach: float, tmp_path: Path) -> None:
    from ssl_robot.vision.pretext.simclr import view_augment
    # Views of the scale these small images keep recognisable (the Fashion-MNIST defaults
    # crop down to 30 % of the area).
    params = {**TINY, 'val_fraction': 0.25, 'crop_scale': [0.6, 1.0], 'jitter': 0.2, **extra}
    task = build_pretext(name, smooth_patterns(256), params)
    config = TrainConfig(out_dir=str(tmp_path), epochs=40, batch_size=32, lr=3e-3,
                         warmup_steps=0, schedule='constant', seed=0, device='cpu',
                         progress=False, task=name, task_params=task.params)
    trained = Trainer(task, config).fit().model.eval()
    val = task.datasets()[1]
    images = task.pixels(torch.stack([val[i] for i in range(len(val))]))
    views = view_augment(task.params)

    @torch.no_grad()
    def matching(encoder: torch.nn.Module) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            a, b = (torch.nn.functional.normalize(
                encoder.embed(task.normalize(views(images))), dim=1) for _ in range(2))
        return float(((a @ b.t()).argmax(dim=1) == torch.arange(len(images))).float().mean())

    untrained = matching(task.build_model().eval().encoder)
    learned = matching(trained.encoder)
    assert untrained <= 0.25, untrained
    assert learned >= reach, (learned, untrained)


def test_a_finished_run_is_reused_and_one_cut_short_trained_again(tmp_path: Path) -> None:
    from ssl_robot.vision.training import train_or_load_pretext
    images = t_shapes(64, 16)
    kwargs = {'params': TINY, 'epochs': 1, 'batch_size': 32, 'progress': False}
    _, _, loaded = train_or_load_pretext('rotation', images, tmp_path, **kwargs)
    assert not loaded
    _, _, loaded = train_or_load_pretext('rotation', images, tmp_path, **kwargs)
    assert loaded
    _, _, loaded = train_or_load_pretext('rotation', images, tmp_path,
                                         **{**kwargs, 'epochs': 2})
    assert not loaded  # other settings
    (tmp_path / 'final_metrics.json').unlink()  # as a job killed before the end leaves it
    _, _, loaded = train_or_load_pretext('rotation', images, tmp_path,
                                         **{**kwargs, 'epochs': 2})
    assert not loaded
