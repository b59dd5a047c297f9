"""Fast-restart mode on the controller: switch it, read it, use it.

    python -c <this> on FAST_DIR KIND CONF PROGRAM USER WARM_SOURCE [TIMEOUT]
    python -c <this> off FAST_DIR KIND CONF PROGRAM
    python -c <this> check FAST_DIR
    python -c <this> restart FAST_DIR TIMEOUT REASON|'' [API_URL LOG_FILE LOG_SINCE]

``on`` keeps the service definition's exact bytes in FAST_DIR/original,
writes the warm parent (warm_api.py) there and swaps the program's command
for ``<python> FAST_DIR/warm_api.py FAST_DIR/run -- <the command>``, then
has the service manager apply it (which restarts the service) and waits
for the warm parent. ``off`` writes the kept command back and applies it.
``check`` reports the mode and the warm parent. ``restart`` forks a fresh
cinder-api from the warm parent when nothing rules it out, and otherwise
says why not (the caller then restarts the service normally); a REASON
from the caller (a migration ran) rules it out too. With API_URL, it then
waits until the API answers and returns the log written since byte
LOG_SINCE (-1: none).

KIND is ``supervisord`` (CONF: supervisord's config file, PROGRAM: the
program section's name) or ``systemd`` (PROGRAM: the unit; CONF unused): a
drop-in ``/etc/systemd/system/UNIT.d/zz-devloop-fast-restart.conf`` replaces
ExecStart, the unit file is never written, and ``off`` removes the drop-in.
Prints one JSON object. Exit 2: a problem the user must fix (message in
"error").

Trust. This runs as root; the warm parent runs as the service user.
FAST_DIR (in state_dir) is root's alone (0755): warm_api.py (0644), the
kept definition ``original`` and its record ``original.json`` (0600, with
the definition's sha256, checked before the definition is used). The warm
parent writes only into FAST_DIR/run, a directory of the service user's
own: its state (``warm.json``) and the files it holds (``modules.json``).
Root only reads those, as data: never a link, never more than a few MB,
every field checked; they decide nothing but whether a restart can be a
fork, and what ``status`` shows. The PIDs there are believed only for the
process they name if it is the warm parent command this script wrote,
run by the service user, started when the warm parent says (its start
time): a dead warm parent's PID taken by another process is not it. The
SIGHUP of a fast restart is sent with the service user's rights only. The
supervisord command put back is the kept one only if it runs exactly what
the current warm parent command runs; so even a kept file someone else
changed can put back nothing else. A FAST_DIR an earlier version left to
the service user is moved aside and only read, under that rule.

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
RUN = "run"                # the warm parent's own directory, in FAST_DIR
KEPT = "original"          # the service definition as it was
RECORD = "original.json"   # what was kept: kind and sha256
FOREIGN_LIMIT = 32 << 20   # the most read of a file the service user writes

# devloop-include: api_probe
# devloop-include: state_dir


def _out(data, code=0):
    sys.stdout.write(json.dumps(data) + "\n")
    sys.exit(code)


def _fail(message):
    _out({"error": message}, 2)


def _read(path, mode="r"):
    with open(path, mode) as handle:
        return handle.read()


def _replace(path, data):
    """Write ``data`` (bytes) over ``path``, keeping its mode and owner (a new file renamed in)."""
    info = os.stat(path)
    write_new(path, data, info.st_mode & 0o7777, (info.st_uid, info.st_gid))


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _state_dirs(fast_dir):
    """FAST_DIR's parent (state_dir) made root's if need be; an untrusted one is refused."""
    state_dir = os.path.dirname(fast_dir.rstrip("/"))
    try:
        ensure_dir(state_dir, 0o755)
    except Untrusted as exc:
        _fail("state_dir %s is not root's alone: %s; cinder-devloop runs as root and keeps "
              "its files only where no other user can write (chown root and chmod go-w it, "
              "or name another state_dir in the inventory)" % (state_dir, exc))
    except OSError as exc:
        _fail("cannot make state_dir %s: %s" % (state_dir, exc))


def _legacy(fast_dir):
    """Whether FAST_DIR is an earlier version's, which the service user could write."""
    if not os.path.lexists(fast_dir):
        return False
    try:
        check_dir(fast_dir)
        return False
    except Untrusted:
        return True


