"""Undo deploys: restore the files they replaced, remove the files they added.

argv[1] is a JSON list of records, newest first. Each replaced file is copied
back from the deploy's backup to a temporary name beside the target and
renamed over it, so every file is wholly old or wholly new at any moment.
A deploy interrupted before its end ("applying") lists what it meant to
change: a replaced file with no backup yet was not replaced, and an added
file that is not there was not added; both are skipped. The compiled
files of every source restored or removed go too (``drop_compiled``, the
same as drop_bytecode.py's): a stale ``.pyc`` must not outlive the rollback.
Prints a JSON summary. Python 2.7 and 3.6+, standard library only.
"""
import errno
import json
import os
import shutil
import sys
import tempfile
import time


def drop_compiled(path):
    """Remove what Python compiled from the source file ``path``; the paths removed.

    A compiled file left behind can outlive or outrank its source: Python 2
    imports ``x.pyc`` (or ``x.pyo``) beside a removed ``x.py``, Python 3 a
    sourceless ``x.pyc`` there, and either trusts a cached file whose
    source changed within the same second and size. So ``x.pyc``/``x.pyo``
    beside it go, and ``__pycache__/x.<tag>.pyc`` (``.opt-N``, ``.pyo``);
    an emptied ``__pycache__`` too.
    """
    if not path.endswith(".py"):
        return []
    directory, name = os.path.split(path)
    stem = name[:-3]
    gone = [compiled for compiled in (path + "c", path + "o") if unlink_if_there(compiled)]
    cache = os.path.join(directory, "__pycache__")
    try:
        entries = os.listdir(cache)
    except OSError:
        return gone
    for entry in entries:
        parts = entry[len(stem) + 1:].split(".") if entry.startswith(stem + ".") else []
        # x.cpython-36.pyc, x.cpython-36.opt-1.pyc, x.cpython-34.pyo: never y.x.* or x.y.*
        if (parts and parts[-1] in ("pyc", "pyo")
                and (len(parts) == 2 or len(parts) == 3 and parts[1].startswith("opt-"))):
            if unlink_if_there(os.path.join(cache, entry)):
                gone.append(os.path.join(cache, entry))
    try:
        os.rmdir(cache)  # only succeeds while empty
    except OSError:
        pass
    return gone


def unlink_if_there(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return False
    return True


restored, removed, compiled = [], [], []
for record in json.loads(sys.argv[1]):
    target, backup = record["target"], record["backup"]
    for rel in record.get("replaced", []):
        source, dest = os.path.join(backup, rel), os.path.join(target, rel)
        if not os.path.lexists(source):
            continue  # never replaced: the deploy stopped before this file
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".devloop-restore-")
        os.close(fd)
        shutil.copy2(source, tmp)
        info = os.stat(source)
        os.chown(tmp, info.st_uid, info.st_gid)
        os.rename(tmp, dest)  # atomic on POSIX (os.replace is 3.3+)
        compiled.extend(drop_compiled(dest))
        restored.append(rel)
    for rel in record.get("added", []):
        path = os.path.join(target, rel)
        if os.path.lexists(path):
            os.unlink(path)
            removed.append(rel)
        compiled.extend(drop_compiled(path))  # even if the source was gone already
        parent = os.path.dirname(path)
        while parent.startswith(target + os.sep):
            try:
                os.rmdir(parent)  # only succeeds while empty
            except OSError:
                break
            parent = os.path.dirname(parent)
    record["state"] = "rolled back"
    record["rolled_back_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = os.path.join(os.path.dirname(backup), "record.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    os.rename(path + ".tmp", path)
sys.stdout.write(json.dumps({"restored": restored, "removed": removed,
                             "compiled": compiled}) + "\n")
