"""Fault suite, arguments: every bad argument is one clear line (exit 2), not a traceback.

Nor a run that does not end (`text-pretrain --steps 0`, a huge input_hw).

Ranges are checked at the boundary (argparse types for options, the task's parameter
check for ``--param``, the trainer's config check for anything that reaches it), so
none of these starts any work. Also checked: an unknown ``--param`` key (a typo) is an
error, not ignored, and a malformed meta.json names the file.
"""
from __future__ import annotations

from pathlib import Path
import sys

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.cli import main  # noqa: E402
from ssl_robot.train import TrainConfig, TrainError  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'ds', n_bags=2,
                                   frames_per_bag=10, hw=(24, 32))


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run `ssl-robot argv`; assert exit 2 and one error line; return that line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage + one 'error:' line
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1, err
    return lines[0]


TRAIN_OPTIONS = {
    'batch-size-0': (['--batch-size', '0'], 'out of range'),
    'batch-size-negative': (['--batch-size', '-3'], 'out of range'),
    'lr-negative': (['--lr', '-1'], 'out of range'),
    'lr-nan': (['--lr', 'nan'], 'not a finite number'),
    'lr-inf': (['--lr', 'inf'], 'not a finite number'),
    'epochs-0': (['--epochs', '0'], 'out of range'),
    'epochs-negative': (['--epochs', '-1'], 'out of range'),
    'max-steps-negative': (['--max-steps', '-5'], 'out of range'),
    'patience-negative': (['--patience', '-1'], 'out of range'),
    'device-unknown': (['--device', 'gpu'], "use 'auto'"),
    'param-no-equals': (['--param', 'width'], 'KEY=VALUE'),
    'param-unknown-key': (['--param', 'widht=8'], 'unknown parameter(s) widht'),
    'param-malformed-json': (['--param', 'input_hw=[72,'], 'input_hw'),
    'input-hw-zeros': (['--param', 'input_hw=[0,0]'], 'between 8 and'),
    'input-hw-negative': (['--param', 'input_hw=[-24,32]'], 'between 8 and'),
    'input-hw-huge': (['--param', 'input_hw=[100000,100000]'], 'between 8 and'),
    'input-hw-one-value': (['--param', 'input_hw=[24]'], '[H, W]'),
    'width-zero': (['--param', 'width=0'], 'between 1 and'),
    'flip-p-above-one': (['--param', 'flip_p=2'], 'a number in [0, 1]'),
    'val-fraction-one': (['--param', 'val_fraction=1'], 'a number in (0, 1)'),
    'hue-negative': (['--param', 'hue=-0.5'], 'a number in [0, 1]'),
    'hue-text': (['--param', 'hue="red"'], 'a number in [0, 1]'),
    'grayscale-p-above-one': (['--param', 'grayscale_p=1.5'], 'a number in [0, 1]'),
    'blur-p-negative': (['--param', 'blur_p=-1'], 'a number in [0, 1]'),
}


@pytest.mark.parametrize('case', list(TRAIN_OPTIONS))
def test_train_refuses_a_bad_option_in_one_line(case: str, dataset: Path, tmp_path: Path,
                                                capsys, fault_case) -> None:
    extra, expected = TRAIN_OPTIONS[case]
    line = _error(['train', '--task', 'obstacle', '--dataset', str(dataset),
                   '--out', str(tmp_path / 'run'), '--no-progress', *extra], capsys)
    assert expected in line, line
    assert not (tmp_path / 'run' / 'best.pt').exists()


def test_train_on_an_unavailable_device_is_one_line(dataset, tmp_path, capsys,
                                                    fault_case) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    line = _error(['train', '--task', 'obstacle', '--dataset', str(dataset), '--out',
                   str(tmp_path / 'run'), '--device', 'cuda', '--no-progress'], capsys)
    assert 'not available here' in line, line


