"""The error class of `ssl_robot.labelling` (a leaf module: importing it loads nothing heavy)."""
from __future__ import annotations

from ssl_robot.errors import SslRobotError


class LabelError(SslRobotError):
    """Labelling failed on bad input (the message names the bag or parameter)."""
