"""Labelling whole bags.

Labelling whole bags: a simulator bag against its ground truth, the real Husky bag
(no camera), malformed streams, and `ssl-robot label` end to end.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.bags.writer import BagWriter
from ssl_robot.cli import main as cli_main
from ssl_robot.config import load_node_parameters
from ssl_robot.dataset import LabelledDataset
from ssl_robot.labelling import build_trajectory, interpolate_poses, LabelError, labelling_params
from ssl_robot.labelling.bag import label_bag
from ssl_robot.labelling.borealtc import auc
from ssl_robot.labelling.sim_truth import precision_recall, proximity_truth
from ssl_robot.labelling.streams import match_views
from ssl_robot.msgconv import MessageError

REAL = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real'
HUSKY = REAL / 'bags' / 'husky_outdoor_imu_odom.bag'
HUSKY_REMAP = ['--remap', 'odom:=/husky_velocity_controller/odom', '--remap',
               'imu:=/imu/data']
PARAMS = labelling_params(load_node_parameters('labeller'))


@pytest.fixture(scope='module')
def sim_bag(tmp_path_factory):
    from ssl_robot.sim import write_sim_bag
    out = tmp_path_factory.mktemp('sim') / 'seed3'
    # 40 s of a crowded world with gravel patches, small images: about 10 s to simulate.
    write_sim_bag(3, 40.0, out, width=32, height=24, camera_rate_hz=10.0,
                  world_params={'n_obstacles': 20})
    return out


@pytest.fixture(scope='module')
def sim_labelled(sim_bag):
    return label_bag(sim_bag, PARAMS)


def test_sim_labels_agree_with_ground_truth_geometry(sim_labelled):
    from ssl_robot.sim import ROBOT, World
    lb = sim_labelled
    world = World.from_json(lb.bag.world_json)
    gt_stamps, gt_poses = lb.bag.ground_truth
    sensors = [ROBOT.proximity_poses[s] for s in PARAMS.sensors]
    truth, known = proximity_truth(world, gt_stamps, gt_poses, lb.rows['stamps_ns'],
                                   PARAMS.proximity.distances_m, sensors,
                                   PARAMS.proximity.obstacle_range_m)
    pr = precision_recall(lb.rows['proximity'], lb.rows['proximity_mask'], truth, known)
    base_rate = pr['positives_true'] / pr['known']
    assert pr['known'] > 1500 and pr['positives_true'] > 50
    assert base_rate < 0.1
    assert pr['precision'] > 0.75 and pr['recall'] > 0.75, pr
    # Baseline: today's reading copied to every distance ahead. The future reading is
    # what makes labels at d > 0 right.
    now = np.broadcast_to(lb.rows['proximity'][:, :1], lb.rows['proximity'].shape)
    now_mask = np.broadcast_to(lb.rows['proximity_mask'][:, :1], now.shape)
    far = np.zeros(truth.shape, bool)
    far[:, 3:] = True
    ours = precision_recall(lb.rows['proximity'], lb.rows['proximity_mask'] & far, truth, known)
    copied = precision_recall(now, now_mask & lb.rows['proximity_mask'] & far, truth, known)
    assert ours['recall'] > copied['recall'] + 0.3, (ours, copied)


def test_sim_terrain_signal_is_higher_on_rough_ground(sim_labelled):
    from ssl_robot.sim import World
    lb = sim_labelled
    world = World.from_json(lb.bag.world_json)
    rough = lb.result.roughness
    ok = np.isfinite(rough.signal)
    truth = interpolate_poses(build_trajectory(*lb.bag.ground_truth, max_jump_m=10.0),
                              rough.stamps_ns[ok])
    terrain = np.array([world.terrain_at(x, y) if k else '' for (x, y, _), k in
                        zip(truth.poses, truth.known)])
    signal = rough.signal[ok]
    smooth, other = signal[terrain == 'smooth'], signal[(terrain != 'smooth') & (terrain != '')]
    assert len(smooth) > 50 and len(other) > 50
    assert auc(other, smooth) > 0.75
    # Terrain patches landed in the image, in its lower part (the ground ahead).
    mask = lb.rows['terrain_mask']
    assert mask.any()
    assert mask[:, :1].sum() < mask[:, -2:].sum()


def test_label_command_writes_dataset_report_and_appends(sim_bag, tmp_path, capsys):
    from ssl_robot.bags.reader import BagReader
    from ssl_robot.sim import write_sim_bag
    out = tmp_path / 'ds'
    assert cli_main(['label', str(sim_bag), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'frames labelled: ' in printed and 'yield' in printed
    ds = LabelledDataset.open(out)
    # Counted independently of the command's printout: the camera messages in the bag, of
    # which the labeller keeps one per 1/frame_rate_hz slot (a 10 Hz camera at 5 Hz: half).
    with BagReader(sim_bag) as reader:
        camera = reader.message_counts['/image_raw']
    assert abs(len(ds) - camera * PARAMS.frame_rate_hz / 10.0) <= 2, (len(ds), camera)
    assert f'frames labelled: {len(ds)}' in printed
    assert ds.frames.shape[1:] == (24, 32, 3)
    assert ds.meta['params']['frame_rate_hz'] == PARAMS.frame_rate_hz
    for name in ('label_yield.png', 'example_frames.png', 'trajectory_terrain.png',
                 'summary.json'):
        assert (out / 'report' / name).stat().st_size > 0
    summary = json.loads((out / 'report' / 'summary.json').read_text())
    assert np.array(summary['known_labels']).shape == (len(PARAMS.proximity.distances_m), 3)
    assert cli_main(['label', str(sim_bag), '--out', str(out)]) == 2   # exists
    # The same bag again would put identical frames in train and validation: refused.
    assert cli_main(['label', str(sim_bag), '--out', str(out), '--append',
                     '--no-figures']) == 2
    other = tmp_path / 'seed4'
    write_sim_bag(4, 20.0, other, width=32, height=24, camera_rate_hz=10.0)
    assert cli_main(['label', str(other), '--out', str(out), '--append',
                     '--no-figures']) == 0
    ds2 = LabelledDataset.open(out)
    assert len(ds2) > len(ds) and len(ds2.meta['bags']) == 2
    train, val = ds2.split(0.5, by='bag')
    assert set(ds2.bag_ids[train]).isdisjoint(ds2.bag_ids[val])


@pytest.mark.skipif(not HUSKY.exists(), reason='real data not present')
def test_real_husky_bag_without_camera(tmp_path, capsys):
    params = labelling_params({**load_node_parameters('labeller'),
                               'odom_topic': '/husky_velocity_controller/odom',
                               'imu_topic': '/imu/data'})
    lb = label_bag(HUSKY, params)
    assert any('no camera stream (topic /image_raw)' in n for n in lb.bag.notes)
    assert len(lb.rows['stamps_ns']) == 0
    traj = lb.result.trajectory
    assert len(traj.stamps_ns) > 3900 and traj.n_segments >= 1
    assert traj.path_length[traj.segment(0)][-1] > 50.0
    # Poses interpolate between the 10 Hz odometry samples, on the robot's path.
    mid = (traj.stamps_ns[100:110] + traj.stamps_ns[101:111]) // 2
    q = interpolate_poses(traj, mid)
    assert q.known.all()
    step = np.hypot(*(q.poses[:, :2] - traj.poses[100:110, :2]).T)
    full = np.hypot(*(traj.poses[101:111, :2] - traj.poses[100:110, :2]).T)
    np.testing.assert_allclose(step, full / 2, rtol=0.05, atol=1e-4)
    rough = lb.result.roughness
    assert 25 < rough.sample_rate_hz < 35 and rough.band_hz[1] <= rough.sample_rate_hz / 2
    assert np.isfinite(rough.signal).sum() > 3000 and np.nanstd(rough.signal) > 0
    # The command: a clear message, no dataset; --terrain-only reports the signal.
    assert cli_main(['label', str(HUSKY), '--out', str(tmp_path / 'a')]) == 2
    assert 'no camera stream (topic /image_raw)' in capsys.readouterr().err
    assert cli_main(['label', str(HUSKY), '--out', str(tmp_path / 'b'), *HUSKY_REMAP]) == 1
    assert 'no camera stream (topic /image_raw)' in capsys.readouterr().err
    assert not (tmp_path / 'b' / 'meta.json').exists()
    assert cli_main(['label', str(HUSKY), '--out', str(tmp_path / 'c'), *HUSKY_REMAP,
                     '--terrain-only']) == 0
    assert 'terrain signal in' in capsys.readouterr().out
    assert (tmp_path / 'c' / 'report' / 'trajectory_terrain.png').exists()


def _write_messy_bag(path):
    """Odometry, ranges and images with duplicates, reordering and a bad encoding."""
    from bag_factory import default_msg, header
    s = 1_000_000_000
    with BagWriter(path) as writer:
        for k in range(100):                    # 2 s of odometry at 50 Hz, 0.1 m/s
            t = 10 * s + k * 20_000_000
            odom = default_msg('nav_msgs/msg/Odometry', header=header(t, 'odom'),
                               child_frame_id='base_link')
            odom.pose.pose.position.x = 0.1 * k * 0.02
            odom.pose.pose.orientation.w = 1.0
            writer.write('/odom', 'nav_msgs/msg/Odometry', odom, t)
            rng = default_msg('sensor_msgs/msg/Range', header=header(t, 'r'), radiation_type=1,
                              min_range=0.01, max_range=0.3,
                              range=float('nan') if k == 7 else 0.2)
            writer.write('/range/center', 'sensor_msgs/msg/Range', rng, t)
        stamps = [0, 200, 100, 100, 400, 600, 800]            # reordered and a duplicate
        for i, ms in enumerate(stamps):
            t = 10 * s + ms * 1_000_000
            img = default_msg('sensor_msgs/msg/Image', header=header(t, 'cam'), height=2,
                              width=3, encoding='yuv422' if ms == 600 else 'rgb8', step=9,
                              data=np.full(18, i, np.uint8))
            writer.write('/image_raw', 'sensor_msgs/msg/Image', img, 10 * s + i * 1000)


def test_messy_bag_is_sorted_deduplicated_and_counted(tmp_path):
    _write_messy_bag(tmp_path / 'messy')
    lb = label_bag(tmp_path / 'messy', PARAMS)
    counts = lb.provenance['counts']
    assert counts['frames_bad_encoding'] == 1
    assert counts['frames_skipped_rate'] == 2            # 100 ms (twice) shares 0's slot
    np.testing.assert_array_equal(lb.rows['stamps_ns'] - 10 * 10**9,
                                  np.array([0, 200, 400, 800]) * 10**6)
    assert counts['range_nan'] == 1
    assert any('range/left' in n for n in lb.bag.notes)
    assert not lb.rows['proximity_mask'][:, :, [0, 2]].any()   # sensors without a stream
    assert any('camera intrinsics' in n for n in lb.bag.notes)
    assert not lb.rows['terrain_mask'].any()


@pytest.mark.parametrize('frames, views, tolerance, expected', [
    ([100, 200, 300], [102, 195, 260], 5, [0, 1, -1]),      # 300: nearest 260 is 40 away
    ([100, 200], [96, 104, 198], 5, [0, 2]),                 # tie at 100: the earlier one
    ([300, 100], [310, 90], 10, [0, 1]),                     # any order, inclusive bound
    ([100, 200], [], 50, [-1, -1]),
])
def test_match_views_hand_computed(frames, views, tolerance, expected):
    assert match_views(np.array(frames), np.array(views), tolerance).tolist() == expected


def _write_two_camera_bag(path, *, view_hw=(2, 3)):
    """A two-camera bag with one view beyond the match tolerance.

    Odometry, /image_raw at 5 Hz and /camera2/image_raw 5 ms later, except at 400 ms
    (60 ms later, beyond the 15 ms tolerance); camera2 pixel values are 10 + frame index.
    """
    from bag_factory import default_msg, header
    s = 1_000_000_000
    with BagWriter(path) as writer:
        for k in range(100):
            t = 10 * s + k * 20_000_000
            odom = default_msg('nav_msgs/msg/Odometry', header=header(t, 'odom'),
                               child_frame_id='base_link')
            odom.pose.pose.orientation.w = 1.0
            writer.write('/odom', 'nav_msgs/msg/Odometry', odom, t)
        for i, ms in enumerate([0, 200, 400, 600, 800]):
            t = 10 * s + ms * 1_000_000
            img = default_msg('sensor_msgs/msg/Image', header=header(t, 'cam'), height=2,
                              width=3, encoding='rgb8', step=9, data=np.full(18, i, np.uint8))
            writer.write('/image_raw', 'sensor_msgs/msg/Image', img, t)
            # At 400 ms only a frame 60 ms late; elsewhere 5 ms late, and a decoy 9 ms late.
            for dt_ms, value in ([(60, 10 + i)] if ms == 400 else [(5, 10 + i), (9, 99)]):
                h, w = view_hw
                view = default_msg('sensor_msgs/msg/Image', header=header(
                    t + dt_ms * 1_000_000, 'camera2_optical_frame'), height=h, width=w,
                    encoding='rgb8', step=3 * w, data=np.full(h * w * 3, value, np.uint8))
                writer.write('/camera2/image_raw', 'sensor_msgs/msg/Image', view,
                             t + dt_ms * 1_000_000)


def test_extra_cameras_are_matched_by_stamp_and_masked_when_missing(tmp_path, capsys):
    _write_two_camera_bag(tmp_path / 'two')
    params = labelling_params({**load_node_parameters('labeller'),
                               'extra_image_topics': ['camera2/image_raw',
                                                      '/camera3/image_raw']})
    lb = label_bag(tmp_path / 'two', params)
    views, mask = lb.rows['views'], lb.rows['views_mask']
    assert views.shape == (5, 2, 2, 3, 3) and mask.shape == (5, 2)
    assert mask[:, 0].tolist() == [True, True, False, True, True]
    assert views[:, 0, 0, 0, 0].tolist() == [10, 11, 0, 13, 14]   # the nearest, never filled
    assert not mask[:, 1].any() and not views[:, 1].any()       # no /camera3 stream at all
    assert any('/camera3/image_raw' in note for note in lb.bag.notes)
    counts = lb.provenance['counts']
    assert (counts['views_matched_0'], counts['views_missing_0']) == (4, 1)
    # The command: views named in the dataset, masked views reported in the summary.
    out = tmp_path / 'ds'
    assert cli_main(['label', str(tmp_path / 'two'), '--out', str(out), '--no-figures',
                     '--remap', 'views:=camera2/image_raw']) == 0
    assert 'view /camera2/image_raw: matched in 4 frames, masked' in capsys.readouterr().out
    ds = LabelledDataset.open(out)
    assert ds.view_names == ['/camera2/image_raw'] and ds.views_mask[:, 0].sum() == 4
    summary = json.loads((out / 'report' / 'summary.json').read_text())
    assert summary['views'] == [{'topic': '/camera2/image_raw', 'matched': 4, 'masked': 1}]
    # Another image size is refused, not resized.
    _write_two_camera_bag(tmp_path / 'other_size', view_hw=(4, 6))
    with pytest.raises(LabelError, match='camera2/image_raw has 6x4 images.*3x2'):
        label_bag(tmp_path / 'other_size', params)


def test_bag_without_odometry_is_a_clear_error(tmp_path):
    with BagWriter(tmp_path / 'b') as writer:
        writer.add_topic('/imu', 'sensor_msgs/msg/Imu')
    with pytest.raises(LabelError, match=r'no odometry stream \(topic /odom\) and no camera'):
        label_bag(tmp_path / 'b', PARAMS)


def test_fast_field_reading_equals_full_deserialisation(sim_bag, tmp_path):
    from ssl_robot.bags.fastcdr import _same, FieldReader, READERS
    from ssl_robot.bags.reader import BagReader
    _write_messy_bag(tmp_path / 'messy')                  # NaN ranges, other frame ids
    checked = 0
    for bag in (sim_bag, tmp_path / 'messy'):
        with BagReader(bag) as reader:
            for conn, _, raw in reader.raw_messages(['/odom', '/imu', '/range/left',
                                                     '/range/center', '/ground_truth/odom']):
                fast, full = READERS[conn.msgtype]
                assert _same(fast(raw), full(reader._reader.deserialize(raw, conn.msgtype)))
                checked += 1
    assert checked > 5000
    # Bytes that are not what the fast path expects: it notices and falls back.
    with BagReader(sim_bag) as reader:
        conn, _, raw = next(iter(reader.raw_messages(['/imu'])))
        fields = FieldReader('sensor_msgs/msg/Imu', reader._reader.deserialize, cdr=True)
        broken = bytearray(raw)
        broken[12:16] = (2**31).to_bytes(4, 'little')     # absurd frame_id length
        with pytest.raises(MessageError):
            fields(bytes(broken))                          # a clear, counted error
        assert not fields.use_fast
