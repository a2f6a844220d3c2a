"""Parameter files (`config/*.yaml`, `node: ros__parameters:` form) for offline code.

Nodes get their parameters from rclpy; offline commands read the same files here, so
topic names, frames and units have one source of truth.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ssl_robot.errors import ConfigError
from ssl_robot.paths import config_path


def load_node_parameters(node: str, path: Path | str | None = None) -> dict[str, Any]:
    """Return the parameters of `node` in a parameter file, merged over its '/**' section.

    Args:
        node: Node name, e.g. 'labeller'.
        path: Parameter file; the package's config/robot.yaml by default.

    Raises:
        ConfigError: When the file is missing or not a ROS 2 parameter file.
    """
    path = Path(path) if path else config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f'{path}: no such parameter file') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected "node: ros__parameters:" sections')
    params: dict[str, Any] = {}
    for section in ('/**', node, f'/{node}'):
        values = data.get(section, {})
        if values and 'ros__parameters' not in values:
            raise ConfigError(f'{path}: section {section!r} has no ros__parameters')
        params.update((values or {}).get('ros__parameters', {}))
    return params


def parse_key_values(items: list[str], option: str = '--param') -> dict[str, Any]:
    """`KEY=VALUE` command-line items as a dict.

    Each value is parsed as JSON when it is JSON (numbers, booleans, lists), else kept as a
    string.

    Raises:
        ConfigError: For an item without '='.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'{option} {item!r}: use KEY=VALUE')
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params