def _set_aside(fast_dir):
    """An earlier version's FAST_DIR (the service user's) moved aside; its new path, or None."""
    if not _legacy(fast_dir):
        return None
    aside = "%s.untrusted-%d" % (fast_dir, os.getpid())
    os.rename(fast_dir, aside)          # an entry of state_dir, root's: nothing followed
    return aside


def _clear_aside(aside):
    """Remove what an earlier version left (names unlinked: no link is followed)."""
    if not aside:
        return
    try:
        names = os.listdir(aside)
    except OSError:
        return
    for name in names:
        _remove(os.path.join(aside, name))
    try:
        os.rmdir(aside)
    except OSError:
        pass


def _cmdline(pid):
    try:
        return _read("/proc/%d/cmdline" % pid, "rb").decode("utf-8", "replace").split("\0")
    except (IOError, OSError):
        return []


# --- the kept definition ------------------------------------------------------------

def _keep(fast_dir, kind, data):
    """Keep the definition's bytes, root-only, with their sha256 recorded."""
    write_new(os.path.join(fast_dir, KEPT), data, 0o600)
    record = {"kind": kind, "sha256": sha256(data), "size": len(data)}
    write_new(os.path.join(fast_dir, RECORD), json.dumps(record).encode("utf-8"), 0o600)


def _kept(fast_dir, kind):
    """The kept definition's bytes once checked against its record, or None if none is kept.

    Fails (one line) if it is not root's alone, or not what was kept.
    """
    try:
        record = json.loads(read_own(os.path.join(fast_dir, RECORD)).decode("utf-8"))
        data = read_own(os.path.join(fast_dir, KEPT))
    except OSError:
        if os.path.lexists(os.path.join(fast_dir, RECORD)):
            _fail("cannot read the kept service definition in %s" % fast_dir)
        return None
    except (Untrusted, ValueError) as exc:
        _fail("the kept service definition in %s cannot be trusted (%s): not used" %
              (fast_dir, exc))
    if not isinstance(record, dict) or record.get("kind") != kind or \
            record.get("sha256") != sha256(data):
        _fail("%s/%s changed since fast restart was turned on (its sha256 is not the one "
              "recorded in %s): not used. Check the service definition by hand, then "
              "remove %s" % (fast_dir, KEPT, RECORD, fast_dir))
    return data


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


def _split(value):
    try:
        return shlex.split(value)
    except ValueError:
        return None


def _wrapped(words, fast_dir):
    """(python, argv) of a warm parent command run from FAST_DIR, or None if ``words``
    is not one."""
    warm = os.path.join(fast_dir, WARM)
    if not words or warm not in words:
        return None
    at = words.index(warm)
    if len(words) < at + 4 or words[at + 2] != "--":
        return None
    return words[:at], words[at + 3:]


def _suggestion(python, argv):
    """The command to put back by hand, as the program most likely had it."""
    found = _interpreter(argv)
    words = argv if found and found[0] == python else python + argv
    return " ".join(_quote(word) for word in words)


