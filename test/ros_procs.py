"""Helpers for tests that run ssl_robot nodes as real processes over DDS.

Every test that starts a node should go through `start_node` (or `node_command`) and stop
it with `stop` in a ``finally`` block (or use `NodeProcess` as a context manager), so no
process outlives its test. `Probe` is a small rclpy node living in the test process, in
its own context and domain, to publish, subscribe and query other nodes' services.

Usage::

    from ros_procs import Probe, start_node

    with start_node('labeller', domain_id=61, log_dir=tmp_path) as node:
        with Probe(61) as probe:
            assert probe.wait_for_node('labeller', timeout=20)
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / 'config' / 'robot.yaml'
VENV_BIN = Path(sys.executable).parent


def dds_env(domain_id: int, **extra: str) -> dict[str, str]:
    """Environment for a node process: loopback-only DDS in `domain_id`, unbuffered output."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1', MUJOCO_GL=env.get('MUJOCO_GL', 'egl'))
    env.update(extra)
    return env


def executable_argv(executable: str) -> list[str]:
    """Argv prefix that runs a node's console script, as `ssl-robot up` finds it."""
    from ssl_robot.commands.up import executable_argv as up_argv
    return up_argv(executable)


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def node_command(executable: str, *, name: str | None = None,
                 params: dict[str, Any] | None = None,
                 params_file: Path | str | None = CONFIG,
                 remaps: dict[str, str] | None = None) -> list[str]:
    """Command line that starts a node like `ros2 run` would, with `--ros-args`."""
    cmd = [*executable_argv(executable), '--ros-args']
    if name:
        cmd += ['-r', f'__node:={name}']
    if params_file:
        cmd += ['--params-file', str(params_file)]
    for key, value in (params or {}).items():
        # Qualified by the node name: a plain `-p` applies to '/**', which the node's own
        # section of the parameter file would override.
        cmd += ['-p', f'{name or executable}:{key}:={_param_value(value)}']
    for src, dst in (remaps or {}).items():
        cmd += ['-r', f'{src}:={dst}']
    return cmd


class NodeProcess:
    """A node (or any command) running as a child process, output captured to a file."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], log_path: Path,
                 cwd: Path | str | None = None) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, 'wb')  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd or REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Wait until `text` appears in the output (False on timeout or exit)."""
        return wait_until(lambda: text in self.output() or not self.alive(),
                          timeout) and text in self.output()

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait for exit; the return code, or None if still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, *, timeout: float = 10.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL after `timeout` each; returns the exit code."""
        return stop(self.proc, timeout=timeout, log=self._log)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop(proc: subprocess.Popen, *, timeout: float = 10.0, log: Any = None) -> int:
    """Stop a process: SIGINT, then SIGTERM, then SIGKILL; always reaps it."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()
    finally:
        if log is not None:
            log.close()


def start_node(executable: str, *, domain_id: int, log_dir: Path | str | None = None,
               name: str | None = None, params: dict[str, Any] | None = None,
               params_file: Path | str | None = CONFIG,
               remaps: dict[str, str] | None = None,
               env: dict[str, str] | None = None) -> NodeProcess:
    """Start a package node as a real process in `domain_id`; use it as a context manager."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix='ssl_robot_node_'))
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = node_command(executable, name=name, params=params, params_file=params_file,
                       remaps=remaps)
    return NodeProcess(cmd, env={**dds_env(domain_id), **(env or {})},
                       log_path=log_dir / f'{name or executable}.log')


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != 'Z'


def child_pids(pid: int) -> list[int]:
    """PIDs of the direct children of `pid` (from /proc)."""
    children: list[int] = []
    for task in Path(f'/proc/{pid}/task').glob('*'):
        with contextlib.suppress(OSError):
            children += [int(p) for p in (task / 'children').read_text().split()]
    return children


def copy_config(tmp_path: Path, **overrides: dict[str, Any]) -> Path:
    """A copy of config/robot.yaml with some node sections' parameters overridden."""
    import yaml
    data = yaml.safe_load(CONFIG.read_text())
    for node, values in overrides.items():
        data.setdefault(node, {}).setdefault('ros__parameters', {}).update(values)
    out = tmp_path / 'robot.yaml'
    out.write_text(yaml.safe_dump(data))
    return out


