"""Write a deploy's record (state "applying") and clear the way for its files.

argv: RECORD_PATH RECORD_JSON. The record is written atomically (its
directory created), before rsync replaces anything. Then what a writer
killed mid-file left beside the files the record lists is removed: rsync's
temporary copies (``.NAME.XXXXXX``, left when its receiver on the
controller was killed) and deploy/remote/receive_tree.py's or
deploy/remote/restore.py's whose process is gone (``.NAME.devloop-PID``,
``.devloop-restore-PID-NAME``), so deploying again leaves no stray file.
Python 2.7 and 3.6+, standard library only.
"""
import errno
import json
import os
import re
import sys


def alive(pid):
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
    """Remove the leftovers beside the files ``rels`` (relative to ``target``)."""
    names = {}
    for rel in rels:
        directory, name = os.path.split(os.path.join(target, rel))
        names.setdefault(directory, set()).add(name)
    for directory, wanted in names.items():
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if leftover(entry, wanted):
                os.unlink(os.path.join(directory, entry))


path, text = sys.argv[1], sys.argv[2]
try:
    os.makedirs(os.path.dirname(path))
except OSError as exc:
    if exc.errno != errno.EEXIST:
        raise
with open(path + ".tmp", "w") as handle:
    handle.write(text)
os.rename(path + ".tmp", path)  # atomic on POSIX, and overwrites (os.replace is 3.3+)
record = json.loads(text)
sweep(record["target"], record.get("replaced", []) + record.get("added", []))