def _kept_command(fast_dir, aside, conf, program, wrapped):
    """The program's original command (its text in the kept definition).

    Used only if it runs exactly what the warm parent command runs (``wrapped``):
    the same script and arguments, with or without the same python before it.
    """
    if aside:
        data = read_foreign(os.path.join(aside, KEPT), FOREIGN_LIMIT)
        source = "the definition an earlier cinder-devloop kept where the service user " \
                 "could write"
    else:
        data = _kept(fast_dir, "supervisord")
        source = "%s/%s" % (fast_dir, KEPT)
    try:
        text = data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        text = None
    where = _command_line(text, program) if text is not None else None
    value = text[where[0]:where[1]] if where else None
    python, argv = wrapped
    if value is None or _split(value) not in (argv, python + argv):
        _fail("%s holds no command for [program:%s] that runs what %s runs now: not written "
              "back. Put the program's command back by hand (most likely: command = %s), "
              "then remove %s" % (source, program, conf, _suggestion(python, argv),
                                  aside or fast_dir))
    return value


def _interpreter(words):
    """(interpreter words, script argv) for a command running a python script."""
    if re.match(r"^python[0-9.]*$", os.path.basename(words[0])):
        if len(words) < 2 or words[1].startswith("-"):
            return None
        return [words[0]], words[1:]
    try:
        with open(words[0], "rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return None
    if not first.startswith("#!") or "python" not in first:
        return None
    words_of = _split(first[2:].strip())
    return (words_of, words) if words_of else None


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
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "restart", "--", program]):
        code, text = _run(argv)
        if code != 0:
            _fail("%s failed (exit %d): %s; see journalctl -u %s"
                  % (" ".join(argv), code, text, program))
    return "restarted"


def _systemd_exec_start(program):
    """The unit's ExecStart argv, as systemd has it loaded."""
    code, text = _run(["systemctl", "show", "--property=ExecStart,LoadState", "--", program])
    if code != 0 or "LoadState=not-found" in text:
        _fail("systemd has no unit %s (%s); check 'service' in the inventory" % (program, text))
    found = re.search(r"argv\[\]=(.*?) ;", text)
    if not found or text.count("argv[]=") != 1:
        _fail("unit %s needs exactly one ExecStart for fast restart (%s)" % (program, text))
    return _split(found.group(1)) or []


def _drop_in(program):
    return "/etc/systemd/system/%s.d/zz-devloop-fast-restart.conf" % program


def _systemd_word(word):
    """``word`` as one word of an ExecStart line: quoted, its specifiers (%) and escapes kept."""
    if re.match(r"^[A-Za-z0-9_@+=:,./-]+$", word):
        return word
    return '"%s"' % word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _checked_words(words, program):
    """``words``, refused if one holds a control character (it would end a config line)."""
    for word in words:
        if re.search(r"[\x00-\x1f\x7f]", word):
            _fail("the command of %s holds a control character (%r): fast restart will not "
                  "write it into a service definition" % (program, word))
    return words


def _command(python, fast_dir, argv, quote):
    return " ".join(quote(w) for w in python + [os.path.join(fast_dir, WARM),
                                                 os.path.join(fast_dir, RUN), "--"] + argv)


def _quote(word):
    quote = getattr(shlex, "quote", None)
    if quote is None:       # Python 2.7
        import pipes
        quote = pipes.quote
    return quote(word)


def _prepare(fast_dir, user, warm_source):
    """FAST_DIR root's (0755) with warm_api.py (0644); FAST_DIR/run the service user's (0700)."""
    try:
        ensure_dir(fast_dir, 0o755)
    except (Untrusted, OSError) as exc:
        _fail("cannot use %s: %s" % (fast_dir, exc))
    source = warm_source if isinstance(warm_source, bytes) else warm_source.encode("utf-8")
    write_new(os.path.join(fast_dir, WARM), source, 0o644)
    entry = pwd.getpwnam(user)
    run = os.path.join(fast_dir, RUN)
    if not os.path.lexists(run):
        os.mkdir(run, 0o700)
    if not os.path.isdir(run) or os.path.islink(run):
        _fail("%s is not a directory" % run)
    os.lchown(run, entry.pw_uid, entry.pw_gid)
    os.chmod(run, 0o700)


