"""Real parts for the integration tests: a sandbox controller of their own.

The session's sandbox lives in a fresh directory under /tmp (traversable by
the ``cinder`` user) with free ports, so it never touches a developer's
sandbox; it is stopped by PID and removed at the end.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from deploy.sandbox import SandboxLayout, down, up
from tests.support import free_port


@pytest.fixture(scope="session")
def sandbox():
    """A running sandbox controller (sshd, supervisord, cinder-api on SQLite)."""
    base = Path(tempfile.mkdtemp(prefix="devloop-it-"))
    base.chmod(0o755)
    layout = SandboxLayout(base / "controller", free_port(), free_port(), name="it-sandbox")
    try:
        up(layout)
        yield layout
    finally:
        down(layout, purge=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cinder_dir(sandbox) -> Path:
    """The sandbox controller's installed cinder package."""
    return next((sandbox.venv / "lib").glob("python3*/site-packages/cinder"))


def supervised_pid(layout: SandboxLayout) -> int | None:
    """The PID supervisord reports for cinder-api (None when stopped)."""
    out = subprocess.run(["supervisorctl", "-c", str(layout.supervisor_conf), "pid", "cinder-api"],
                         capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() and int(out) > 0 else None
