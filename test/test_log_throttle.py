"""LogThrottle: a key logs at most once per period, keys apart."""
from __future__ import annotations

from ssl_robot.nodes._throttle import LogThrottle


def test_a_key_passes_once_per_period_and_keys_are_apart() -> None:
    now = [100.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle('a') and not throttle('a')
    assert throttle('b')  # another key is not held back by 'a'
    now[0] = 104.9
    assert not throttle('a')
    now[0] = 105.0
    assert throttle('a') and not throttle('a')
    assert throttle('c', period_s=10.0)
    now[0] = 114.0
    assert not throttle('c') and throttle('b')
    now[0] = 115.0
    assert throttle('c')
