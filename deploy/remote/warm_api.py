"""A warm parent for cinder-api: the service manager's process in fast-restart mode.

    python warm_api.py STATE_DIR -- CINDER_API_SCRIPT [ARGS...]

Runs on the controller (Python 2.7 and 3.6+, stdlib plus what Cinder
installs), as the service's user, as the service manager's program (the
supervisord ``command`` or the systemd ``ExecStart`` while fast mode is on).

1. Learns what cinder-api needs, before importing anything: a throwaway
   child imports the script's cinder modules and loads the API's paste app,
   and reports every module outside the cinder package it then holds, and
   the environment variables cinder set on import (Train's cinder/__init__
   sets EVENTLET_NO_GREENDNS before eventlet is imported).
2. Sets those variables, monkey-patches with eventlet first, as cinder-api
   does (unless OS_CINDER_DISABLE_EVENTLET_PATCHING asks for threads), then
   imports those modules, and no ``cinder`` module (checked).
3. Forks cinder-api: the child runs the script as ``__main__``, so every
   ``cinder.*`` module is read anew from disk. The child leads its own
   process group and dies with the parent (PR_SET_PDEATHSIG).
4. On SIGHUP, kills the child's process group (no drain: a development
   restart), waits until it is gone (its port is free), forks a new one.
   On SIGTERM/SIGINT, kills the child and exits 0. If the child exits on
   its own, exits with its status, so the service manager sees the failure.

``STATE_DIR/warm.json`` says where it is (pid, child, generation, state,
and each process's start time, so that a PID taken over by another
process after one of them died is not taken for it);
``STATE_DIR/modules.json`` lists the files of the modules it holds, with
their mtimes, so a restart can tell that a library changed on disk.

STATE_DIR is ``<state_dir>/fast/run``, the one directory of the tool's that
belongs to the service user. Root (``fast_control.py``) reads these files
as the service user's word: for what ``status`` shows and whether a restart
can be a fork, never to pick a file to write, a program to run or a
process to signal with root's rights.
"""
import errno
import json
import os
import signal
import sys
import time

STATE_DIR = sys.argv[1]
SCRIPT_ARGV = sys.argv[3:]
MARKER = "warm_api.py"


def _write_json(name, data):
    """Write STATE_DIR/NAME whole: a new file of a name no one can guess, renamed in."""
    path = os.path.join(STATE_DIR, name)
    tmp = "%s.%s.tmp" % (path, "".join("%02x" % c for c in bytearray(os.urandom(8))))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.rename(tmp, path)


def _start_time(pid):
    """When process ``pid`` started (clock ticks since boot), or None."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (EnvironmentError, IndexError, ValueError):
        return None


def _config_files(argv):
    """The files and directories named by --config-file / --config-dir."""
    found = []
    for index, word in enumerate(argv):
        for flag in ("--config-file", "--config-dir"):
            if word == flag and index + 1 < len(argv):
                found.append(argv[index + 1])
            elif word.startswith(flag + "="):
                found.append(word.split("=", 1)[1])
    return found


def _stat(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_mtime, info.st_size]


def _config_stats(argv):
    """[mtime, size] of each config file and directory named, and of each *.conf
    in those directories (what oslo.config reads from a --config-dir): a file
    edited in place leaves its directory's mtime as it was."""
    stats = {}
    for path in _config_files(argv):
        stats[path] = _stat(path)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith(".conf"):
                    stats[os.path.join(path, name)] = _stat(os.path.join(path, name))
    return stats


def _is_cinder(name):
    return name == "cinder" or name.startswith("cinder.")


# --- 1. monkey-patching, in the environment cinder sets at import ------------------

PATCHED = False
_select, _time, _os = None, time, os


def _patch():
    """Monkey-patch as cinder-api does, before any library import (unless told not to).

    The parent then waits only with the unpatched calls: it never runs an
    eventlet hub (green os.read/waitpid would), so each child starts clean.
    """
    global PATCHED, _select, _time, _os
    env = os.environ.get("OS_CINDER_DISABLE_EVENTLET_PATCHING", "").lower()
    PATCHED = env not in ("1", "true", "yes")
    if PATCHED:
        import eventlet
        eventlet.monkey_patch()
        _select = eventlet.patcher.original("select")
        _time = eventlet.patcher.original("time")
        _os = eventlet.patcher.original("os")
    else:
        import select
        _select = select


