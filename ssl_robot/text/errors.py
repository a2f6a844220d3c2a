"""The error class of `ssl_robot.text` (a leaf module: importing it loads nothing heavy)."""
from __future__ import annotations

from ssl_robot.errors import SslRobotError


class TextError(SslRobotError, RuntimeError):
    """A text pretext task cannot be built or run on its input."""
