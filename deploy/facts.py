"""What is there on a controller: where cinder lives and who owns it.

Each fact is one remote command; callers ask once per task run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from deploy.commands import Remote, tail
from deploy.errors import DevloopError
from deploy.remote import script


@dataclass(frozen=True, slots=True)
class Target:
    """The controller's cinder package and its owner (``user:group``)."""

    cinder_dir: str
    owner: str


def locate(remote: Remote) -> Target:
    """Find the cinder package and its owner in one round trip.

    Raises:
        DevloopError: the controller's python cannot find cinder.
    """
    if remote.controller.cinder_dir:
        # known from the inventory: only its owner is asked (no python start-up)
        argv = ["stat", "-c", "%U:%G", remote.controller.cinder_dir]
        owner = remote.run(argv, hint="check cinder_dir in the inventory").stdout.strip()
        return Target(remote.controller.cinder_dir, owner)
    argv = [remote.controller.python, "-c", script("locate"), ""]
    result = remote.run(argv, check=False)
    if result.exited != 0:
        raise DevloopError(
            f"{remote.name}: cannot find the cinder package with {remote.controller.python} "
            f"({tail(result.stderr + result.stdout, 1) or 'no output'}); "
            f"set cinder_dir (or python) for this controller in the inventory")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return Target(data["cinder_dir"], data["owner"])
