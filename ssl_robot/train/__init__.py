"""The shared trainer (no rclpy): one loop for robot, vision and NLP tasks."""
from __future__ import annotations

from ssl_robot.train.trainer import (
    load_checkpoint, Task, TrainConfig, Trainer, TrainError, TrainResult)

__all__ = ['load_checkpoint', 'Task', 'TrainConfig', 'Trainer', 'TrainError', 'TrainResult']
