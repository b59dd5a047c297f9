"""Fixtures shared by the unit specs."""
from __future__ import annotations

import os
import sys

import pytest

from deploy.base.errors import SandboxError
from deploy.sandbox.train import find_python27


@pytest.fixture(params=["2.7", "3.6", "project"])
def python(request: pytest.FixtureRequest) -> str:
    """Each Python a controller may run the remote helpers with (a missing one fails)."""
    if request.param == "project":
        return sys.executable
    if request.param == "3.6":
        path = os.environ.get("DEVLOOP_PYTHON36",
                              os.path.expanduser("~/.pyenv/versions/3.6.15/bin/python3.6"))
        if not os.access(path, os.X_OK):
            pytest.fail(f"no Python 3.6 at {path}: install it (pyenv install 3.6.15) or set "
                        f"DEVLOOP_PYTHON36", pytrace=False)
        return path
    try:
        return find_python27()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
