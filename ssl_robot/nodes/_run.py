"""The one `main()` body every ssl_robot node shares.

Start rclpy, build the node (a configuration error exits with status 2 and one line on
stderr, not a traceback), spin until SIGINT/SIGTERM or until `done` says so, then let the
node finish its work (close a bag, write a dataset) before it is destroyed.

rclpy's own signal handlers are replaced by ones that only ask the loop to stop: rclpy's
would shut the context down at once, and the node's last log lines (the recorder's bag
summary, the labeller's totals) would then fail to reach /rosout. After a stop signal,
further SIGINT/SIGTERM are ignored until the process exits (under `ros2 launch` a Ctrl-C
arrives twice), so a node that stopped cleanly exits 0, not killed by the second one.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

N = TypeVar('N', bound=Node)


def run_node(name: str, make_node: Callable[[], N], *, args: list[str] | None = None,
             startup_errors: tuple[type[BaseException], ...] = (),
             finish: Callable[[N], None] = lambda node: None,
             done: Callable[[N], bool] | None = None,
             exit_code: Callable[[N], int] = lambda node: 0,
             executor: Callable[[N], Executor] | None = None,
             more_nodes: Callable[[N], list[N]] | None = None) -> int:
    """Run one node (or a group) in this process and return the process exit status.

    Args:
        name: The executable's name, for the startup error line.
        make_node: Builds the node (after rclpy.init).
        args: Command-line arguments for rclpy (None: sys.argv).
        startup_errors: Exceptions of `make_node` that mean bad configuration (exit 2).
        finish: Called once after spinning stops, before the node is destroyed.
        done: Polled between callbacks; spinning stops when it returns True (None: spin
            until shutdown).
        exit_code: The status to return after a normal stop.
        executor: Makes the executor for the built node (None: a SingleThreadedExecutor).
        more_nodes: Builds more nodes, from the first, that spin in the same executor
            (their startup errors count as the first's); `finish` is called on each.
    """
    stop = threading.Event()
    signalled: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        signalled.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(name, make_node, args, startup_errors, finish, done, exit_code, stop,
                    executor, more_nodes)
    finally:
        for sig, handler in previous.items():
            # Once asked to stop, a repeated signal is no crash: Ctrl-C reaches the whole
            # process group, and `ros2 launch` then forwards its own SIGINT to each node.
            signal.signal(sig, signal.SIG_IGN if signalled else handler)


def _run(name: str, make_node: Callable[[], N], args: list[str] | None,
         startup_errors: tuple[type[BaseException], ...], finish: Callable[[N], None],
         done: Callable[[N], bool] | None, exit_code: Callable[[N], int],
         stop: threading.Event, make_executor: Callable[[N], Executor] | None,
         more_nodes: Callable[[N], list[N]] | None) -> int:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    nodes: list[N] = []
    try:
        nodes.append(make_node())
        nodes.extend(more_nodes(nodes[0]) if more_nodes else [])
    except startup_errors as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        for built in nodes:
            built.destroy_node()
        rclpy.try_shutdown()
        return 2
    node = nodes[0]
    executor = make_executor(node) if make_executor else SingleThreadedExecutor()
    for each in nodes:
        executor.add_node(each)
    try:
        while (rclpy.ok() and not stop.is_set()
               and not (done is not None and done(node))):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for each in nodes:
            finish(each)
        executor.shutdown()
        for each in nodes:
            each.destroy_node()
        rclpy.try_shutdown()
    return exit_code(node)
