"""The one `main()` body every ssl_robot node shares.

Start rclpy, build the node (a configuration error exits with status 2 and one line on
stderr, not a traceback), spin until shut down (SIGINT/SIGTERM, or until `done` says so),
then let the node finish its work (close a bag, write a dataset) before it is destroyed.
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

N = TypeVar('N', bound=Node)


def run_node(name: str, make_node: Callable[[], N], *, args: list[str] | None = None,
             startup_errors: tuple[type[BaseException], ...] = (),
             finish: Callable[[N], None] = lambda node: None,
             done: Callable[[N], bool] | None = None,
             exit_code: Callable[[N], int] = lambda node: 0) -> int:
    """Run one node in this process and return the process exit status.

    Args:
        name: The executable's name, for the startup error line.
        make_node: Builds the node (after rclpy.init).
        args: Command-line arguments for rclpy (None: sys.argv).
        startup_errors: Exceptions of `make_node` that mean bad configuration (exit 2).
        finish: Called once after spinning stops, before the node is destroyed.
        done: Polled between callbacks; spinning stops when it returns True (None: spin
            until shutdown).
        exit_code: The status to return after a normal stop.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except startup_errors as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        if done is None:
            rclpy.spin(node)
        else:
            while rclpy.ok() and not done(node):
                rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # SIGTERM may shut the context down under the executor's wait
        if rclpy.ok():
            raise
    finally:
        finish(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return exit_code(node)
