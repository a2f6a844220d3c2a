"""The robot grades its own perception while it drives: simulator -> labeller -> inference.

Real processes over DDS (domain 65): the simulated robot drives, the labeller labels its
frames once their future has arrived and publishes the labels, and the inference node
(a freshly initialised obstacle model of the labeller's distances and sensors) scores
the predictions it made for those very frames. Its diagnostics report a live AUC over
the labelled cells, for the running model.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from ssl_robot.paths import config_path

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 65


def _model(path: Path, distances: list[float]) -> Path:
    import torch

    from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx
    torch.manual_seed(0)
    export_robot_onnx(build_robot_model(default_spec(
        'obstacle', input_hw=[24, 32], width=4, distances_m=distances,
        sensors=['left', 'center', 'right'])), path)
    return path


def test_inference_grades_its_predictions_against_the_labels_of_their_frames(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from ssl_robot.diagnostics import model_id
    shared = yaml.safe_load(config_path().read_text())['/**']['ros__parameters']
    model = _model(tmp_path / 'obstacle.onnx', shared['label_distances'])
    config = copy_config(
        tmp_path, labeller={'dataset': str(tmp_path / 'ds'), 'label_horizon_s': 3.0,
                            'buffer_seconds': 8.0, 'flush_every_s': 60.0},
        inference={'model_path': str(model), 'grade_min_samples': 1})
    nodes = [start_node(n, domain_id=DOMAIN_ID, log_dir=tmp_path, params_file=config)
             for n in ('inference', 'labeller', 'sim_robot')]
    try:
        with Probe(DOMAIN_ID) as probe:
            diagnostics = probe.subscribe('/diagnostics', DiagnosticArray, reliable=True)
            labels = probe.subscribe('/labeller/labels', Image, reliable=True)
            assert probe.wait_for_node('inference', timeout=30)
            assert probe.change_state('inference', 'configure') is True
            assert probe.change_state('inference', 'activate') is True

            def grading() -> dict[str, str]:
                statuses = [s for a in diagnostics for s in a.status
                            if s.name == 'inference: self-grading']
                return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

            assert probe.spin_until(lambda: int(grading().get('samples', 0)) > 0, 45), \
                {n.cmd[0]: n.output()[-1500:] for n in nodes}
            grade = grading()
    finally:
        for node in nodes:
            node.stop()
    assert labels, 'the labeller published no labels'
    assert grade['model_id'] == model_id(model)
    assert int(grade['labels_matched']) > 0 and int(grade['frames']) > 0
    auc = float(grade['auc'])  # nan only while the labelled cells hold one class
    assert math.isnan(auc) or 0.0 <= auc <= 1.0
    for node in nodes:
        assert 'Traceback' not in node.log_path.read_text()
