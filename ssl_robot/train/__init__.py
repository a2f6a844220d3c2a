"""The shared trainer (no rclpy): one loop for robot, vision and NLP tasks.

Names are loaded lazily, so that `ssl_robot.train.errors` (and a command's `--help`) does
not pull in torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ['GatheredBatch', 'load_checkpoint', 'Task', 'TrainConfig', 'Trainer', 'TrainError',
           'TrainResult']


def __getattr__(name: str) -> Any:
    if name == 'TrainError':
        from ssl_robot.train.errors import TrainError
        return TrainError
    if name in __all__:
        return getattr(importlib.import_module('ssl_robot.train.trainer'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