# --- 2. what cinder-api imports ---------------------------------------------------

PROBE_CODE = r"""
import sys
sys.argv = ARGV
from oslo_config import cfg
try:
    import runpy
    # the script's module-level imports, without running main()
    runpy.run_path(sys.argv[0], run_name='devloop_warm_probe')
except SystemExit:
    pass
for name in ('cinder.cmd.api', 'cinder.service', 'cinder.api.openstack',
             'cinder.api.v3.router', 'cinder.api.contrib', 'cinder.db.sqlalchemy.api'):
    try:
        __import__(name)
    except Exception:
        pass
try:
    from cinder import objects
    objects.register_all()
    cfg.CONF(sys.argv[1:], project='cinder')
    from cinder import rpc, service
    from cinder.common import config
    config.set_middleware_defaults()
    rpc.init(cfg.CONF)                # the API's controllers make RPC clients
    service.wsgi.Loader(cfg.CONF).load_app('osapi_volume')
except Exception:
    pass
"""


def _probe():
    """(environment cinder sets at import, module names outside cinder that
    cinder-api holds once its app is loaded), from a throwaway child.

    Runs before this process imports anything: e.g. Train's cinder/__init__
    sets EVENTLET_NO_GREENDNS before eventlet may be imported.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            before = dict(os.environ)
            exec(PROBE_CODE, {"__name__": "devloop_warm_probe", "ARGV": list(SCRIPT_ARGV)})
            names = [name for name, module in list(sys.modules.items())
                     if module is not None and not _is_cinder(name)]
            env = dict((key, value) for key, value in os.environ.items()
                       if before.get(key) != value)
            data = json.dumps({"env": env, "modules": names}).encode("utf-8")
            while data:
                data = data[os.write(write_end, data):]
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return {}, []
    return data["env"], data["modules"]


def _warm_up(modules):
    import importlib
    started = _time.time()
    loaded = failed = 0
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            loaded += 1
        except BaseException:   # a module that only imports as part of another: skipped
            failed += 1
        # a library that imports cinder is not kept warm: cinder must load anew
        for held in [n for n in sys.modules if _is_cinder(n)]:
            del sys.modules[held]
    return {"imported": loaded, "skipped": failed,
            "seconds": round(_time.time() - started, 3)}


def _module_files():
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        stat = _stat(path)
        if stat is not None:
            files[path] = stat[0]
    return files


# --- 3. the child ---------------------------------------------------------------

def _prctl(option, value):
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except Exception:
        pass


def _die_with_parent(parent):
    _prctl(1, signal.SIGKILL)           # PR_SET_PDEATHSIG
    if os.getppid() != parent:     # the parent died before prctl took effect
        os._exit(1)


def _fresh_hub_poll():
    """Give the child its own epoll under the hub eventlet made at patching.

    The parent never runs that hub, but an epoll is one kernel object shared
    across fork: the child's registrations must not land in the parent's.
    """
    from eventlet import hubs
    poll = getattr(getattr(hubs._threadlocal, "hub", None), "poll", None)
    if poll is None or not hasattr(poll, "fileno") or not hasattr(_select, "epoll"):
        return
    fresh = _select.epoll()
    os.dup2(fresh.fileno(), poll.fileno())
    fresh.close()


def _run_child(parent, wakeup_fds):
    os.setpgid(0, 0)
    _die_with_parent(parent)
    if PATCHED:
        _fresh_hub_poll()
    for signo in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(signo, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for fd in wakeup_fds:
        os.close(fd)
    sys.argv = list(SCRIPT_ARGV)
    code = 0
    try:
        import runpy
        runpy.run_path(SCRIPT_ARGV[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# --- 4. the parent's loop ------------------------------------------------------------

class Parent(object):
    def __init__(self, warm):
        self.warm = warm
        self.child = None
        self.child_start = None
        self.generation = 0
        self.started = _time.time()
        self.config = _config_stats(SCRIPT_ARGV)
        self.pending = []
        self.read_fd, self.write_fd = os.pipe()
        for fd in (self.read_fd, self.write_fd):
            import fcntl
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        signal.set_wakeup_fd(self.write_fd)
        for signo in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signo, self._note)

    def _note(self, signo, frame):
        self.pending.append(signo)

    def save(self, state, **extra):
        data = {"pid": os.getpid(), "pid_start": _start_time(os.getpid()),
                "child": self.child, "child_start": self.child_start,
                "generation": self.generation,
                "state": state, "started": self.started, "python": sys.executable,
                "argv": SCRIPT_ARGV, "config": self.config, "warm": self.warm,
                "eventlet": PATCHED, "time": _time.time()}
        data.update(extra)
        _write_json("warm.json", data)

    def fork(self):
        self.generation += 1
        pid = os.fork()
        if pid == 0:
            _run_child(os.getppid(), (self.read_fd, self.write_fd))
        self.child = pid
        self.child_start = _start_time(pid)
        self.save("ready")

    def kill_child(self):
        if self.child is None:
            return
        try:
            os.killpg(self.child, signal.SIGKILL)
        except OSError:
            pass
        try:
            _os.waitpid(self.child, 0)
        except OSError:
            pass
        # the group's other members (cinder-api's workers) hold the port until
        # gone; orphaned, they become ours (a subreaper) and are reaped here
        deadline = _time.time() + 10
        while _time.time() < deadline:
            try:
                while _os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except OSError:
                pass
            try:
                os.killpg(self.child, 0)
            except OSError:
                break
            _time.sleep(0.005)
        self.child = None

    def reap(self):
        """The child's exit status if it ended on its own, else None (orphans reaped too)."""
        code = None
        while True:
            try:
                pid, status = _os.waitpid(-1, os.WNOHANG)
            except OSError:
                break
            if pid == 0:
                break
            if pid == self.child:
                self.child = None
                code = (128 + os.WTERMSIG(status) if os.WIFSIGNALED(status)
                        else os.WEXITSTATUS(status))
        return code

    def loop(self):
        self.fork()
        while True:
            try:
                _select.select([self.read_fd], [], [], 1.0)
            except (OSError, IOError, getattr(_select, "error", OSError)) as exc:
                if getattr(exc, "errno", None) != errno.EINTR and \
                        (not exc.args or exc.args[0] != errno.EINTR):
                    raise
            try:
                while _os.read(self.read_fd, 512):
                    pass
            except OSError:
                pass
            pending, self.pending = self.pending, []
            if signal.SIGTERM in pending or signal.SIGINT in pending:
                self.kill_child()
                self.save("stopped")
                return 0
            if signal.SIGHUP in pending:
                self.kill_child()
                self.fork()
                continue
            code = self.reap()
            if code is not None:
                self.save("child exited", code=code)
                return code


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.stderr.write("usage: warm_api.py STATE_DIR -- CINDER_API_SCRIPT [ARGS...]\n")
        return 2
    _prctl(36, 1)                       # PR_SET_CHILD_SUBREAPER: cinder-api's orphans
    started = time.time()
    env, modules = _probe()
    os.environ.update(env)
    _patch()
    if PATCHED:
        # as cinder.monkey_patch does: threading's original current_thread
        # must see the patched _active
        try:
            import __original_module_threading as orig_threading
            import threading
            orig_threading.current_thread.__globals__["_active"] = threading._active
        except (ImportError, AttributeError, KeyError):
            pass
    warm = _warm_up(modules)
    warm["env"] = sorted(env)
    warm["seconds"] = round(time.time() - started, 3)
    held = [name for name in sys.modules if _is_cinder(name)]
    if held:
        sys.stderr.write("warm_api: cinder modules held by the parent: %s\n" % held)
        return 3
    _write_json("modules.json", _module_files())
    sys.stderr.write("warm_api: %d libraries imported in %.2f s; forking cinder-api\n"
                     % (warm["imported"], warm["seconds"]))
    return Parent(warm).loop()


if __name__ == "__main__":
    sys.exit(main())
