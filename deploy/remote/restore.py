"""Undo deploys: restore the files they replaced, remove the files they added.

argv[1] is a JSON list of records, newest first. Each replaced file is copied
back from the deploy's backup to a temporary name beside the target and
renamed over it, so every file is wholly old or wholly new at any moment
(a replaced symlink, which rsync keeps as a symlink, comes back as one).
A deploy interrupted before its end ("applying") lists what it meant to
change: a replaced file with no backup yet was not replaced, and an added
file that is not there was not added; both are skipped. What a writer
killed mid-file left beside the deploy's files is removed first: the
temporary copies of this helper and of deploy/remote/receive_tree.py whose
process is gone (``.NAME.devloop-PID``, ``.devloop-restore-PID-NAME``) and
rsync's (``.NAME.XXXXXX``). The compiled
files of every source restored or removed go too (``drop_compiled``): a
stale ``.pyc`` must not outlive the rollback. Prints a JSON summary. Python 2.7 and 3.6+, standard library only.
"""
import json
import os
import shutil
import sys
import time


# devloop-include: leftovers


def restore(source, dest):
    """Copy ``source`` beside ``dest`` and rename it over: never half a file."""
    tmp = os.path.join(os.path.dirname(dest),
                       ".devloop-restore-%d-%s" % (os.getpid(), os.path.basename(dest)))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    if os.path.islink(source):  # rsync deploys symlinks and keeps them as such
        os.symlink(os.readlink(source), tmp)
        info = os.lstat(source)
        os.lchown(tmp, info.st_uid, info.st_gid)
    else:
        shutil.copy2(source, tmp)
        info = os.stat(source)
        os.chown(tmp, info.st_uid, info.st_gid)
    os.rename(tmp, dest)  # atomic on POSIX (os.replace is 3.3+)


# devloop-include: bytecode


# devloop-include: fsnames


restored, removed, compiled = [], [], []
for record in json.loads(sys.argv[1]):
    # (names as JSON carries them; the files reached by fs_name, to the byte)
    target, backup = fs_name(record["target"]), fs_name(record["backup"])
    sweep(target, [fs_name(rel) for rel in record.get("replaced", []) + record.get("added", [])])
    for rel in record.get("replaced", []):
        source, dest = os.path.join(backup, fs_name(rel)), os.path.join(target, fs_name(rel))
        if not os.path.lexists(source):
            continue  # never replaced: the deploy stopped before this file
        restore(source, dest)
        compiled.extend(text_name(path) for path in drop_compiled(dest))
        restored.append(rel)
    for rel in record.get("added", []):
        path = os.path.join(target, fs_name(rel))
        if os.path.lexists(path):
            os.unlink(path)
            removed.append(rel)
        # even if the source was gone already
        compiled.extend(text_name(path) for path in drop_compiled(path))
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
