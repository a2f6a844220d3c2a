"""The simulated robot: a Thymio-like differential-drive robot in MuJoCo worlds.

Pure core (no rclpy): worlds (`generate_world`, `World`), the robot's geometry
(`ROBOT`), the physics and sensors (`Simulator`), a driver (`DrivingPolicy`), message
builders (`ssl_robot.sim.messages`), the run loop shared by bags and the node
(`SimSession`) and `write_sim_bag`. Importing this package sets MUJOCO_GL=egl unless it
is set already (headless rendering).
"""
from __future__ import annotations

from ssl_robot.sim.bag import SimBagSummary, write_sim_bag
from ssl_robot.sim.policy import DrivingPolicy, PolicyParams
from ssl_robot.sim.session import SIM_EPOCH_NS, SimOptions, SimSession, STREAMS
from ssl_robot.sim.simulator import (GroundTruth, ImuNoise, Odometry2D, OdometryNoise,
                                     Simulator)
from ssl_robot.sim.world import (generate_world, MAX_RAY_M, Obstacle, ROBOT, RobotGeometry,
                                 SimError, TERRAINS, TerrainPatch, TerrainType, World)

__all__ = [
    'DrivingPolicy', 'generate_world', 'GroundTruth', 'ImuNoise', 'MAX_RAY_M', 'Obstacle',
    'Odometry2D', 'OdometryNoise', 'PolicyParams', 'ROBOT', 'RobotGeometry', 'SIM_EPOCH_NS',
    'SimBagSummary', 'SimError', 'SimOptions', 'SimSession', 'Simulator', 'STREAMS',
    'TERRAINS', 'TerrainPatch', 'TerrainType', 'World', 'write_sim_bag',
]
