"""`ssl-robot up robot|sim|replay`: start a node graph as processes, like its launch file.

For machines without `launch`/`launch_ros`: every node of the graph (`ssl_robot.bringup.graph`,
the same description the launch files use) runs as its own process from the package's
console scripts, with the same parameter files (the package's, then one of the node's own
section with what the arguments set, as the launch files give them), `use_sim_time` and
remappings. Output lines are prefixed with the node name; lifecycle nodes with a model
are configured and activated;
SIGINT/SIGTERM are forwarded to every node, and each node is stopped with SIGINT, then
SIGTERM, then SIGKILL when it does not exit in time.

Exit status: 0 when the graph ran until asked to stop (or its duration passed, or every
node finished by itself); 1 when a node died with an error; 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ssl_robot.bringup.graph import graph, GraphPlan, GRAPHS, ResolvedNode, TOPIC_ARGUMENTS
from ssl_robot.errors import ConfigError

#: Console scripts whose main is not their module's `main` (setup.py).
GROUP_MAINS = {'inference_group': ('inference', 'main_group')}

#: Seconds each node gets to exit after SIGINT, then after SIGTERM, before SIGKILL.
SIGINT_TIMEOUT_S = 10.0
SIGTERM_TIMEOUT_S = 5.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ssl-robot up`."""
    parser = subparsers.add_parser(
        'up', help='start a node graph (robot, sim, replay) as processes, like its launch file',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('graph', choices=list(GRAPHS), help='which graph to start')
    parser.add_argument('--bag', type=Path, help='bag to replay (replay graph)')
    parser.add_argument('--param-file', type=Path,
                        help="parameter file (default: the package's config/robot.yaml)")
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help='remap a topic in every node, e.g. image_raw:=/camera/image_raw')
    parser.add_argument('--use-sim-time', action='store_true', default=None,
                        help='use /clock (the default for sim and replay)')
    parser.add_argument('--online-training', action='store_true',
                        help='also run the trainer node')
    parser.add_argument('--arg', action='append', default=[], metavar='NAME:=VALUE',
                        help='set a launch argument of the graph, as `ros2 launch` would')
    parser.add_argument('--duration', type=float,
                        help='stop everything after this many seconds (default: run until '
                             'SIGINT/SIGTERM)')
    parser.add_argument('--lifecycle-timeout', type=float, default=60.0,
                        help="seconds to wait for a lifecycle node's services")
    parser.set_defaults(func=run)


def _split_rule(text: str, what: str) -> tuple[str, str]:
    if ':=' not in text:
        raise ConfigError(f'{what} {text!r}: expected FROM:=TO')
    src, dst = text.split(':=', 1)
    if not src or not dst:
        raise ConfigError(f'{what} {text!r}: expected FROM:=TO')
    return src, dst


def resolve_args(args: argparse.Namespace) -> list[ResolvedNode]:
    """Turn the command line into the resolved nodes of the graph (see `plan_args`)."""
    return list(plan_args(args).nodes)


def plan_args(args: argparse.Namespace) -> GraphPlan:
    """Turn the command line into the graph's plan: the nodes it starts, and why not all.

    Raises:
        ConfigError: For a bad remapping or argument, a missing bag or parameter file.
    """
    spec = graph(args.graph)
    values = dict(_split_rule(a, '--arg') for a in args.arg)
    if args.param_file:
        values['params_file'] = str(args.param_file)
    if args.use_sim_time:
        values['use_sim_time'] = 'true'
    if args.online_training:
        values['online_training'] = 'true'
    if args.bag is not None:
        if args.graph != 'replay':
            raise ConfigError('--bag is for the replay graph')
        values['bag'] = str(args.bag)
    if args.graph == 'replay':
        bag = values.get('bag', '')
        if not bag:
            raise ConfigError('replay needs --bag BAG')
        if not Path(bag).exists():
            raise ConfigError(f'{bag}: no such bag')
    # A remapping of a generic topic sets its launch argument, so `up` and the launch
    # file say the same thing; any other rule is passed to every node as it is.
    topic_args = {generic: arg for arg, generic in TOPIC_ARGUMENTS}
    extra = []
    for rule in args.remap:
        src, dst = _split_rule(rule, '--remap')
        if src in topic_args:
            values[topic_args[src]] = dst
        else:
            extra.append((src, dst))
    return spec.plan(values, extra_remappings=extra)


