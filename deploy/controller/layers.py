"""Lay a release tree over a common tree: the one tree a deploy sends.

A feature written for several Cinder releases keeps what they share in a
common tree and what must differ in a small tree per release; its
MANIFEST.txt says which tree is which (:mod:`deploy.controller.manifest`,
``cinder_patch/README.md``). :func:`compose` copies the files of the
layers, a later layer's file over an earlier one's, into a directory of
their own under the user's cache (``layered/<key>/cinder``), and everything
that reads a source tree (the one-call send and rsync, the compile check,
``--diff``, the record of what was sent, ``status``'s drift) reads that one
as any other. Each copy keeps its file's mode, size and modification time,
so composing again copies only what changed, and a deploy sends only what
changed since the last one. What reads the developer's own files (``watch``,
the IDE's ``pathMappings``) asks :func:`winning_files` which layer holds
each file.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Sequence

from deploy.base.errors import DevloopError
from deploy.controller.send import excluded
from deploy.controller.sent_state import cache_dir


class LayerError(DevloopError):
    """The layers cannot be laid one over the other."""


def winning_files(layers: Sequence[Path], excludes: Sequence[str] = ()) -> dict[str, Path]:
    """Every file of the layered tree: its path inside the tree -> the layer file that wins.

    A later layer's file wins over an earlier one's. What ``excludes``
    (rsync patterns) leaves out is not listed; symlinks are (composed as
    symlinks, as rsync sends them).

    Raises:
        LayerError: a path is a file in one layer and a directory in another.
    """
    files: dict[str, Path] = {}
    directories: dict[str, Path] = {}
    for layer in layers:
        stack = [("", Path(layer))]
        while stack:
            prefix, directory = stack.pop()
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if not _directory_excluded(entry.name, excludes):
                        directories.setdefault(rel, Path(entry.path))
                        stack.append((rel + "/", Path(entry.path)))
                elif not excluded(rel, excludes):
                    files[rel] = Path(entry.path)
    clash = sorted(set(files) & set(directories))
    if clash:
        raise LayerError(f"cannot lay {' over '.join(map(str, layers))}: {files[clash[0]]} "
                         f"is a file where {directories[clash[0]]} is a directory")
    return files


def _directory_excluded(name: str, excludes: Sequence[str]) -> bool:
    """Whether rsync's patterns leave out a directory called ``name`` (and all in it)."""
    return any(fnmatch.fnmatchcase(name, pattern[:-1] if pattern.endswith("/") else pattern)
               for pattern in excludes if "/" not in pattern.rstrip("/"))


def composed_dir(layers: Sequence[Path], excludes: Sequence[str] = ()) -> Path:
    """Where :func:`compose` puts these layers: ``<user cache>/layered/<key>/cinder``.

    The key covers the layers and the excludes: the same layers always
    compose into the same directory (so what was last sent from it is known),
    two different ones never share one.
    """
    key = json.dumps([[str(Path(layer).resolve()) for layer in layers], list(excludes)])
    return cache_dir() / "layered" / hashlib.sha256(key.encode()).hexdigest()[:16] / "cinder"


def compose(layers: Sequence[Path], excludes: Sequence[str] = ()) -> Path:
    """Lay ``layers`` one over the other in :func:`composed_dir`; return that directory.

    Only files that differ from their copy (kind, size, modification time
    or mode) are copied; copies of files no layer holds any more are
    removed. Two runs composing the same layers at once take turns.

    Raises:
        LayerError: see :func:`winning_files`; the cache cannot be written.
    """
    wanted = winning_files(layers, excludes)
    dest = composed_dir(layers, excludes)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with open(dest.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for rel, origin in wanted.items():
                _copy(origin, dest / rel)
            _remove_others(dest, set(wanted))
    except OSError as exc:
        raise LayerError(f"cannot compose {' + '.join(map(str, layers))} in {dest}: "
                         f"{exc.strerror or exc}") from None
    return dest


def _copy(origin: Path, copy: Path) -> None:
    """Make ``copy`` what ``origin`` is, unless it already is (rsync's quick check)."""
    source = os.lstat(origin)
    try:
        present = os.lstat(copy)
    except FileNotFoundError:
        present = None
    if stat.S_ISLNK(source.st_mode):
        if present is not None and stat.S_ISLNK(present.st_mode) \
                and os.readlink(copy) == os.readlink(origin):
            return
    elif present is not None and stat.S_ISREG(present.st_mode) and (
            present.st_size, present.st_mtime_ns, stat.S_IMODE(present.st_mode)) == (
            source.st_size, source.st_mtime_ns, stat.S_IMODE(source.st_mode)):
        return
    if present is not None and stat.S_ISDIR(present.st_mode):
        shutil.rmtree(copy)
    copy.parent.mkdir(parents=True, exist_ok=True)
    partial = copy.with_name(f".{copy.name}.{os.getpid()}.partial")
    if stat.S_ISLNK(source.st_mode):
        os.symlink(os.readlink(origin), partial)
    else:
        shutil.copy2(origin, partial, follow_symlinks=False)
    os.replace(partial, copy)


def _remove_others(dest: Path, wanted: set[str]) -> None:
    """Remove what no layer holds any more (then the directories left empty)."""
    for top, dirs, names in os.walk(dest, topdown=False):
        rel_top = os.path.relpath(top, dest)
        prefix = "" if rel_top == "." else rel_top.replace(os.sep, "/") + "/"
        # (os.walk lists a symlink to a directory among the directories)
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            if prefix + name not in wanted:
                os.unlink(os.path.join(top, name))
        if top != str(dest) and not os.listdir(top):
            os.rmdir(top)
