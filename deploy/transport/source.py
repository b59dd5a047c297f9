"""What is being deployed: the source tree's git commit and local changes.

The tree is on this workstation or, with ``source_host`` in the inventory,
on the devbox, where git then runs (over the task run's one connection to it).
"""
from __future__ import annotations

import shlex
import subprocess

from deploy.base import output
from deploy.base.errors import DevloopError
from deploy.base.inventory import Inventory

# One round trip on a devbox: the commit, then the status lines.
_REMOTE_GIT = 'git -C "$1" rev-parse HEAD && git -C "$1" status --porcelain -- .'


def source_revision(inventory: Inventory) -> dict[str, object]:
    """The git commit of the source tree and whether it has local changes.

    ``{"commit": None, "dirty": None}`` when the tree is not in a git
    checkout, or the source host cannot say.
    """
    if inventory.source_host is not None:
        return _remote_revision(inventory)

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(inventory.source), *args],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", ".")) if commit else None
    return {"commit": commit, "dirty": dirty}


def build_remote_git_argv(source: str) -> list[str]:
    """``sh -c 'git -C "$1" rev-parse HEAD && git -C "$1" status --porcelain -- .' sh SOURCE``."""
    return ["sh", "-c", _REMOTE_GIT, "devloop-git", source]


def _remote_revision(inventory: Inventory) -> dict[str, object]:
    from deploy.transport.sync import run_on_source

    host = inventory.source_host
    assert host is not None
    unknown: dict[str, object] = {"commit": None, "dirty": None}
    text = shlex.join(build_remote_git_argv(str(inventory.source)))
    try:
        output.command(host.name, text)
        result = run_on_source(host, text)
    except DevloopError as exc:
        output.warn(f"cannot read the source revision on {host.name}: {exc}")
        return unknown
    lines = result.stdout.splitlines()
    if result.exited != 0 or not lines:
        return unknown
    return {"commit": lines[0].strip(), "dirty": any(line.strip() for line in lines[1:])}
