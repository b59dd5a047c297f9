"""What every spec starts from: none of the developer's own session state.

A variable in the developer's shell would make a spec read what it did not
make: ``DEVLOOP_INVENTORY`` (another inventory for every task run without
``--inventory``), ``OS_*`` (another cloud, user or password for Keystone),
``SSH_AUTH_SOCK`` (the developer's agent and its keys). They are dropped
for the whole run; a spec that needs one sets its own.

Nor an inherited signal disposition: a suite started in the background by
a non-interactive shell (``pytest &``) has SIGINT ignored, every CLI it
spawns inherits that, and the specs' Ctrl-C (``watch``, ``logs --follow``,
``debug``) would reach nothing. SIGINT is Python's own again for the run.
"""
from __future__ import annotations

import os
import signal

import pytest


def _foreign(name: str) -> bool:
    return name in ("DEVLOOP_INVENTORY", "SSH_AUTH_SOCK") or name.startswith("OS_")


def pytest_configure(config: pytest.Config) -> None:
    for name in [name for name in os.environ if _foreign(name)]:
        del os.environ[name]
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
