"""The simulated robot: a Thymio-like differential-drive robot in MuJoCo worlds.

Pure core (no rclpy): worlds (`generate_world`, `World`), the robot's geometry
(`ROBOT`), the physics and sensors (`Simulator`), a driver (`DrivingPolicy`), message
builders (`ssl_robot.sim.messages`), the run loop shared by bags and the node
(`SimSession`) and `write_sim_bag`.

The world module is imported eagerly (it is plain data); the MuJoCo parts load on first
use, so importing `ssl_robot.sim.SimError` does not load MuJoCo. Loading the simulator
sets MUJOCO_GL=egl unless it is set already (headless rendering).
"""
from __future__ import annotations

import importlib
from typing import Any

from ssl_robot.sim.world import (
    CameraMount,
    generate_world,
    MAX_RAY_M,
    Obstacle,
    ROBOT,
    RobotGeometry,
    SimError,
    TerrainPatch,
    TERRAINS,
    TerrainType,
    World,
)

#: Names loaded on first access, and their modules.
_LAZY = {
    'SimBagSummary': 'bag', 'write_sim_bag': 'bag',
    'DrivingPolicy': 'policy', 'PolicyParams': 'policy',
    'SIM_EPOCH_NS': 'session', 'SimOptions': 'session', 'SimSession': 'session',
    'STREAMS': 'session', 'sim_streams': 'session',
    'GroundTruth': 'simulator', 'ImuNoise': 'simulator', 'Odometry2D': 'simulator',
    'OdometryNoise': 'simulator', 'Simulator': 'simulator',
}

__all__ = ['CameraMount', 'generate_world', 'MAX_RAY_M', 'Obstacle', 'ROBOT', 'RobotGeometry',
           'SimError', 'TERRAINS', 'TerrainPatch', 'TerrainType', 'World', *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'ssl_robot.sim.{_LAZY[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
