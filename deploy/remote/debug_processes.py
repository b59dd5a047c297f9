"""Find the cinder-api processes left on the controller and end them.

Usage: ``python -c <this> <cinder-api path> <service user> <grace seconds>``.
A process is a leftover cinder-api when it runs as the service user and
its argv is the controller's cinder-api entry point, run directly or by a
python: ``[<cinder-api>, ...]`` or ``[<python>, <options>..., <cinder-api>,
...]`` (a shebang such as ``#!/usr/bin/python3 -s`` adds options). A
command line that only mentions cinder-api (``grep cinder-api``,
``python -c ... cinder-api``, a log viewer) is not one.

Each is sent TERM, then KILL if still there after the grace period, with
the service user's rights only: a PID that another process took meanwhile
(PIDs are reused) is never signalled as root.
Prints one JSON object: ``{"found": [{"pid", "argv"}], "killed": [pids],
"left": [pids]}``.

Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import json
import os
import pwd
import re
import signal
import sys
import time

_PYTHON = re.compile(r"^python[0-9.]*$")

# devloop-include: state_dir
_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")


def _same_file(arg, entry_point):
    if arg == entry_point:
        return True
    return os.path.isabs(arg) and os.path.realpath(arg) == os.path.realpath(entry_point)


def is_cinder_api(argv, entry_point):
    """True when ``argv`` runs ``entry_point`` itself (not merely names it)."""
    if not argv:
        return False
    if _same_file(argv[0], entry_point):
        return True
    if not _PYTHON.match(os.path.basename(argv[0])):
        return False
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in _OPTIONS_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("--"):
            return False              # --version, --help ...: not running a script
        if arg.startswith("-") and len(arg) > 1:
            if arg.startswith(("-W", "-X")):
                continue              # -Wignore, -Xdev
            if "c" in arg[1:] or "m" in arg[1:]:
                return False          # -c CODE / -m MODULE: the rest are their args
            continue                  # -s, -E, -u, -sE ...
        return _same_file(arg, entry_point)   # the script python runs
    return False


def _argv(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except EnvironmentError:  # IOError on Python 2
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1]]


def _uid(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (EnvironmentError, ValueError, IndexError):
        pass
    return None


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (EnvironmentError, IndexError):
        return False


def find(entry_point, uid):
    """PIDs and argv of the cinder-api processes running as ``uid``."""
    found = []
    for entry in sorted(os.listdir("/proc"), key=lambda e: (len(e), e)):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        argv = _argv(pid)
        if argv and _uid(pid) == uid and alive(pid) and is_cinder_api(argv, entry_point):
            found.append({"pid": pid, "argv": argv})
    return found


def end(pids, grace, user):
    """TERM, wait up to ``grace`` s, KILL (as ``user``); return (killed with KILL, still alive)."""
    for pid in pids:
        signal_as(user.pw_uid, user.pw_gid, pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    killed = [p for p in pids if alive(p)]
    for pid in killed:
        signal_as(user.pw_uid, user.pw_gid, pid, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in killed):
        time.sleep(0.05)
    return killed, [p for p in pids if alive(p)]


def main():
    entry_point, user, grace = sys.argv[1], sys.argv[2], float(sys.argv[3])
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        sys.stdout.write(json.dumps({"error": "no user %r on this controller" % user}) + "\n")
        return 2
    found = find(entry_point, entry.pw_uid)
    killed, left = end([p["pid"] for p in found], grace, entry)
    sys.stdout.write(json.dumps({"found": found, "killed": killed, "left": left}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
