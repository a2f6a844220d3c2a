"""Area-average resize of uint8 frames from their integral images (numpy + OpenCV, no torch).

The one resize of camera frames to a model's input, for training (`ssl_robot.robot.tasks`)
and inference (`ssl_robot.inference`) alike: output cell i covers input rows
floor(i H / h) to ceil((i + 1) H / h), as torch's 'area' interpolation (adaptive average
pooling) bins them, and its value is the exact pixel sum of those rows and columns read
from the frame's integral image. No full-size float copy of the frame is made: a 640x480
frame costs ~0.5 ms (against ~2 ms for torch's float resize of one frame).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np


def area_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last input index of each output cell of an area resize.

    As torch's adaptive average pooling: floor(i size / out), ceil((i + 1) size / out).
    """
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


@dataclass
class AreaResize:
    """How frames of one size are area-resized to another, made once per size pair.

    `area` [h, w, 1] is each output cell's pixel count; `sums(frame)` gives each cell's
    pixel sum [h, w, 3] (the frame itself when the sizes are equal, `identity`).
    """

    frame_hw: tuple[int, int]
    out_hw: tuple[int, int]
    area: np.ndarray
    identity: bool
    _depth: int
    _table_sums: Callable[[np.ndarray], np.ndarray] | None

    @classmethod
    def make(cls, frame_hw: Sequence[int], out_hw: Sequence[int]) -> AreaResize:
        (height, width), (h, w) = (int(v) for v in frame_hw), (int(v) for v in out_hw)
        # int32 sums are exact below 2**31 / 255 pixels; beyond, float64 sums.
        depth = cv2.CV_32S if height * width * 255 < 2**31 else cv2.CV_64F
        r0, r1 = area_bins(height, h)
        c0, c1 = area_bins(width, w)
        area = ((r1 - r0)[:, None, None] * (c1 - c0)[None, :, None]).astype(np.float64)
        identity = (height, width) == (h, w)
        fy, fx = height // h, width // w
        if identity:
            table_sums = None
        elif height == fy * h and width == fx * w:  # integer factors: strided slices
            def table_sums(table: np.ndarray) -> np.ndarray:
                t = table[::fy, ::fx]
                return t[1:, 1:] - t[:-1, 1:] - t[1:, :-1] + t[:-1, :-1]
        else:
            def table_sums(table: np.ndarray) -> np.ndarray:
                a, b = table[r0], table[r1]
                return b[:, c1] - a[:, c1] - b[:, c0] + a[:, c0]
        return cls((height, width), (h, w), area, identity, depth, table_sums)

    def sums(self, frame: np.ndarray) -> np.ndarray:
        """Pixel sums [h, w, 3] of one uint8 frame [H, W, 3] (the frame when `identity`)."""
        if self._table_sums is None:
            return frame
        return self._table_sums(self.integral(frame))

    def integral(self, frame: np.ndarray) -> np.ndarray:
        """The integral image [H + 1, W + 1, 3] of a frame, which `table_sums` reads.

        Every resize of one frame size reads the same table: resizes of one frame to
        several sizes can share it (`ssl_robot.inference.FrameSums`).
        """
        return cv2.integral(np.ascontiguousarray(frame), sdepth=self._depth)

    def table_sums(self, table: np.ndarray) -> np.ndarray:
        """Pixel sums [h, w, 3] from the frame's integral image (`integral`).

        Raises:
            ValueError: On an identity resize (no table is made; `sums` gives the frame).
        """
        if self._table_sums is None:
            raise ValueError('an identity resize reads no integral image')
        return self._table_sums(table)

    def unit(self, frames: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray:
        """Frames (rows `rows` of them) resized, float32 NHWC in 0..1: cell mean / 255.

        Reads each frame where it lies (e.g. a memory-mapped dataset): no copy of the
        whole frames.
        """
        rows = range(len(frames)) if rows is None else rows
        scale = (1.0 / (255.0 * self.area)).astype(np.float32)
        out = np.empty((len(rows), *self.out_hw, frames.shape[-1]), np.float32)
        for k, j in enumerate(rows):
            np.multiply(self.sums(frames[j]), scale, out=out[k], casting='unsafe')
        return out


class ResizedFrames:
    """Every frame of a frame array area-resized once, kept as exact integer pixel sums.

    Training fetches the same frames every epoch; resizing them once (at 640x480 ~0.2 ms
    a frame) leaves each batch a gather and a multiply. A cell's sum is kept in uint16
    while 255 x its pixel count fits (up to 257 pixels a cell, e.g. 640x480 -> 64x48),
    else uint32: 2 or 4 bytes per output value, and `unit(rows)` is bit for bit
    `AreaResize.unit(frames, rows)`, the resize the inference core runs.
    """

    def __init__(self, resize: AreaResize, sums: np.ndarray) -> None:
        self.resize = resize
        self.sums = sums
        # AreaResize multiplies its int32 sums by this float32 scale in float64: exact for
        # a 16-bit sum (40 product bits), so float32 arithmetic rounds it the same; a
        # 32-bit sum is multiplied in float64 as there.
        self._scale = (1.0 / (255.0 * resize.area)).astype(np.float32)
        if sums.dtype != np.uint16:
            self._scale = self._scale.astype(np.float64)

    @staticmethod
    def plan(frames_shape: Sequence[int], out_hw: Sequence[int]
             ) -> tuple[AreaResize, np.dtype] | None:
        """The resize and the sums' dtype for frames [N, H, W, C] (None: nothing to keep).

        None when the sizes are equal (the frames are their own sums) or a frame is too
        large for int32 sums.
        """
        area = AreaResize.make(frames_shape[1:3], out_hw)
        if area.identity or area._depth != cv2.CV_32S:
            return None
        return area, np.dtype(np.uint16 if area.area.max() * 255 < 2**16 else np.uint32)

    @classmethod
    def nbytes(cls, frames_shape: Sequence[int], out_hw: Sequence[int]) -> int:
        """Bytes the kept sums of frames [N, H, W, C] take (0: nothing would be kept)."""
        plan = cls.plan(frames_shape, out_hw)
        if plan is None:
            return 0
        return int(frames_shape[0]) * int(np.prod(out_hw)) * int(frames_shape[3]) * \
            plan[1].itemsize

    @classmethod
    def build(cls, frames: np.ndarray, out_hw: Sequence[int],
              progress: Callable[[int, int], None] | None = None) -> ResizedFrames | None:
        """Resize every frame [N, H, W, C] of `frames` (read where it lies, e.g. mapped).

        `progress(done, total)` is called after each block of frames. None when `plan`
        says there is nothing to keep.
        """
        plan = cls.plan(frames.shape, out_hw)
        if plan is None:
            return None
        area, dtype = plan
        sums = np.empty((len(frames), *area.out_hw, frames.shape[3]), dtype)
        block = 256
        for start in range(0, len(frames), block):
            for j in range(start, min(start + block, len(frames))):
                sums[j] = area.sums(frames[j])
            if progress is not None:
                progress(min(start + block, len(frames)), len(frames))
        return cls(area, sums)

    def unit(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames `rows` resized, float32 NHWC in 0..1 (as `AreaResize.unit`)."""
        picked = np.take(self.sums, np.asarray(rows, np.int64), axis=0)
        if self.sums.dtype == np.uint16:
            out = picked.astype(np.float32)
            out *= self._scale
            return out
        out = np.empty(picked.shape, np.float32)
        np.multiply(picked, self._scale, out=out, casting='unsafe')
        return out
