"""The inference lifecycle node as a real process over DDS (domain 41)."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN = 41


def _model(kind: str, **spec: object) -> object:
    """A seeded random model whose output depends clearly on the frame.

    A seeded random model; an obstacle model's weights doubled so that, like a trained
    one (and unlike a fresh init), its output depends clearly on the frame.
    """
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec
    torch.manual_seed(0)
    model = build_robot_model(default_spec(kind, input_hw=[24, 32], width=4, **spec))
    if kind == 'obstacle':
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(2.0)
    return model


def _export(kind: str, path: Path, **spec: object) -> Path:
    from ssl_robot.robot.nets import export_robot_onnx
    export_robot_onnx(_model(kind, **spec), path)
    return path


def _torch_probabilities(msg: object, **spec: object) -> np.ndarray:
    """What the exported obstacle model should publish for `msg`.

    What the exported obstacle model should publish for `msg`, computed independently:
    the torch model (rebuilt from the same seed), torch's area resize, our own decoding.
    """
    import torch

    from ssl_robot.robot.transforms import frames_to_input
    model = _model('obstacle', **spec)
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1)
    rgb = {'rgb8': raw, 'bgr8': raw[..., ::-1], 'mono8': np.repeat(raw, 3, axis=2)}[msg.encoding]
    x = frames_to_input(torch.from_numpy(np.ascontiguousarray(rgb))[None], [24, 32],
                        model.spec['mean'], model.spec['std'])
    with torch.no_grad():
        return model.for_export().eval()(x)[0].numpy()


def _image(stamp_s: int, encoding: str = 'rgb8', h: int = 48, w: int = 64) -> object:
    from sensor_msgs.msg import Image
    channels = 1 if encoding == 'mono8' else 3
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_s, 1234
    msg.header.frame_id = 'camera_optical_frame'
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = w * channels
    # Structured pixels (a colour per stamp and channel over a ramp), so the model's output
    # depends on which frame and which channel order it saw; noise would average out.
    rng = np.random.default_rng(stamp_s)
    ramp = np.linspace(0.0, 1.0, w)[None, :, None]
    colour = rng.uniform(0, 1, (1, 1, channels))
    pixels = 255 * (0.2 + 0.8 * colour * ramp) * (np.arange(h)[:, None, None] < h // 2 + 4)
    msg.data = pixels.astype(np.uint8).tobytes()
    return msg


def _set_param(probe: Probe, name: str, value: str) -> bool:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    req = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value=value))])
    resp = probe.call(SetParameters, '/inference/set_parameters', req)
    assert resp is not None, 'inference did not answer set_parameters'
    return bool(resp.results[0].successful)


def test_lifecycle_bad_models_then_predictions_with_input_header(tmp_path: Path) -> None:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image

    obstacle = _export('obstacle', tmp_path / 'obstacle.onnx',
                       distances_m=[0.0, 0.05, 0.1], sensors=['left', 'center', 'right'])
    terrain = _export('terrain', tmp_path / 'terrain.onnx', grid=[3, 4])
    tcn = _export('tcn', tmp_path / 'tcn.onnx', embed_dim=8)
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not an onnx model at all')

    # Node-specific entries of the params file win over -p, so override them there.
    config = copy_config(tmp_path, inference={'model_path': str(tmp_path / 'missing.onnx'),
                                              'expected_kind': 'obstacle'})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            assert probe.wait_for_node('inference', timeout=30), node.output()
            # Missing, corrupt and wrong-kind models: configure fails, the node stays up.
            for bad, why in [(None, 'no such ONNX model'), (corrupt, 'not a valid ONNX'),
                             (tcn, 'expected obstacle')]:
                if bad is not None:
                    assert _set_param(probe, 'model_path', str(bad))
                assert probe.change_state('inference', 'configure') is False
                assert probe.lifecycle_state('inference') == 'unconfigured'
                assert node.wait_for_output(why, timeout=10), node.output()
            assert node.alive()

            assert _set_param(probe, 'model_path', str(obstacle))
            assert probe.change_state('inference', 'configure') is True
            assert probe.change_state('inference', 'activate') is True
            assert 'CPUExecutionProvider' in node.output()
            grids = probe.subscribe('/obstacle/grid', OccupancyGrid)
            probs = probe.subscribe('/obstacle/probabilities', Image)
            pub = probe.publisher('/image_raw', Image)
            assert probe.wait_for_subscribers('/image_raw', timeout=10)
            def answered(stamp: int) -> bool:
                return (stamp in {m.header.stamp.sec for m in probs}
                        and stamp in {m.header.stamp.sec for m in grids})

            sent = []
            for i, enc in enumerate(['rgb8', 'bgr8', 'mono8', 'yuv422', 'rgb8']):
                stamp = 100 + i
                sent.append((stamp, enc))
                if enc == 'yuv422':
                    pub.publish(_image(stamp, enc))
                    probe.spin(0.3)
                    continue
                # The first frame again until it is answered: best-effort frames sent
                # before the node's side of discovery has matched this publisher are lost.
                # Then each frame once, after the one before was answered (the camera
                # queue is depth 1, newest wins: a frame sent while the node is busy
                # would supersede the one before, by design).
                for _ in range(20 if i == 0 else 1):
                    pub.publish(_image(stamp, enc))
                    if probe.spin_until(lambda: answered(stamp), timeout=1.0 if i == 0 else 10):
                        break
            good = {s for s, enc in sent if enc != 'yuv422'}
            assert probe.spin_until(lambda: {m.header.stamp.sec for m in probs} >= good and
                                    {m.header.stamp.sec for m in grids} >= good, timeout=15)
            assert 103 not in {m.header.stamp.sec for m in probs}  # unknown encoding dropped
            p = probs[-1]
            assert p.header.frame_id == 'camera_optical_frame'
            assert p.header.stamp.nanosec == 1234
            assert (p.height, p.width, p.encoding) == (3, 3, '32FC1')
            values = np.frombuffer(bytes(p.data), '<f4')
            assert np.all((values >= 0) & (values <= 1))
            # Every published map is the model's output for the frame sent with that stamp
            # (rgb8, bgr8 and mono8 alike), not merely some numbers in [0, 1].
            spec = {'distances_m': [0.0, 0.05, 0.1], 'sensors': ['left', 'center', 'right']}
            for m in probs:
                stamp = m.header.stamp.sec
                expected = _torch_probabilities(_image(stamp, dict(sent)[stamp]), **spec)
                got = np.frombuffer(bytes(m.data), '<f4').reshape(m.height, m.width)
                np.testing.assert_allclose(got, expected, atol=2e-4, err_msg=f'stamp {stamp}')
            g = grids[-1]
            assert g.header.frame_id == 'base_link' and g.header.stamp.nanosec == 1234
            data = np.asarray(g.data)
            assert (data >= 0).sum() == 9 and set(np.unique(data[data < 0])) <= {-1}
            assert node.wait_for_output('yuv422', timeout=5)  # the drop is logged

            # Hot swap: a bad path, or a model of another kind, is rejected (old model kept);
            # expected_kind is read-only; another obstacle model of the same input reloads.
            assert _set_param(probe, 'model_path', str(corrupt)) is False
            assert _set_param(probe, 'expected_kind', '') is False
            assert _set_param(probe, 'model_path', str(terrain)) is False
            retrained = _export('obstacle', tmp_path / 'obstacle_2.onnx',
                                distances_m=[0.0, 0.05, 0.1], sensors=['left', 'center', 'right'])
            assert _set_param(probe, 'model_path', str(retrained))
            pub.publish(_image(200))
            assert probe.spin_until(lambda: any(m.header.stamp.sec == 200 for m in probs),
                                    timeout=10)
            assert node.wait_for_output('hot-swapped model to', timeout=5)
            assert probe.change_state('inference', 'deactivate') is True
            assert probe.lifecycle_state('inference') == 'inactive'
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert 'Traceback' not in log, log


@pytest.mark.parametrize('meta_change, reason', [
    ({'kind': 'banana'}, 'not a robot model'),
    ({'channel_order': 'BGR'}, 'only RGB'),
    ({'mean': None}, 'lacks mean'),
])
def test_core_rejects_mismatched_metadata(tmp_path: Path, meta_change: dict,
                                          reason: str) -> None:
    import onnx

    from ssl_robot.inference import InferenceError, OnnxRobotModel
    path = _export('obstacle', tmp_path / 'm.onnx')
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in meta_change.items():
        if value is None:
            props.pop(key)
        else:
            props[key] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    with pytest.raises(InferenceError, match=reason):
        OnnxRobotModel(path)


def test_obstacle_grid_layout_hand_computed() -> None:
    from ssl_robot.inference import obstacle_grid_data, obstacle_grid_layout
    layout = obstacle_grid_layout([0.0, 0.1, 0.2], [0.05, 0.0, -0.05], x_offset_m=0.1)
    assert layout.resolution == pytest.approx(0.05)
    assert (layout.width, layout.height) == (5, 3)
    assert layout.origin_xy == pytest.approx((0.075, -0.075))
    # left sensor (y=+0.05) is the top row (row 2); distance 0.1 is column 2.
    assert layout.cells[1, 0] == 2 * 5 + 2
    probs = np.array([[0.0, 0.5, 1.0], [0.2, 0.3, 0.4], [0.9, 0.8, 0.7]])
    data = obstacle_grid_data(probs, layout)
    assert data[2 * 5 + 0] == 0 and data[0 * 5 + 0] == 100 and data[1 * 5 + 4] == 80
    assert (data == -1).sum() == 15 - 9


def test_obstacle_grid_layout_follows_the_sensor_beams() -> None:
    from ssl_robot.inference import obstacle_grid_data, obstacle_grid_layout
    # Beams yawed +-90 deg with cells 0.1 m along them: the side sensors' cells move out
    # sideways to y = +-0.2 at x = d; the centre's moves ahead to x = d + 0.1, y = 0.
    layout = obstacle_grid_layout([0.0, 0.1], [0.1, 0.0, -0.1], x_offset_m=0.0,
                                  yaws_rad=[np.pi / 2, 0.0, -np.pi / 2], beam_range_m=0.1)
    assert layout.resolution == pytest.approx(0.1)
    assert layout.origin_xy == pytest.approx((-0.05, -0.25))
    assert (layout.width, layout.height) == (3, 5)
    np.testing.assert_array_equal(layout.cells, [[4 * 3 + 0, 2 * 3 + 1, 0 * 3 + 0],
                                                 [4 * 3 + 1, 2 * 3 + 2, 0 * 3 + 1]])
    # Two pairs in one cell: the higher probability is kept, whichever comes last.
    shared = obstacle_grid_layout([0.0, 0.01], [0.0], x_offset_m=0.0)
    shared.cells[:] = 0
    assert obstacle_grid_data(np.array([[0.9], [0.2]]), shared)[0] == 90
    with pytest.raises(ValueError, match='yaws'):
        obstacle_grid_layout([0.0], [0.0, 0.1], yaws_rad=[0.0])


def test_core_preprocess_matches_training_transform() -> None:
    import torch

    from ssl_robot.inference import OnnxRobotModel
    from ssl_robot.robot.transforms import frames_to_input
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    model = OnnxRobotModel.__new__(OnnxRobotModel)
    model.meta = {'input_hw': [24, 32]}
    model._mean = np.full((1, 3, 1, 1), 0.5, np.float32)
    model._std = np.full((1, 3, 1, 1), 0.25, np.float32)
    ours = model.preprocess(frames)
    ref = frames_to_input(torch.from_numpy(frames), [24, 32], [0.5] * 3, [0.25] * 3).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # And against a reference of neither: a 2x2 block mean by hand, then (x - 0.5) / 0.25.
    blocks = frames.reshape(2, 24, 2, 32, 2, 3).mean(axis=(2, 4)) / 255.0
    by_hand = ((blocks - 0.5) / 0.25).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours, by_hand, atol=1e-4)


@pytest.mark.parametrize('executor', ['single_threaded', 'events'])
def test_autostart_for_ros2_run_configures_and_activates_by_itself(tmp_path: Path,
                                                                   executor: str) -> None:
    """`ros2 run ssl_robot inference --ros-args -p model_path:=M -p autostart:=true`.

    With either rclpy executor (`executor` parameter): timers, lifecycle services and
    the camera subscription all run.
    """
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image
    model = _export('obstacle', tmp_path / 'obstacle.onnx',
                    distances_m=[0.0, 0.05, 0.1], sensors=['left', 'center', 'right'])
    config = copy_config(tmp_path, inference={'model_path': str(model), 'autostart': True,
                                              'executor': executor})
    with start_node('inference', domain_id=DOMAIN, log_dir=tmp_path,
                    params_file=config) as node, Probe(DOMAIN) as probe:
        assert probe.spin_until(lambda: probe.lifecycle_state('inference', 2) == 'active',
                                40), node.output()[-2000:]
        grids = probe.subscribe('/obstacle/grid', OccupancyGrid)
        pub = probe.publisher('/image_raw', Image)
        assert probe.wait_for_subscribers('/image_raw', timeout=10)
        assert probe.spin_until(lambda: (pub.publish(_image(300)), grids)[1], 15)
