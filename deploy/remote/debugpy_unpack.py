"""Receive a debugpy wheel on stdin and unpack it for one debug session.

Usage: ``python -c <this> <state dir>/debug`` as root, in a dialogue
(``deploy/workflows/attach.py``): it first prints one JSON line saying which Python
and machine it runs on (so that the workstation picks the wheel that fits),
then reads the wheel to the end of its input and unpacks it into a
directory of its own, ``<state dir>/debug/attach-<pid>/``, beside Cinder's
package tree, never inside it (cinder-api finds it through the debug hook).
The files are listed in ``files.txt`` there; the debug guard removes the
whole directory when the session ends. Directories of earlier sessions that
no guard holds any more (a killed session) are removed first.

Prints a last JSON line ``{"dir", "files", "port"}`` (``port``: a free port
on the loopback for debugpy) or ``{"error"}``.

``<state dir>/debug`` and the session's directory are root's (0755), its
files root's (0644): the service user reads debugpy, and changes nothing.
A state dir or debug directory another user owns or can write is refused.

Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import io
import json
import os
import platform
import shutil
import socket
import sys
import zipfile

parent = sys.argv[1]

# devloop-include: state_dir


def say(data):
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (EnvironmentError, IndexError, ValueError):
        return False


def _holder():
    """The PID of the guard of a session still running here, or None."""
    try:
        with open(os.path.join(parent, "session.json")) as handle:
            pid = int(json.load(handle)["guard"])
    except (EnvironmentError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid) else None


def _free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def main():
    say({"python": list(sys.version_info[:2]), "machine": platform.machine()})
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    wheel = stdin.read()
    holder = _holder()
    if holder:
        say({"error": "a debug session (guard pid %d) already holds this controller" % holder})
        return 1
    if not wheel:
        say({"error": "no debugpy wheel came"})
        return 1
    try:
        ensure_dir(os.path.dirname(parent), 0o755)
        ensure_dir(parent, 0o755)           # the service user goes through, to debugpy
    except (Untrusted, EnvironmentError) as exc:
        say({"error": "cannot use %s: %s; cinder-devloop runs as root and keeps its files "
                      "only where no other user can write" % (parent, exc)})
        return 1
    for name in os.listdir(parent):
        if name.startswith("attach-"):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    target = os.path.join(parent, "attach-%d" % os.getpid())
    os.mkdir(target)
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if not any(n.startswith("debugpy/") for n in names):
                raise ValueError("not a debugpy wheel")
            archive.extractall(target)
    except (ValueError, zipfile.BadZipfile, EnvironmentError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        say({"error": "cannot unpack the debugpy wheel: %s" % exc})
        return 1
    for root, dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    write_new(os.path.join(target, "files.txt"), ("\n".join(names) + "\n").encode("utf-8"))
    say({"dir": target, "files": len(names), "port": _free_port()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