def switch_on(fast_dir, kind, conf, program, user, warm_source, timeout):
    if kind not in ("supervisord", "systemd"):
        _fail("fast restart is not supported with service manager %s" % kind)
    _state_dirs(fast_dir)
    aside = _set_aside(fast_dir)
    if kind == "supervisord":
        text = _read(conf, "rb").decode("utf-8")
        where = _command_line(text, program)
        if where is None:
            _fail("%s has no [program:%s] with a command line (fast restart edits only the "
                  "program section of the config file the inventory names)" % (conf, program))
        wrapped = _wrapped(_split(text[where[0]:where[1]]), fast_dir)
        # on already: the command as it was comes from what was kept (an earlier
        # version's kept file is replaced by a root-only one)
        kept = bool(wrapped) and not aside
        if wrapped:
            value = _kept_command(fast_dir, aside, conf, program, wrapped)
            text = text[:where[0]] + value + text[where[1]:]
            where = _command_line(text, program)
        words = _split(text[where[0]:where[1]])
    else:
        drop_in = _drop_in(program)
        data = None if aside else _kept(fast_dir, kind)
        kept = data is not None
        if kept:
            try:
                words = json.loads(data.decode("utf-8"))["argv"]
            except (ValueError, KeyError, TypeError):
                _fail("%s/%s is not a kept ExecStart" % (fast_dir, KEPT))
        else:
            if os.path.lexists(drop_in):
                os.unlink(drop_in)      # a leftover of ours: the unit's own ExecStart counts
                _run(["systemctl", "daemon-reload"])
            words = _systemd_exec_start(program)
    found = _interpreter(words) if isinstance(words, list) and words and \
        all(_is_text(word) for word in words) else None
    if found is None:
        _fail("the command of %s does not run a python script (%s): fast restart needs "
              "cinder-api's console script" % (program, " ".join(map(str, words or []))))
    python, argv = found
    _checked_words(python + argv, program)
    _prepare(fast_dir, user, warm_source)
    if kind == "supervisord":
        if not kept:
            _keep(fast_dir, kind, text.encode("utf-8"))
        command = _command(python, fast_dir, argv, _quote)
        _replace(conf, (text[:where[0]] + command + text[where[1]:]).encode("utf-8"))
    else:
        if not kept:
            _keep(fast_dir, kind, json.dumps({"kind": kind, "argv": words}).encode("utf-8"))
        command = _command(python, fast_dir, argv, _systemd_word)
        drop_dir = os.path.dirname(drop_in)
        if not os.path.isdir(drop_dir):
            os.makedirs(drop_dir)
        # the unit file itself is never written: off removes this drop-in
        write_new(drop_in, ("# cinder-devloop fast restart: invoke fast-restart off removes "
                            "this file\n[Service]\nExecStart=\nExecStart=%s\n"
                            % command).encode("utf-8"), 0o644)
    _clear_aside(aside)
    before = _warm(fast_dir) or {}
    applied = _apply(kind, conf, program)
    # no output: the command was already this one, and the service kept running
    state = _wait_ready(fast_dir, 0, timeout, None if not applied else before.get("pid"))
    _out({"mode": "on", "applied": applied, "warm": state})


def switch_off(fast_dir, kind, conf, program):
    _state_dirs(fast_dir)
    aside = _set_aside(fast_dir)
    kept = aside or os.path.lexists(os.path.join(fast_dir, RECORD))
    changed = False
    if kind == "supervisord":
        text = _read(conf, "rb").decode("utf-8")
        where = _command_line(text, program)
        wrapped = _wrapped(_split(text[where[0]:where[1]]), fast_dir) if where else None
        if wrapped:
            value = _kept_command(fast_dir, aside, conf, program, wrapped)
            _replace(conf, (text[:where[0]] + value + text[where[1]:]).encode("utf-8"))
            changed = True
    else:
        drop_in = _drop_in(program)
        if os.path.lexists(drop_in):
            os.unlink(drop_in)
            changed = True
        try:
            os.rmdir(os.path.dirname(drop_in))      # only if nothing else is in it
        except OSError:
            pass
    applied = _apply(kind, conf, program) if changed else None
    for name in (KEPT, RECORD, WARM):
        _remove(os.path.join(fast_dir, name))
    run = os.path.join(fast_dir, RUN)
    if os.path.isdir(run) and not os.path.islink(run):
        for name in ("warm.json", "modules.json"):
            _remove(os.path.join(run, name))   # names in the service user's directory: unlinked
        try:
            os.rmdir(run)
        except OSError:
            pass
    _clear_aside(aside)
    _out({"mode": "off", "changed": bool(changed or kept), "applied": applied})


