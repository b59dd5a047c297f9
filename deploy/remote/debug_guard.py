"""Run cinder-api in the foreground of this terminal; start the service after.

Usage: ``python -c <this> <session JSON>`` as root, over SSH with a pty
(``deploy/workflows/debug.py`` builds the JSON). The guard

1. writes the breakpoint hook (``debug_hook.py`` as ``devloop_debug.py``,
   a ``sitecustomize.py`` importing it, and a config file forcing one API
   worker) to a fresh directory;
2. starts ``<python> <cinder-api> <args> --config-file <one worker>`` as
   the service user, in a process group of its own made the terminal's
   foreground group, as a job-control shell does: Ctrl-C (``\\x03`` from
   Fabric) signals cinder-api and its worker, never the guard;
3. says when the API port is bound (cinder-api is ready);
4. when cinder-api ends, or the guard gets SIGHUP (the SSH connection
   dropped), SIGTERM or SIGINT, ends what is left of that process group
   (TERM, then KILL after a grace period) and, whatever happened, starts
   the managed service again and shows its status.

With ``"attach": {"dir", "port"}`` in the session (``invoke debug
--attach``), cinder-api's environment also carries ``GEVENT_SUPPORT=True``
(or debugpy's threads turn green and the worker hangs) and
``DEVLOOP_ATTACH``, so that the hook starts debugpy in the API worker on
``127.0.0.1:<port>``; once the API answers, the guard waits for that port
and says so. At the end debugpy's adapter (it daemonizes, leaving the
process group, and outlives cinder-api) is ended by PID, found by the
session's debugpy directory in its command line, and the directory (the
only place debugpy's files were put) is removed.

While a session runs, ``<state dir>/debug/session.json`` names the guard's
PID, so that ``invoke status`` can say a debug session holds the controller.
``<state dir>/debug`` is root's (0755: the service user reads debugpy's
files below it); the guard's log there, ``guard.log``, is root's alone
(0600), opened without following a link.

Exit codes: 0 the session ended (the developer quit or cinder-api stopped
after it was ready); 3 cinder-api exited before it was ready; 4 the guard
could not set up; 5 the API port was taken; 6 the service would not start.

Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    from urlparse import urlsplit

EXITED_AT_START, SETUP_FAILED, PORT_TAKEN, RESTORE_FAILED = 3, 4, 5, 6
ONE_WORKER = (
    "# Written by invoke debug: one API worker, so that one process (and one\n"
    "# pdb prompt) serves the requests.\n"
    "[DEFAULT]\nosapi_volume_workers = 1\n"
)
SITECUSTOMIZE = (
    "import devloop_debug\n"
    "devloop_debug.install()\n"
    "devloop_debug.chain_sitecustomize(__file__)\n"
)

# devloop-include: state_dir

# Python 2 spells these differently (or lacks them): one name for both.
_TIMEOUT = getattr(subprocess, "TimeoutExpired", None)
_SIGNAL_NAMES = dict((getattr(signal, name), name) for name in ("SIGHUP", "SIGTERM", "SIGINT"))

session = json.loads(sys.argv[1])
NAME = session["name"]
_caught = []
_log = None


def say(text):
    """A line for the developer, and for the guard log (the pty may be gone)."""
    line = "--> %s: %s" % (NAME, text)
    if not isinstance(line, str):
        # Python 2: JSON and decoded command output make this unicode; its
        # stdout and log files take bytes (systemctl status prints a U+25CF).
        line = line.encode("utf-8", "replace")
    if _log is not None:
        try:
            _log.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
            _log.flush()
        except EnvironmentError:
            pass
    try:
        sys.stdout.write(line.replace("\n", "\r\n") + "\r\n")
        sys.stdout.flush()
    except (EnvironmentError, ValueError):
        pass


def _on_signal(signo, frame):
    _caught.append(signo)


def _tty():
    try:
        return 0 if os.isatty(0) else None
    except OSError:
        return None


def _give_terminal(pgid):
    """Make ``pgid`` the foreground process group of our terminal, if we have one."""
    fd = _tty()
    if fd is None:
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _group_members(pgid):
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (EnvironmentError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return sorted(members)


def _end_group(pgid, grace):
    """TERM the group, KILL it after ``grace`` seconds; return how it ended."""
    for signo, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _group_members(pgid):
            return "ended"
        try:
            os.killpg(pgid, signo)
        except OSError:
            return "ended"
        deadline = time.time() + wait
        while time.time() < deadline and _group_members(pgid):
            time.sleep(0.05)
    left = _group_members(pgid)
    return "still running: %s" % " ".join(map(str, left)) if left else "ended (KILL)"


def _address():
    parts = urlsplit(session["api_url"])
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


def _listening(address=None):
    try:
        sock = socket.create_connection(address or _address(), timeout=0.5)
    except EnvironmentError:  # socket.error is an IOError on Python 2
        return False
    sock.close()
    return True


def _prepare(user):
    """The hook directory and the child's environment."""
    hook_dir = tempfile.mkdtemp(prefix="devloop-debug-")
    os.chmod(hook_dir, 0o755)
    files = {"devloop_debug.py": session["hook"], "sitecustomize.py": SITECUSTOMIZE,
             "one-worker.conf": ONE_WORKER}
    for name, text in files.items():
        with open(os.path.join(hook_dir, name), "w") as handle:
            handle.write(text)
        os.chmod(os.path.join(hook_dir, name), 0o644)
    ended = os.path.join(hook_dir, "ended")
    open(ended, "w").close()
    os.chown(ended, user.pw_uid, user.pw_gid)
    os.chmod(ended, 0o600)
    env = {
        "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name,
        "SHELL": "/bin/sh", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": hook_dir,
        "PYTHONBREAKPOINT": "devloop_debug.set_trace",
        "PYTHONUNBUFFERED": "1",
        "DEVLOOP_DEBUG_BREAKS": json.dumps(session["breaks"]),
        "DEVLOOP_DEBUG_ENDED": ended,
    }
    if session.get("attach"):
        env["GEVENT_SUPPORT"] = "True"
        env["DEVLOOP_ATTACH"] = json.dumps(session["attach"])
    for key in ("TERM", "LANG", "LC_ALL", "LC_CTYPE", "COLUMNS", "LINES"):
        if key in os.environ:
            env[key] = os.environ[key]
    return hook_dir, env


