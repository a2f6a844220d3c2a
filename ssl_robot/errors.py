"""Errors the command line reports as one clear line (no traceback)."""
from __future__ import annotations

from ssl_robot.bagio import BagError
from ssl_robot.dataset import DatasetError
from ssl_robot.export import ExportError
from ssl_robot.inference import InferenceError
from ssl_robot.labelling import LabelError
from ssl_robot.msgconv import MessageError
from ssl_robot.sim.world import SimError
from ssl_robot.text import TextError
from ssl_robot.train.trainer import TrainError
from ssl_robot.vision import VisionError


class ConfigError(ValueError):
    """A configuration or parameter file is missing or invalid."""


#: Every error class the package raises for bad input; add a subpackage's error class here
#: so that `ssl-robot` reports it as one clear line.
USER_ERRORS: tuple[type[Exception], ...] = (BagError, MessageError, TrainError, ConfigError,
                                            ExportError, DatasetError, InferenceError, LabelError,
                                            SimError, TextError, VisionError,
                                            FileNotFoundError)

