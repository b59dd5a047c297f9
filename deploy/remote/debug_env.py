"""Keep a service's environment for the debug guard, in a file only root can read.

Usage: ``python -c <this> <state dir>/debug/service-env.json`` with the
environment (a JSON object of names to values) on stdin. A unit's
``Environment=`` or a program's ``environment=`` may hold secrets; in the
guard's argv they would be anyone's to read in /proc, so they travel on
stdin into this root-only file (mode 600, in the root-only state
directory), which the guard reads and removes. Prints ``{"ok": true}``.

Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import json
import os
import sys

# devloop-include: state_dir


def main():
    path = sys.argv[1]
    data = getattr(sys.stdin, "buffer", sys.stdin).read()
    env = json.loads(data.decode("utf-8"))
    if not isinstance(env, dict):
        sys.exit("the environment is not a JSON object")
    debug_dir = os.path.dirname(path)
    ensure_dir(os.path.dirname(debug_dir), 0o755)
    ensure_dir(debug_dir, 0o755)
    write_new(path, data, 0o600)
    sys.stdout.write(json.dumps({"ok": True}) + "\n")


if __name__ == "__main__":
    main()
