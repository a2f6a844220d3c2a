"""Fault suite, parameters: no participant on the ROS domain can point a node at a bad file.

The inference node (real process, domain 114) runs an obstacle model; a peer then tries
to hot-swap in /dev/zero, a FIFO, a directory, a file outside `models_dir`, an
oversized file, a TCN model (with `expected_kind` unset: the running model's kind
holds), a model of another input size and one whose outputs are NaN, and to change the
read-only `expected_kind` / `models_dir` / `max_model_bytes`. Every attempt must be
refused with a reason, within seconds (no blocking read), leaving the running model in
place (rolled back, counted, logged); a good model then swaps in. The trainer node
refuses changes of `train_params`, `dataset` and `run_dir` (read-only) and out-of-range
numbers.
"""
from __future__ import annotations

import os
from pathlib import Path
import sys
import time

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.inference import check_model_file, InferenceError  # noqa: E402
from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx  # noqa: E402

from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN_ID = 114
SPEC = {'distances_m': [0.0, 0.1], 'sensors': ['left', 'center', 'right']}


def _export(path: Path, kind: str = 'obstacle', hw: tuple[int, int] = (24, 32),
            seed: int = 0) -> Path:
    torch.manual_seed(seed)
    extra = SPEC if kind == 'obstacle' else {'embed_dim': 8}
    model = build_robot_model(default_spec(kind, input_hw=list(hw), width=4, **extra))
    export_robot_onnx(model, path)
    return path


def _nan_model(good: Path, path: Path) -> Path:
    """`good` with its first float weight tensor set to NaN (outputs become NaN)."""
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(str(good))
    for i, init in enumerate(proto.graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.size > 1:
            proto.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(np.full_like(array, np.nan), init.name))
            break
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope='module')
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('params')
    models_dir = root / 'models'
    models_dir.mkdir()
    (root / 'outside').mkdir()
    good = _export(models_dir / 'obstacle.onnx')
    paths = {
        'models_dir': models_dir,
        'good': good,
        'next': _export(models_dir / 'obstacle_round2.onnx', seed=1),
        'dev_zero': models_dir / 'zero.onnx',
        'fifo': models_dir / 'fifo.onnx',
        'directory': models_dir / 'dir.onnx',
        'outside': _export(root / 'outside' / 'obstacle.onnx', seed=2),
        'oversized': models_dir / 'big.onnx',
        'other_kind': _export(models_dir / 'tcn.onnx', kind='tcn'),
        'other_input': _export(models_dir / 'obstacle_48x64.onnx', hw=(48, 64)),
        'nan_outputs': _nan_model(good, models_dir / 'obstacle_nan.onnx'),
    }
    paths['dev_zero'].symlink_to('/dev/zero')
    os.mkfifo(paths['fifo'])
    paths['directory'].mkdir()
    paths['oversized'].write_bytes(good.read_bytes() + b'\0' * (4 * good.stat().st_size))
    return paths


@pytest.fixture(scope='module')
def graph(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp('graph')
    limit = 2 * models['good'].stat().st_size
    config = copy_config(
        tmp, inference={'model_path': str(models['good']), 'models_dir': str(models['models_dir']),
                        'max_model_bytes': limit, 'expected_kind': ''},
        trainer={'dataset': str(tmp / 'no_dataset'), 'run_dir': str(tmp / 'runs'),
                 'poll_period_s': 60.0})
    inference = start_node('inference', domain_id=DOMAIN_ID, log_dir=tmp, params_file=config)
    trainer = start_node('trainer', domain_id=DOMAIN_ID, log_dir=tmp, params_file=config)
    probe = Probe(DOMAIN_ID)
    try:
        assert probe.spin_until(lambda: probe.lifecycle_state('inference', 2) is not None,
                                60), inference.output()[-2000:]
        assert probe.change_state('inference', 'configure') is True, inference.output()
        assert probe.wait_for_node('trainer', 30), trainer.output()
        yield {'probe': probe, 'inference': inference, 'trainer': trainer}
    finally:
        probe.close()
        trainer.stop()
        inference.stop()
    for node in (inference, trainer):
        assert 'Traceback' not in node.log_path.read_text()


def _set(probe: Probe, node: str, name: str, value: object, timeout: float = 15.0):
    """Set one parameter through the node's SetParameters service; (result, seconds)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    if isinstance(value, str):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, list):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(value))
    start = time.monotonic()
    response = probe.call(SetParameters, f'/{node}/set_parameters',
                          SetParameters.Request(parameters=[Parameter(name=name, value=pv)]),
                          timeout)
    assert response is not None, f'{node} did not answer set_parameters({name})'
    return response.results[0], time.monotonic() - start


def _model_path(probe: Probe) -> str:
    return probe.get_parameters('inference', ['model_path'])[0].string_value


@pytest.mark.parametrize('bad, reason', [
    ('dev_zero', 'not a regular file'),
    ('fifo', 'not a regular file'),
    ('directory', 'not a regular file'),
    ('outside', 'outside the models directory'),
    ('oversized', 'byte limit'),
    ('other_kind', 'cannot replace the running obstacle model'),
    ('other_input', 'input'),
    ('nan_outputs', 'not finite'),
])
def test_hot_swap_to_a_bad_model_is_refused_and_rolled_back(bad: str, reason: str, models,
                                                            graph, fault_case) -> None:
    probe = graph['probe']
    before = _model_path(probe)
    result, seconds = _set(probe, 'inference', 'model_path', str(models[bad]))
    assert not result.successful and reason in result.reason, result.reason
    assert seconds < 10, f'set_parameters took {seconds:.1f} s (blocked on the file?)'
    assert _model_path(probe) == before
    assert probe.lifecycle_state('inference') == 'inactive'
    assert graph['inference'].wait_for_output('hot-swap rejected (rolled back)', 10)


@pytest.mark.parametrize('name, value', [('expected_kind', 'tcn'), ('models_dir', '/'),
                                         ('max_model_bytes', 10**12)])
def test_inference_guard_parameters_are_read_only(name: str, value: object, graph,
                                                  fault_case) -> None:
    result, _ = _set(graph['probe'], 'inference', name, value)
    assert not result.successful and 'read-only' in result.reason, result.reason


def test_a_good_hot_swap_takes_effect_and_is_logged(models, graph, fault_case) -> None:
    probe = graph['probe']
    result, _ = _set(probe, 'inference', 'model_path', str(models['next']))
    assert result.successful, result.reason
    assert _model_path(probe) == str(models['next'])
    assert graph['inference'].wait_for_output('hot-swapped model to', 10)


@pytest.mark.parametrize('name, value', [('train_params', ['init_from=/tmp/evil.pt']),
                                         ('dataset', '/etc'), ('run_dir', '/'),
                                         ('task', 'tcn')])
def test_trainer_file_parameters_are_read_only(name: str, value: object, graph,
                                               fault_case) -> None:
    result, _ = _set(graph['probe'], 'trainer', name, value)
    assert not result.successful and 'read-only' in result.reason, result.reason


@pytest.mark.parametrize('name, value', [('epochs', 0), ('batch_size', -1),
                                         ('retrain_every_frames', 0), ('max_steps', -5)])
def test_trainer_numbers_are_range_checked(name: str, value: int, graph, fault_case) -> None:
    result, _ = _set(graph['probe'], 'trainer', name, value)
    assert not result.successful and '>=' in result.reason, result.reason


def test_check_model_file_never_opens_a_fifo(models, fault_case) -> None:
    start = time.monotonic()
    with pytest.raises(InferenceError, match='not a regular file'):
        check_model_file(models['fifo'])
    assert time.monotonic() - start < 1
