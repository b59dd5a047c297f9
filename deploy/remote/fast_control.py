"""Fast-restart mode on the controller: switch it, read it, use it.

    python -c <this> on FAST_DIR KIND CONF PROGRAM USER WARM_SOURCE [TIMEOUT]
    python -c <this> off FAST_DIR KIND CONF PROGRAM
    python -c <this> check FAST_DIR
    python -c <this> restart FAST_DIR TIMEOUT REASON|'' [API_URL LOG_FILE LOG_SINCE]

``on`` keeps the service definition's exact bytes in FAST_DIR/original,
writes the warm parent (warm_api.py) there and swaps the program's command
for ``<python> FAST_DIR/warm_api.py FAST_DIR -- <the command>``, then has the
service manager apply it (which restarts the service) and waits for the warm
parent. ``off`` writes the kept bytes back and applies them. ``check``
reports the mode and the warm parent. ``restart`` forks a fresh cinder-api
from the warm parent when nothing rules it out, and otherwise says why not
(the caller then restarts the service normally); a REASON from the caller
(a migration ran) rules it out too. With API_URL, it then waits until the
API answers and returns the log written since byte LOG_SINCE (-1: none).

KIND is ``supervisord`` (CONF: supervisord's config file, PROGRAM: the
program section's name) or ``systemd`` (PROGRAM: the unit; CONF unused): a
drop-in ``/etc/systemd/system/UNIT.d/zz-devloop-fast-restart.conf`` replaces
ExecStart, the unit file is never written, and ``off`` removes the drop-in. Prints one JSON object. Exit 2: a problem the user
must fix (message in "error").

Python 2.7 and 3.6+, standard library only: this runs with the controller's
python, as root.
"""
import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time

WARM = "warm_api.py"

# devloop-include: api_probe


def _out(data, code=0):
    sys.stdout.write(json.dumps(data) + "\n")
    sys.exit(code)


def _fail(message):
    _out({"error": message}, 2)


def _read(path, mode="r"):
    with open(path, mode) as handle:
        return handle.read()


def _write(path, data, mode="w"):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, mode) as handle:
        handle.write(data)
    os.rename(tmp, path)


def _load(path):
    try:
        return json.loads(_read(path))
    except (IOError, OSError, ValueError):
        return None


def _cmdline(pid):
    try:
        return _read("/proc/%d/cmdline" % pid, "rb").decode("utf-8", "replace").split("\0")
    except (IOError, OSError):
        return []


