"""Small Python programs that run on the controller with its own python.

Each is a standalone script (stdlib, plus what Cinder itself installs) sent as
``python3 -c <source> <args...>``: one SSH round trip does a whole job, and
nothing has to be installed on the controller.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def script(name: str) -> str:
    """The source of ``deploy/remote/<name>.py``."""
    return (Path(__file__).parent / f"{name}.py").read_text()
