"""Node `trainer`: retrains the obstacle model online and hot-swaps it into `inference`.

Every `poll_period_s` it reads the labeller's dataset size (meta.json); once
`retrain_every_frames` new labelled frames have arrived it trains a new model with the
shared trainer and exports it (`ssl-robot train --export`) in a child
process, so the node stays responsive and training never blocks its executor. The new
ONNX file is then handed over to the inference node by setting its `model_path`
parameter (rcl_interfaces SetParameters), which reloads it without a restart, and its
path is published on `model_updates` (std_msgs/String, transient local) as a record.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

from rcl_interfaces.msg import Parameter, ParameterDescriptor, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ssl_robot.nodes._run import run_node


def dataset_frames(path: Path) -> int:
    """Frames in a dataset directory according to its meta.json (0 when absent/unreadable)."""
    try:
        meta = json.loads((path / 'meta.json').read_text())
        return int(sum(int(b.get('n_frames', 0)) for b in meta.get('bags', [])))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


class TrainerNode(Node):
    """Periodic retraining + export + hand-over (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('trainer', **kwargs)
        d = self._declare
        d('dataset', 'data/live_dataset', "the labeller's dataset directory")
        d('run_dir', 'runs/online', 'directory of the training rounds (round_NNN/)')
        d('retrain_every_frames', 500, 'train again after this many new labelled frames')
        d('poll_period_s', 5.0, 'how often to check the dataset size (s)')
        d('task', 'obstacle', 'task to train (obstacle, terrain, tcn)')
        d('epochs', 5, 'epochs per training round')
        d('batch_size', 64, 'batch size')
        d('max_steps', 0, 'optimiser steps per round (0: no limit)')
        d('train_params', [''], "extra task parameters, 'KEY=JSON' each (e.g. width=8)")
        d('init_from_previous', False, 'start each round from the previous round\'s weights')
        d('inference_node', 'inference', 'node whose model_path parameter receives the model')
        d('niceness', 10, 'nice increment of the training process (the robot comes first)')
        self._frames_at_last_round = 0
        self._round = 0
        self._job: subprocess.Popen | None = None
        self._current_onnx: Path | None = None
        self._last_model: Path | None = None
        self._started = None
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._updates = self.create_publisher(String, 'model_updates', latched)
        node = self.get_parameter('inference_node').value
        self._set_params = self.create_client(SetParameters, f'/{node}/set_parameters')
        self.create_timer(float(self.get_parameter('poll_period_s').value), self._poll)
        self.get_logger().info(
            f'watching {self._dataset()} (retrain every '
            f'{self.get_parameter("retrain_every_frames").value} frames)')

    def _declare(self, name: str, default: Any, description: str) -> None:
        self.declare_parameter(name, default, ParameterDescriptor(description=description))

    def _dataset(self) -> Path:
        return Path(self.get_parameter('dataset').value)

    # ---------------------------------------------------------------- rounds
    def _poll(self) -> None:
        if self._job is not None:
            self._check_job()
            return
        frames = dataset_frames(self._dataset())
        every = int(self.get_parameter('retrain_every_frames').value)
        if frames - self._frames_at_last_round >= every:
            self._frames_at_last_round = frames
            self._start_round(frames)

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, '-m', 'ssl_robot.cli', *args]

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen:
        niceness = int(self.get_parameter('niceness').value)
        log = open(self._round_dir() / log_name, 'wb')  # noqa: SIM115 - closed by the child
        env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
        try:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=(lambda: os.nice(niceness)) if niceness else None)
        finally:
            log.close()

    def _round_dir(self) -> Path:
        return Path(self.get_parameter('run_dir').value) / f'round_{self._round:03d}'

    def _start_round(self, frames: int) -> None:
        self._round += 1
        out = self._round_dir()
        out.mkdir(parents=True, exist_ok=True)
        p = self.get_parameter
        self._current_onnx = out / f'{p("task").value}.onnx'
        # One child trains and exports (one torch start-up per round).
        args = ['train', '--task', p('task').value, '--dataset', str(self._dataset()),
                '--out', str(out), '--epochs', str(p('epochs').value),
                '--batch-size', str(p('batch_size').value), '--no-progress',
                '--export', str(self._current_onnx)]
        if int(p('max_steps').value):
            args += ['--max-steps', str(p('max_steps').value)]
        for item in p('train_params').value:
            if item:
                args += ['--param', item]
        if p('init_from_previous').value and self._round > 1:
            previous = out.parent / f'round_{self._round - 1:03d}' / 'best.pt'
            if previous.exists():
                args += ['--init-from', str(previous)]
        self._started = self.get_clock().now()
        self._job = self._spawn(self._cli(*args), 'train.log')
        self.get_logger().info(f'round {self._round}: training on {frames} frames in {out}')

    def _check_job(self) -> None:
        code = self._job.poll()
        if code is None:
            return
        out = self._round_dir()
        if code != 0 or not self._current_onnx.is_file():
            log = (out / 'train.log').read_text(errors='replace')[-800:]
            self.get_logger().error(f'round {self._round}: training failed (exit {code}); '
                                    f'the inference model is unchanged:\n{log}')
            self._job = None
            return
        self._job = None
        seconds = (self.get_clock().now() - self._started).nanoseconds / 1e9
        self.get_logger().info(f'round {self._round}: new model {self._current_onnx} '
                               f'({seconds:.1f} s); handing it to the inference node')
        self._hand_over(self._current_onnx)

    def _hand_over(self, path: Path) -> None:
        self._last_model = path
        self._updates.publish(String(data=str(path.resolve())))
        if not self._set_params.service_is_ready():
            self.get_logger().warning(
                f'{self._set_params.srv_name} not available; the model is on '
                f'model_updates and in {path}')
            return
        value = ParameterValue(type=ParameterType.PARAMETER_STRING,
                               string_value=str(path.resolve()))
        request = SetParameters.Request(parameters=[Parameter(name='model_path', value=value)])
        future = self._set_params.call_async(request)
        future.add_done_callback(self._on_handed_over)

    def _on_handed_over(self, future: Any) -> None:
        try:
            result = future.result().results[0]
        except Exception as exc:  # the service call itself failed
            self.get_logger().error(f'model hand-over failed: {exc}')
            return
        if result.successful:
            self.get_logger().info(f'inference node now uses {self._last_model}')
        else:
            self.get_logger().error(f'inference node rejected {self._last_model}: '
                                    f'{result.reason}')

    def stop_job(self) -> None:
        """Stop a running training/export child (on shutdown)."""
        if self._job is not None and self._job.poll() is None:
            self._job.terminate()
            try:
                self._job.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._job.kill()
                self._job.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the trainer node until shut down."""
    return run_node('trainer', TrainerNode, args=argv, finish=TrainerNode.stop_job)


if __name__ == '__main__':
    sys.exit(main())
