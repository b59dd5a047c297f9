"""``invoke sandbox.up``: boot a built-in controller, then turn fast restart on.

A sandbox is a development controller this tool made, so its service
definition is ours to change: with fast restart a deploy of ``cinder/``
restarts cinder-api in well under a second, where a cold start takes
1.5-5 s and makes ``invoke loop`` slower than the commands it replaces
(issue 19). DevStack's uWSGI unit is left as DevStack runs it (fast restart
is refused there, see ``deploy.controller.fastrestart``).
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from deploy.base import output
from deploy.base.inventory import parse_inventory
from deploy.controller.fastrestart import switch
from deploy.transport.layout import laid_out


def up(kind: ModuleType, layout: Any, fast_restart: bool = True, timeout: float = 120.0) -> None:
    """Boot the sandbox of ``kind`` (its module) at ``layout``; fast restart on unless asked not.

    Raises:
        SandboxError / CommandFailed: a part could not be built or started.
        ServiceError / HealthCheckError: fast restart could not be turned on.
    """
    kind.up(layout)
    if not fast_restart:
        return
    root = Path(layout.root)
    inventory = parse_inventory(
        yaml.safe_dump({"source": str(root),
                        "controllers": {layout.name: layout.controller_entry()}}),
        root / "hosts.yaml")
    controller = laid_out(inventory.controllers[layout.name])
    if controller.layout == "devstack":
        output.detail("fast restart: left off (uWSGI runs the API; "
                      "see docs/tasks.md: Fast restart)")
        return
    switch(controller, True, timeout)
