"""Where the package's installed files are: config/ and launch/."""
from __future__ import annotations

from pathlib import Path


def share_dir() -> Path:
    """Return the package's share directory (colcon install) or the source tree root.

    With colcon the data files are installed under ``share/ssl_robot``; with
    ``pip install -e .`` they stay in the repository beside the ``ssl_robot`` package.
    """
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / 'config').is_dir():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('ssl_robot'))
    except Exception:  # not installed by colcon either; say where we looked
        return source_root


def config_path(name: str = 'robot.yaml') -> Path:
    """Return the path of a parameter file in config/."""
    return share_dir() / 'config' / name


def launch_dir() -> Path:
    """Return the directory of the launch files."""
    return share_dir() / 'launch'
