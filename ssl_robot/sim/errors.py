"""The error class of `ssl_robot.sim` (a leaf module: importing it loads nothing heavy)."""
from __future__ import annotations

from ssl_robot.errors import SslRobotError


class SimError(SslRobotError, ValueError):
    """A world or simulator setting is invalid."""
