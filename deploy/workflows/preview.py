"""``invoke deploy --diff``: the unified diff of each file a deploy would change.

The controller's copy is read over the task's open SFTP session; binary
files are only named.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from deploy.base import output
from deploy.base.errors import UsageError
from deploy.base.inventory import Inventory
from deploy.transport.commands import Remote
from deploy.transport.connection import translate_ssh_errors
from deploy.transport.sync import Change
from deploy.transport.tree import shown


def _text(data: bytes) -> list[str] | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def unified_diff(rel: str, old: bytes | None, new: bytes) -> str:
    """A ``diff -u`` of one file, ``a/cinder/<rel>`` against ``b/cinder/<rel>``."""
    old_lines = _text(old) if old is not None else []
    new_lines = _text(new)
    if old_lines is None or new_lines is None:
        return f"Binary files a/cinder/{rel} and b/cinder/{rel} differ\n"
    lines = difflib.unified_diff(old_lines, new_lines,
                                 "/dev/null" if old is None else f"a/cinder/{rel}",
                                 f"b/cinder/{rel}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def show_diffs(inventory: Inventory, remote: Remote, target: str,
               changes: list[Change]) -> None:
    """Print the diff of every changed file (on stdout).

    Raises:
        UsageError: the source lives on a devbox (only local trees are diffed).
    """
    if inventory.source_host is not None:
        raise UsageError("--diff needs the source on this machine; it is on "
                         f"{inventory.source_host.name}")
    with translate_ssh_errors(remote.controller):
        sftp = remote.conn.sftp()
        for change in changes:
            new = (Path(inventory.source) / change.path).read_bytes()
            old = None
            if change.kind == "changed":
                # (bytes: a name that is not UTF-8 reaches its file to the byte)
                with sftp.open(os.fsencode(f"{target}/{change.path}"), "rb") as handle:
                    old = handle.read()
            text = unified_diff(shown(change.path), old, new)
            for line in text.splitlines():
                output.result(line)
