"""What `ssl-robot label` reads: recorded bags, and (frames only) video files.

`label_source` labels one source. A bag goes through `label_bag`; with `frames_only`
only its cameras are read, so a camera-only bag (Image + CameraInfo, no odometry) is
accepted. A video file (anything OpenCV opens: .mp4, .avi, .mkv, ...) is always frames
only. Frames-only rows carry frames, stamps and provenance with every label masked,
which is all that the time-contrastive task and the vision pretexts need.

A video's frames are stamped on the video's own timeline (the container's presentation
time of each frame, from 0 at its first frame) and subsampled to `frame_rate_hz` by the
same rule as a bag's: a frame is kept when it is the first of its 1/rate time slot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TYPE_CHECKING

import cv2
import numpy as np

from ssl_robot.labelling.bag import BagStreams, label_bag, LabelledBag
from ssl_robot.labelling.errors import LabelError
from ssl_robot.labelling.streams import label_streams, SensorStreams

if TYPE_CHECKING:
    from ssl_robot.labelling.params import LabellingParams

#: File suffixes read as video (through OpenCV) rather than as a bag.
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg', '.mpeg', '.ogv')


def is_video(path: Path | str) -> bool:
    """Whether `path` is a video file (by its suffix) rather than a recording."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir()


def frame_slot(stamp_ns: int, frame_rate_hz: float) -> int:
    """The 1/rate time slot of a stamp; the first frame of each slot is kept."""
    period_ns = int(round(1e9 / frame_rate_hz)) if frame_rate_hz > 0 else 1
    return int(stamp_ns) // period_ns


def _empty_streams(frames: np.ndarray, stamps: np.ndarray, n_sensors: int) -> SensorStreams:
    """Streams with frames and nothing else: every label of them is unknown."""
    none = np.zeros(0, np.int64)
    return SensorStreams(
        frame_stamps=stamps, frames=frames, k_matrix=None,
        image_hw=tuple(frames.shape[1:3]) if len(frames) else None,
        range_stamps=[none] * n_sensors, ranges=[np.zeros(0)] * n_sensors,
        odom_stamps=none, odom_poses=np.zeros((0, 3)), odom_speed=np.zeros(0),
        imu_stamps=none, imu_accel=np.zeros((0, 3)), imu_gyro=np.zeros((0, 3)),
        cmd_stamps=none, cmd_speed=np.zeros(0))


def read_video_streams(path: Path | str, params: LabellingParams, *,
                       progress: Callable[[float, float], None] | None = None) -> BagStreams:
    """Read a video file's frames (RGB) and stamps, subsampled to `frame_rate_hz`.

    Stamps are each frame's presentation time from the container (ns from the first
    frame); where the container gives none, frame index / frames per second.

    Raises:
        LabelError: When OpenCV cannot open the file.
    """
    path = Path(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise LabelError(f'{path}: OpenCV cannot open this video (missing, or a codec it '
                         f'lacks)')
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    n_total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    duration_s = n_total / fps if fps > 0 else 0.0
    counts = {'frames_read': 0, 'frames_skipped_rate': 0, 'frames_bad_encoding': 0}
    frames: list[np.ndarray] = []
    stamps: list[int] = []
    slots: set[int] = set()
    last = -1
    try:
        while capture.grab():
            index = counts['frames_read']
            counts['frames_read'] += 1
            pts_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
            stamp = int(round(pts_ms * 1e6)) if pts_ms > 0 or index == 0 else -1
            if stamp <= last and fps > 0:  # no (or no increasing) presentation time
                stamp = int(round(index * 1e9 / fps))
            last = max(last, stamp)
            if progress is not None and index % 256 == 0:
                progress(stamp / 1e9, duration_s)
            slot = frame_slot(stamp, params.frame_rate_hz)
            if slot in slots:
                counts['frames_skipped_rate'] += 1
                continue
            ok, bgr = capture.retrieve()
            if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
                counts['frames_bad_encoding'] += 1
                continue
            slots.add(slot)
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            stamps.append(stamp)
    finally:
        capture.release()
    notes = [f'video ({fps:.3g} frames/s, {counts["frames_read"]} frames): frames only, every '
             f"label is unknown (masked); stamps from the video's start"]
    if not frames:
        notes.append('video has no readable frame')
    array = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    streams = _empty_streams(array, np.asarray(stamps, np.int64), len(params.range_topics))
    return BagStreams(streams, counts, notes, True, None, None,
                      duration_s or (stamps[-1] / 1e9 if stamps else 0.0))


def label_source(source: Path | str, params: LabellingParams, *, frames_only: bool = False,
                 progress: Callable[[float, float], None] | None = None,
                 read_ground_truth: bool = False) -> LabelledBag:
    """Label one source: a recording (`label_bag`) or, frames only, a video file.

    Args:
        source: A bag (directory, .mcap, .db3, ROS 1 .bag) or a video file.
        params: Labelling parameters.
        frames_only: Read only the cameras; every label is masked.
        progress: Called with (seconds read, duration).
        read_ground_truth: Also read simulator truth from a bag (evaluation).

    Raises:
        LabelError: For a video without `frames_only`, a video with extra camera views,
            or what `label_bag` raises.
        BagError: When a bag cannot be read.
    """
    if not is_video(source):
        return label_bag(source, params, progress=progress,
                         read_ground_truth=read_ground_truth, frames_only=frames_only)
    if not frames_only:
        raise LabelError(f'{source}: a video has no odometry or proximity readings to label '
                         f'from; use --frames-only (frames and stamps, labels masked)')
    if params.view_topics:
        raise LabelError(f'{source}: a video has one camera; extra views '
                         f'({", ".join(params.view_topics)}) need a bag')
    bag = read_video_streams(source, params, progress=progress)
    return LabelledBag([str(source)], label_streams(bag.streams, params), bag, params)
