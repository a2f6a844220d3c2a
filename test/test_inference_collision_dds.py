"""The inference node serves a collision model: collision/probability with the frame's header."""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN = 35


def test_collision_model_publishes_probability_with_input_header(tmp_path: Path) -> None:
    from sensor_msgs.msg import Image
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    from ssl_robot.robot.transforms import frames_to_input
    torch.manual_seed(0)
    model = build_robot_model(default_spec('collision', input_hw=[24, 32], width=4))
    path = export_robot_onnx(model, tmp_path / 'collision.onnx').path
    config = copy_config(tmp_path, inference={'model_path': str(path),
                                              'expected_kind': 'collision'})
    node = start_node('inference', domain_id=DOMAIN, log_dir=tmp_path, params_file=config)
    frames = {}
    try:
        with Probe(DOMAIN) as probe:
            assert probe.wait_for_node('inference', timeout=30), node.output()
            assert probe.change_state('inference', 'configure') is True
            assert probe.change_state('inference', 'activate') is True
            probs = probe.subscribe('/collision/probability', Image)
            pub = probe.publisher('/image_raw', Image)
            assert probe.wait_for_subscribers('/image_raw', timeout=10)
            for k in range(3):
                msg = Image(height=48, width=64, encoding='rgb8', step=192)
                msg.header.stamp.sec, msg.header.stamp.nanosec = 50 + k, 777
                msg.header.frame_id = 'camera_optical_frame'
                rgb = np.full((48, 64, 3), 40 + 90 * k, np.uint8)  # dark to bright frames
                frames[50 + k] = rgb
                msg.data = rgb.tobytes()
                # The first frame again until it is answered (a best-effort frame sent
                # before the node has matched this publisher is lost), then each frame
                # once, after the one before was answered (depth-1 queue, newest wins).
                for _ in range(20 if k == 0 else 1):
                    pub.publish(msg)
                    if probe.spin_until(lambda: 50 + k in {m.header.stamp.sec for m in probs},
                                        timeout=1.0 if k == 0 else 10):
                        break
            assert probe.spin_until(lambda: {m.header.stamp.sec for m in probs} >= set(frames),
                                    timeout=15), node.output()
    finally:
        node.stop()
    for m in probs:
        assert m.header.frame_id == 'camera_optical_frame' and m.header.stamp.nanosec == 777
        assert (m.height, m.width, m.encoding) == (1, 1, '32FC1')
        x = frames_to_input(torch.from_numpy(frames[m.header.stamp.sec])[None], [24, 32],
                            model.spec['mean'], model.spec['std'])
        with torch.no_grad():
            expected = float(model.for_export().eval()(x)[0])
        got = float(np.frombuffer(bytes(m.data), '<f4')[0])
        assert 0.0 <= got <= 1.0
        assert abs(got - expected) < 2e-4
    assert len({float(np.frombuffer(bytes(m.data), '<f4')[0]) for m in probs}) > 1
