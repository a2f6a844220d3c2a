"""The inference node with a terrain model that has a type output, over DDS (domain 143).

Real node process, real exported ONNX model: terrain/type carries the input frame's
header and, pixel by pixel, the most probable type of an onnxruntime run of the same
model on that frame; terrain/grid lays the per-patch cost on the ground the camera sees.
"""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN = 143
H, W = 48, 64
K = [30.0, 0.0, 31.5, 0.0, 30.0, 23.5, 0.0, 0.0, 1.0]


def _export_type_model(path: Path) -> Path:
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    torch.manual_seed(0)
    model = build_robot_model(default_spec(
        'terrain', input_hw=[24, 32], width=4, grid=[3, 4], target_mean=0.5, target_std=0.2,
        descriptor_names=['accel_z_b0', 'cmd_slip'], descriptor_mean=[-2.0, 0.1],
        descriptor_std=[1.0, 0.05], type_names=['type_0', 'type_1', 'type_2']))
    with torch.no_grad():  # like a trained model: outputs that depend on the frame
        for m in model.encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(0.1)
        last = model.head.conv[2]                      # channels: cost, 2 entries, 3 types
        last.bias[3:] = 0.0
        last.weight[3:] = 10.0 * (last.weight[3:] - last.weight[3:].mean(0, keepdim=True))
    export_robot_onnx(model, path)
    return path


