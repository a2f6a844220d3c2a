"""`inference_group`: two inference nodes in one process on one camera subscription (domain 157).

Real process, real exported ONNX models over DDS: the camera topic has one subscriber
for both nodes, both answer every frame with their own outputs, and each keeps its own
lifecycle (deactivating one leaves the other answering; the subscription goes with the
last one).
"""
from __future__ import annotations

from pathlib import Path
import sys

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.errors import ConfigError  # noqa: E402
from ssl_robot.nodes.inference import group_models, main_group  # noqa: E402

from ros_procs import dds_env, executable_argv, NodeProcess, Probe  # noqa: E402

DOMAIN = 157
H, W = 48, 64


def _export(tmp: Path) -> dict[str, Path]:
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    paths = {}
    for kind, extra in (('obstacle', {'distances_m': [0.0, 0.1]}), ('terrain', {'grid': [3, 4]})):
        torch.manual_seed(0)
        paths[kind] = tmp / f'{kind}.onnx'
        export_robot_onnx(build_robot_model(default_spec(kind, input_hw=[24, 32], width=4,
                                                         **extra)), paths[kind])
    return paths


def _image(stamp_s: int) -> object:
    from sensor_msgs.msg import Image
    msg = Image()
    msg.header.stamp.sec = stamp_s
    msg.height, msg.width, msg.encoding, msg.step = H, W, 'rgb8', 3 * W
    msg.data = np.random.default_rng(stamp_s).integers(0, 255, H * W * 3, np.uint8).tobytes()
    return msg


def _group_command(models: dict[str, Path]) -> list[str]:
    return [*executable_argv('inference_group'), '--models',
            *(f'inference_{kind}={path}' for kind, path in models.items()),
            '--ros-args', '-p', 'autostart:=true']


def test_two_models_one_subscription_own_lifecycles(tmp_path: Path) -> None:
    from sensor_msgs.msg import Image
    models = _export(tmp_path)
    node = NodeProcess(_group_command(models), env=dds_env(DOMAIN),
                       log_path=tmp_path / 'group.log')
    try:
        with Probe(DOMAIN) as probe:
            probs = probe.subscribe('/obstacle/probabilities', Image, reliable=True)
            costs = probe.subscribe('/terrain/cost', Image, reliable=True)
            camera = probe.publisher('/image_raw', Image, reliable=True)
            assert probe.wait_for_subscribers('/image_raw', 60), node.output()
            assert probe.spin_until(
                lambda: probe.lifecycle_state('inference_obstacle') == 'active'
                and probe.lifecycle_state('inference_terrain') == 'active', 30), node.output()
            # One subscription for both nodes: each frame is received once.
            assert probe.node.count_subscribers('/image_raw') == 1

            def answered(stamp: int, box: list) -> bool:
                return any(m.header.stamp.sec == stamp for m in box)

            def send_until(stamp: int, done) -> bool:
                def step() -> bool:
                    camera.publish(_image(stamp))
                    probe.spin(0.2)
                    return done()
                return probe.spin_until(step, timeout=30)

            assert send_until(10, lambda: answered(10, probs) and answered(10, costs)), \
                node.output()
            (prob,) = [m for m in probs if m.header.stamp.sec == 10][:1]
            (cost,) = [m for m in costs if m.header.stamp.sec == 10][:1]
            assert (prob.height, prob.width) == (2, 3)      # distances x sensors
            assert (cost.height, cost.width) == (H, W)      # the camera's size
            # The obstacle node's own lifecycle: deactivated, it stops answering; the
            # terrain node goes on, on the same subscription.
            assert probe.change_state('inference_obstacle', 'deactivate'), node.output()
            assert probe.node.count_subscribers('/image_raw') == 1
            assert send_until(20, lambda: answered(20, costs)), node.output()
            probe.spin(0.5)
            assert not answered(20, probs)
            assert probe.change_state('inference_terrain', 'deactivate'), node.output()
            assert probe.spin_until(lambda: probe.node.count_subscribers('/image_raw') == 0,
                                    timeout=10)
            assert probe.change_state('inference_obstacle', 'activate'), node.output()
            assert probe.spin_until(lambda: probe.node.count_subscribers('/image_raw') == 1,
                                    timeout=10)
            assert send_until(30, lambda: answered(30, probs)), node.output()
            probe.spin(0.5)
            assert not answered(30, costs)
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert 'Traceback' not in log, log


@pytest.mark.parametrize(('models', 'why'), [
    (['inference_a'], 'expected NAME=MODEL.onnx'),
    (['=x.onnx'], 'expected NAME=MODEL.onnx'),
    (['a=x.onnx', 'a=y.onnx'], 'node names repeat'),
    (['bad-name=x.onnx'], 'bad-name'),
])
def test_bad_models_arguments_are_refused(models: list[str], why: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=why):
        group_models(['inference_group', '--models', *models])
    assert main_group(['inference_group', '--models', *models]) == 2
    assert why in capsys.readouterr().err
