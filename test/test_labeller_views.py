"""The live labeller's extra camera views: matched, masked, counted, stored like offline.

The pure matching of buffered frames (`gather_views`) against hand-computed cases; the
node itself in this process (a real rclpy node in its own context, its callbacks given
real messages, no executor) for parameter typing, matching, bad views, pruning and the
dataset it appends to; and `sim_robot` with an extra camera feeding the labeller, both as
real processes over DDS on loopback.
"""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from ssl_robot.dataset import LabelledDataset
from ssl_robot.labelling.streams import gather_views

from ros_procs import copy_config, Probe, start_node

SIM_DOMAIN = 32
NODE_DOMAIN = 33
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
H, W = 12, 16


def _rgb(value: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


@pytest.mark.parametrize('frames, buffered, expected_mask, expected_values', [
    # Nearest within 15 ms; 1000 has only 1020 (too far); the other camera is silent.
    ([1000, 1200, 1400], [[(1195, 7), (1210, 8), (1020, 9), (1400, 5)], []],
     [[False, False], [True, False], [True, False]], [[0, 0], [7, 0], [5, 0]]),
    # Any buffer order; a tie goes to the earlier frame; 15 ms is inclusive.
    ([500], [[(510, 2), (490, 1)], [(515, 3)]], [[True, True]], [[1, 3]]),
    ([], [[(1, 1)]], np.zeros((0, 1), bool), np.zeros((0, 1), int)),
])
def test_gather_views_hand_computed(frames, buffered, expected_mask, expected_values):
    view_frames = [[(s * MS, _rgb(v)) for s, v in view] for view in buffered]
    views, mask = gather_views(np.array(frames, np.int64) * MS, view_frames, 15 * MS, (H, W))
    assert views.shape == (len(frames), len(buffered), H, W, 3) and views.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(views[..., 0, 0, 0], expected_values)
    assert (views == views[..., :1, :1, :1]).all()   # whole frames copied, masked ones zero


# ------------------------------------------------------------------ the node in-process
@pytest.fixture
def make_labeller():
    """Build Labeller nodes in a context of this process; all destroyed afterwards."""
    import rclpy
    from rclpy.context import Context

    from ssl_robot.nodes.labeller import Labeller
    context = Context()
    rclpy.init(context=context, domain_id=NODE_DOMAIN)
    nodes = []

    def make(**kwargs):
        nodes.append(Labeller(context=context, **kwargs))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    context.try_shutdown()


def _params(dataset, topics):
    from rclpy.parameter import Parameter
    values = {'dataset': str(dataset), 'frame_rate_hz': 5.0, 'label_horizon_s': 1.0,
              'terrain_horizon_s': 0.5, 'view_match_tolerance_s': 0.015,
              'extra_image_topics': topics}
    return [Parameter(k, value=v) for k, v in values.items()]


def _image(t_ms, pixels, encoding='rgb8'):
    from sensor_msgs.msg import Image
    h, w = pixels.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, step=3 * w, data=pixels.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(T0 + t_ms * MS, 1_000_000_000)
    return msg


def _feed(node, *, start_ms=0, seconds=3.0):
    """Give the node's callbacks `seconds` of a drive, views before frames every other time.

    Odometry every 20 ms; the main camera every 40 ms (pixels 200 - k, k-th frame), kept
    every 200 ms (5 Hz); camera2 5 ms after it (pixels k + 1; none at 1000 ms, 30 ms late
    at 2000 ms); camera3 only beside the kept frames, at the wrong size (the last one in
    yuv422). A view comes before its frame when k is even.
    """
    from nav_msgs.msg import Odometry
    for k in range(int(seconds * 50)):
        t = start_ms + 20 * k
        odom = Odometry()
        odom.header.stamp.sec, odom.header.stamp.nanosec = divmod(T0 + t * MS, 1_000_000_000)
        odom.pose.pose.position.x = 0.1 * t / 1000
        odom.pose.pose.orientation.w = 1.0
        node._on_odom(odom)
    n = int(seconds * 25)
    for k in range(n):
        t = start_ms + 40 * k
        views = []
        if t != start_ms + 1000:
            views.append((0, _image(t + (30 if t == start_ms + 2000 else 5), _rgb(k + 1))))
        if len(node.buffer.views) > 1 and k % 5 == 0:
            views.append((1, _image(t, _rgb(7, 8, 8), 'yuv422' if k == n - 5 else 'rgb8')))
        if k % 2:
            node._on_image(_image(t, _rgb(200 - k)))
        for v, msg in views:
            node._on_view(v, msg)
        if not k % 2:
            node._on_image(_image(t, _rgb(200 - k)))


def test_extra_image_topics_is_a_string_array_set_by_file_or_command_line(
        make_labeller, tmp_path):
    from rclpy.parameter import Parameter
    dataset = f'dataset:={tmp_path / "ds"}'
    node = make_labeller(cli_args=['--ros-args', '-p', dataset])
    value = node.get_parameter('extra_image_topics')
    assert value.type_ == Parameter.Type.STRING_ARRAY and value.value == []
    assert node.view_names == [] and node.params.view_topics == ()
    node = make_labeller(cli_args=['--ros-args', '-p', dataset, '-p',
                                   "extra_image_topics:=['/camera2/image_raw']"])
    assert node.view_names == ['/camera2/image_raw']
    for listed, names in (('[camera2/image_raw, camera3/image_raw]',
                           ['/camera2/image_raw', '/camera3/image_raw']), ('[]', [])):
        config = tmp_path / 'p.yaml'
        config.write_text(f'labeller:\n  ros__parameters:\n    extra_image_topics: {listed}\n')
        node = make_labeller(cli_args=['--ros-args', '-p', dataset,
                                       '--params-file', str(config)])
        assert node.view_names == names
        assert ('views_missing_1' in node.status()) is bool(names)


def test_views_matched_masked_counted_and_appended(make_labeller, tmp_path):
    topics = ['camera2/image_raw', 'camera3/image_raw']
    node = make_labeller(parameter_overrides=_params(tmp_path / 'ds', topics))
    _feed(node)
    # Only views a frame can still match are kept: one per kept frame (15, one missing),
    # plus the late one at 2030 ms, not yet known to be unmatched; camera3's are refused.
    assert [len(v) for v in node.buffer.views] == [15 - 1, 0]
    node._take(node.buffer.label(everything=False))  # frames up to 1.98 s: 1 s of future
    assert len(node.buffer.frames) == 5 and [len(v) for v in node.buffer.views] == [4, 0]
    node._take(node.buffer.label(everything=True))
    assert [len(v) for v in node.buffer.views] == [0, 0]
    rows = {k: np.concatenate([r[k] for r in node.pending_rows]) for k in node.pending_rows[0]}
    k_of = (rows['stamps_ns'] - T0) // (40 * MS)
    assert len(k_of) == 15 and rows['views'].shape == (15, 2, H, W, 3)
    matched = (k_of != 25) & (k_of != 50)
    np.testing.assert_array_equal(rows['views_mask'][:, 0], matched)
    assert not rows['views_mask'][:, 1].any() and not rows['views'][:, 1].any()
    np.testing.assert_array_equal(rows['views'][matched, 0, 0, 0, 0], k_of[matched] + 1)
    assert not rows['views'][~matched, 0].any()
    np.testing.assert_array_equal(rows['frames'][:, 0, 0, 0], 200 - k_of)
    status = node.status()
    assert (status['views_matched_0'], status['views_missing_0']) == (13, 2)
    assert (status['views_matched_1'], status['views_missing_1']) == (0, 15)
    assert (status['views_bad_size'], status['views_bad_encoding']) == (14, 1)
    assert status['views'] == ['/camera2/image_raw', '/camera3/image_raw']

    node._flush(wait=True)
    assert node.counts['flush_errors'] == 0 and node.counts['frames_written'] == 15
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.view_names == ['/camera2/image_raw', '/camera3/image_raw']
    np.testing.assert_array_equal(ds.views, rows['views'])
    np.testing.assert_array_equal(ds.views_mask, rows['views_mask'])

    # Another session with the same views appends; one with other views is refused,
    # counted, and keeps its rows.
    for views, written in ((topics, True), (topics[:1], False)):
        other = make_labeller(parameter_overrides=_params(tmp_path / 'ds', views))
        _feed(other, start_ms=10_000, seconds=1.0)
        other._take(other.buffer.label(everything=True))
        other._flush(wait=True)
        assert other.counts['flush_errors'] == (0 if written else 1)
        assert bool(other.pending_rows) is not written
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert len(ds) == 15 + 5 and len(ds.meta['bags']) == 2
    assert ds.views_mask[15:, 0].sum() == 5 and not ds.views_mask[15:, 1].any()


# ------------------------------------------------------------------ over DDS
def test_labeller_labels_the_simulators_extra_camera(tmp_path):
    """sim_robot with a second camera; the labeller given it with -p, both over DDS."""
    config = copy_config(
        tmp_path, sim_robot={'seed': 3, 'extra_cameras': 1},
        labeller={'dataset': str(tmp_path / 'ds'), 'use_sim_time': True,
                  'frame_rate_hz': 5.0, 'label_horizon_s': 2.0, 'terrain_horizon_s': 1.5,
                  'buffer_seconds': 10.0, 'flush_every_s': 1.0, 'label_period_s': 0.5,
                  'status_period_s': 0.2})
    labeller = start_node('labeller', domain_id=SIM_DOMAIN, log_dir=tmp_path,
                          params_file=config,
                          params={'extra_image_topics': ['/camera2/image_raw']})
    sim = None
    try:
        with Probe(SIM_DOMAIN) as probe:
            from std_msgs.msg import String
            status = probe.subscribe('/labeller/status', String, reliable=True)
            assert probe.wait_for_node('labeller', timeout=30), labeller.output()
            sim = start_node('sim_robot', domain_id=SIM_DOMAIN, log_dir=tmp_path,
                             params_file=config)

            def written():
                return status and json.loads(status[-1].data)['frames_written'] >= 15

            assert probe.spin_until(written, 40), labeller.output() + sim.output()[-2000:]
            last = json.loads(status[-1].data)
        labeller.signal(signal.SIGINT)
        assert labeller.wait(30) == 0, labeller.output()
        sim.signal(signal.SIGINT)
        assert sim.wait(20) == 0, sim.output()[-2000:]
    finally:
        labeller.stop()
        if sim is not None:
            sim.stop()
    assert last['views'] == ['/camera2/image_raw'] and last['received']['/camera2/image_raw']
    assert last['views_bad_size'] == last['views_bad_encoding'] == last['messages_bad'] == 0
    assert last['view_frames_buffered'][0] <= last['frames_waiting'] + 5
    assert 'Traceback' not in labeller.log_path.read_text()
    ds = LabelledDataset.open(tmp_path / 'ds')
    assert ds.view_names == ['/camera2/image_raw'] and len(ds) >= 15
    assert ds.views.shape == (len(ds), 1, 96, 128, 3)
    mask = ds.views_mask[:, 0]
    assert mask.mean() >= 0.8, mask
    views, frames = ds.views[mask, 0].astype(int), ds.frames[mask].astype(int)
    assert views.reshape(len(views), -1).max(axis=1).min() > 0     # real images, not zeros
    assert np.abs(views - frames).mean() > 5                       # another camera's view
