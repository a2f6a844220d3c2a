"""`ssl-robot label --frames-only`: camera-only bags and video files as datasets.

Frames and stamps with every label masked, on which TCN and the vision pretexts train.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssl_robot.bags.writer import BagWriter
from ssl_robot.cli import main as cli_main
from ssl_robot.dataset import LabelledDataset
from ssl_robot.labelling import LabelError, labelling_params
from ssl_robot.labelling.sources import is_video, label_source, read_video_streams

from bag_factory import header, write_sensor_bag

CAMERA_ONLY = {'/image_raw', '/camera_info'}


def write_video(path: Path, *, n_frames: int, fps: float = 10.0, hw: tuple[int, int] = (24, 32)
                ) -> np.ndarray:
    """A small MJPG video whose frames differ (a bar that moves); returns them as RGB."""
    h, w = hw
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    assert writer.isOpened()
    frames = []
    for i in range(n_frames):
        rgb = np.full((h, w, 3), 40, np.uint8)
        rgb[:, (i * 2) % w:(i * 2) % w + 4] = (250, 200, 10)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append(rgb)
    writer.release()
    return np.stack(frames)


def test_video_frames_stamps_and_rate(tmp_path: Path) -> None:
    truth = write_video(tmp_path / 'walk.avi', n_frames=20, fps=10.0)
    assert is_video(tmp_path / 'walk.avi') and not is_video(tmp_path)
    params = labelling_params({'frame_rate_hz': 5.0})
    streams = read_video_streams(tmp_path / 'walk.avi', params)
    # 10 frames/s kept at 5 Hz: every other frame, stamped on the video's timeline.
    assert streams.streams.frame_stamps.tolist() == [i * 200_000_000 for i in range(10)]
    assert streams.counts['frames_read'] == 20 and streams.counts['frames_skipped_rate'] == 10
    frames = streams.streams.frames
    assert frames.shape == (10, 24, 32, 3)
    # RGB, not OpenCV's BGR (MJPG is lossy: compare to a tolerance).
    assert np.abs(frames.astype(int) - truth[::2].astype(int)).mean() < 6
    assert frames[0, 12, 1, 0] > 200 and frames[0, 12, 1, 2] < 60


def test_video_needs_frames_only(tmp_path: Path) -> None:
    write_video(tmp_path / 'v.avi', n_frames=4)
    with pytest.raises(LabelError, match='--frames-only'):
        label_source(tmp_path / 'v.avi', labelling_params())
    with pytest.raises(LabelError, match='OpenCV cannot open'):
        label_source(tmp_path / 'missing.mp4', labelling_params(), frames_only=True)


def test_camera_only_bag_refused_without_flag_labelled_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = tmp_path / 'cam'
    write_sensor_bag(bag, seconds=2.0, topics=CAMERA_ONLY)
    assert cli_main(['label', str(bag), '--out', str(tmp_path / 'no'), '--no-figures']) == 2
    assert '--frames-only labels its camera frames' in capsys.readouterr().err
    # Remapped camera topics (a robot's real names) work the same.
    renamed = tmp_path / 'renamed'
    with BagWriter(renamed) as writer:
        for i in range(10):
            t = 1_000_000_000 + i * 200_000_000
            img = write_sensor_image(t)
            writer.write('/front/color', 'sensor_msgs/msg/Image', img, t)
    out = tmp_path / 'data'
    assert cli_main(['label', str(renamed), '--frames-only', '--remap', 'image:=/front/color',
                     '--out', str(out), '--no-figures']) == 0
    data = LabelledDataset.open(out)
    assert len(data) == 10 and not data.proximity_mask.any() and not data.terrain_mask.any()
    assert (data.prov_t_future_ns == -1).all()
    assert data.meta['bags'][0]['path'] == str(renamed)
    assert any('frames only' in n for n in data.meta['bags'][0]['notes'])


def write_sensor_image(t_ns: int) -> object:
    from bag_factory import default_msg
    return default_msg('sensor_msgs/msg/Image', header=header(t_ns, 'camera_optical_frame'),
                       height=8, width=8, encoding='rgb8', step=24,
                       data=np.full(8 * 8 * 3, t_ns // 200_000_000 % 250, np.uint8))


def test_frames_only_dataset_trains_tcn_and_pretext(tmp_path: Path) -> None:
    bag = tmp_path / 'cam'
    write_sensor_bag(bag, seconds=4.0, topics=CAMERA_ONLY)
    write_video(tmp_path / 'walk.avi', n_frames=40, hw=(24, 32))
    out = tmp_path / 'data'
    assert cli_main(['label', str(bag), str(tmp_path / 'walk.avi'), '--frames-only', '--out',
                     str(out), '--no-figures']) == 0
    data = LabelledDataset.open(out)
    assert len(data) == 40 and [b['n_frames'] for b in data.meta['bags']] == [20, 20]
    assert [b['path'] for b in data.meta['bags']] == [str(bag), str(tmp_path / 'walk.avi')]
    assert not data.proximity_mask.any() and not data.terrain_mask.any()
    assert np.diff(data.stamps_ns[data.bag_ids == 1]).tolist() == [200_000_000] * 19
    summary = json.loads((out / 'report' / 'summary.json').read_text())
    assert summary['frames'] == 40 and summary['proximity_yield_overall'] == 0.0

    run = tmp_path / 'tcn'
    assert cli_main(['train', '--task', 'tcn', '--dataset', str(out), '--out', str(run),
                     '--epochs', '1', '--batch-size', '8', '--device', 'cpu',
                     '--no-progress', '--param', 'input_hw=[24,32]', '--param', 'width=8']) == 0
    assert (run / 'best.pt').exists()
    pre = tmp_path / 'rotation'
    assert cli_main(['pretext', '--task', 'rotation', '--data', str(out), '--out', str(pre),
                     '--epochs', '1', '--batch-size', '16', '--image-size', '24',
                     '--max-images', '32', '--param', 'widths=[8,16]', '--param', 'hidden=16',
                     '--no-export', '--no-progress']) == 0
    assert (pre / 'final_metrics.json').exists()
