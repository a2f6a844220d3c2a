"""Node `trainer`: retrains the obstacle model online and hot-swaps it into `inference`.

Every `poll_period_s` it reads the labeller's dataset size (meta.json); once
`retrain_every_frames` new labelled frames have arrived it trains a new model with the
shared trainer and exports it (`ssl-robot train --export`) in a child
process, so the node stays responsive and training never blocks its executor. The new
ONNX file is then handed over to the inference node by setting its `model_path`
parameter (rcl_interfaces SetParameters), which reloads it without a restart, and its
path is published on `model_updates` (std_msgs/String, transient local) as a record.

A hand-over also brings an unconfigured or inactive inference node (one started without a
model) to active through its lifecycle services (configure, then activate). It counts as
done only once the inference node confirms: its lifecycle state is 'active' and its
`<inference_node>/status` reports a prediction made by the new model, within
`handover_timeout_s`; then the trainer logs "inference node now uses ...", else an error
saying what did not happen. Diagnostics (/diagnostics): round, state, steps/s and the last
validation metrics of the round, the last hand-over.

Parameters that name files or decide what runs (`dataset`, `run_dir`, `task`,
`train_params`, `init_from_previous`, `inference_node`, `niceness`) are read-only after
start: no participant on the ROS domain can point a round at another file. The numeric
ones that may change at run time are range-checked before they take effect. Rounds are
numbered after the last one already in `run_dir`, so a restarted node never trains
into (and replaces) an earlier round.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

from rcl_interfaces.msg import (
    Parameter,
    ParameterDescriptor,
    ParameterType,
    ParameterValue,
    SetParametersResult,
)
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ssl_robot.bringup.lifecycle import LifecycleBringUp
from ssl_robot.diagnostics import ERROR, NodeHealth, OK, training_progress, WARN
from ssl_robot.nodes._diagnostics import DiagnosticsPublisher
from ssl_robot.nodes._run import run_node


def dataset_frames(path: Path) -> int:
    """Frames in a dataset directory according to its meta.json (0 when absent/unreadable)."""
    try:
        meta = json.loads((path / 'meta.json').read_text())
        return int(sum(int(b.get('n_frames', 0)) for b in meta.get('bags', [])))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


#: Parameters that may change at run time, with their smallest allowed value.
RUNTIME_MINIMUM = {'retrain_every_frames': 1, 'epochs': 1, 'batch_size': 1, 'max_steps': 0}


def last_round(run_dir: Path) -> int:
    """Number of the last round_NNN directory in `run_dir` (0 when none)."""
    numbers = [int(p.name[len('round_'):]) for p in run_dir.glob('round_*')
               if p.name[len('round_'):].isdigit()] if run_dir.is_dir() else []
    return max(numbers, default=0)


class TrainerNode(Node):
    """Periodic retraining + export + hand-over (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('trainer', **kwargs)
        d = self._declare
        d('dataset', 'data/live_dataset', "the labeller's dataset directory", read_only=True)
        d('run_dir', 'runs/online', 'directory of the training rounds (round_NNN/)',
          read_only=True)
        d('retrain_every_frames', 500, 'train again after this many new labelled frames')
        d('poll_period_s', 5.0, 'how often to check the dataset size (s)', read_only=True)
        d('task', 'obstacle', 'task to train (obstacle, terrain, tcn)', read_only=True)
        d('epochs', 5, 'epochs per training round')
        d('batch_size', 64, 'batch size')
        d('max_steps', 0, 'optimiser steps per round (0: no limit)')
        d('train_params', [''], "extra task parameters, 'KEY=JSON' each (e.g. width=8)",
          read_only=True)
        d('init_from_previous', False, "start each round from the previous round's weights",
          read_only=True)
        d('inference_node', 'inference', 'node whose model_path parameter receives the model',
          read_only=True)
        d('threads', 0, "torch CPU threads of a training round (0: torch's default, one per "
          'core; on a robot whose other nodes keep cores busy, the idle ones)', read_only=True)
        d('niceness', 10, 'nice increment of the training process (the robot comes first)',
          read_only=True)
        d('handover_timeout_s', 60.0, 'seconds the inference node has to confirm a handed-over '
          'model (active, and a prediction from it)')
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._frames_at_last_round = 0
        self._round = last_round(Path(self.get_parameter('run_dir').value))
        self._job: subprocess.Popen | None = None
        self._current_onnx: Path | None = None
        self._last_model: Path | None = None
        self._started = None
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._updates = self.create_publisher(String, 'model_updates', latched)
        node = self.get_parameter('inference_node').value
        self._set_params = self.create_client(SetParameters, f'/{node}/set_parameters')
        self._bring_up = LifecycleBringUp(self, node)
        self._handover: dict[str, Any] | None = None  # the hand-over awaiting confirmation
        self._inference_status: dict[str, Any] = {}
        self.create_subscription(String, f'/{node}/status', self._on_inference_status, latched)
        self.health = NodeHealth('trainer')
        self.health.section('hand-over').set(OK, 'no model handed over yet')
        self.diagnostics = DiagnosticsPublisher(self, self.health, update=self._update_health)
        self.create_timer(float(self.get_parameter('poll_period_s').value), self._poll)
        self.get_logger().info(
            f'watching {self._dataset()} (retrain every '
            f'{self.get_parameter("retrain_every_frames").value} frames)')

    def _declare(self, name: str, default: Any, description: str, *,
                 read_only: bool = False) -> None:
        self.declare_parameter(name, default, ParameterDescriptor(
            description=description, read_only=read_only))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        for p in params:
            low = RUNTIME_MINIMUM.get(p.name)
            if low is None:
                continue
            if isinstance(p.value, bool) or not isinstance(p.value, int) or p.value < low:
                reason = f'{p.name} must be an integer >= {low}, not {p.value!r}'
                self.get_logger().warning(f'parameter change refused: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _dataset(self) -> Path:
        return Path(self.get_parameter('dataset').value)

    # ---------------------------------------------------------------- rounds
    def _poll(self) -> None:
        self._check_handover_deadline()
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
        if int(p('threads').value):
            args += ['--threads', str(p('threads').value)]
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
            self._handover_failed(f'model hand-over failed: {exc}')
            return
        if not result.successful:
            self._handover_failed(f'inference node rejected {self._last_model}: '
                                  f'{result.reason}')
            return
        timeout = float(self.get_parameter('handover_timeout_s').value)
        self._handover = {'path': str(self._last_model.resolve()), 'state': 'unknown',
                          'deadline': self.get_clock().now().nanoseconds + int(timeout * 1e9)}
        self._bring_up.start(self._on_brought_up)

    def _on_brought_up(self, state: str, error: str) -> None:
        if self._handover is None:
            return
        self._handover['state'] = state
        if error:
            self._handover_failed(f'inference node did not take {self._last_model}: {error}')
            return
        self._check_confirmed()

    def _on_inference_status(self, msg: String) -> None:
        try:
            self._inference_status = json.loads(msg.data)
        except ValueError:
            return
        self._check_confirmed()

    def _check_confirmed(self) -> None:
        """Success once the node is active and reports a prediction from the new model."""
        handover, status = self._handover, self._inference_status
        if handover is None or handover['state'] != 'active':
            return
        if (status.get('model_path') != handover['path'] or status.get('state') != 'active'
                or int(status.get('predicted_with_model', 0)) < 1):
            return
        self._handover = None
        self.health.section('hand-over').set(
            OK, f'inference uses round {self._round}', model=handover['path'],
            model_id=status.get('model_id', ''))
        self.get_logger().info(f'inference node now uses {handover["path"]}: active, and its '
                               f'first prediction with it is out (model id '
                               f'{status.get("model_id", "?")})')

    def _check_handover_deadline(self) -> None:
        handover = self._handover
        if handover is None or self.get_clock().now().nanoseconds < handover['deadline']:
            return
        status = self._inference_status
        self._handover_failed(
            f'inference node did not confirm {handover["path"]} within '
            f'{self.get_parameter("handover_timeout_s").value:g} s: it is '
            f'{handover["state"]!r}, and its last status has model '
            f'{status.get("model_path", "none")!r} with '
            f'{status.get("predicted_with_model", 0)} predictions')

    def _handover_failed(self, text: str) -> None:
        self._handover = None
        self.health.section('hand-over').set(ERROR, text)
        self.get_logger().error(text)

    def _update_health(self, now_s: float) -> None:
        sec = self.health.section('training')
        progress = training_progress(self._round_dir() / 'metrics.csv') if self._round else {}
        state = 'training' if self._job is not None else 'waiting for labelled frames'
        sec.set(OK, f'round {self._round}: {state}', round=self._round, state=state,
                dataset_frames=dataset_frames(self._dataset()),
                frames_at_last_round=self._frames_at_last_round,
                **progress)
        if self._handover is not None:
            self.health.section('hand-over').set(
                WARN, f'waiting for the inference node to confirm {self._handover["path"]}',
                state=self._handover['state'])

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
