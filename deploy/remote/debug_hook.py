"""Breakpoints inside the foreground cinder-api, installed before Cinder loads.

The debug guard (``debug_guard.py``) writes this file as ``devloop_debug.py``
next to a ``sitecustomize.py`` that imports it, and puts that directory on
the PYTHONPATH of the cinder-api it starts. So the process is a plain
``<python> <cinder-api> ...`` (found by the stray-process scan like any
other), and nothing in the cinder tree is edited.

Breakpoints cost nothing until they are reached. No trace function runs:
an import hook compiles each module that holds a ``--break`` location from
its source with one extra statement, ``devloop_debug.stop(N)``, placed
before the statement at that line; only that call, when reached, starts
pdb, at that frame. pdb's tracing is switched on then, for stepping, and
off again at ``c`` (bdb does that when no breakpoint is left). Eventlet
does not get in the way: the prompt reads the terminal with a blocking
``input()``, which the monkey-patching leaves alone, so the process waits
for the developer instead of switching to other green threads. The worker
that cinder forks inherits the compiled code, and the terminal.

``q``, Ctrl-D and Ctrl-C at a prompt end the whole session: the hook marks
the end for the guard and interrupts its process group (the foreground
cinder-api and its worker; the guard lives in another group), since
oslo.service ignores Ctrl-C in a worker blocked at a prompt.

``invoke debug --attach`` sets ``DEVLOOP_ATTACH`` (``{"dir", "port"}``): the
hook then starts debugpy (brought by the tool into ``dir``) in the API
worker only, right after cinder-api forks it, listening on the
controller's loopback (see :func:`_arm_attach`). debugpy asks a client for
no credentials, and any local user can reach the loopback: so debugpy's
adapter (a process it starts, with this hook loaded through
``DEVLOOP_GATE``) accepts on that port only connections whose other end
root owns, as the kernel says in /proc/net/tcp; the tool's SSH forward is
root's (sshd, for the tool's root login), the service user and every
other user are turned away (see :func:`_arm_gate`). While ``listen()``
waits for that adapter to connect back with its endpoints, the worker
takes that connection only from its own user (the adapter's) or root
(on a kernel before 4.10, a connection already closed by its owner is
listed as root's, so there this one-shot wait is open to a fast local user).

On Python 3 the hook is a ``find_spec`` finder with a SourceFileLoader;
on Python 2 (no importlib.machinery) a PEP 302 ``find_module`` finder over
``imp``. Python 2.7 and 3.6+, standard library only: this runs with the
controller's python.
"""
import ast
import json
import os
import signal
import sys

try:
    import importlib.machinery
    import importlib.util
except ImportError:  # Python 2
    import imp
    importlib = None

FUNCTIONS = (ast.FunctionDef, getattr(ast, "AsyncFunctionDef", ast.FunctionDef))

BREAKS = json.loads(os.environ.get("DEVLOOP_DEBUG_BREAKS") or "[]")
ENDED = os.environ.get("DEVLOOP_DEBUG_ENDED", "")


def _end_session(reason):
    """Tell the guard the developer ended the session, then end it."""
    try:
        with open(ENDED, "w") as handle:
            handle.write(reason)
    except EnvironmentError:
        pass
    try:
        sys.stdout.write("\r\ndevloop: %s: ending the debug session\r\n" % reason)
        sys.stdout.flush()
    except (EnvironmentError, ValueError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGINT)
    except OSError:
        pass
    os._exit(0)


_DEBUGGER_CLASS = []


def _debugger():
    """A new DevloopPdb: pdb whose quit, EOF and Ctrl-C at the prompt end the session.

    pdb is imported here, on first use, so nothing is imported before
    Cinder's eventlet monkey-patching that it did not import itself.
    """
    if not _DEBUGGER_CLASS:
        import pdb

        class DevloopPdb(pdb.Pdb):
            def __init__(self):
                # nosigint: after `c`, Ctrl-C must reach cinder-api (and end
                # the session), not break into pdb in the worker only.
                # (Python 2's pdb never catches Ctrl-C, and has no such option.)
                if sys.version_info[0] >= 3:
                    pdb.Pdb.__init__(self, nosigint=True)
                else:
                    pdb.Pdb.__init__(self)

            def interaction(self, frame, traceback):
                previous = signal.signal(signal.SIGINT,
                                         lambda signo, frame: _end_session("Ctrl-C"))
                try:
                    pdb.Pdb.interaction(self, frame, traceback)
                finally:
                    signal.signal(signal.SIGINT, previous)

            def do_quit(self, arg):
                _end_session("quit")

            do_q = do_exit = do_quit

            def do_EOF(self, arg):
                _end_session("end of input")

        _DEBUGGER_CLASS.append(DevloopPdb)
    return _DEBUGGER_CLASS[0]()


