"""Undo deploys: restore the files they replaced, remove the files they added.

stdin: JSON ``{"records": [RECORD, ...], "forget": bool}``, newest first.

Everything is checked before anything changes: the way to every file the
records touch holds no symlink below the package (root never writes or
removes through one), and every backup to restore is what its record says
(size and sha256, or the symlink it was). Otherwise nothing is done and the
answer says why (``refused``, or ``damaged``: which deploy, which file, and
how its backup differs).

Then, per record: what a writer killed mid-file left beside its files goes
(the temporary copies of this helper and of deploy/remote/receive_tree.py
whose process is gone, ``.NAME.devloop-PID``, ``.devloop-restore-PID-NAME``,
and rsync's ``.NAME.XXXXXX``); each added file is removed (and its emptied
directories); each replaced file is put back from its backup, beside its
target first and renamed over it (a hard link where the backup shares the
package's filesystem, else a copy), so every file is wholly old or wholly
new at any moment; the compiled files of each go too (``drop_compiled``: a
stale ``.pyc`` must not outlive the rollback). The record is then marked
"rolled back", or, with ``forget`` (a deploy that failed and is undone at
once), its directory is removed. A deploy interrupted before its end
("applying") lists what it meant to change: a replaced file with no proven
backup was never replaced, and an added file that is not there was never
added; both are skipped. (A record written before backups were proven lists
no hashes: a backup that is there is restored unchecked.)

Prints one JSON line: ``{"restored", "removed", "compiled"}`` (and
``unmarked``: the records there was no room to mark "rolled back"); with
``failed`` or ``refused`` too if it stopped part-way (a full disk, a symlink
planted since the check); or only ``{"refused"}``/``{"damaged"}`` when it
changed nothing. Python 2.7 and 3.6+, standard library only.
"""
import json
import sys


# devloop-include: inside


# devloop-include: bytecode


# devloop-include: leftovers


# devloop-include: backups


# devloop-include: undo


# devloop-include: fsnames


def main():
    job = json.loads(getattr(sys.stdin, "buffer", sys.stdin).read().decode("utf-8"))
    records = job["records"]
    refusal = check_undo(records)
    if refusal:
        return refusal
    summary = {"restored": [], "removed": [], "compiled": []}
    for record in records:
        try:
            undo_record(record, summary, forget_it=job.get("forget"))
        except Refused as exc:           # a symlink planted since the check
            summary["refused"] = said(exc)
            return summary
        except (IOError, OSError) as exc:
            summary["failed"] = {"id": record.get("id", "?"), "error": text_name("%s%s" % (
                exc.strerror or exc, ": %s" % exc.filename if exc.filename else ""))}
            return summary
    return summary


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()) + "\n")
