"""The trainer's CPU threads: set for the run and put back, and the busy-core warning."""
from __future__ import annotations

import logging
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ssl_robot.train import Task, TrainConfig, Trainer, TrainError
from ssl_robot.train.cpu import busy_cores_of_others, warn_if_oversubscribed


class _ThreadsSeen(Task):
    """A least-squares task that records torch's thread count at every step."""

    name = 'threads_seen'

    def __init__(self) -> None:
        self.seen: list[int] = []

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 1)

    def datasets(self) -> tuple[TensorDataset, None]:
        x = torch.randn(32, 4)
        return TensorDataset(x, x.sum(1, keepdim=True)), None

    def loss(self, model: nn.Module, batch: list[torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        self.seen.append(torch.get_num_threads())
        x, y = batch
        return nn.functional.mse_loss(model(x), y), {}


def test_threads_hold_for_the_run_and_are_put_back(tmp_path: Path) -> None:
    outside = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        task = _ThreadsSeen()
        config = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=2, batch_size=8,
                             threads=1, progress=False, device='cpu')
        Trainer(task, config).fit()
        assert task.seen and set(task.seen) == {1}
        assert torch.get_num_threads() == 2
        # 0 leaves torch's own count.
        task = _ThreadsSeen()
        Trainer(task, TrainConfig(out_dir=str(tmp_path / 'run0'), epochs=1, batch_size=8,
                                  progress=False, device='cpu')).fit()
        assert set(task.seen) == {2}
    finally:
        torch.set_num_threads(outside)


@pytest.mark.parametrize('bad', [-1, 1.5, True])
def test_bad_thread_counts_are_refused(bad: object) -> None:
    with pytest.raises(TrainError, match='threads'):
        TrainConfig.from_dict({'threads': bad})


def test_warning_when_threads_and_busy_cores_do_not_fit(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    with caplog.at_level(logging.WARNING, logger='ssl_robot.train.cpu'):
        assert warn_if_oversubscribed(2, 1.0, 2)
        assert '--threads 1' in caplog.text
        assert not warn_if_oversubscribed(1, 1.0, 2)  # fits
        assert not warn_if_oversubscribed(2, 0.1, 2)  # others nearly idle
        assert not warn_if_oversubscribed(2, None, 2)  # not measurable here


@pytest.mark.skipif(not Path('/proc/stat').exists(), reason='reads /proc (Linux)')
def test_a_spinning_process_counts_as_a_busy_core() -> None:
    spinner = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        busy_cores_of_others(0.2)  # let it start
        busy = busy_cores_of_others(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and busy > 0.6