def _start(user, env, hook_dir):
    argv = [session["python"], session["cinder_api"]] + session["args"] + \
        ["--config-file", os.path.join(hook_dir, "one-worker.conf")]
    cwd = user.pw_dir if os.path.isdir(user.pw_dir) and \
        os.access(user.pw_dir, os.X_OK) else "/"

    def become_the_service_user():
        os.setpgid(0, 0)
        _give_terminal(os.getpgrp())
        os.initgroups(user.pw_name, user.pw_gid)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    child = subprocess.Popen(argv, env=env, cwd=cwd, preexec_fn=become_the_service_user)
    try:
        os.setpgid(child.pid, child.pid)   # also here: whichever runs first wins the race
    except OSError:
        pass
    _give_terminal(child.pid)
    return child, argv


def _await_debugpy(pgid, timeout=60.0):
    """Say when debugpy listens in the worker (or that it does not)."""
    port = int(session["attach"]["port"])
    deadline = time.time() + timeout
    while time.time() < deadline and not _caught and _group_members(pgid):
        if _bound(port):
            say("debugpy listens on 127.0.0.1:%d in the API worker; attach the IDE" % port)
            return True
        time.sleep(0.1)
    say("debugpy is not listening on 127.0.0.1:%d after %d s; see %s"
        % (port, timeout, session.get("log_file") or "cinder-api's log"))
    return False


def _bound(port):
    """True when something listens on ``127.0.0.1:port`` (from /proc/net/tcp).

    Read, not connected to: debugpy's adapter takes a connection for a
    client, and a probe that hangs up can cost the IDE's the next one.
    """
    wanted = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as handle:
            rows = [line.split() for line in handle.readlines()[1:]]
    except EnvironmentError:
        return False
    return any(len(row) > 3 and row[1] == wanted and row[3] == "0A" for row in rows)


def _adapters(directory):
    """PIDs of the processes run from ``directory`` (debugpy's adapter)."""
    marker = directory.encode("utf-8") if not isinstance(directory, bytes) else directory
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                argv = handle.read().split(b"\0")
        except EnvironmentError:
            continue
        if any(arg.startswith(marker) for arg in argv):
            found.append(int(entry))
    return found


def _end_attach():
    """End debugpy's adapter by PID and remove the session's debugpy files."""
    attach = session.get("attach")
    if not attach:
        return
    directory = attach["dir"].rstrip("/") + "/"
    pids = _adapters(directory)
    for signo, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, signo)
            except OSError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and _adapters(directory):
            time.sleep(0.05)
        pids = _adapters(directory)
        if not pids:
            break
    shutil.rmtree(attach["dir"], ignore_errors=True)
    say("debugpy removed (%s)%s" % (attach["dir"], "; still running: %s" % pids if pids else ""))


def _marker():
    return os.path.join(os.path.dirname(session["log"]), "session.json")