# --- the warm parent, as its state file says -----------------------------------------

def _is_text(value):
    return isinstance(value, str) or type(value).__name__ == "unicode"


def _text(value, limit=200):
    """``value`` shown on one line (control characters as ?), or None if it is no text."""
    if not _is_text(value):
        return None
    return "".join("?" if c < " " or c == "\x7f" else c for c in value[:limit])


def _path(value):
    """``value`` if it is an absolute path of text without control characters, else None."""
    ok = _is_text(value) and value.startswith("/") and len(value) < 4096 and \
        not re.search(r"[\x00-\x1f\x7f]", value)
    return value if ok else None


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float) + _INTEGERS):
        return None
    return value


def _warm(fast_dir):
    """The warm parent's state file, read as the service user's: its checked fields, or None."""
    data = read_foreign(os.path.join(fast_dir, RUN, "warm.json"), FOREIGN_LIMIT)
    try:
        raw = json.loads(data.decode("utf-8")) if data is not None else None
    except (ValueError, UnicodeDecodeError):
        raw = None
    if not isinstance(raw, dict) or integer(raw.get("pid"), 2) is None:
        return None
    warm = raw.get("warm") if isinstance(raw.get("warm"), dict) else {}
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    return {
        "pid": raw["pid"], "pid_start": integer(raw.get("pid_start"), 0),
        "child": integer(raw.get("child"), 2), "child_start": integer(raw.get("child_start"), 0),
        "generation": integer(raw.get("generation"), 0) or 0,
        "state": _text(raw.get("state"), 40), "code": integer(raw.get("code")),
        "started": _number(raw.get("started")),
        "config": dict((path, seen) for path, seen in list(config.items())[:1000]
                       if _path(path)),
        "warm": {"imported": integer(warm.get("imported"), 0) or 0,
                 "skipped": integer(warm.get("skipped"), 0) or 0,
                 "seconds": _number(warm.get("seconds"))},
    }


def _run_owner(fast_dir):
    """(uid, gid) of the warm parent's directory: the service user's, given by root at on."""
    info = os.lstat(os.path.join(fast_dir, RUN))
    return info.st_uid, pwd.getpwuid(info.st_uid).pw_gid


def _warm_parent_runs(fast_dir, state):
    """Whether the warm parent the state names runs: that PID is our warm parent command,
    run by the service user, started when the state says (not another process that took
    a dead one's PID)."""
    found = process(state["pid"])
    try:
        uid = _run_owner(fast_dir)[0]
    except (OSError, KeyError):
        return False
    if not found or found[0] == "Z" or found[2] != state["pid_start"] or found[3] != uid:
        return False
    argv = _cmdline(state["pid"])
    warm = os.path.join(fast_dir, WARM)
    return warm in argv and argv[argv.index(warm) + 1:argv.index(warm) + 3] == \
        [os.path.join(fast_dir, RUN), "--"]


def _child_runs(state):
    """Whether the cinder-api the state names runs: the warm parent's child, started then."""
    found = process(state["child"])
    return bool(found) and found[0] != "Z" and found[1] == state["pid"] and \
        found[2] == state["child_start"]