def _alive(pid):
    try:
        stat = _read("/proc/%d/stat" % pid)
    except (IOError, OSError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- the supervisord program's command line ------------------------------------

def _command_line(text, program):
    """(start, end) of the value of ``command`` in [program:PROGRAM], or None."""
    section = re.search(r"(?m)^\[program:%s\][ \t]*$" % re.escape(program), text)
    if not section:
        return None
    nxt = re.compile(r"(?m)^\[").search(text, section.end())
    end = nxt.start() if nxt else len(text)
    line = re.compile(r"(?m)^command[ \t]*=[ \t]*(.*?)[ \t]*$").search(text, section.end(), end)
    if not line:
        return None
    return line.start(1), line.end(1)


def _interpreter(words):
    """(interpreter words, script argv) for a command running a python script."""
    if re.match(r"^python[0-9.]*$", os.path.basename(words[0])):
        if len(words) < 2 or words[1].startswith("-"):
            return None
        return [words[0]], words[1:]
    try:
        first = _read(words[0], "rb").split(b"\n", 1)[0].decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    if not first.startswith("#!") or "python" not in first:
        return None
    return shlex.split(first[2:].strip()), words


def _run(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = proc.communicate()[0].decode("utf-8", "replace").strip()
    return proc.returncode, text


def _apply(kind, conf, program):
    """Have the service manager take the changed definition (restarting the service)."""
    if kind == "supervisord":
        code, text = _run(["supervisorctl", "-c", conf, "update"])
        if code != 0 or "ERROR" in text:
            _fail("supervisorctl update failed: %s" % (text or "exit %d" % code))
        return text
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", program]):
        code, text = _run(argv)
        if code != 0:
            _fail("%s failed (exit %d): %s; see journalctl -u %s"
                  % (" ".join(argv), code, text, program))
    return "restarted"


def _systemd_exec_start(program):
    """The unit's ExecStart argv, as systemd has it loaded."""
    code, text = _run(["systemctl", "show", program, "--property=ExecStart,LoadState"])
    if code != 0 or "LoadState=not-found" in text:
        _fail("systemd has no unit %s (%s); check 'service' in the inventory" % (program, text))
    found = re.search(r"argv\[\]=(.*?) ;", text)
    if not found or text.count("argv[]=") != 1:
        _fail("unit %s needs exactly one ExecStart for fast restart (%s)" % (program, text))
    return shlex.split(found.group(1))


def _drop_in(program):
    return "/etc/systemd/system/%s.d/zz-devloop-fast-restart.conf" % program


def _command(python, fast_dir, argv):
    quote = getattr(shlex, "quote", None) or _quote
    return " ".join(quote(w) for w in python + [os.path.join(fast_dir, WARM), fast_dir, "--"]
                    + argv)


def switch_on(fast_dir, kind, conf, program, user, warm_source, timeout):
    if kind not in ("supervisord", "systemd"):
        _fail("fast restart is not supported with service manager %s" % kind)
    original = os.path.join(fast_dir, "original")
    kept = os.path.exists(original)
    if kind == "supervisord":
        text = _read(original if kept else conf, "rb").decode("utf-8")
        where = _command_line(text, program)
        if where is None:
            _fail("%s has no [program:%s] with a command line (fast restart edits only the "
                  "program section of the config file the inventory names)" % (conf, program))
        words = shlex.split(text[where[0]:where[1]])
    else:
        drop_in = _drop_in(program)
        if kept:
            words = json.loads(_read(original))["argv"]
        else:
            if os.path.exists(drop_in):
                os.unlink(drop_in)      # a leftover of ours: the unit's own ExecStart counts
                _run(["systemctl", "daemon-reload"])
            words = _systemd_exec_start(program)
    found = _interpreter(words) if words else None
    if found is None:
        _fail("the command of %s does not run a python script (%s): fast restart needs "
              "cinder-api's console script" % (program, " ".join(words)))
    python, argv = found
    if not os.path.isdir(fast_dir):
        os.makedirs(fast_dir)
    entry = pwd.getpwnam(user)
    os.chown(fast_dir, entry.pw_uid, entry.pw_gid)
    os.chmod(fast_dir, 0o755)
    warm = os.path.join(fast_dir, WARM)
    _write(warm, warm_source)
    os.chmod(warm, 0o644)
    command = _command(python, fast_dir, argv)
    if kind == "supervisord":
        if not kept:
            _write(original, _read(conf, "rb"), "wb")
        _write(conf, (text[:where[0]] + command + text[where[1]:]).encode("utf-8"), "wb")
    else:
        if not kept:
            _write(original, json.dumps({"kind": kind, "argv": words}))
        drop_dir = os.path.dirname(drop_in)
        if not os.path.isdir(drop_dir):
            os.makedirs(drop_dir)
        # the unit file itself is never written: off removes this drop-in
        _write(drop_in, "# cinder-devloop fast restart: invoke fast-restart off removes this "
                        "file\n[Service]\nExecStart=\nExecStart=%s\n" % command)
    before = _load(os.path.join(fast_dir, "warm.json")) or {}
    applied = _apply(kind, conf, program)
    # no output: the command was already this one, and the service kept running
    state = _wait_ready(fast_dir, 0, timeout, None if not applied else before.get("pid"))
    _out({"mode": "on", "applied": applied, "warm": state})


def _quote(word):   # Python 2.7: pipes.quote
    import pipes
    return pipes.quote(word)


def switch_off(fast_dir, kind, conf, program):
    original = os.path.join(fast_dir, "original")
    if not os.path.exists(original):
        _out({"mode": "off", "changed": False})
    if kind == "supervisord":
        _write(conf, _read(original, "rb"), "wb")
    else:
        drop_in = _drop_in(program)
        if os.path.exists(drop_in):
            os.unlink(drop_in)
        try:
            os.rmdir(os.path.dirname(drop_in))      # only if nothing else is in it
        except OSError:
            pass
    applied = _apply(kind, conf, program)
    for name in ("original", "warm.json", "modules.json", WARM):
        path = os.path.join(fast_dir, name)
        if os.path.exists(path):
            os.unlink(path)
    _out({"mode": "off", "changed": True, "applied": applied})


# --- the warm parent ---------------------------------------------------------

def _wait_ready(fast_dir, after_generation, timeout, not_pid=None):
    """The warm parent's state once it has forked cinder-api (generation > after)."""
    deadline = time.time() + timeout
    while True:
        state = _load(os.path.join(fast_dir, "warm.json"))
        if state and state.get("state") == "ready" and state.get("pid") != not_pid \
                and state.get("generation", 0) > after_generation and _alive(state["pid"]):
            return state
        if state and state.get("state") == "child exited":
            _fail("the warm parent's cinder-api exited with status %s" % state.get("code"))
        if time.time() > deadline:
            _fail("the warm parent did not fork cinder-api within %g s (state: %s)"
                  % (timeout, state and state.get("state")))
        time.sleep(0.01)


def examine(fast_dir):
    """The mode, the warm parent's state, and why a fast restart cannot be done (if so)."""
    if not os.path.exists(os.path.join(fast_dir, "original")):
        return {"mode": "off", "reason": "fast restart is off"}
    state = _load(os.path.join(fast_dir, "warm.json"))
    report = {"mode": "on", "warm": state}
    if not state:
        report["reason"] = "the warm parent has not started"
        return report
    pid = state.get("pid")
    if not _alive(pid) or not any(arg.endswith(WARM) for arg in _cmdline(pid)):
        report["reason"] = "the warm parent (pid %s) is dead" % pid
        return report
    if state.get("state") != "ready":
        report["reason"] = "the warm parent (pid %s) is %s" % (pid, state.get("state"))
        return report
    child = state.get("child")
    if not child or not _alive(child):
        report["reason"] = "the warm parent's cinder-api (pid %s) is dead" % child
        return report
    for path, seen in sorted((state.get("config") or {}).items()):
        try:
            info = os.stat(path)
            now = [info.st_mtime, info.st_size]
        except OSError:
            now = None
        if now != seen:
            report["reason"] = "%s changed since the warm parent started" % path
            return report
    modules = _load(os.path.join(fast_dir, "modules.json")) or {}
    for path, mtime in sorted(modules.items()):
        try:
            now = os.stat(path).st_mtime
        except OSError:
            now = None
        if now != mtime:
            report["reason"] = "%s, loaded by the warm parent, changed on disk" % path
            return report
    report["checked"] = len(modules)
    return report


def _wait_api(url, timeout, log_file, mark):
    """Poll the API until it answers; then the log written since byte ``mark``."""
    code, seconds, _ = wait_for_answer(url, timeout, 0.02)
    api = {"code": code, "seconds": round(seconds, 2)}
    if code is not None and log_file and mark >= 0:
        data = log_since(log_file, mark)
        if data is not None:
            api["log"] = data.decode("utf-8", "replace")
    return api


def fast_restart(fast_dir, timeout, refused=None, api_url=None, log_file=None, log_since=-1):
    started = time.time()
    report = examine(fast_dir)
    if refused and "reason" not in report:
        report["reason"] = refused
    if "reason" in report:
        _out({"fast": False, "mode": report["mode"], "reason": report["reason"],
              "warm": report.get("warm")})
    state = report["warm"]
    checked = time.time() - started
    os.kill(state["pid"], signal.SIGHUP)
    new = _wait_ready(fast_dir, state["generation"], timeout)
    forked = time.time() - started
    api = _wait_api(api_url, timeout, log_file, log_since) if api_url else None
    _out({"fast": True, "mode": "on", "warm": new, "old_child": state.get("child"), "api": api,
          "fork_seconds": round(forked, 3),
          "check_seconds": round(checked, 3), "seconds": round(time.time() - started, 3),
          "checked": report["checked"]})


def main(argv):
    if len(argv) < 2:
        _fail("usage: on|off|check|restart FAST_DIR ...")
    action, fast_dir = argv[0], argv[1]
    if action == "on" and len(argv) >= 7:
        switch_on(fast_dir, argv[2], argv[3], argv[4], argv[5], argv[6],
                  float(argv[7]) if len(argv) > 7 else 60.0)
    elif action == "off" and len(argv) >= 5:
        switch_off(fast_dir, argv[2], argv[3], argv[4])
    elif action == "check":
        _out(examine(fast_dir))
    elif action == "restart":
        extra = argv[2:] + [""] * 5
        fast_restart(fast_dir, float(extra[0] or 30), extra[1] or None, extra[2] or None,
                     extra[3] or None, int(extra[4] or -1))
    _fail("usage: on|off|check|restart FAST_DIR ...")


if __name__ == "__main__":
    main(sys.argv[1:])
