"""Throttled log lines, decided before rclpy's logger is called.

rclpy's own `throttle_duration_sec` finds its caller's frame (`inspect`, which stats the
source file of every frame on the stack) on every call, whether the line is then logged
or throttled: ~0.3 ms a call from a shallow stack, and 12 % of the terrain inference
node's time when it warned on each 30 Hz 640x480 frame (py-spy, see the README's "where
the time goes"). A node's per-message paths ask a `LogThrottle` first.
"""
from __future__ import annotations

from collections.abc import Callable
import time


class LogThrottle:
    """True for a key at most once per `period_s` (wall time, monotonic).

    Example::

        if self._throttle('dropped ' + reason):
            self.get_logger().warning(f'dropped frame ({reason}): {detail}')
    """

    def __init__(self, period_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._clock = clock
        self._next: dict[str, float] = {}

    def __call__(self, key: str, *, period_s: float | None = None) -> bool:
        """Whether to log `key` now (then not again for `period_s`, default the throttle's)."""
        now = self._clock()
        if now < self._next.get(key, float('-inf')):
            return False
        self._next[key] = now + (self.period_s if period_s is None else float(period_s))
        return True