def _image(stamp_s: int) -> object:
    from sensor_msgs.msg import Image
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_s, 4321
    msg.header.frame_id = 'camera_optical_frame'
    msg.height, msg.width, msg.encoding, msg.step = H, W, 'rgb8', 3 * W
    rng = np.random.default_rng(stamp_s)
    blocks = rng.integers(0, 255, (4, 4, 3))          # coarse colour blocks per frame
    msg.data = np.kron(blocks, np.ones((H // 4, W // 4, 1))).astype(np.uint8).tobytes()
    return msg


def _camera_info() -> object:
    from sensor_msgs.msg import CameraInfo
    info = CameraInfo()
    info.header.frame_id = 'camera_optical_frame'
    info.height, info.width, info.k = H, W, K
    return info


def _onnxruntime_outputs(path: Path, msg: object) -> list[np.ndarray]:
    """The model's outputs on the frame: onnxruntime itself, torch's area resize."""
    import onnxruntime as ort
    import torch

    from ssl_robot.robot.transforms import DEFAULT_MEAN, DEFAULT_STD, frames_to_input
    rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, 3)
    x = frames_to_input(torch.from_numpy(rgb.copy())[None], [24, 32], DEFAULT_MEAN,
                        DEFAULT_STD).numpy()
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return [out[0] for out in session.run(None, {'image': x})]


def test_type_image_has_the_input_header_and_the_models_types(tmp_path: Path) -> None:
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo, Image

    from ssl_robot.inference import obstacle_grid_data, terrain_grid_layout
    model = _export_type_model(tmp_path / 'terrain.onnx')
    config = copy_config(tmp_path, inference={'model_path': str(model), 'autostart': True})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            types = probe.subscribe('/terrain/type', Image)
            grids = probe.subscribe('/terrain/grid', OccupancyGrid)
            costs = probe.subscribe('/terrain/cost', Image)
            image_pub = probe.publisher('/image_raw', Image)
            info_pub = probe.publisher('/camera_info', CameraInfo)
            assert probe.spin_until(lambda: probe.node.count_subscribers('/image_raw') > 0
                                    and probe.node.count_subscribers('/camera_info') > 0,
                                    timeout=30), node.output()
            stamps = [300, 301, 302]

            def send() -> bool:
                for stamp in stamps:
                    info_pub.publish(_camera_info())
                    image_pub.publish(_image(stamp))
                    probe.spin(0.1)
                return ({m.header.stamp.sec for m in types} >= set(stamps)
                        and {m.header.stamp.sec for m in grids} >= set(stamps))

            assert probe.spin_until(send, timeout=30), node.output()
            assert {m.header.stamp.sec for m in costs} >= set(stamps)
            for msg in types:
                stamp = msg.header.stamp.sec
                assert msg.header.stamp.nanosec == 4321, stamp
                assert msg.header.frame_id == 'camera_optical_frame'
                assert (msg.encoding, msg.height, msg.width, msg.step) == ('mono8', H, W, W)
                got = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W)
                prob = _onnxruntime_outputs(model, _image(stamp))[2]          # [3, 4, K]
                top2 = np.sort(prob, axis=-1)[..., -2:]
                clear = (top2[..., 1] - top2[..., 0]) > 1e-4    # no near-tie between types
                assert clear.mean() > 0.9
                # Pixel (r, c) shows patch (r * 3 // H, c * 4 // W).
                rows, cols = np.arange(H) * 3 // H, np.arange(W) * 4 // W
                ids = prob.argmax(-1)
                sel = clear[rows[:, None], cols[None, :]]
                np.testing.assert_array_equal(got[sel], ids[rows[:, None], cols[None, :]][sel])
            assert len({v for m in types for v in bytes(m.data)}) > 1  # not one type
            layout = terrain_grid_layout(np.reshape(K, (3, 3)), (H, W), (3, 4),
                                         camera_xyz=(0.10, 0.0, 0.12), camera_pitch=0.35)
            for grid in grids:
                assert grid.header.frame_id == 'base_link'
                assert grid.header.stamp.nanosec == 4321
                assert (grid.info.width, grid.info.height) == (layout.width, layout.height)
                assert grid.info.resolution == np.float32(layout.resolution)
                cost = _onnxruntime_outputs(model, _image(grid.header.stamp.sec))[0]
                expected = obstacle_grid_data(np.clip(cost / (0.5 + 2 * 0.2), 0, 1), layout)
                data = np.asarray(grid.data, np.int8)
                assert (data >= 0).sum() == len(np.unique(layout.cells)) > 100
                assert np.abs(data.astype(int) - expected).max() <= 1
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert 'Traceback' not in log, log


def _published(diagnostics: list, topic: str) -> int | None:
    """The newest `published TOPIC` count of the node's frames section (None: none yet)."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.endswith(': frames'):
                for kv in status.values:
                    if kv.key == f'published {topic}':
                        return int(kv.value)
    return None


def test_outputs_nobody_subscribes_to_are_not_built(tmp_path: Path) -> None:
    """Outputs nobody subscribes to are not built.

    Only terrain/grid is wanted: the camera-sized cost and type images are not made
    until a subscriber to terrain/cost appears (the node's own diagnostics count them).
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo, Image

    model = _export_type_model(tmp_path / 'terrain.onnx')
    config = copy_config(tmp_path, inference={'model_path': str(model), 'autostart': True})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    try:
        with Probe(DOMAIN) as probe:
            grids = probe.subscribe('/terrain/grid', OccupancyGrid)
            diagnostics = probe.subscribe('/diagnostics', DiagnosticArray, reliable=True)
            image_pub = probe.publisher('/image_raw', Image)
            info_pub = probe.publisher('/camera_info', CameraInfo)
            assert probe.spin_until(lambda: probe.node.count_subscribers('/image_raw') > 0
                                    and probe.node.count_subscribers('/camera_info') > 0,
                                    timeout=30), node.output()

            def send_until(done, first: int) -> bool:
                stamp = first

                def step() -> bool:
                    nonlocal stamp
                    info_pub.publish(_camera_info())
                    image_pub.publish(_image(stamp))
                    stamp += 1
                    probe.spin(0.1)
                    return done()
                return probe.spin_until(step, timeout=30)

            # Frames answered on the grid, and a diagnostics report after them.
            assert send_until(lambda: len(grids) >= 5 and (_published(
                diagnostics, '/terrain/grid') or 0) >= 5, 100), node.output()
            assert _published(diagnostics, '/terrain/cost') == 0
            assert _published(diagnostics, '/terrain/type') == 0
            costs = probe.subscribe('/terrain/cost', Image)
            assert send_until(lambda: len(costs) >= 3 and (_published(
                diagnostics, '/terrain/cost') or 0) >= 3, 200), node.output()
            assert _published(diagnostics, '/terrain/type') == 0
            assert costs[-1].height == H and costs[-1].width == W  # the camera's size
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert 'Traceback' not in log, log