def set_trace(*args, **kwargs):
    """``breakpoint()`` (PYTHONBREAKPOINT points here): stop in the caller."""
    _debugger().set_trace(sys._getframe(1))


def stop(index):
    """Reached before the statement of ``--break`` number ``index``: prompt now."""
    frame = sys._getframe(1)
    where = BREAKS[index]
    debugger = _debugger()
    debugger.stdout.write("devloop: breakpoint %d, %s (pid %d)\n"
                          % (index + 1, where["label"], os.getpid()))
    # What Bdb.set_trace does, except that the prompt comes at once, at the
    # caller's current line, before its statement runs.
    debugger.reset()
    outer = frame
    while outer is not None:
        outer.f_trace = debugger.trace_dispatch
        debugger.botframe = outer
        outer = outer.f_back
    # Trace, but stop nowhere until a command (n, s, c...) says where.
    debugger._set_stopinfo(debugger.botframe, None, -1)
    sys.settrace(debugger.trace_dispatch)
    debugger.interaction(frame, None)


# --- compiling the modules that hold breakpoints --------------------------------

def _is_docstring(node):
    value = getattr(node, "value", None)
    if not isinstance(node, ast.Expr):
        return False
    if type(value).__name__ == "Str":   # Python < 3.8
        return True
    return isinstance(value, getattr(ast, "Constant", ())) and isinstance(value.value, str)


def _insert_stop(tree, line, index):
    """Put ``devloop_debug.stop(index)`` before the statement starting at ``line``."""
    call = ast.parse("__import__('devloop_debug').stop(%d)" % index).body[0]
    for node in ast.walk(call):
        node.lineno, node.col_offset = line, 0
        if hasattr(node, "end_lineno"):
            node.end_lineno, node.end_col_offset = line, 0
    for parent in ast.walk(tree):  # breadth first: the outermost statement wins
        for field in ("body", "orelse", "finalbody"):
            block = getattr(parent, field, None)
            if not isinstance(block, list):
                continue
            for position, statement in enumerate(block):
                if not isinstance(statement, ast.stmt) or statement.lineno != line:
                    continue
                if position == 0 and field == "body" and _is_docstring(statement) and \
                        isinstance(parent, (ast.Module, ast.ClassDef) + FUNCTIONS):
                    position = 1   # keep the docstring a docstring
                while isinstance(parent, ast.Module) and position < len(block) and \
                        isinstance(block[position], ast.ImportFrom) and \
                        block[position].module == "__future__":
                    position += 1  # __future__ imports must come first
                block.insert(position, call)
                return True
    return False


def _compile_with_stops(path, breaks):
    """The code of the module at ``path`` with a stop before each break's statement."""
    with open(path, "rb") as handle:
        source = handle.read()
    tree = ast.parse(source, path)
    for index, where in breaks:
        if _insert_stop(tree, where["line"], index):
            sys.stderr.write("devloop: breakpoint %d armed at %s\n"
                             % (index + 1, where["label"]))
        else:
            sys.stderr.write("devloop: no statement at %s:%d; breakpoint %d not set\n"
                             % (path, where["line"], index + 1))
    return compile(tree, path, "exec", dont_inherit=True)


if importlib is not None:
    class _BreakLoader(importlib.machinery.SourceFileLoader):
        """Compile from source with the stops inserted; never read or write a .pyc."""

        def __init__(self, fullname, path, breaks):
            importlib.machinery.SourceFileLoader.__init__(self, fullname, path)
            self.breaks = breaks

        def get_code(self, fullname):
            return _compile_with_stops(self.path, self.breaks)


