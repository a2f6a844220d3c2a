"""rclpy message classes from type names, for nodes that move raw CDR (recorder, player)."""
from __future__ import annotations

import importlib


def message_class(msgtype: str) -> type | None:
    """The rclpy class of 'pkg/msg/Name' (or 'pkg/Name'); None when it is not installed."""
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3:
        return None
    package, kind, name = parts
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError:
        return None
    return getattr(module, name, None)
