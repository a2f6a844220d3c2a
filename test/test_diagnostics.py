"""The diagnostics core (ssl_robot.diagnostics) against hand-computed cases."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ssl_robot.diagnostics import (
    ERROR,
    Growth,
    InputRate,
    LatencyWindow,
    model_id,
    NodeHealth,
    OK,
    parse_expected_rates,
    provider_check,
    training_progress,
    WARN,
)
from ssl_robot.errors import ConfigError


def test_input_rate_ok_slow_and_silent():
    rate = InputRate('/image_raw', expected_hz=10.0, window_s=2.0)
    assert rate.check(0.0) == (WARN, '/image_raw silent (nothing received yet)')
    for i in range(21):  # 10 Hz from t=0 to t=2
        rate.arrived(i * 0.1)
    # Window [0.05, 2.05]: the arrivals at 0.1 .. 2.0 are in it (20 over 2 s).
    assert rate.rate_hz(2.05) == pytest.approx(10.0)
    assert rate.check(2.05) == (OK, '')
    for i in range(1, 5):  # then 2 Hz
        rate.arrived(2.0 + i * 0.5)
    assert rate.rate_hz(4.0) == pytest.approx(5 / 2.0)  # 2.0 (the last at 10 Hz) .. 4.0
    assert rate.check(4.0) == (WARN, '/image_raw at 2.5 Hz, expected 10 Hz')
    assert rate.check(6.5) == (WARN, '/image_raw silent for 2 s')
    assert rate.count == 25


def test_input_rate_without_expected_rate_checks_only_silence():
    rate = InputRate('odom', window_s=1.0)
    rate.arrived(0.0)
    assert rate.check(0.5)[0] == OK
    assert rate.check(1.5)[0] == WARN


def test_latency_median_and_p99():
    window = LatencyWindow(size=100)
    assert np.isnan(window.percentiles_ms()).all()
    for i in range(200):  # only the last 100 (0.100 .. 0.199 s) stay
        window.add(i / 1000)
    median, p99 = window.percentiles_ms()
    assert median == pytest.approx(149.5)
    assert p99 == pytest.approx(100 + 0.99 * 99)


def test_growth_needs_a_rise_at_every_tick():
    growth = Growth(ticks=3)
    assert [growth.add(v) for v in (1, 2, 3, 4, 4, 5, 6, 7)] == [
        False, False, False, True, False, False, False, True]


def test_node_health_statuses():
    health = NodeHealth('inference', hardware_id='robot1')
    health.watch_input('/image_raw', expected_hz=30.0, window_s=1.0)
    for i in range(30):
        health.arrived('/image_raw', i / 30)
    health.arrived('/not_watched', 0.5)
    health.dropped('encoding')
    health.dropped('encoding')
    health.dropped('aspect')
    health.latency.add(0.004)
    health.section('model').set(ERROR, 'no model', state='unconfigured')
    statuses = {s.name: s for s in health.statuses(1.0)}
    assert list(statuses) == ['inference: inputs', 'inference: drops and latency',
                              'inference: model']
    inputs = statuses['inference: inputs']
    assert (inputs.level, inputs.message) == (OK, 'every input at its rate')
    assert inputs.value('/image_raw rate_hz') == '30'
    assert inputs.value('/image_raw received') == '30'
    drops = statuses['inference: drops and latency']
    assert drops.value('dropped encoding') == '2' and drops.value('dropped total') == '3'
    assert drops.value('latency median_ms') == '4' and drops.message == '3 dropped'
    model = statuses['inference: model']
    assert (model.level, model.message, model.value('state')) == (ERROR, 'no model',
                                                                  'unconfigured')
    assert {s.hardware_id for s in statuses.values()} == {'robot1'}
    assert statuses['inference: inputs'].level == OK
    assert {s.name: s.level for s in health.statuses(3.0)}['inference: inputs'] == WARN


def test_provider_check():
    assert provider_check(['CUDAExecutionProvider', 'CPUExecutionProvider'],
                          ['CPUExecutionProvider']) == (
        WARN, 'runs on CPUExecutionProvider, not the requested CUDAExecutionProvider')
    assert provider_check(['CPUExecutionProvider'], ['CPUExecutionProvider'])[0] == OK


def test_training_progress_and_model_id(tmp_path):
    assert training_progress(tmp_path / 'missing.csv') == {}
    csv = tmp_path / 'metrics.csv'
    csv.write_text('epoch,step,lr,train_loss,seconds,val_loss,val_auc\n'
                   '0,10,0.001,0.7,2.0,0.69,0.5\n'
                   '1,30,0.001,0.6,4.0,0.6,0.75\n')
    assert training_progress(csv) == {'epoch': 1.0, 'step': 30.0, 'steps_per_s': 5.0,
                                      'val_loss': 0.6, 'val_auc': 0.75}
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'abc' * 1000)
    assert model_id(model) == hashlib.sha256(b'abc' * 1000).hexdigest()[:12]


def test_parse_expected_rates():
    assert parse_expected_rates(['image_raw=30', 'range/left=12.5', '']) == {
        'image_raw': 30.0, 'range/left': 12.5}
    for bad in ('image_raw', 'image_raw=fast', '=3', 'odom=-1'):
        with pytest.raises(ConfigError, match='TOPIC=HZ'):
            parse_expected_rates([bad])