class _Py2BreakLoader(object):
    """PEP 302 loader (Python 2): the module's code with the stops, no .pyc."""

    def __init__(self, path, package_dir, breaks):
        self.path, self.package_dir, self.breaks = path, package_dir, breaks

    def load_module(self, fullname):
        if fullname in sys.modules:
            return sys.modules[fullname]
        code = _compile_with_stops(self.path, self.breaks)
        module = imp.new_module(fullname)
        module.__file__, module.__loader__ = self.path, self
        if self.package_dir:
            module.__path__, module.__package__ = [self.package_dir], fullname
        else:
            module.__package__ = fullname.rpartition(".")[0]
        sys.modules[fullname] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            del sys.modules[fullname]
            raise
        return sys.modules[fullname]


class _BreakFinder(object):
    """A meta path finder that only answers for the modules holding breakpoints."""

    def __init__(self, by_module):
        self.by_module = by_module

    def find_spec(self, fullname, path=None, target=None):
        breaks = self.by_module.get(fullname)
        if not breaks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        spec.loader = _BreakLoader(fullname, spec.origin, breaks)
        return spec

    def find_module(self, fullname, path=None):
        """Python 2's protocol (Python 3 asks find_spec first)."""
        breaks = self.by_module.get(fullname)
        if not breaks or importlib is not None:
            return None
        try:
            handle, found, (_, _, kind) = imp.find_module(fullname.rpartition(".")[2], path)
        except ImportError:
            return None
        if handle is not None:
            handle.close()
        if kind == imp.PKG_DIRECTORY:
            return _Py2BreakLoader(os.path.join(found, "__init__.py"), found, breaks)
        if kind == imp.PY_SOURCE:
            return _Py2BreakLoader(found, None, breaks)
        return None

    def invalidate_caches(self):
        pass


_ATTACH = {}


class _Captured(object):
    """A stand-in for stderr that keeps what is written."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass


def _in_subprocess_fork():
    """True inside the fork ``subprocess`` makes before it execs a program."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_execute_child":
            return True
        frame = frame.f_back
    return False


def _listen_in_child():
    """After a fork, in the child: the API worker starts debugpy (once).

    Skipped in forks that only exec a program and in children of a
    process that already listens (debugpy's own adapter among them).
    """
    if _ATTACH.get("done") or not _ATTACH.get("port") or _in_subprocess_fork():
        return
    _ATTACH["done"] = True
    sys.path.insert(0, _ATTACH["dir"])
    # pydevd prints a traceback when GEVENT_SUPPORT is set without gevent,
    # which is the point here (it only needs real threads): keep that quiet.
    stderr, sys.stderr = sys.stderr, _Captured()
    # debugpy's adapter (started by listen(), with this environment) loads this
    # hook, which there lets only root's connections through (_arm_gate)
    saved = dict((key, os.environ.get(key)) for key in ("PYTHONPATH", "DEVLOOP_GATE"))
    os.environ["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
    os.environ["DEVLOOP_GATE"] = str(int(_ATTACH["port"]))
    # meanwhile, listen() waits here for its adapter to connect back and say where
    # it listens: only this user's connection (the adapter's) or root's is that.
    # The adapter may have written and closed its end before we look: any state
    # but TIME_WAIT counts.
    import socket
    accept = socket.socket.accept
    states = tuple("%02X" % state for state in range(1, 12) if state != int(TIME_WAIT, 16))
    socket.socket.accept = _gated(accept, None, (0, os.getuid()), states)
    try:
        import debugpy
        debugpy.listen(("127.0.0.1", int(_ATTACH["port"])))
    except Exception as exc:  # the worker serves on, without a debugger
        sys.stderr, said = stderr, "".join(sys.stderr.parts)
        sys.stderr.write("%sdevloop: debugpy could not listen: %s\n" % (said, exc))
        return
    finally:
        socket.socket.accept = accept
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    sys.stderr, said = stderr, "".join(sys.stderr.parts)
    if "gevent" not in said:
        sys.stderr.write(said)
    sys.stderr.write("devloop: debugpy %s listens on 127.0.0.1:%s in pid %d\n"
                     % (getattr(debugpy, "__version__", "?"), _ATTACH["port"], os.getpid()))


def _arm_attach():
    """Start debugpy in the forked API worker rather than in cinder-api's parent.

    The worker serves the requests; debugging only it avoids child
    sessions. Python 3 has ``os.register_at_fork``; Python 2 gets ``os.fork``
    wrapped. The variable is cleared from the environment, or every program
    cinder-api starts (debugpy's adapter first) would listen again.
    """
    raw = os.environ.pop("DEVLOOP_ATTACH", "")
    if not raw:
        return
    _ATTACH.update(json.loads(raw))
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_listen_in_child)
        return
    original = os.fork

    def fork():
        pid = original()
        if pid == 0:
            _listen_in_child()
        return pid

    os.fork = fork


