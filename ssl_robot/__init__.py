"""ssl_robot: a robot labels its own sensor data and learns from it."""
from __future__ import annotations

__version__ = '0.1.0'
