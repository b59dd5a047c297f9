"""Begin a deploy through rsync: check the way, back up, record (state "applying").

stdin: JSON ``{"record": RECORD, "sizes": {REL: BYTES} or null}``. RECORD is
the deploy's record as rsync's dry run planned it (``target``, ``backup``,
``added``, ``replaced``); ``sizes`` the bytes of every file to send, if known.

Nothing is changed, and the answer says why, when the way to a file holds
a symlink (or anything else that is not a real directory) below the
package, which root will not write through (``refused``), or when the
package's filesystem has no room for every new file at once, or the
deploys' for the backups or the record (``no_space``). Otherwise what a
writer killed mid-file left beside those files is removed (rsync's
temporary copies ``.NAME.XXXXXX``; deploy/remote/receive_tree.py's or
deploy/remote/restore.py's whose process is gone), every file to replace
is kept in the record's ``backup`` directory, proven (its size and sha256,
read back, flushed to disk: deploy/remote/parts/backups.py), and the
record is written with those hashes, fsynced, before rsync replaces anything. The record's
``added``/``replaced`` are as the controller has them now.

Prints one JSON line: ``{"record": RECORD}``, or ``refused``/``no_space``
(deploy/controller/applying.py). Python 2.7 and 3.6+, standard library only.
"""
import json
import os
import sys


# devloop-include: inside


# devloop-include: leftovers


# devloop-include: backups


# devloop-include: fsnames


def begin(job):
    """The answer to ``job``; names travel as text (JSON), the files are reached by
    ``fs_name``, to the byte."""
    record, sizes = job["record"], job.get("sizes")
    shown_target = record["target"].rstrip("/")
    target, backup = fs_name(shown_target), fs_name(record["backup"])
    deploy_dir = os.path.dirname(backup)
    planned = record.get("replaced", []) + record.get("added", [])
    try:
        for rel in planned:
            check_way(target, fs_name(rel))
    except Refused as exc:
        return {"refused": said(exc)}
    if sizes:
        short = lacking(target, dict((fs_name(rel), size) for rel, size in sizes.items()))
        if short:
            where, needed, room = short[0]
            return {"no_space": {"what": "files", "where": text_name(where), "needed": needed,
                                 "free": room}}
    sweep(target, [fs_name(rel) for rel in planned])
    record.update({"state": "applying", "target": shown_target, "added": [], "replaced": [],
                   "backups": {}})
    try:
        for rel in sorted(planned):
            entry = keep(target, fs_name(rel), backup)
            if entry is None:
                record["added"].append(rel)
            else:
                record["replaced"].append(rel)
                record["backups"][rel] = entry
        sync_all([backup])
    except Refused as exc:
        forget(deploy_dir)
        return {"refused": said(exc)}
    except Unproven as exc:
        forget(deploy_dir)
        return {"unproven": said(exc)}
    except (IOError, OSError) as exc:
        forget(deploy_dir)
        if not no_space(exc):
            raise
        infos = [lstat_in(target, fs_name(rel)) for rel in planned]
        replaced = [info.st_size for info in infos if info is not None]
        where = os.path.dirname(deploy_dir)
        block = os.statvfs(where).f_frsize or 4096
        return {"no_space": {"what": "backups", "count": len(replaced),
                             "where": text_name(where),
                             "needed": sum(-(-size // block) * block for size in replaced),
                             "free": free_bytes(where)}}
    try:
        write_json(os.path.join(deploy_dir, "record.json"), record)
    except (IOError, OSError) as exc:
        forget(deploy_dir)
        if not no_space(exc):
            raise
        return {"no_space": {"what": "record", "id": record.get("id"),
                             "where": text_name(deploy_dir), "error": exc.strerror}}
    return {"record": record}


if __name__ == "__main__":
    answer = begin(json.loads(getattr(sys.stdin, "buffer", sys.stdin).read().decode("utf-8")))
    sys.stdout.write(json.dumps(answer) + "\n")
