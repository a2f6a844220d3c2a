"""ruff, configured to the ament linters (ruff.toml), passes over the whole tree.

The package, tests, benchmarks and launch files: what ament_flake8 and ament_pep257 would
check.
"""
from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import sys

REPO = Path(__file__).resolve().parent.parent


def test_ruff_passes_with_the_ament_settings():
    ruff = shutil.which('ruff', path=str(Path(sys.executable).parent)) or shutil.which('ruff')
    assert ruff, 'ruff is a pinned test dependency (requirements.txt)'
    result = subprocess.run([ruff, 'check', '--no-cache', 'ssl_robot', 'test', 'benchmarks',
                             'launch', 'setup.py'], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