@pytest.mark.parametrize('where', ['under-a-file', 'unwritable'])
def test_train_out_that_cannot_be_written_is_one_line(where, dataset, tmp_path, capsys,
                                                      fault_case) -> None:
    if where == 'under-a-file':
        (tmp_path / 'file').write_text('x')
        out, expected = tmp_path / 'file' / 'run', 'is not a directory'
    else:  # even root cannot create directories in sysfs
        out, expected = Path('/sys/ssl_robot_test_run'), 'cannot write the run there'
    line = _error(['train', '--task', 'obstacle', '--dataset', str(dataset), '--out',
                   str(out), '--epochs', '1', '--no-progress',
                   '--param', 'input_hw=[24,32]', '--param', 'width=4'], capsys)
    assert expected in line, line


@pytest.mark.parametrize('argv, expected', [
    (['export', 'RUN', '--out', 'DIR'], 'is a directory'),
    (['export', 'RUN', '--out', 'm.onnx', '--atol', '-1'], 'out of range'),
    (['eval', 'RUN', '--bootstrap', '0'], 'out of range'),
    (['eval', 'RUN', '--bootstrap', 'many'], 'not an integer'),
    (['text-pretrain', '--task', 'mlm', '--max-len', '0'], 'out of range'),
    (['text-pretrain', '--task', 'mlm', '--steps', '0'], 'out of range'),
    (['text-pretrain', '--task', 'mlm', '--batch-size', '0'], 'out of range'),
    (['text-pretrain', '--task', 'mlm', '--heads', '3'], '--heads 3 does not divide --dim 128'),
    (['pretext', '--task', 'rotation', '--out', 'OUT', '--epochs', '0'], 'out of range'),
    (['pretext', '--task', 'rotation', '--out', 'OUT', '--lr', 'nan'], 'not a finite'),
], ids=['export-out-dir', 'export-atol', 'eval-bootstrap-0', 'eval-bootstrap-text',
        'text-max-len-0', 'text-steps-0', 'text-batch-0', 'text-heads', 'pretext-epochs-0',
        'pretext-lr-nan'])
def test_other_commands_refuse_a_bad_option(argv: list[str], expected: str, tmp_path: Path,
                                            capsys, fault_case) -> None:
    argv = [str(tmp_path) if a in ('RUN', 'DIR') else str(tmp_path / 'o') if a == 'OUT'
            else a for a in argv]
    line = _error(argv, capsys)
    assert expected in line, line


@pytest.mark.parametrize('meta', ['{', '[]', 'null', '{"format_version": 1, "bags": 5}',
                                  '{"format_version": 1, "distances_m": [0.1], '
                                  '"sensors": ["c"], "terrain_grid": [1], '
                                  '"image_hw": [2, 2], "bags": []}'],
                         ids=['truncated', 'list', 'null', 'no-shapes', 'grid-one-value'])
def test_malformed_meta_json_names_the_file(meta: str, tmp_path: Path, capsys,
                                            fault_case) -> None:
    (tmp_path / 'ds').mkdir()
    (tmp_path / 'ds' / 'meta.json').write_text(meta)
    line = _error(['train', '--task', 'obstacle', '--dataset', str(tmp_path / 'ds'),
                   '--out', str(tmp_path / 'run'), '--no-progress'], capsys)
    assert str(tmp_path / 'ds') in line, line


@pytest.mark.parametrize('values, name', [
    ({'epochs': 0}, 'epochs'), ({'max_steps': -5}, 'max_steps'), ({'batch_size': 0},
                                                                   'batch_size'),
    ({'lr': float('nan')}, 'lr'), ({'grad_clip': -1.0}, 'grad_clip'),
    ({'schedule': 'linear'}, 'schedule'), ({'epochs': True}, 'epochs')])
def test_train_config_is_range_checked(values: dict, name: str, fault_case) -> None:
    # The trainer node and every wing build a TrainConfig: the check is there too.
    with pytest.raises(TrainError, match=name):
        TrainConfig.from_dict(values)