def _wait_ready(fast_dir, after_generation, timeout, not_pid=None):
    """The warm parent's state once it has forked cinder-api (generation > after)."""
    deadline = time.time() + timeout
    while True:
        state = _warm(fast_dir)
        if state and state["state"] == "ready" and state["pid"] != not_pid \
                and state["generation"] > after_generation \
                and _warm_parent_runs(fast_dir, state) and _child_runs(state):
            return state
        if state and state["state"] == "child exited" and _warm_parent_runs(fast_dir, state):
            _fail("the warm parent's cinder-api exited with status %s" % state["code"])
        if time.time() > deadline:
            _fail("the warm parent did not fork cinder-api within %g s (state: %s)"
                  % (timeout, state and state["state"]))
        time.sleep(0.01)


def _modules(fast_dir):
    """{file: mtime} of the modules the warm parent holds (its word, checked as data)."""
    data = read_foreign(os.path.join(fast_dir, RUN, "modules.json"), FOREIGN_LIMIT)
    try:
        raw = json.loads(data.decode("utf-8")) if data is not None else {}
    except (ValueError, UnicodeDecodeError):
        raw = {}
    if not isinstance(raw, dict):
        return {}
    return dict((path, mtime) for path, mtime in raw.items()
                if _path(path) and _number(mtime))


def examine(fast_dir):
    """The mode, the warm parent's state, and why a fast restart cannot be done (if so)."""
    if _legacy(fast_dir):
        if not os.path.lexists(os.path.join(fast_dir, KEPT)):
            return {"mode": "off", "reason": "fast restart is off"}
        return {"mode": "on", "warm": None,
                "reason": "fast restart was turned on by an earlier cinder-devloop, which left "
                          "%s to the service user: invoke fast-restart on (again) moves it to "
                          "root" % fast_dir}
    if not os.path.lexists(os.path.join(fast_dir, RECORD)):
        return {"mode": "off", "reason": "fast restart is off"}
    state = _warm(fast_dir)
    report = {"mode": "on", "warm": state}
    if not state:
        report["reason"] = "the warm parent has not started"
        return report
    pid = state["pid"]
    if not _warm_parent_runs(fast_dir, state):
        report["reason"] = "the warm parent (pid %s) is dead" % pid
        return report
    if state["state"] != "ready":
        report["reason"] = "the warm parent (pid %s) is %s" % (pid, state["state"])
        return report
    if not state["child"] or not _child_runs(state):
        report["reason"] = "the warm parent's cinder-api (pid %s) is dead" % state["child"]
        return report
    for path, seen in sorted(state["config"].items()):
        try:
            info = os.stat(path)
            now = [info.st_mtime, info.st_size]
        except OSError:
            now = None
        if now != seen:
            report["reason"] = "%s changed since the warm parent started" % path
            return report
    modules = _modules(fast_dir)
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
    state = report.get("warm")
    if "reason" not in report:
        uid, gid = _run_owner(fast_dir)
        # with the service user's rights: the PID comes from the service user's file
        if not signal_as(uid, gid, state["pid"], signal.SIGHUP):
            report["reason"] = "the warm parent (pid %s) could not be signalled" % state["pid"]
    if "reason" in report:
        _out({"fast": False, "mode": report["mode"], "reason": report["reason"],
              "warm": state})
    checked = time.time() - started
    new = _wait_ready(fast_dir, state["generation"], timeout)
    forked = time.time() - started
    api = _wait_api(api_url, timeout, log_file, log_since) if api_url else None
    _out({"fast": True, "mode": "on", "warm": new, "old_child": state["child"], "api": api,
          "fork_seconds": round(forked, 3),
          "check_seconds": round(checked, 3), "seconds": round(time.time() - started, 3),
          "checked": report["checked"]})


def main(argv):
    if len(argv) < 2:
        _fail("usage: on|off|check|restart FAST_DIR ...")
    action, fast_dir = argv[0], argv[1].rstrip("/")
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
