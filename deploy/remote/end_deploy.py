"""End a deploy through rsync: drop the stale bytecode, mark the record.

stdin: JSON ``{"record": RECORD}``, the deploy's record as it ends (state
"applied", or "empty" when rsync changed nothing), with the ``backups``
deploy/remote/begin_deploy.py proved. The compiled files of every path it
adds or replaces go first (``drop_compiled``: a stale ``.pyc`` could win
over its rewritten source), each reached without following a symlink;
then the record is written, fsynced. When it cannot be (a full disk), the
deploy is undone at once from its proven backups and its directory
removed: as if it never was; if even that fails, the record stays
"applying" for ``invoke rollback``.

Prints one JSON line: ``{"removed": [PATH, ...]}``, or ``refused``/``cut``
(deploy/controller/applying.py). The one-call deploy
(deploy/remote/receive_tree.py) and the rollback (deploy/remote/restore.py)
do the same themselves. Python 2.7 and 3.6+, standard library only.
"""
import json
import os
import sys


# devloop-include: inside


# devloop-include: bytecode


# devloop-include: leftovers


# devloop-include: backups


# devloop-include: undo


# devloop-include: fsnames


def end(record):
    """The answer for ``record``; names travel as text (JSON), the files are reached
    by ``fs_name``, to the byte."""
    target = fs_name(record["target"].rstrip("/"))
    removed = []
    try:
        for rel in record.get("added", []) + record.get("replaced", []):
            removed.extend(text_name(path) for path in drop_compiled(target, fs_name(rel)))
    except Refused as exc:
        return {"refused": said(exc)}
    deploy_dir = os.path.dirname(fs_name(record["backup"]))
    try:
        write_json(os.path.join(deploy_dir, "record.json"), record)
    except (IOError, OSError) as exc:
        cut = {"step": "record", "id": record.get("id"), "where": text_name(deploy_dir),
               "error": exc.strerror, "space": no_space(exc), "not_undone": None}
        try:
            undo_record(dict(record, state="applying"),
                        {"restored": [], "removed": [], "compiled": []}, forget_it=True)
        except (IOError, OSError, Refused) as again:
            cut["not_undone"] = getattr(again, "strerror", None) or said(again)
        return {"cut": cut}
    return {"removed": removed}


if __name__ == "__main__":
    job = json.loads(getattr(sys.stdin, "buffer", sys.stdin).read().decode("utf-8"))
    sys.stdout.write(json.dumps(end(job["record"])) + "\n")
