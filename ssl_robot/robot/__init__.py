"""The robot learning wing (no rclpy): obstacle, terrain, time-contrastive (TCN), collision.

Modules by role, like the vision and text wings: `encoder`, `heads`, `nets` (the models and
their ONNX export), `losses`, `transforms`, `tasks` (the `Task`s of the shared trainer),
`evaluate` (`ssl-robot eval`), `export` (a run to ONNX). `build_task` rebuilds a run's task
by name; this package itself imports no torch.
"""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from ssl_robot.train import Task

#: Robot tasks by name -> 'module:Class' (imported lazily).
ROBOT_TASKS = {
    'obstacle': 'ssl_robot.robot.tasks:ObstacleTask',
    'terrain': 'ssl_robot.robot.tasks:TerrainTask',
    'tcn': 'ssl_robot.robot.tasks:TCNTask',
    'collision': 'ssl_robot.robot.collision:CollisionTask',
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
