"""The package's root error class (a leaf: it imports nothing).

Each subpackage defines its own error class in a leaf module of its own, derived from
`SslRobotError` (`ssl_robot.bags.typestore.BagError`, `ssl_robot.labelling.errors.LabelError`,
...), so importing an error loads nothing heavy, and `ssl-robot` reports any of them as one
clear line without importing them all.
"""
from __future__ import annotations


class SslRobotError(Exception):
    """Bad input the package reports as one clear line (the message names the file)."""


class ConfigError(SslRobotError, ValueError):
    """A configuration or parameter file is missing or invalid."""


#: What `ssl-robot` reports as one clear line (no traceback).
USER_ERRORS: tuple[type[Exception], ...] = (SslRobotError, FileNotFoundError)