def _mark_session(on):
    """Name this guard in ``session.json`` while the session lasts (for invoke status)."""
    try:
        if on:
            write_new(_marker(), json.dumps({
                "guard": os.getpid(), "since": time.time(),
                "mode": "attach" if session.get("attach") else "pdb",
                "port": (session.get("attach") or {}).get("port")}).encode("utf-8"), 0o644)
        else:
            os.remove(_marker())
    except EnvironmentError:
        pass


def _describe(status):
    if os.WIFSIGNALED(status):
        return "was killed by signal %d" % os.WTERMSIG(status)
    return "exited with status %d" % os.WEXITSTATUS(status)


def _run_session(user):
    """Start cinder-api, wait for it to end; return the guard's exit code."""
    if _listening():
        host, port = _address()
        say("something still listens on %s:%d; cinder-api could not bind it" % (host, port))
        return PORT_TAKEN
    hook_dir, env = _prepare(user)
    try:
        child, argv = _start(user, env, hook_dir)
        say("cinder-api in the foreground as %s, pid %d: %s"
            % (user.pw_name, child.pid, " ".join(argv)))
        ready, status, stopping = False, None, None
        while status is None:
            pid, raw = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                status = raw
                break
            if _caught and stopping is None:
                stopping = _SIGNAL_NAMES.get(_caught[0], "signal %d" % _caught[0])
                say("%s: ending the foreground cinder-api" % stopping)
                _end_group(child.pid, session["grace"])
                continue
            if not ready and _listening():
                ready = True
                workers = [p for p in _group_members(child.pid) if p != child.pid]
                say("cinder-api answers at %s (pid %d, worker %s); Ctrl-C ends the session"
                    % (session["api_url"], child.pid, " ".join(map(str, workers)) or "-"))
                if session.get("attach"):
                    _await_debugpy(child.pid)
            time.sleep(0.1)
        child.returncode = status
        leftover = _end_group(child.pid, session["grace"])
        _give_terminal(os.getpgrp())
        with open(os.path.join(hook_dir, "ended")) as handle:
            ended_by = handle.read().strip()
        say("cinder-api %s; its processes: %s" % (_describe(status), leftover))
        if not ready and not ended_by and stopping is None:
            return EXITED_AT_START
        return 0
    finally:
        _give_terminal(os.getpgrp())
        shutil.rmtree(hook_dir, ignore_errors=True)


def _output_of(argv, timeout):
    """(exit code, output) of ``argv``; KILLed after ``timeout`` s (Python 3)."""
    with open(os.devnull) as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        if _TIMEOUT is None:  # Python 2: no timeout in communicate
            out = proc.communicate()[0]
        else:
            try:
                out = proc.communicate(timeout=timeout)[0]
            except _TIMEOUT:
                proc.kill()
                out = proc.communicate()[0] + b"\n(killed after %d s)" % timeout
    return proc.returncode, out.decode("utf-8", "replace").strip()


def _restore():
    """Start the managed service again and show its status."""
    code = 0
    for argv in (session["start"], session["status"]):
        try:
            rc, out = _output_of(argv, 120)
        except EnvironmentError as exc:
            out, rc = str(exc), 127
        say("$ %s (exit %d)%s" % (" ".join(argv), rc, ("\n    " + out.replace("\n", "\n    "))
                                   if out else ""))
        if argv is session["start"] and rc != 0:
            code = RESTORE_FAILED
    return code


def main():
    global _log
    for signo in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signo, _on_signal)
    code = SETUP_FAILED
    debug_dir = os.path.dirname(session["log"])
    try:
        ensure_dir(os.path.dirname(debug_dir), 0o755)
        ensure_dir(debug_dir, 0o755)
    except Untrusted as exc:
        say("state_dir is not root's alone: %s; cinder-devloop runs as root and keeps its "
            "files only where no other user can write" % exc)
        say("starting the service again")
        return _restore() or code
    except EnvironmentError:
        pass                # no log then: the session goes on without one
    try:
        fd = os.open(session["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        os.fchmod(fd, 0o600)
        _log = os.fdopen(fd, "a")
    except EnvironmentError:
        _log = None
    _mark_session(True)
    try:
        try:
            user = pwd.getpwnam(session["user"])
        except KeyError:
            say("no user %r on this controller (service_user in the inventory)"
                % session["user"])
            return SETUP_FAILED
        code = _run_session(user)
    finally:
        _end_attach()
        say("starting the service again")
        restored = _restore()
        code = code or restored
        _mark_session(False)
    return code


if __name__ == "__main__":
    sys.exit(main())
