"""What a deploy's helpers answer when they cannot write: one error line for each case.

The helpers that write under the package (``deploy/remote/receive_tree.py``,
``begin_deploy.py``, ``end_deploy.py``, ``restore.py``) answer, instead of
failing with a traceback:

* ``refused``: a symlink (or another non-directory) on the way to a file,
  which root will not write through; nothing was changed;
* ``no_space``: no room for the backups, the record or the new files (with
  how much was needed and how much is free); nothing was changed;
* ``cut``: replacing the files or marking the record failed part-way; the
  deploy was undone from its proven backups, or (``not_undone``: why not) its
  record stays ``applying`` and the message names the ``invoke rollback``
  that undoes it.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from deploy.base.errors import DeployCut, DevloopError, NoSpace, UnsafePath
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail


def ask(remote: Remote, helper: str, job: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``deploy/remote/<helper>.py`` with ``job`` (JSON) on its stdin; its JSON answer.

    The job goes on stdin, not in argv: a record of thousands of files is
    larger than one argument may be, and argv is anyone's to read.

    Raises:
        DevloopError: the helper failed or gave no answer (its output's tail shown).
    """
    dialogue = remote.dialogue([cinder_python(remote), *STDLIB_ONLY, "-c", script(helper)])
    result = dialogue.finish(json.dumps(job).encode())
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if result.exited == 0 and lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DevloopError(f"{remote.name}: deploy/remote/{helper}.py failed "
                           f"(exit {result.exited}): "
                           f"{tail(result.stderr + result.stdout, 5) or 'no output'}")
    return answer


def size_text(size: int) -> str:
    """``size`` bytes as people read it: ``300.0 KiB``, ``1.5 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def rollback_command(inventory_path: str, name: str) -> str:
    """The ``invoke rollback`` that undoes the newest deploy on controller ``name``."""
    return f"invoke rollback --inventory {inventory_path} --host {name}"


def outcome(deploy_id: str, not_undone: str | None, undo: str, *, named: bool) -> str:
    """The end of the line for a deploy cut part-way: undone, or the rollback to run."""
    if not not_undone:
        return f"deploy {deploy_id} undone: every file as it was" if named else \
            "undone: every file as it was"
    then = ("free some space, then run" if "No space left" in not_undone
            or "quota" in not_undone.lower() else "undo it with")
    return f"deploy {deploy_id} could not be undone here ({not_undone}): {then}: {undo}"


def raise_for(remote: Remote, answer: Mapping[str, Any], undo: str) -> None:
    """Raise the one error line a helper's ``answer`` carries, if it carries one.

    ``undo`` is the rollback to name when a deploy could not be undone in place.

    Raises:
        UnsafePath: a symlink on the way; nothing was changed.
        NoSpace: no room for the backups, the record or the files; nothing was changed.
        DeployCut: the deploy failed part-way (undone, or the rollback named).
        DevloopError: a backup did not read back as written; nothing was changed.
    """
    name = remote.name
    if answer.get("refused"):
        raise UnsafePath(f"{name}: {answer['refused']}; nothing was changed")
    if answer.get("unproven"):
        raise DevloopError(f"{name}: {answer['unproven']}; nothing was changed")
    room = answer.get("no_space")
    if room:
        if room["what"] == "backups":
            raise NoSpace(f"{name}: no room for the backups of the {room['count']} file(s) this "
                          f"deploy replaces in {room['where']}: {size_text(room['needed'])} "
                          f"needed, {size_text(room['free'])} free; nothing was changed")
        if room["what"] == "record":
            raise NoSpace(f"{name}: no room for the record of deploy {room['id']} in "
                          f"{room['where']} ({room['error']}); nothing was changed")
        raise NoSpace(f"{name}: no room for the new files in {room['where']}: "
                      f"{size_text(room['needed'])} needed, {size_text(room['free'])} free; "
                      f"nothing was changed")
    cut = answer.get("cut")
    if cut:
        if cut["step"] == "record":
            verb = "no room to mark" if cut.get("space") else "cannot mark"
            head = f"{name}: {verb} deploy {cut['id']} applied in {cut['where']} ({cut['error']})"
            told = outcome(cut['id'], cut.get('not_undone'), undo, named=False)
            raise DeployCut(f"{head}; {told}")
        raise DeployCut(f"{name}: replacing the files failed ({cut['error']}); "
                        f"{outcome(cut['id'], cut.get('not_undone'), undo, named=True)}")
