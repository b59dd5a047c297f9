"""What is being deployed: the source tree's git commit and local changes."""
from __future__ import annotations

import subprocess

from deploy.inventory import Inventory


def source_revision(inventory: Inventory) -> dict[str, object]:
    """The git commit of the source tree and whether it has local changes.

    ``{"commit": None, "dirty": None}`` when the tree is not in a git checkout.
    """
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
