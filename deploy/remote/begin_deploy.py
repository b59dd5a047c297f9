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
import sys


# devloop-include: leftovers


# devloop-include: fsnames


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
sweep(fs_name(record["target"]),
      [fs_name(rel) for rel in record.get("replaced", []) + record.get("added", [])])
