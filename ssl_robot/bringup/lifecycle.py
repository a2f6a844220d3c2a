"""Bring lifecycle nodes to 'active' over their lifecycle services (what launch's events do).

`ssl-robot up` calls `activate_lifecycle_nodes` from a thread of its own process, so this
helper installs no signal handlers: `up` keeps SIGINT/SIGTERM to forward to its children.
`LifecycleBringUp` does the same from inside a running node (the online trainer bringing
the inference node up with its first model), with futures its executor completes.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


def activate_lifecycle_nodes(names: list[str], *, timeout: float, stop: threading.Event,
                             log: Callable[[str], None]) -> dict[str, str]:
    """Configure then activate each named lifecycle node; return the state each ended in.

    A node whose transition fails is left where it is (a lifecycle node reports why in
    its own log and state); the returned state says so, e.g. 'unconfigured'.

    Args:
        names: Fully qualified or plain node names, e.g. 'inference'.
        timeout: Seconds to wait for each node's lifecycle services to appear.
        stop: Set by the caller to give up early (shutdown requested).
        log: Where progress lines go.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('ssl_robot_up_lifecycle', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        return {name: _activate(node, executor, name.lstrip('/'), timeout, stop, log)
                for name in names}
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()


def _call(executor, client, request, timeout: float, stop: threading.Event):
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline and not stop.is_set():
        executor.spin_once(timeout_sec=0.1)
    return future.result() if future.done() else None


def _activate(node, executor, name: str, timeout: float, stop: threading.Event,
              log: Callable[[str], None]) -> str:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    get_state = node.create_client(GetState, f'/{name}/get_state')
    change_state = node.create_client(ChangeState, f'/{name}/change_state')
    deadline = time.monotonic() + timeout
    while not (get_state.service_is_ready() and change_state.service_is_ready()):
        if stop.is_set() or time.monotonic() > deadline:
            log(f'{name}: lifecycle services did not appear within {timeout:.0f}s')
            return 'unknown'
        executor.spin_once(timeout_sec=0.1)
    steps = {'unconfigured': ('configure', Transition.TRANSITION_CONFIGURE),
             'inactive': ('activate', Transition.TRANSITION_ACTIVATE)}
    state = 'unknown'
    for _ in range(len(steps) + 1):
        response = _call(executor, get_state, GetState.Request(), timeout, stop)
        if response is None:
            log(f'{name}: get_state did not answer')
            return state
        state = response.current_state.label
        if state not in steps:
            break
        label, transition_id = steps[state]
        request = ChangeState.Request()
        request.transition.id = transition_id
        result = _call(executor, change_state, request, timeout, stop)
        if result is None or not result.success:
            log(f'{name}: {label} failed; it stays {state!r} (its log says why)')
            return state
        log(f'{name}: {label}d')
    return state


class LifecycleBringUp:
    """Bring another lifecycle node to 'active' from inside a node (futures, no spinning).

    What the online trainer does after handing a model over: ask the node's state and
    configure, then activate it as needed. The node's own executor runs the callbacks;
    `done(state, error)` is called once, with the state the target ended in and '' when
    it is active, else why not.

    Args:
        node: The node that makes the calls.
        target: Name of the lifecycle node, e.g. 'inference'.
    """

    def __init__(self, node, target: str) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.target = target.lstrip('/')
        self._get_state = node.create_client(GetState, f'/{self.target}/get_state')
        self._change_state = node.create_client(ChangeState, f'/{self.target}/change_state')
        self._done: Callable[[str, str], None] | None = None
        self._steps = 0
        self._state = 'unknown'
        self._step = ''

    def ready(self) -> bool:
        """Whether the target's lifecycle services are there."""
        return self._get_state.service_is_ready() and self._change_state.service_is_ready()

    def start(self, done: Callable[[str, str], None]) -> None:
        """Configure and/or activate the target as needed; `done` says how it ended."""
        self._done, self._steps = done, 0
        if not self.ready():
            self._finish(f'/{self.target} has no lifecycle services')
            return
        self._query()

    def _finish(self, error: str) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(self._state, error)

    def _query(self) -> None:
        from lifecycle_msgs.srv import GetState
        self._get_state.call_async(GetState.Request()).add_done_callback(self._on_state)

    def _on_state(self, future) -> None:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        try:
            self._state = future.result().current_state.label
        except Exception as exc:  # the call itself failed
            self._finish(f'get_state failed: {exc}')
            return
        steps = {'unconfigured': ('configure', Transition.TRANSITION_CONFIGURE),
                 'inactive': ('activate', Transition.TRANSITION_ACTIVATE)}
        if self._state == 'active':
            self._finish('')
            return
        if self._state not in steps or self._steps >= len(steps):
            self._finish(f'cannot bring it to active from {self._state!r}')
            return
        self._steps += 1
        self._step, transition_id = steps[self._state]
        request = ChangeState.Request()
        request.transition.id = transition_id
        self._change_state.call_async(request).add_done_callback(self._on_changed)

    def _on_changed(self, future) -> None:
        try:
            success = bool(future.result().success)
        except Exception as exc:  # the call itself failed
            self._finish(f'{self._step} call failed: {exc}')
            return
        if not success:
            self._finish(f'{self._step} failed; it stays {self._state!r} (its log says why)')
            return
        self._query()
