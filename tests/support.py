"""Helpers shared by the integration tests: ports, the CLI, inventories."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 30.0,
               interval: float = 0.05) -> object:
    """Poll ``condition`` until it returns something true; fail on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def invoke(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, ``python -m invoke <args>``, on the project's tasks."""
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def write_inventory(path: Path, source: Path, controllers: dict[str, dict[str, object]]) -> Path:
    """Write a hosts.yaml naming ``source`` and the given controller entries."""
    path.write_text(yaml.safe_dump({"source": str(source), "controllers": controllers},
                                   sort_keys=False))
    return path
