"""Robot tasks on the shared trainer: resume equivalence, DDP under torchrun, learning."""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from ssl_robot.robot import build_task  # noqa: E402
from ssl_robot.train import TrainConfig, Trainer  # noqa: E402

from robot_data import write_synthetic_dataset  # noqa: E402

TINY = {'width': 4, 'input_hw': [24, 32]}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'ds', n_bags=4,
                                   frames_per_bag=60)


class _Interrupt(Exception):
    pass


def _config(out: Path, task_name: str, task: object, **kw: object) -> TrainConfig:
    return TrainConfig(out_dir=str(out), epochs=2, batch_size=32, lr=3e-3, progress=False,
                       task=task_name, task_params=task.params, **kw)


@pytest.mark.parametrize('task_name', ['obstacle', 'tcn'])
def test_resume_after_interruption_equals_uninterrupted(tmp_path: Path, dataset: Path,
                                                        task_name: str) -> None:
    params = {'dataset': str(dataset), **TINY}
    full_task = build_task(task_name, params)
    full = Trainer(full_task, _config(tmp_path / 'full', task_name, full_task)).fit()

    # The same run, killed at the first step of epoch 2 (after last.pt of epoch 1) ...
    task = build_task(task_name, params)
    steps_per_epoch = full.history[0]['step']

    def crash(model: torch.nn.Module, step: int) -> None:
        if step == steps_per_epoch:
            raise _Interrupt

    task.after_step = crash
    with pytest.raises(_Interrupt):
        Trainer(task, _config(tmp_path / 'resumed', task_name, task)).fit()
    # ... then resumed by a fresh process-like task and trainer.
    task = build_task(task_name, params)
    resumed = Trainer(task, _config(tmp_path / 'resumed', task_name, task)).fit(resume=True)

    a = torch.load(tmp_path / 'full' / 'last.pt', weights_only=False)['model']
    b = torch.load(tmp_path / 'resumed' / 'last.pt', weights_only=False)['model']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h['step'] for h in full.history] == [h['step'] for h in resumed.history]


def test_obstacle_training_beats_random_init_and_eval_reports_baselines(
        tmp_path: Path, dataset: Path) -> None:
    from ssl_robot.robot.evaluate import evaluate_run
    task = build_task('obstacle', {'dataset': str(dataset), 'width': 8, 'input_hw': [24, 32]})
    config = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=7, batch_size=32, lr=3e-3,
                         progress=False, task='obstacle', task_params=task.params)
    Trainer(task, config).fit()
    report = evaluate_run(tmp_path / 'run', n_boot=30)
    trained = report['models']['trained']['overall']['auc']
    untrained = report['models']['random_init']['overall']['auc']
    assert trained > 0.75 and trained > untrained + 0.1, (trained, untrained)
    assert len(report['models']['trained']['per_distance']) == 4
    assert (tmp_path / 'run' / 'eval' / 'eval.png').stat().st_size > 1000
    saved = json.loads((tmp_path / 'run' / 'eval' / 'eval.json').read_text())
    assert saved['chance_auc'] == 0.5


