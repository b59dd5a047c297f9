"""What this checkout last sent to a controller, kept on the developer's side.

A deploy of one changed file out of a whole Cinder checkout (1,500 files,
33 MB) should cost what the one file costs, not what the tree costs. So
after each deploy the (size, mtime) of every file of the tree is kept here,
per source tree, controller and target directory, in
``$DEVLOOP_USER_CACHE`` (default ``$XDG_CACHE_HOME/cinder-devloop``, else
``~/.cache/cinder-devloop``; not ``$DEVLOOP_CACHE_DIR``, the container
trees' cache), under ``sent/``. The next deploy sends only
the files whose (size, mtime) differ from it, plus that record, which the
controller checks against its own files (:mod:`deploy.remote.receive_tree`,
``expect``): another checkout's deploy, a rollback or a hand edit there
changes a file's size or mtime, and the deploy then falls back to comparing
those files too, as rsync would.

The comparison is rsync's own quick check (size and modification time, to
the nanosecond); ``--checksum``, ``--diff`` and ``--dry-run`` take the full
comparison and leave the record alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from deploy.transport.tree import Stat, read_tree

#: bump when the file's meaning changes: an old one is then ignored
FORMAT = 1


def cache_dir() -> Path:
    """Where the records live: ``$DEVLOOP_USER_CACHE``, else the user's cache dir."""
    explicit = os.environ.get("DEVLOOP_USER_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cinder-devloop"


def state_file(where: str, target_dir: str, source: Path, excludes: Sequence[str]) -> Path:
    """The record for ``source`` (with ``excludes``) laid over ``where``:``target_dir``.

    ``where`` names the controller as reached (``user@address:port``): two
    inventories naming one controller share the record, two controllers
    never do.
    """
    key = json.dumps([FORMAT, where, target_dir.rstrip("/"), str(Path(source).resolve()),
                      list(excludes)])
    return cache_dir() / "sent" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def load(path: Path) -> dict[str, Stat] | None:
    """The record at ``path``; None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text())
        return {rel: (int(size), int(mtime)) for rel, size, mtime in data["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(path: Path, files: Mapping[str, Stat]) -> None:
    """Write the record atomically (a killed deploy leaves the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"format": FORMAT,
                               "files": [[rel, s, m] for rel, (s, m) in sorted(files.items())]}))
    os.replace(tmp, path)


def forget(path: Path) -> None:
    """Drop the record: the next deploy compares the whole tree."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def scan(source: Path, excludes: Sequence[str]) -> dict[str, Stat] | None:
    """(size, mtime) of every file of the tree the deploy sends, by relative path.

    The tree's rules decide (:mod:`deploy.transport.tree`: the excludes, what
    is never code, what git ignores). None when the tree holds a symlink
    (rsync sends those).

    Raises:
        SourceTreeError: a directory cannot be read.
    """
    tree = read_tree(source, excludes)
    return None if tree.links else tree.files


def rescan(source: Path, record: Mapping[str, Stat], seen: Iterable[str]) -> dict[str, Stat] | None:
    """The tree as ``record`` says, with the files in ``seen`` (relative paths) read anew.

    For ``watch``, whose watcher names every file saved since the last run:
    only those are looked at. A seen file that is gone is dropped (a deploy
    never deletes on the controller). None if a seen path is a symlink or
    not a plain file.
    """
    files = dict(record)
    for rel in seen:
        try:
            info = os.lstat(Path(source) / rel)
        except FileNotFoundError:
            files.pop(rel, None)
            continue
        if not stat.S_ISREG(info.st_mode):
            return None
        files[rel] = (info.st_size, info.st_mtime_ns)
    return files


@dataclass(frozen=True, slots=True)
class Delta:
    """A deploy against a record: what to send, and what the controller must hold."""

    changed: list[str]            # new or different since the record: sent
    expect: dict[str, Stat]       # unchanged since the record: checked on the controller


def delta(local: Mapping[str, Stat], record: Mapping[str, Stat]) -> Delta:
    """Split the local tree into files changed since ``record`` and files that are not."""
    changed = sorted(rel for rel, now in local.items() if record.get(rel) != now)
    expect = {rel: now for rel, now in local.items() if record.get(rel) == now}
    return Delta(changed, expect)