class Probe:
    """An rclpy node in the test process, in its own context and `domain_id`.

    Publishes, subscribes and calls services of the nodes under test. Spin it with
    `spin_until` (no background threads, so a failing test never leaves one behind).
    """

    def __init__(self, domain_id: int, name: str = 'test_probe') -> None:
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        self._rclpy = rclpy
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f'{name}_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = {}
        self._publishers: dict[str, list[Any]] = {}

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.executor.shutdown()
            self.node.destroy_node()
        with contextlib.suppress(Exception):
            self.context.try_shutdown()

    def spin(self, seconds: float) -> None:
        """Process callbacks for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Process callbacks until `predicate` is true or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def subscribe(self, topic: str, msg_type: type, *, reliable: bool = False) -> list[Any]:
        """Collect messages of `topic` into a list (sensor-data QoS unless `reliable`)."""
        from rclpy.qos import qos_profile_sensor_data, QoSProfile
        qos = QoSProfile(depth=100) if reliable else qos_profile_sensor_data
        box = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, box.append, qos)
        return box

    def publisher(self, topic: str, msg_type: type, *, reliable: bool = False,
                  depth: int = 100) -> Any:
        """A publisher (best-effort sensor QoS unless `reliable`, history `depth`)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=depth, reliability=(ReliabilityPolicy.RELIABLE if reliable
                                                 else ReliabilityPolicy.BEST_EFFORT))
        pub = self.node.create_publisher(msg_type, topic, qos)
        self._publishers.setdefault(self.node.resolve_topic_name(topic), []).append(pub)
        return pub

    def node_names(self) -> list[str]:
        return [n for n, _ in self.node.get_node_names_and_namespaces()]

    def wait_for_node(self, name: str, timeout: float) -> bool:
        """Wait until a node called `name` is in the graph."""
        return self.spin_until(lambda: name in self.node_names(), timeout)

    def wait_for_subscribers(self, topic: str, timeout: float, count: int = 1) -> bool:
        """Wait until `count` subscribers of `topic` are in the graph and matched.

        The graph shows a subscription before this probe's publishers of the topic have
        matched it, and best-effort messages published before then are lost: so it also
        waits for each such publisher's matched count, then a moment for the other side
        (discovery matches both ends, not at the same instant).
        """
        pubs = self._publishers.get(self.node.resolve_topic_name(topic), [])
        if not self.spin_until(lambda: self.node.count_subscribers(topic) >= count and all(
                p.get_subscription_count() >= count for p in pubs), timeout):
            return False
        self.spin(0.2)
        return True

    def call(self, srv_type: type, service: str, request: Any, timeout: float = 10.0) -> Any:
        """Call a service; the response, or None when it does not answer in time."""
        client = self.node.create_client(srv_type, service)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(request)
            self.spin_until(future.done, timeout)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def list_parameters(self, node: str, timeout: float = 10.0) -> list[str] | None:
        """Names of every parameter `node` declares (None if it does not answer)."""
        from rcl_interfaces.srv import ListParameters
        response = self.call(ListParameters, f'/{node}/list_parameters',
                             ListParameters.Request(), timeout)
        return None if response is None else list(response.result.names)

    def get_parameters(self, node: str, names: list[str], timeout: float = 10.0) -> list | None:
        from rcl_interfaces.srv import GetParameters
        response = self.call(GetParameters, f'/{node}/get_parameters',
                             GetParameters.Request(names=names), timeout)
        return None if response is None else list(response.values)

    def responsive(self, node: str, timeout: float = 10.0) -> bool:
        """Whether `node` answers a parameter service call (its executor is not stuck)."""
        return self.list_parameters(node, timeout) is not None

    def lifecycle_state(self, node: str, timeout: float = 10.0) -> str | None:
        """The label of a lifecycle node's current state ('active', ...), None if silent."""
        from lifecycle_msgs.srv import GetState
        response = self.call(GetState, f'/{node}/get_state', GetState.Request(), timeout)
        return None if response is None else response.current_state.label

    def change_state(self, node: str, transition: str, timeout: float = 20.0) -> bool | None:
        """Trigger a lifecycle transition by label ('configure', 'activate', ...)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        ids = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP,
               'shutdown': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        request = ChangeState.Request()
        request.transition.id = ids[transition]
        response = self.call(ChangeState, f'/{node}/change_state', request, timeout)
        return None if response is None else bool(response.success)


def venv_tool(name: str) -> str:
    """Path of a console script in the test interpreter's venv (e.g. 'ssl-robot')."""
    return str(VENV_BIN / name) if (VENV_BIN / name).exists() else shutil.which(name) or name
