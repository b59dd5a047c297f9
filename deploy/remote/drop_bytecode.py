"""Remove the compiled files of the sources a deploy (rsync's path) wrote.

argv: RECORD, the deploy's record.json, which lists every path it adds or
replaces under its target. Prints one JSON line: {"removed": [PATH, ...]}.
The one-call deploy (receive_tree.py) and the rollback (restore.py) do the
same themselves, with the same ``drop_compiled``. Python 2.7 and 3.6+,
standard library only.
"""
import errno
import json
import os
import sys


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


def main():
    with open(sys.argv[1]) as handle:
        record = json.load(handle)
    removed = []
    for rel in record.get("added", []) + record.get("replaced", []):
        removed.extend(drop_compiled(os.path.join(record["target"], rel)))
    sys.stdout.write(json.dumps({"removed": removed}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
