import errno
import os
import re


def alive(pid):
    """Whether process ``pid`` still runs (ours or not)."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def leftover(entry, names):
    """Whether ``entry`` is a temporary copy of one of ``names`` that a killed writer left."""
    match = re.match(r"^\.devloop-restore-(\d+)-(.+)$", entry)
    if match:
        return match.group(2) in names and not alive(int(match.group(1)))
    match = re.match(r"^\.(.+)\.devloop-(\d+)$", entry)
    if match:
        return match.group(1) in names and not alive(int(match.group(2)))
    match = re.match(r"^\.(.+)\.[A-Za-z0-9]{6}$", entry)     # rsync's temporary name
    return bool(match) and match.group(1) in names


def sweep(target, rels):
    """Remove the leftovers beside the files ``rels`` (relative to ``target``).

    Each directory is reached without following a symlink (Refused if one
    is on the way); a missing one is skipped.
    """
    names = {}
    for rel in rels:
        directory, name = os.path.split(rel)
        names.setdefault(directory, set()).add(name)
    for directory, wanted in sorted(names.items()):
        fd = enter(target, directory)
        if fd is None:
            continue
        try:
            for entry in os.listdir("."):
                if leftover(entry, wanted):
                    unlink_here(entry)
        finally:
            leave(fd)
