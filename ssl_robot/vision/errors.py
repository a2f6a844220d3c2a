"""The error class of `ssl_robot.vision` (a leaf module: importing it loads nothing heavy)."""
from __future__ import annotations

from ssl_robot.errors import SslRobotError


class VisionError(SslRobotError, RuntimeError):
    """A vision pretext task cannot be built or run on its input."""
