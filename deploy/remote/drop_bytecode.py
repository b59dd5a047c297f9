"""Remove the compiled files of the sources a deploy (rsync's path) wrote.

argv: RECORD, the deploy's record.json, which lists every path it adds or
replaces under its target. Prints one JSON line: {"removed": [PATH, ...]}.
The one-call deploy (receive_tree.py) and the rollback (restore.py) do the
same themselves, with the same ``drop_compiled`` (parts/bytecode.py). Python 2.7 and 3.6+,
standard library only.
"""
import json
import os
import sys


# devloop-include: bytecode


# devloop-include: fsnames


def main():
    with open(sys.argv[1]) as handle:
        record = json.load(handle)
    removed = []
    target = fs_name(record["target"])
    for rel in record.get("added", []) + record.get("replaced", []):
        removed.extend(text_name(path)
                       for path in drop_compiled(os.path.join(target, fs_name(rel))))
    sys.stdout.write(json.dumps({"removed": removed}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
