"""Fault suite, silent wrong results: what used to "succeed" with a wrong answer now says so.

A model with NaN outputs fails export and is a WARN (and a counted drop, nothing
published) in the inference node (real process, domain 115); a dataset without one known
label is refused instead of training at loss 0; the same bag labelled again is refused
(path and content hash, through `ssl-robot label`); a reused run directory's metrics.csv
gains the new columns instead of dropping them.
"""
from __future__ import annotations

import csv
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_faults_messages import _image  # noqa: E402
from test_faults_params import _export, _nan_model  # noqa: E402

from ssl_robot.cli import main  # noqa: E402
from ssl_robot.dataset import DatasetWriter, LabelledDataset  # noqa: E402
from ssl_robot.export import ExportError  # noqa: E402
from ssl_robot.robot.nets import build_robot_model, default_spec, export_robot_onnx  # noqa: E402
from ssl_robot.train.trainer import append_csv  # noqa: E402

from bag_factory import write_sensor_bag  # noqa: E402
from robot_data import render_bag  # noqa: E402
from ros_procs import copy_config, Probe, start_node  # noqa: E402

DOMAIN_ID = 115


def test_metrics_csv_header_widens_when_a_run_directory_is_reused(tmp_path, fault_case):
    path = tmp_path / 'metrics.csv'
    append_csv(path, {'epoch': 0, 'train_loss': 1.0})
    append_csv(path, {'epoch': 1, 'train_loss': 0.5, 'val_auc': 0.75})
    with path.open(newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['epoch', 'train_loss', 'val_auc']
    assert rows[0]['val_auc'] == '' and rows[1]['val_auc'] == '0.75'
    assert [r['epoch'] for r in rows] == ['0', '1']


@pytest.mark.parametrize('task', ['obstacle', 'terrain'])
def test_a_dataset_without_a_known_label_is_refused(task, tmp_path, capsys, fault_case):
    rows = render_bag(np.random.default_rng(0), 20, (24, 32))
    rows['proximity_mask'][:] = False
    rows['terrain_mask'][:] = False
    shape = dict(distances_m=[0.0, 0.1, 0.2, 0.3], sensors=['left', 'center', 'right'],
                 terrain_grid=(3, 4), image_hw=(24, 32))
    with DatasetWriter(tmp_path / 'ds', **shape) as writer:
        writer.add_bag('a.mcap', rows)
        writer.add_bag('b.mcap', render_bag(np.random.default_rng(1), 20, (24, 32)) | {
            'proximity_mask': np.zeros_like(rows['proximity_mask']),
            'terrain_mask': np.zeros_like(rows['terrain_mask'])})
    capsys.readouterr()
    code = main(['train', '--task', task, '--dataset', str(tmp_path / 'ds'), '--out',
                 str(tmp_path / 'run'), '--epochs', '1', '--no-progress',
                 '--param', 'input_hw=[24,32]', '--param', 'width=4'])
    err = capsys.readouterr().err
    assert code == 2 and f'no known {task} label' in err, err
    assert not (tmp_path / 'run' / 'best.pt').exists()


def test_export_of_a_model_with_nan_outputs_is_an_error(tmp_path, fault_case):
    model = build_robot_model(default_spec('terrain', input_hw=[24, 32], width=4))
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float('nan'))
    with pytest.raises(ExportError, match='not finite'):
        export_robot_onnx(model, tmp_path / 'terrain.onnx')
    assert not list(tmp_path.iterdir())


def test_the_same_bag_labelled_again_is_refused(tmp_path, capsys, fault_case):
    bag = tmp_path / 'bag'
    write_sensor_bag(bag, seconds=2.0)
    out = tmp_path / 'ds'
    assert main(['label', str(bag), '--out', str(out), '--no-figures']) == 0
    n = len(LabelledDataset.open(out))
    capsys.readouterr()
    assert main(['label', str(bag), '--out', str(out), '--append', '--no-figures']) == 2
    assert 'already' in capsys.readouterr().err
    assert len(LabelledDataset.open(out)) == n


def test_inference_node_warns_on_nan_outputs_and_publishes_nothing(tmp_path, fault_case):
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image
    good = _export(tmp_path / 'obstacle.onnx')
    bad = _nan_model(good, tmp_path / 'obstacle_nan.onnx')
    config = copy_config(tmp_path, inference={'model_path': str(bad)})
    with start_node('inference', domain_id=DOMAIN_ID, log_dir=tmp_path,
                    params_file=config) as node, Probe(DOMAIN_ID) as probe:
        assert probe.spin_until(lambda: probe.lifecycle_state('inference', 2) is not None,
                                60), node.output()[-2000:]
        assert probe.change_state('inference', 'configure') is True, node.output()
        assert probe.change_state('inference', 'activate') is True, node.output()
        grids = probe.subscribe('/obstacle/grid', OccupancyGrid, reliable=True)
        pub = probe.publisher('/image_raw', Image)
        assert probe.wait_for_subscribers('/image_raw', 10)
        for i in range(5):
            pub.publish(_image(i * 100_000_000))
            probe.spin(0.1)
        assert node.wait_for_output('dropped frame (non_finite', 10), node.output()[-2000:]
        probe.spin(0.5)
        assert not grids, 'a grid was published from NaN outputs'
        assert probe.responsive('inference')
    log = node.log_path.read_text()
    assert '[WARN]' in log and 'Traceback' not in log


def test_a_bag_whose_stamps_are_all_zero_is_refused(tmp_path, capsys, fault_case):
    from ssl_robot.bags.typestore import ns_to_stamp
    from ssl_robot.bags.writer import BagWriter

    from bag_factory import sensor_messages
    bag = tmp_path / 'bag'
    with BagWriter(bag) as writer:  # bag times advance, header stamps are all zero
        for i in range(30):
            t = 10**9 + i * 10**8
            for topic, msgtype, msg in sensor_messages(t, x=0.02 * i):
                msg.header.stamp = ns_to_stamp(0)
                writer.write(topic, msgtype, msg, t)
    capsys.readouterr()
    code = main(['label', str(bag), '--out', str(tmp_path / 'ds'), '--no-figures'])
    err = capsys.readouterr().err
    assert code == 2 and '30 camera frames collapse to 1' in err, err
    assert not (tmp_path / 'ds').exists()
