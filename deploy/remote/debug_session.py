"""Say whether a debug session holds this controller.

Usage: ``python -c <this> <state dir>/debug/session.json``. The debug guard
(``debug_guard.py``) writes that file when a session starts and removes it
at the end; a file whose guard no longer runs (a guard that was KILLed) is
no session. Prints ``{}`` or the file's content (``guard``, ``since``,
``mode``, ``port``) with ``age`` in seconds.

Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import json
import sys
import time


def main():
    try:
        with open(sys.argv[1]) as handle:
            session = json.load(handle)
        with open("/proc/%d/stat" % int(session["guard"])) as handle:
            alive = handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (EnvironmentError, ValueError, KeyError, TypeError, IndexError):
        alive = False
    if not alive:
        session = {}
    else:
        session["age"] = int(time.time() - float(session.get("since") or time.time()))
    sys.stdout.write(json.dumps(session) + "\n")


if __name__ == "__main__":
    main()
