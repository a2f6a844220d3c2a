"""Robot models (no rclpy): a small CNN encoder, heads by role, losses and transforms.

`build_robot_model(spec)` rebuilds any robot model from the spec saved in its checkpoint.
"""
from __future__ import annotations

from ssl_robot.models.nets import build_robot_model, MODEL_KINDS, RobotNet

__all__ = ['build_robot_model', 'MODEL_KINDS', 'RobotNet']
