"""Tasks for the shared trainer (no rclpy). `build_task` rebuilds a run's task by name."""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from ssl_robot.train import Task

#: Robot tasks by name -> 'module:Class' (imported lazily).
ROBOT_TASKS = {
    'obstacle': 'ssl_robot.tasks.robot:ObstacleTask',
    'terrain': 'ssl_robot.tasks.robot:TerrainTask',
    'tcn': 'ssl_robot.tasks.robot:TCNTask',
}


def build_task(name: str, params: dict[str, Any]) -> Task:
    """Build the robot task `name` from its parameters (as saved in a run's config).

    Raises:
        TrainError: For an unknown task name.
    """
    import importlib

    from ssl_robot.train import TrainError
    if name not in ROBOT_TASKS:
        raise TrainError(f'unknown task {name!r} (known: {", ".join(ROBOT_TASKS)})')
    module, cls = ROBOT_TASKS[name].split(':')
    return getattr(importlib.import_module(module), cls)(params)
