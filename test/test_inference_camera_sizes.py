"""Camera-size frames through the inference core: the fast paths give training's pixels."""
from __future__ import annotations

import array

import numpy as np
import pytest
from sensor_msgs.msg import Image
import torch
import torch.nn.functional as F

from ssl_robot.inference import OnnxRobotModel
from ssl_robot.msgconv import image_to_rgb
from ssl_robot.robot.transforms import frames_to_input, unit_frames


def _core(input_hw: list[int], mean: float = 0.4, std: float = 0.3) -> OnnxRobotModel:
    """The preprocessing half of the core (no session needed to test it)."""
    model = OnnxRobotModel.__new__(OnnxRobotModel)
    model.meta = {'input_hw': input_hw}
    model._mean = np.full((1, 3, 1, 1), mean, np.float32)
    model._std = np.full((1, 3, 1, 1), std, np.float32)
    return model


@pytest.mark.parametrize(('camera_hw', 'input_hw'), [
    ((480, 640), [48, 64]),    # integer factor 10
    ((96, 128), [48, 64]),     # factor 2
    ((480, 640), [36, 48]),    # non-integer factor 13.3: overlapping bins
    ((97, 131), [48, 64]),     # odd sizes
    ((48, 64), [48, 64]),      # no resize
])
def test_preprocess_equals_training_transform(camera_hw: tuple[int, int],
                                              input_hw: list[int]) -> None:
    frames = np.random.default_rng(3).integers(0, 256, (2, *camera_hw, 3), dtype=np.uint8)
    ours = _core(input_hw).preprocess(frames)
    ref = frames_to_input(torch.from_numpy(frames), input_hw, [0.4] * 3, [0.3] * 3).numpy()
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert ours.flags.c_contiguous
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # Both resize from integral images; torch's own area interpolation bins the same way.
    unit = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    torch_ref = (F.interpolate(unit, size=tuple(input_hw), mode='area') - 0.4) / 0.3
    np.testing.assert_allclose(ours, torch_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(unit_frames(frames, input_hw).numpy() * 255.0,
                               F.interpolate(unit, size=tuple(input_hw), mode='area') * 255.0,
                               atol=1e-4)


def test_preprocess_integer_factor_is_the_block_mean() -> None:
    """640x480 -> 64x48 by hand: the mean of each 10x10 block, normalised."""
    frame = np.random.default_rng(4).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ours = _core([48, 64]).preprocess(frame)[0]
    blocks = frame.reshape(48, 10, 64, 10, 3).astype(np.float64).mean(axis=(1, 3)) / 255.0
    np.testing.assert_allclose(ours, ((blocks - 0.4) / 0.3).transpose(2, 0, 1), atol=1e-5)
    # A saturated frame does not overflow the integral image.
    white = _core([48, 64]).preprocess(np.full((480, 640, 3), 255, np.uint8))
    np.testing.assert_allclose(white, (1.0 - 0.4) / 0.3, atol=1e-5)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_image_to_rgb_camera_size(encoding: str) -> None:
    channels = 4 if encoding.endswith('a8') else 3
    pixels = np.random.default_rng(5).integers(0, 256, (480, 640, channels), dtype=np.uint8)
    msg = Image(height=480, width=640, encoding=encoding, step=640 * channels)
    msg.data = array.array('B', pixels.tobytes())
    rgb = image_to_rgb(msg)
    want = pixels[:, :, [2, 1, 0]] if encoding.startswith('bgr') else pixels[:, :, :3]
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, want)
    # rgb8 is a view of the message's buffer (no copy), read-only so no caller writes
    # through to the message; the others are fresh arrays.
    shared = np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8))
    assert shared == (encoding == 'rgb8')
    assert not (shared and rgb.flags.writeable)


def test_models_on_one_frame_share_its_sums_and_get_their_own_input() -> None:
    """`FrameSums`: one integral image per frame, sums once per input size, as if unshared."""
    from ssl_robot.inference import FrameSums
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    a, b, c = _core([48, 64]), _core([48, 64], mean=0.5, std=0.2), _core([24, 32])
    shared = FrameSums()
    for model in (a, b, c):
        np.testing.assert_array_equal(model.preprocess(frame, shared), model.preprocess(frame))
    assert shared.hits == 1  # b reused a's sums; c (another input size) made its own
    assert shared.table_hits == 1  # ... from a's integral image
    view = frame[:]  # the same memory again, another array object: still the same frame
    a.preprocess(view, shared)
    assert shared.hits == 2
    other = frame.copy()
    other[0, 0] ^= 255  # another frame's buffer: computed anew, not the kept sums
    np.testing.assert_array_equal(a.preprocess(other, shared), a.preprocess(other))
    assert shared.hits == 2 and shared.table_hits == 1  # a new table for the new frame
    np.testing.assert_array_equal(c.preprocess(other, shared), c.preprocess(other))
    assert shared.table_hits == 2
    np.testing.assert_array_equal(b.preprocess(frame, shared), b.preprocess(frame))
    assert shared.hits == 2  # the kept frame was replaced by `other`
