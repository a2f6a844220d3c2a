"""Fault suite, code execution: nothing a checkpoint holds can run code when it is loaded.

A crafted checkpoint (a pickle whose unpickling would create a marker file) is fed to
every loading path: `ssl-robot eval`, `export` (run directory, file, ``--checkpoint``),
`train --resume`, `--init-from`, `--param init_from=`, and the function the trainer
node's rounds load a previous round's encoder through. Each must refuse it with one
line naming the file, and the marker must never appear. The project's own checkpoints
load with ``weights_only=True`` (they hold only tensors and plain data).
"""
from __future__ import annotations

import os
from pathlib import Path
import pickle
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.cli import main  # noqa: E402
from ssl_robot.robot.tasks import load_encoder  # noqa: E402
from ssl_robot.train import load_checkpoint, TrainError  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402

TINY = ['--param', 'width=4', '--param', 'input_hw=[24,32]']


class _RunsCode:
    """Unpickling this calls os.system (the marker file shows that code ran)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f'touch {self.marker}',))


def _craft(path: Path, marker: Path, *, how: str = 'torch') -> Path:
    """A checkpoint-looking file whose unpickling runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {'model': {}, 'config': {'task': 'obstacle', 'task_params': {}},
             'task': 'obstacle', 'epoch': 0, 'step': 0, 'payload': _RunsCode(marker)}
    if how == 'torch':
        torch.save(state, path)
    else:  # a bare pickle (torch's legacy format)
        path.write_bytes(pickle.dumps(state, protocol=2))
    return path


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'ds', n_bags=2,
                                   frames_per_bag=20, hw=(24, 32))


@pytest.fixture(scope='module')
def real_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('runs') / 'run'
    assert main(['train', '--task', 'obstacle', '--dataset', str(dataset), '--out', str(out),
                 '--epochs', '1', '--batch-size', '16', '--no-progress', *TINY]) == 0
    return out


def _one_line_error(capsys: pytest.CaptureFixture, code: int, path: Path) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err, 'no error printed'
    line = err[-1]
    assert 'Traceback' not in '\n'.join(err)
    assert str(path) in line and 'refused' in line, line
    return line


def test_own_checkpoints_load_with_weights_only(real_run: Path, fault_case) -> None:
    for name in ('best.pt', 'last.pt'):
        state = torch.load(real_run / name, map_location='cpu', weights_only=True)
        assert state['config']['task'] == 'obstacle' and state['model']


@pytest.mark.parametrize('how', ['torch', 'pickle'])
def test_load_checkpoint_refuses_a_crafted_pickle(how: str, tmp_path: Path,
                                                  fault_case) -> None:
    marker = tmp_path / 'ran'
    evil = _craft(tmp_path / 'evil.pt', marker, how=how)
    with pytest.raises(TrainError, match='refused') as info:
        load_checkpoint(evil)
    assert str(evil) in str(info.value) and '\n' not in str(info.value)
    assert not marker.exists(), 'the checkpoint ran code'


def _cases(tmp: Path, run: Path, dataset: Path) -> dict[str, tuple[list[str], Path]]:
    """Per loading path: (ssl-robot argv, the crafted file it must refuse)."""
    marker = tmp / 'ran'
    evil_run = tmp / 'evil_run'
    _craft(evil_run / 'best.pt', marker)
    _craft(evil_run / 'last.pt', marker)
    evil = _craft(tmp / 'evil.pt', marker)
    train = ['train', '--task', 'obstacle', '--dataset', str(dataset), '--epochs', '1',
             '--batch-size', '16', '--no-progress', *TINY]
    return {
        'eval': (['eval', str(evil_run), '--dataset', str(dataset), '--bootstrap', '10'],
                 evil_run / 'best.pt'),
        'export_run': (['export', str(evil_run), '--out', str(tmp / 'm.onnx')],
                       evil_run / 'best.pt'),
        'export_file': (['export', str(evil), '--out', str(tmp / 'm.onnx')], evil),
        'export_checkpoint': (['export', str(evil_run), '--checkpoint', 'last.pt',
                               '--out', str(tmp / 'm.onnx')], evil_run / 'last.pt'),
        'train_resume': (['train', '--out', str(evil_run), '--resume', '--no-progress'],
                         evil_run / 'last.pt'),
        'train_init_from': ([*train, '--out', str(tmp / 'new1'), '--init-from', str(evil)],
                            evil),
        'train_param_init_from': ([*train, '--out', str(tmp / 'new2'), '--param',
                                   f'init_from={evil}'], evil),
    }


@pytest.mark.parametrize('path', ['eval', 'export_run', 'export_file', 'export_checkpoint',
                                  'train_resume', 'train_init_from', 'train_param_init_from'])
def test_every_cli_loading_path_refuses_a_crafted_checkpoint(path: str, real_run: Path,
                                                             dataset: Path, tmp_path: Path,
                                                             capsys, fault_case) -> None:
    argv, evil = _cases(tmp_path, real_run, dataset)[path]
    capsys.readouterr()
    code = main(argv)
    _one_line_error(capsys, code, evil)
    assert not (tmp_path / 'ran').exists(), f'{path}: the checkpoint ran code'
    assert not (tmp_path / 'm.onnx').exists()


def test_trainer_node_round_loader_refuses_a_crafted_previous_round(tmp_path: Path,
                                                                    fault_case) -> None:
    # The trainer node passes round N-1's best.pt to round N as --init-from; that child
    # loads it through load_encoder (the same function every init_from goes through).
    from ssl_robot.robot.nets import build_robot_model, default_spec
    marker = tmp_path / 'ran'
    previous = _craft(tmp_path / 'round_001' / 'best.pt', marker)
    model = build_robot_model(default_spec('obstacle', input_hw=[24, 32], width=4))
    with pytest.raises(TrainError, match='refused'):
        load_encoder(model, str(previous))
    assert not marker.exists()


def test_crafted_checkpoint_from_a_real_process_is_one_line(tmp_path: Path,
                                                            fault_case) -> None:
    marker = tmp_path / 'ran'
    evil = _craft(tmp_path / 'evil.pt', marker)
    proc = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'export', str(evil),
                           '--out', str(tmp_path / 'm.onnx')], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(evil) in lines[0], proc.stderr
    assert not marker.exists()