def test_ddp_two_cpu_processes_with_torchrun(tmp_path: Path, dataset: Path) -> None:
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
           '--nproc_per_node', '2', '-m', 'ssl_robot.cli', 'train', '--task', 'obstacle',
           '--dataset', str(dataset), '--out', str(out), '--epochs', '2',
           '--batch-size', '16', '--no-progress', '--param', 'width=4',
           '--param', 'input_hw=[24,32]']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = torch.load(out / 'last.pt', weights_only=False)
    # Two processes share the epoch: half the steps of one process with this batch size.
    n_train = len(build_task('obstacle', {'dataset': str(dataset)}).split()[0])
    assert state['step'] == 2 * -(-n_train // (16 * 2))
    assert state['epoch'] == 1
    metrics = (out / 'metrics.csv').read_text().splitlines()
    assert len(metrics) == 3 and 'val_auc' in metrics[0]
    assert all(torch.isfinite(v).all() for v in state['model'].values()
               if v.dtype.is_floating_point)


def test_pretrained_encoder_eval_adds_scratch_baseline(tmp_path: Path, dataset: Path) -> None:
    from ssl_robot.robot.evaluate import evaluate_run
    params = {'dataset': str(dataset), **TINY}
    tcn = build_task('tcn', params)
    Trainer(tcn, TrainConfig(out_dir=str(tmp_path / 'tcn'), epochs=1, batch_size=32,
                             progress=False, task='tcn', task_params=tcn.params)).fit()
    pretrained = torch.load(tmp_path / 'tcn' / 'best.pt', weights_only=False)['model']
    task = build_task('obstacle', {**params, 'init_from': str(tmp_path / 'tcn' / 'best.pt')})
    model = task.build_model()
    assert torch.equal(model.encoder.features[0][0].weight,
                       pretrained['encoder.features.0.0.weight'])
    Trainer(task, TrainConfig(out_dir=str(tmp_path / 'ob'), epochs=1, batch_size=32,
                              progress=False, task='obstacle',
                              task_params=task.params)).fit()
    report = evaluate_run(tmp_path / 'ob', n_boot=10)
    assert set(report['models']) == {'trained', 'random_init', 'scratch'}
    assert (tmp_path / 'ob' / 'eval' / 'scratch_run' / 'best.pt').exists()
    # The TCN's own evaluation: retrieval and a probe, for trained and random init.
    tcn_report = evaluate_run(tmp_path / 'tcn', n_boot=10)
    for name in ('trained', 'random_init'):
        assert 0.0 <= tcn_report['models'][name]['retrieval_accuracy'] <= 1.0
        assert 'overall' in tcn_report['models'][name]['probe']


def test_tcn_learns_temporal_neighbours_past_random_init(tmp_path: Path) -> None:
    """The TCN learns temporal neighbours past random init.

    A learning threshold an untrained encoder cannot pass: after 6 epochs on synthetic
    scenes, the nearest frame in embedding space is a temporal neighbour clearly more often
    than with the same network at random init (0.48 vs 0.32 when written; 0.08 required).
    """
    from ssl_robot.robot.evaluate import evaluate_run
    data = write_synthetic_dataset(tmp_path / 'ds', n_bags=4, frames_per_bag=90)
    tcn = build_task('tcn', {'dataset': str(data), **TINY})
    Trainer(tcn, TrainConfig(out_dir=str(tmp_path / 'tcn'), epochs=6, batch_size=32, lr=3e-3,
                             progress=False, task='tcn', task_params=tcn.params)).fit()
    models = evaluate_run(tmp_path / 'tcn', n_boot=10)['models']
    trained, untrained = (models[n]['retrieval_accuracy'] for n in ('trained', 'random_init'))
    assert trained >= untrained + 0.08, (trained, untrained)


def test_workers_give_the_same_run_as_the_main_process(tmp_path: Path, dataset: Path) -> None:
    """Batches and a dataset's own random draws (TCN's pairs) follow the batch seed only."""
    params = {'dataset': str(dataset), **TINY}
    weights = []
    for workers in (0, 2):
        task = build_task('tcn', params)
        Trainer(task, _config(tmp_path / f'w{workers}', 'tcn', task,
                              num_workers=workers)).fit()
        weights.append(torch.load(tmp_path / f'w{workers}' / 'last.pt',
                                  weights_only=False)['model'])
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.parametrize('task_name', ['obstacle', 'terrain'])
def test_frames_resized_in_the_data_loading_give_the_model_input_of_the_step(
        dataset: Path, task_name: str) -> None:
    """`FrameItems(input_hw=)` moves the resize out of the step, not changing its result."""
    task = build_task(task_name, {'dataset': str(dataset), **TINY})
    train, _ = task.datasets()
    assert train.input_hw == (24, 32)
    rows = list(range(8))
    resized = task.collate(train.__getitems__(rows))
    train.input_hw = None
    whole = task.collate(train.__getitems__(rows))
    assert resized['frames'].shape == (8, 3, 24, 32) and whole['frames'].dtype == torch.uint8
    model = task.build_model().eval()
    x_resized, x_whole = (task.images(model, b['frames'], None) for b in (resized, whole))
    assert torch.equal(x_resized, x_whole)
    # The same memory layout too (channels last, as the permuted whole frames): the
    # convolutions take another, slower path on the CPU otherwise.
    assert x_resized.stride() == x_whole.stride()
    torch.testing.assert_close(model(x_resized), model(x_whole), rtol=0, atol=0)
    # The integral-image resize is torch's area interpolation, to float rounding.
    ref = F.interpolate(whole['frames'].permute(0, 3, 1, 2).float() / 255.0, size=(24, 32),
                        mode='area')
    torch.testing.assert_close(resized['frames'], ref, rtol=0, atol=1e-6)
    for key in whole:
        if key != 'frames':
            assert torch.equal(torch.nan_to_num(resized[key]), torch.nan_to_num(whole[key]))
