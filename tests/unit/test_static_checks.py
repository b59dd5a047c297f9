"""The checks pyproject.toml declares run with the suite: mypy and ruff pass.

mypy runs as ``[tool.mypy]`` says (``deploy/``, every function typed; the
controller's scripts in ``deploy/remote/`` are left to the 2.7/3.6 specs);
ruff as ``[tool.ruff]`` says (pyflakes, pycodestyle with lines of at most
100 characters, and import order; ``cinder_patch/`` follows Cinder's own rules).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_ROOT

BIN = Path(sys.executable).parent


def test_mypy_passes_on_deploy(tmp_path):
    result = subprocess.run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy-cache")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes_with_import_order_and_100_character_lines():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
