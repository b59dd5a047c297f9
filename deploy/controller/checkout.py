"""The controller's own work in a git checkout (DevStack's ``/opt/stack/cinder``).

A deploy into a checkout must not overwrite what the controller's owner
changed there and did not commit: the helper
``deploy/remote/checkout_guard.py`` names such files among those a deploy
would replace (changes a deploy made itself do not count), and the deploy
refuses, with nothing changed, unless ``--force``.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from deploy.base.errors import UncommittedChanges
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote
from deploy.transport.tree import shown


def guard_job(remote: Remote) -> list[str]:
    """The ``guard`` entry of receive_tree's job: the helper's source and the state dir."""
    return [script("checkout_guard"), remote.controller.state_dir]


def refuse_uncommitted(remote: Remote, answer: Mapping[str, Any]) -> None:
    """Raise if the helper's ``answer`` names uncommitted files.

    Raises:
        UncommittedChanges: one line: the checkout, the files, what to do.
    """
    files = list(answer.get("uncommitted") or [])
    if not files:
        return
    named = ", ".join(f"cinder/{shown(rel)}" for rel in files[:5]) + \
        (" ..." if len(files) > 5 else "")
    raise UncommittedChanges(
        f"{remote.name}: the checkout {answer.get('checkout')} has uncommitted changes to "
        f"{len(files)} file(s) this deploy would replace ({named}); nothing was changed: "
        f"commit or stash them there, or deploy with --force")


def guard_checkout(remote: Remote, target: str, replaced: Sequence[str]) -> None:
    """Refuse a deploy (rsync path) that would replace the checkout's own work.

    Raises:
        UncommittedChanges: see :func:`refuse_uncommitted`.
    """
    if not replaced:
        return
    # the names as JSON: a name's every byte travels escaped in the command line
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c", script("checkout_guard"),
                         cinder_python(remote), target, remote.controller.state_dir,
                         json.dumps(list(replaced))], check=False)
    lines = result.stdout.strip().splitlines()
    if result.exited == 0 and lines:
        refuse_uncommitted(remote, json.loads(lines[-1]))