def _tcp_row(address):
    """/proc/net/tcp's name of an IPv4 ``(host, port)``: ``0100007F:1F90``."""
    import socket
    import struct
    host = struct.unpack("=I", socket.inet_aton(address[0]))[0]
    return "%08X:%04X" % (host, address[1])


ESTABLISHED, TIME_WAIT = "01", "06"     # TCP states as /proc/net/tcp names them


def peer_uid(conn, states=(ESTABLISHED,)):
    """The uid that owns the other end of ``conn``, a loopback TCP connection, or None.

    Both ends are on this host, so the kernel lists the other end's socket
    in /proc/net/tcp (local address: our peer's; remote: ours), with the uid
    that owns it. Only a socket in one of ``states`` counts: one its owner
    has closed may be listed as root's on older kernels (before 4.10), and
    TIME_WAIT always is.
    """
    try:
        wanted = (_tcp_row(conn.getpeername()), _tcp_row(conn.getsockname()))
        with open("/proc/net/tcp") as handle:
            rows = [line.split() for line in handle.readlines()[1:]]
    except (EnvironmentError, ValueError, TypeError, IndexError):
        return None
    for row in rows:
        if len(row) > 7 and (row[1], row[2]) == wanted and row[3] in states:
            return int(row[7])
    return None


def _gated(accept, port, allowed, states=(ESTABLISHED,)):
    """``accept`` that keeps a connection only if a uid in ``allowed`` owns its other end.

    With ``port``, only connections to that port are looked at. Any other
    connection is closed before a byte of it is read, and accept waits on.
    """
    def gated_accept(self):
        while True:
            conn, address = accept(self)
            try:
                looked_at = port is None or self.getsockname()[1] == port
            except (EnvironmentError, IndexError, TypeError):
                looked_at = True
            if not looked_at or peer_uid(conn, states) in allowed:
                return conn, address
            conn.close()
    return gated_accept


def _arm_gate():
    """In debugpy's adapter: on the session's port, accept root's connections only.

    ``DEVLOOP_GATE`` names the port. Every other connection there is closed
    at once, before debugpy reads a byte of it.
    """
    raw = os.environ.pop("DEVLOOP_GATE", "")
    if not raw:
        return
    import socket
    socket.socket.accept = _gated(socket.socket.accept, int(raw), (0,))


def install():
    """Register the import hook for every breakpoint (at interpreter start)."""
    _arm_gate()
    _arm_attach()
    by_module = {}
    for index, where in enumerate(BREAKS):
        if where["module"] in sys.modules:
            sys.stderr.write("devloop: %s was imported before the hook; breakpoint %d not "
                             "set\n" % (where["module"], index + 1))
            continue
        by_module.setdefault(where["module"], []).append((index, where))
    if by_module:
        sys.meta_path.insert(0, _BreakFinder(by_module))


def chain_sitecustomize(own_file):
    """Run the sitecustomize that ours shadows (Debian ships one), if any."""
    here = os.path.dirname(os.path.abspath(own_file))
    if sys.path and here in (os.path.abspath(p or ".") for p in sys.path):
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if os.environ.get("PYTHONPATH") == here:
        del os.environ["PYTHONPATH"]   # not for the programs cinder-api may start
    try:
        if importlib is None:  # Python 2
            try:
                found = imp.find_module("sitecustomize", sys.path)
            except ImportError:
                return
            try:
                imp.load_module("_devloop_chained_sitecustomize", *found)
            finally:
                if found[0] is not None:
                    found[0].close()
            return
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # the interpreter ignores a failing sitecustomize too
        sys.stderr.write("devloop: the controller's sitecustomize failed: %s\n" % exc)
