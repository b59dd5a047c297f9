"""Send a small local overlay tree in one remote call, instead of rsync's five.

A deploy through rsync costs a dry run (for the record and the compile
list), the compile check, the ``applying`` record, the transfer and the
``applied`` record: five round trips. An overlay tree such as
``cinder_patch/`` is a few dozen kilobytes, so it is cheaper to send it
whole, compressed, on the stdin of ``deploy/remote/receive_tree.py``,
which decides what changed exactly as rsync would (size and modification
time, or the bytes with ``checksum``), compiles the changed ``.py`` files
with the controller's python, records the deploy, keeps every file it
replaces, and writes the rest atomically, all in one call.

After a first deploy, only the files changed since the last one are sent,
with a record of the others for the helper to check (``expect``; see
:mod:`deploy.controller.sent_state`), so a whole Cinder checkout goes this way too. A
tree too large to send whole the first time, one that holds a symlink, or
one on a devbox goes through rsync (:mod:`deploy.transport.sync`).
"""
from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from deploy.base.errors import DevloopError, SourceTreeError
from deploy.controller import checkout, facts, sent_state
from deploy.controller.applying import raise_for
from deploy.controller.fastrestart import fast_dir
from deploy.controller.precheck import CompileProblem, refuse, tell_compiled
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Dialogue, Remote, tail
from deploy.transport.sync import Change
from deploy.transport.tree import Rules, read_file

#: a tree larger than this (bytes, before compression) goes through rsync
ONE_CALL_BYTES = 4 * 1024 * 1024
#: and so does one with more files than this
ONE_CALL_FILES = 2000


def excluded(rel: str, patterns: Sequence[str]) -> bool:
    """Whether the file ``rel`` is left out by ``patterns`` (the inventory's excludes,
    rsync's syntax) or by what is never code (:data:`deploy.transport.tree.NOT_CODE`).

    Git is not asked here: :meth:`deploy.transport.tree.Rules.of` does.
    """
    return Rules(patterns).left_out(rel) is not None


@dataclass(frozen=True, slots=True)
class TreeFile:
    """One regular file of the source tree: where it goes and its mtime."""

    rel: str               # relative to the tree (and to the cinder package)
    path: Path
    mtime_ns: int


def fits(stats: Mapping[str, tuple[int, int]], rels: Sequence[str]) -> bool:
    """Whether the files ``rels`` (sizes in ``stats``) are few and small enough for one call."""
    return (len(rels) <= ONE_CALL_FILES
            and sum(stats[rel][0] for rel in rels) <= ONE_CALL_BYTES)


def one_call_files(source: Path, excludes: Sequence[str]) -> list[TreeFile] | None:
    """The tree's files if it can be sent whole in one call; None if it needs rsync.

    None when the files (after ``excludes``) hold more than
    :data:`ONE_CALL_BYTES` or :data:`ONE_CALL_FILES`, or the tree holds a
    symlink or anything else that is not a plain file or directory.
    """
    stats = sent_state.scan(source, excludes)
    if stats is None or not fits(stats, list(stats)):
        return None
    return tree_files(source, stats, stats)


def tree_files(source: Path, stats: Mapping[str, tuple[int, int]],
               rels: Iterable[str]) -> list[TreeFile]:
    """The files ``rels`` of ``source``, with the mtimes ``stats`` (a scan) gave them."""
    return [TreeFile(rel, Path(source) / rel, stats[rel][1]) for rel in sorted(rels)]


@dataclass(frozen=True, slots=True)
class Sent:
    """What the controller did (or would do, in a dry run) with the tree."""

    changes: list[Change]
    log_size: int | None
    #: what deploy/remote/db_state.py said, if it was asked (an "error" key if it failed)
    db: Mapping[str, Any] | None = None
    #: whether the controller is in fast-restart mode
    fast_mode: bool | None = None
    #: files of ``expect`` that differ on the controller (then nothing was done)
    stale: list[str] = field(default_factory=list)


def payload(files: Sequence[TreeFile], job: Mapping[str, Any]) -> bytes:
    """The job on the helper's stdin: ``job`` plus every file, as compressed JSON.

    Each file is read once, never through a symlink, with the mtime it had
    as read: what the helper compiles is what it writes.

    Raises:
        SourceTreeError: a file cannot be read (see :func:`deploy.transport.tree.read_file`).
    """
    document = dict(job)
    document["files"] = []
    for f in files:
        data, (_, mtime_ns) = read_file(f.path)
        document["files"].append([f.rel, mtime_ns, base64.b64encode(data).decode()])
    return zlib.compress(json.dumps(document).encode(), 1)


