"""Which reliability a sensor subscription asks for (no rclpy): `qos_policy` auto/explicit.

A best-effort subscription gets messages from every publisher, but loses what a reliable
publisher would have resent; a reliable one gets nothing from a best-effort publisher (an
incompatible-QoS event). `auto` therefore follows the publishers the graph shows: all
reliable -> reliable, any best-effort -> best-effort, none yet -> best-effort (it matches
whatever appears; the choice is checked again when publishers appear).
"""
from __future__ import annotations

from ssl_robot.errors import ConfigError

POLICIES = ('auto', 'best_effort', 'reliable')


def choose_reliability(offered: list[str], policy: str = 'auto') -> tuple[str, str]:
    """The reliability to subscribe with, and why.

    Args:
        offered: Reliability each publisher of the topic offers ('reliable' or
            'best_effort'; anything else counts as best-effort).
        policy: 'auto' follows `offered`; 'reliable' or 'best_effort' is an explicit
            choice that wins.

    Raises:
        ConfigError: For another policy.
    """
    if policy not in POLICIES:
        raise ConfigError(f'qos_policy {policy!r}: expected one of {", ".join(POLICIES)}')
    if policy != 'auto':
        return policy, f'qos_policy {policy}'
    if not offered:
        return 'best_effort', 'no publishers yet'
    kinds = sorted(set(offered))
    if kinds == ['reliable']:
        return 'reliable', f'{len(offered)} reliable publisher(s)'
    return 'best_effort', f'publishers offer {", ".join(kinds)}'
