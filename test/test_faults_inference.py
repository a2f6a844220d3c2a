"""Fault suite: the inference node with a missing, corrupt or mismatched ONNX model.

The node must stay up, refuse to become active (its lifecycle state says so), log why
(naming the model file), keep answering service calls, and not crash on images.
"""
from __future__ import annotations

import os

import pytest
from test_faults_messages import _image

from ros_procs import copy_config, Probe, start_node

DOMAIN_ID = 68


def _mismatched_model(path) -> None:
    """A valid ONNX model whose input is not an image: float32 [N, 5] -> [N, 5]."""
    import onnx
    from onnx import helper, TensorProto
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 5])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 5])
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'not_ours', [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _model(kind: str, tmp_path) -> str:
    if kind == 'none-configured':
        return ''
    path = tmp_path / 'model.onnx'
    if kind == 'missing-file':
        return str(tmp_path / 'no_such_model.onnx')
    if kind == 'corrupt-file':
        path.write_bytes(os.urandom(4096))
    elif kind == 'truncated-file':
        _mismatched_model(path)
        path.write_bytes(path.read_bytes()[:40])
    elif kind == 'mismatched-model':
        _mismatched_model(path)
    return str(path)


# Missing and corrupt files, and models of the wrong kind, are in test_inference_node.py.
@pytest.mark.parametrize('kind', ['none-configured', 'truncated-file', 'mismatched-model'])
def test_inference_with_a_bad_model_stays_up_and_says_why(kind, tmp_path, fault_case):
    model = _model(kind, tmp_path)
    config = copy_config(tmp_path, inference={'model_path': model})
    with start_node('inference', domain_id=DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as node, Probe(DOMAIN_ID) as probe:
        assert probe.spin_until(lambda: probe.lifecycle_state('inference', 2) is not None,
                                60), node.output()[-2000:]
        before = probe.lifecycle_state('inference')
        if before == 'unconfigured':
            probe.change_state('inference', 'configure')
        if probe.lifecycle_state('inference') == 'inactive':
            probe.change_state('inference', 'activate')
        # A model whose mismatch only shows on the first frame must not crash the node.
        from sensor_msgs.msg import Image
        pub = probe.publisher('/image_raw', Image)
        for i in range(5):
            pub.publish(_image(i * 100_000_000))
            probe.spin(0.1)
        probe.spin(1.0)
        state = probe.lifecycle_state('inference')
        assert node.alive(), node.output()[-2000:]
        assert probe.responsive('inference')
        assert state != 'active', f'inference is active with a {kind} model'
        assert state in ('unconfigured', 'inactive', 'errorprocessing', 'finalized'), state
        log = node.output()
        assert 'Traceback' not in log, log[-2000:]
        errors = [line for line in log.splitlines() if '[ERROR]' in line]
        assert errors, f'no error logged: {log[-2000:]}'
        if kind == 'missing-file':
            assert any(os.path.basename(model) in line for line in errors), errors
        elif kind == 'none-configured':
            assert any('model_path' in line for line in errors), errors