def db_question(remote: Remote) -> list[str]:
    """The ``db_state`` question: records.db_state's probe, as the service user."""
    ctl = remote.controller
    return [ctl.service_user, ctl.python or "{python}", "-c", script("db_state"), "{cinder_dir}",
            *ctl.config_files]


def start(remote: Remote, *, hash_paths: Sequence[str] | None = None,
          db: bool = False) -> Dialogue:
    """Start the helper and ask its questions: where Cinder is, and the database's state.

    With ``hash_paths`` (a list, maybe empty) the helper locates Cinder
    first, hashing those paths (read its answer with :func:`located`);
    without, the controller must have been located already in this run.
    """
    questions: dict[str, Any] = {}
    known: facts.Target | None = remote.located
    if hash_paths is not None or known is None:
        flags, args = facts.locate_arguments(remote, hash_paths or ())
        questions["locate"] = [script("locate"), list(flags), *args]
    else:
        questions["known"] = {"cinder_dir": known.cinder_dir, "python": facts.cinder_python(remote)}
    if db:
        questions["db_state"] = db_question(remote)
    dialogue = remote.dialogue(facts.with_cinder_python(
        remote.controller, STDLIB_ONLY, script("receive_tree"), []))
    dialogue.send(json.dumps(questions).encode() + b"\n")
    return dialogue


def located(remote: Remote, dialogue: Dialogue) -> facts.Target:
    """Read the helper's first answer: the controller's Cinder (kept on ``remote``).

    Raises:
        DevloopError: Cinder was not found there (the helper's message shown).
    """
    line = dialogue.readline()
    try:
        data = json.loads(line) if line.strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or "error" in data:
        result = dialogue.finish()
        raise facts.not_located(remote, tail(result.stderr + line + result.stdout, 1))
    return facts.accept(remote, data)


def cancel(dialogue: Dialogue) -> None:
    """End the helper without a tree: nothing changes on the controller."""
    dialogue.finish()


def finish(remote: Remote, dialogue: Dialogue, files: Sequence[TreeFile], target: str,
           *, owner: str = "", deploy_dir: str = "", record: Mapping[str, Any] | None = None,
           dry_run: bool = False, checksum: bool = False, guard: bool = False,
           expect: Mapping[str, tuple[int, int]] | None = None,
           undo: str = "invoke rollback") -> Sent:
    """Send the job with ``files`` and read what was done (or would be, ``dry_run``).

    With ``guard``, nothing is written if a file to replace holds the
    controller's git checkout's own uncommitted work.

    With ``expect`` ((size, mtime) of files not sent, as last sent), nothing
    is done if one of them differs on the controller: ``Sent.stale`` names them.

    ``undo``: the ``invoke rollback`` to name if the deploy fails part-way
    and cannot be undone in place.

    Raises:
        CompileError: a changed ``.py`` file does not compile with the
            controller's python; nothing was written.
        UncommittedChanges: ``guard`` found such files; nothing was written.
        UnsafePath / NoSpace / DeployCut: a symlink on the way, a full disk
            (:func:`deploy.controller.applying.raise_for`).
        SourceTreeError: a file cannot be read; nothing was sent.
        DevloopError: the helper failed (its output's tail shown).
    """
    job = {"target": target, "owner": owner, "log_file": remote.controller.log_file,
           "dry_run": dry_run, "checksum": checksum, "deploy_dir": deploy_dir,
           "record": dict(record or {}), "fast_dir": fast_dir(remote.controller)}
    if guard:
        job["guard"] = checkout.guard_job(remote)
    if expect:
        job["expect"] = [[rel, size, mtime] for rel, (size, mtime) in expect.items()]
    try:
        document = payload(files, job)
    except SourceTreeError:
        cancel(dialogue)           # nothing was sent: the helper ends, changing nothing
        raise
    result = dialogue.finish(document)
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if result.exited == 0 and lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "changes" not in answer:
        raise DevloopError(f"{remote.name}: sending the tree to {target} failed "
                           f"(exit {result.exited}): "
                           f"{tail(result.stderr + result.stdout, 5) or 'no output'}")
    refuse(remote, [CompileProblem(p["path"], p.get("line"), p["message"])
                    for p in answer.get("problems") or []])
    checkout.refuse_uncommitted(remote, answer)
    raise_for(remote, answer, undo)
    if not dry_run and not answer.get("stale"):
        tell_compiled(remote, int(answer.get("compiled") or 0))
    return Sent([Change(kind, rel) for kind, rel in answer.get("changes", [])],
                answer.get("log_size"), answer.get("db"), answer.get("fast_mode"),
                list(answer.get("stale") or []))