def executable_argv(executable: str) -> list[str]:
    """How to run a node's console script: the venv's, then PATH, else the module's main."""
    for candidate in (Path(sys.executable).parent / executable, shutil.which(executable)):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    module, main = GROUP_MAINS.get(executable, (executable, 'main'))
    return [sys.executable, '-c',
            f'import sys; from ssl_robot.nodes.{module} import {main}; sys.exit({main}())']


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `up` itself dies, so no node outlives it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Child:
    """One node process and the thread that prefixes its output."""

    def __init__(self, node: ResolvedNode, out_lock: threading.Lock, overrides_dir: Path) -> None:
        self.node = node
        self.cmd = executable_argv(node.executable) + node.ros_args(
            node.write_overrides(overrides_dir))
        env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
        # Own process group: a terminal's Ctrl-C reaches only `up`, which forwards it once.
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, process_group=0, preexec_fn=_die_with_parent)
        self.stop_requested = False
        self._lock = out_lock
        self._pump = threading.Thread(target=self._prefix_output, daemon=True)
        self._pump.start()

    @property
    def name(self) -> str:
        return self.node.name

    def _prefix_output(self) -> None:
        for raw in iter(self.proc.stdout.readline, b''):
            line = raw.decode(errors='replace').rstrip('\n')
            with self._lock:
                print(f'[{self.name}] {line}', flush=True)
        self.proc.stdout.close()

    def join_output(self) -> None:
        self._pump.join(timeout=5.0)


class GraphRunner:
    """Runs resolved nodes as processes until a signal, a duration, or a failure."""

    def __init__(self, nodes: list[ResolvedNode], *, lifecycle_timeout: float = 60.0) -> None:
        self.nodes = nodes
        self.lifecycle_timeout = lifecycle_timeout
        self.children: list[_Child] = []
        self._stop = threading.Event()
        self._signal: int | None = None
        self._lock = threading.Lock()

    def log(self, text: str) -> None:
        with self._lock:
            print(f'[up] {text}', flush=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signum
        self._stop.set()

    def run(self, duration: float | None = None) -> int:
        """Start every node, wait, stop them all; return the exit status."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        failed: list[str] = []
        overrides_dir = Path(tempfile.mkdtemp(prefix='ssl_robot_up_'))
        try:
            for node in self.nodes:
                if self._stop.is_set():
                    break
                child = _Child(node, self._lock, overrides_dir)
                self.children.append(child)
                self.log(f'started {node.name} (pid {child.proc.pid}): {" ".join(child.cmd)}')
            lifecycle = [n.name for n in self.nodes if n.lifecycle and n.activate]
            if lifecycle and not self._stop.is_set():
                threading.Thread(target=self._activate, args=(lifecycle,), daemon=True).start()
            failed = self._wait(duration)
        finally:
            self._stop.set()
            self.shutdown()
            shutil.rmtree(overrides_dir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed:
            self.log(f'failed: {", ".join(failed)} died with an error')
            return 1
        return 0

    def _activate(self, names: list[str]) -> None:
        try:
            from ssl_robot.bringup.lifecycle import activate_lifecycle_nodes
            states = activate_lifecycle_nodes(names, timeout=self.lifecycle_timeout,
                                              stop=self._stop, log=self.log)
            self.log('lifecycle: ' + ', '.join(f'{n} {s}' for n, s in states.items()))
        except Exception as exc:  # a lifecycle problem must not take the graph down
            self.log(f'lifecycle: could not drive {", ".join(names)}: {exc}')

    def _wait(self, duration: float | None) -> list[str]:
        """Wait for a signal, the duration, or a node's exit; names of nodes that failed."""
        deadline = None if duration is None else time.monotonic() + duration
        reported: set[str] = set()
        while not self._stop.is_set():
            for child in self.children:
                code = child.proc.poll()
                if code is None or child.name in reported:
                    continue
                reported.add(child.name)
                if code != 0:
                    self.log(f'{child.name} died unexpectedly (exit status {code})')
                    return [child.name]
                self.log(f'{child.name} finished')
            if len(reported) == len(self.children):
                self.log('every node finished')
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.log(f'duration of {duration:g}s passed')
                break
            self._stop.wait(0.2)
        if self._signal is not None:
            self.log(f'got {signal.Signals(self._signal).name}: stopping every node')
        return []

    def shutdown(self) -> None:
        """SIGINT every running node, then SIGTERM, then SIGKILL those still running."""
        for sig, timeout in ((signal.SIGINT, SIGINT_TIMEOUT_S),
                             (signal.SIGTERM, SIGTERM_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            running = [c for c in self.children if c.proc.poll() is None]
            if not running:
                break
            if sig != signal.SIGINT:
                self.log(f'{", ".join(c.name for c in running)} still running: '
                         f'sending {sig.name}')
            for child in running:
                child.stop_requested = True
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(sig)
            deadline = time.monotonic() + timeout
            for child in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in self.children:
            child.proc.wait()
            child.join_output()
        self.log('stopped: ' + ', '.join(f'{c.name} ({c.proc.returncode})'
                                         for c in self.children))


def run(args: argparse.Namespace) -> int:
    """Start the graph; returns the exit status."""
    plan = plan_args(args)
    nodes = list(plan.nodes)
    runner = GraphRunner(nodes, lifecycle_timeout=args.lifecycle_timeout)
    runner.log(f'graph {args.graph}: ' + ', '.join(n.name for n in nodes))
    for note in plan.notes:
        runner.log(note)
    return runner.run(args.duration)
