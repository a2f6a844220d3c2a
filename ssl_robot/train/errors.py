"""The error class of `ssl_robot.train` (a leaf module: importing it loads nothing heavy)."""
from __future__ import annotations

from ssl_robot.errors import SslRobotError


class TrainError(SslRobotError, RuntimeError):
    """Training cannot start or continue (bad config, dataset or checkpoint)."""
