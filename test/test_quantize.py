"""int8 export: calibrated on training frames, measured against float on held-out frames."""
from __future__ import annotations

import json
from pathlib import Path
import sys

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.cli import main  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402


@pytest.fixture(scope='module')
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp('quant')
    data = write_synthetic_dataset(tmp / 'ds', n_bags=3, frames_per_bag=60)
    assert main(['train', '--task', 'obstacle', '--dataset', str(data), '--out',
                 str(tmp / 'run'), '--epochs', '3', '--batch-size', '32', '--no-progress',
                 '--param', 'width=8', '--param', 'input_hw=[24,32]']) == 0
    return tmp / 'run'


def test_int8_export_reports_float_and_int8_in_one_line_and_loads(run, tmp_path, capsys):
    from ssl_robot.inference import OnnxRobotModel
    out = tmp_path / 'obstacle_int8.onnx'
    assert main(['export', str(run), '--out', str(out), '--quantize', 'int8',
                 '--calibration-frames', '64', '--max-drop', '1.0']) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith('int8:'))
    assert 'AUC float' in line and 'int8' in line and 'ms' in line
    proto = onnx.load(str(out))
    assert any(n.op_type in ('QuantizeLinear', 'DequantizeLinear') for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    quant = json.loads(meta['quantization'])
    assert quant['calibration_frames'] == 64 and quant['eval_frames'] > 0
    assert abs(quant['drop']) < 0.2                  # int8 is close to float
    model = OnnxRobotModel(out, expected_kind='obstacle')   # the inference core takes it
    assert model.kind == 'obstacle'
    # The default keeps the first convolution and the head in float, the rest in int8.
    first = next(n for n in proto.graph.node if 'image' in n.input)
    assert first.op_type == 'Conv'
    producer = next(n for n in proto.graph.node if 'obstacle_prob' in n.output)
    assert producer.op_type == 'Sigmoid'
    assert any(n.op_type == 'QuantizeLinear' for n in proto.graph.node)
    assert quant['speedup_quartiles'][0] <= quant['speedup_quartiles'][1]


def test_float_nodes_are_the_first_conv_and_the_head_after_the_last_conv(run, tmp_path):
    from ssl_robot.robot.export import export_run
    from ssl_robot.robot.quantize import float_nodes
    path = tmp_path / 'float.onnx'
    export_run(run, path)
    nodes = list(onnx.load(str(path)).graph.node)
    convs = [k for k, n in enumerate(nodes) if n.op_type == 'Conv']
    names = float_nodes(onnx.load(str(path)), first_conv=True, head=True)
    assert names[0] == nodes[convs[0]].name
    head = names[1:]
    # Every node after the last conv but its ReLU (which the int8 conv absorbs) stays float.
    after = [n for n in nodes[convs[-1] + 1:] if n.op_type != 'Constant']
    assert after[0].op_type == 'Relu' and after[0].name not in head
    assert head == [n.name for n in after[1:]]
    assert float_nodes(onnx.load(str(path)), first_conv=False, head=False) == []


def test_calibration_methods_and_preprocessing_give_working_int8_models(run, tmp_path):
    from ssl_robot.robot.quantize import QuantRun, QuantSettings, time_per_frame
    with QuantRun(run, calibration_frames=32) as prepared:
        for k, settings in enumerate([QuantSettings(calibration='Percentile'),
                                      QuantSettings(preprocess=True, per_channel=False)]):
            model, metric = prepared.quantize(settings, tmp_path / f'int8_{k}.onnx')
            assert 0.0 <= metric <= 1.0
        times = time_per_frame([prepared.float_model, model], prepared.frames[0],
                               repeats=6, block=3, warmup=1)
    assert len(times.ms) == 2 and min(times.ms) > 0
    assert [len(r) for r in times.ratios] == [2, 2]     # two rounds of three runs each
    assert times.ratios[0] == [1.0, 1.0]


def test_int8_refused_when_the_metric_drops_more_than_allowed(run, tmp_path):
    from ssl_robot.export import ExportError
    from ssl_robot.robot.quantize import quantize_run
    out = tmp_path / 'refused.onnx'
    # A bound no int8 model can meet (it would have to beat float by a whole AUC unit).
    with pytest.raises(ExportError, match='int8 refused.*drop exceeds'):
        quantize_run(run, out, calibration_frames=16, max_drop=-1.0, repeats=5)
    assert not out.exists()                          # nothing written
