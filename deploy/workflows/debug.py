"""``invoke debug``: cinder-api in the foreground under pdb; the service restored.

The order of things on the controller:

1. ``--break`` locations are resolved there first (its files, its python);
   a location that names no code is an error before anything is stopped.
2. The managed service is stopped through its service manager.
3. Leftover cinder-api processes (the inventory's ``cinder_api`` run by the
   service user, see ``remote/debug_processes.py``) are listed and ended.
4. ``remote/debug_guard.py`` runs over SSH with a pty: it starts cinder-api
   as the service user in the foreground of that terminal, with the
   breakpoint hook (``remote/debug_hook.py``) and one API worker, and
   starts the service again when cinder-api ends, the connection drops or
   the guard is signalled.
5. Here, in a ``finally``, the service is checked, started if it is not
   running, and its status and API shown, reconnecting if need be.

With ``--attach`` (``deploy/workflows/attach.py``), the debugpy wheel that fits is
chosen (fetched here if need be) before step 2, sent and unpacked between
steps 3 and 4, its port forwarded here, and the guard starts
cinder-api so that its worker runs debugpy; the rest is the same.

Ctrl-C is not handled here: with a pty, Fabric forwards it as ``\\x03`` and
the remote terminal signals cinder-api. It is noted, so that once the
service is back the task ends with "Aborted!" (exit 130).
"""
from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from deploy.base import output
from deploy.base.errors import ConnectError, DebugError, ServiceError, UsageError
from deploy.base.inventory import Controller
from deploy.controller.facts import cinder_python, locate
from deploy.controller.health import wait_for_api
from deploy.controller.services import ServiceManager, ServiceStatus, manager_for
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail

if TYPE_CHECKING:
    from deploy.workflows.attach import AttachOptions

STRAY_GRACE = 10.0      # seconds between TERM and KILL for leftover cinder-api processes
SESSION_GRACE = 5.0     # the same when the debug session ends (a worker at a prompt ignores TERM)

# Exit codes of remote/debug_guard.py
EXITED_AT_START, SETUP_FAILED, PORT_TAKEN, RESTORE_FAILED = 3, 4, 5, 6

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True, slots=True)
class BreakLocation:
    """A ``--break`` value: ``path:LINE`` or a dotted function name."""

    text: str
    path: str | None = None
    line: int | None = None
    name: str | None = None

    def as_json(self) -> dict[str, object]:
        if self.name is not None:
            return {"text": self.text, "name": self.name}
        return {"text": self.text, "path": self.path, "line": self.line}


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A location resolved on the controller: stop before ``file:line``."""

    module: str
    file: str
    line: int
    label: str

    def as_json(self) -> dict[str, object]:
        return {"module": self.module, "file": self.file, "line": self.line,
                "label": self.label}


def parse_break_location(text: str) -> BreakLocation:
    """Read one ``--break`` value.

    ``api/contrib/cluster_manage.py:127`` is a file relative to the
    controller's cinder package (everything up to the first ``cinder/``
    directory is dropped, so paths in a checkout or an overlay tree such as
    ``cinder_patch/releases/train/cinder/...`` work as they are; an absolute path is
    a path on the controller); ``cinder.api.contrib.cluster_manage.
    ClusterManageController.show`` is a dotted function name.

    Raises:
        UsageError: neither form.
    """
    value = text.strip()
    if ":" in value:
        path, _, line = value.rpartition(":")
        if not path or not line.strip().isdigit() or int(line) < 1:
            raise UsageError(f"--break {text!r}: expected FILE:LINE with a line number "
                             f"from 1, e.g. api/contrib/cluster_manage.py:127")
        path = path.strip()
        if not path.startswith("/"):
            # A path in a checkout or a feature layer (cinder/..., cinder_patch/cinder/...,
            # cinder_patch/releases/train/cinder/...): what follows its cinder/ package dir.
            parts = [part for part in path.split("/") if part not in ("", ".")]
            if "cinder" in parts[:-1]:
                parts = parts[parts.index("cinder") + 1:]
            path = "/".join(parts)
        if not path.endswith(".py"):
            raise UsageError(f"--break {text!r}: {path} is not a .py file")
        return BreakLocation(text, path=path, line=int(line))
    if value.endswith(".py") or "/" in value:
        raise UsageError(f"--break {text!r}: a file needs a line number, FILE:LINE")
    if not _DOTTED.match(value):
        raise UsageError(f"--break {text!r}: expected FILE:LINE or a dotted function name "
                         f"such as cinder.api.contrib.cluster_manage."
                         f"ClusterManageController.show")
    return BreakLocation(text, name=value)


def resolve_breaks(remote: Remote, locations: Sequence[BreakLocation]) -> list[Breakpoint]:
    """Find each location in the controller's code (one SSH round trip).

    Raises:
        DebugError: a location names no code; every such location is listed.
    """
    if not locations:
        return []
    located = remote.located.cinder_dir if remote.located else ""
    argv = [cinder_python(remote), "-B", "-c", script("debug_breaks"),
            remote.controller.cinder_dir or located,
            json.dumps([loc.as_json() for loc in locations])]
    result = remote.run(argv, check=False)
    answer = _last_json(result.stdout)
    if result.exited != 0 or not isinstance(answer, list) or len(answer) != len(locations):
        detail = answer.get("error") if isinstance(answer, dict) else None
        raise DebugError(f"{remote.name}: cannot resolve the --break locations with "
                         f"{cinder_python(remote)}: "
                         f"{detail or tail(result.stderr or result.stdout, 5) or 'no output'}")
    problems = [f"--break {loc.text}: {item['error']}"
                for loc, item in zip(locations, answer) if "error" in item]
    if problems:
        raise DebugError(f"{remote.name}: " + "\n".join(problems) +
                         "\nnothing was stopped")
    return [Breakpoint(item["module"], item["file"], int(item["line"]), item["label"])
            for item in answer]


def end_leftovers(remote: Remote, grace: float = STRAY_GRACE) -> list[int]:
    """End the cinder-api processes still running as the service user; return PIDs.

    Raises:
        DebugError: a process survived KILL.
    """
    ctl = remote.controller
    result = remote.run([cinder_python(remote), "-c", script("debug_processes"), ctl.cinder_api,
                         ctl.service_user, f"{grace:g}"], check=False)
    answer = _last_json(result.stdout)
    if result.exited != 0 or not isinstance(answer, dict) or "found" not in answer:
        detail = answer.get("error") if isinstance(answer, dict) else None
        raise DebugError(f"{remote.name}: cannot look for leftover cinder-api processes: "
                         f"{detail or tail(result.stderr or result.stdout, 5) or 'no output'}")
    if not answer["found"]:
        output.detail("no leftover cinder-api process")
    for process in answer["found"]:
        output.detail(f"leftover cinder-api pid {process['pid']}: "
                      f"{' '.join(process['argv'])}")
    killed = set(answer["killed"])
    for process in answer["found"]:
        pid = process["pid"]
        if pid not in answer["left"]:
            output.detail(f"ended pid {pid} ({'KILL' if pid in killed else 'TERM'})")
    if answer["left"]:
        raise DebugError(f"{remote.name}: cinder-api process(es) "
                         f"{', '.join(map(str, answer['left']))} survived TERM and KILL; "
                         f"end them by hand before debugging")
    return [process["pid"] for process in answer["found"]]


def service_argvs(manager: ServiceManager) -> tuple[list[str], list[str]]:
    """The start and status commands the guard runs on the controller."""
    from deploy.controller.services.supervisord import Supervisord
    from deploy.controller.services.systemd import Systemd

    if isinstance(manager, Supervisord):
        return (manager.ctl_argv("start", manager.program),
                manager.ctl_argv("status", manager.program))
    if isinstance(manager, Systemd):
        return (manager.control_argv("start"),
                ["systemctl", "--no-pager", "status", "--", manager.unit])
    raise DebugError(f"no start command known for {type(manager).__name__}")


def guard_argv(controller: Controller, breaks: Sequence[Breakpoint],
               start: Sequence[str], status: Sequence[str],
               grace: float = SESSION_GRACE,
               attach: dict[str, object] | None = None) -> list[str]:
    """``<python> -c <remote/debug_guard.py> <session JSON>``.

    The JSON carries everything the guard needs: the cinder-api command
    (``<python> <cinder_api> --config-file ... --log-file <log_file>``),
    the service user, the breakpoints and the hook's source, the API URL
    (its port tells when cinder-api is ready) and the service's start and
    status commands.
    """
    python = controller.python
    if not python:   # filled in by locate() before a session starts
        raise DebugError(f"{controller.name}: the python that runs cinder-api is not known")
    args: list[str] = []
    for config in controller.config_files:
        args += ["--config-file", config]
    if controller.log_file:    # else (DevStack: journald only) the log is the terminal
        args += ["--log-file", controller.log_file]
    session = {
        "name": controller.name,
        "python": python,
        "cinder_api": controller.cinder_api,
        "args": args,
        "user": controller.service_user,
        "breaks": [b.as_json() for b in breaks],
        "hook": script("debug_hook"),
        "api_url": controller.api_url,
        "start": list(start),
        "status": list(status),
        "log": f"{controller.state_dir}/debug/guard.log",
        "log_file": controller.log_file,
        "grace": grace,
    }
    if attach:
        session["attach"] = attach
    return [python, "-c", script("debug_guard"), json.dumps(session)]


def session_holding(remote: Remote) -> str:
    """A debug session that holds the controller now, described; "" when none."""
    path = f"{remote.controller.state_dir}/debug/session.json"
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c", script("debug_session"), path],
                        check=False)
    answer = _last_json(result.stdout)
    if not isinstance(answer, dict) or not answer.get("guard"):
        return ""
    kind = (f"the IDE's (debugpy on the controller's 127.0.0.1:{answer.get('port')})"
            if answer.get("mode") == "attach" else "pdb in a terminal")
    return (f"a debug session holds it: {kind}, guard pid {answer['guard']}, for "
            f"{answer.get('age', 0)} s; the service starts again when it ends")


def last_output(text: str, lines: int = 15) -> str:
    """What cinder-api printed before it exited (from the session's pty output)."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").splitlines():
        if line.startswith("--> ") and ("cinder-api exited" in line or
                                        "cinder-api was killed" in line):
            break
        if line.strip() and not line.startswith("--> "):
            kept.append(line.rstrip())
    return "\n".join(kept[-lines:])


def debug(controller: Controller, locations: Sequence[str], timeout: float = 60.0,
          attach: "AttachOptions | None" = None) -> None:
    """Run one debugging session on ``controller`` (with ``attach``: for the IDE).

    Raises:
        UsageError: a malformed ``--break``.
        ConnectError: the controller cannot be reached.
        DebugError: a location names no code, the service would not stop,
            cinder-api exited at start, the connection dropped.
        ServiceError / HealthCheckError: the service did not come back.
        KeyboardInterrupt: the session ended with Ctrl-C (after the
            service was restored).
    """
    parsed = [parse_break_location(text) for text in locations]
    remote = Remote.open(controller)
    try:
        locate(remote)   # the python that runs cinder-api, and where Cinder is
        controller = remote.controller
        if parsed:
            output.step(controller.name, "find the breakpoint locations")
        breaks = resolve_breaks(remote, parsed)
        for location, found in zip(parsed, breaks):
            output.detail(f"{location.text} -> {found.label}")
        wheel = None
        if attach is not None:
            from deploy.workflows.attach import choose_wheel

            output.step(controller.name, "debugpy for the IDE")
            wheel = choose_wheel(remote)
        manager = manager_for(controller)
        start, status = service_argvs(manager)
        interrupted: list[int] = []
        try:
            output.step(controller.name, f"stop {controller.service}")
            manager.stop(remote)
            state = manager.status(remote)
            if state.running:
                raise DebugError(f"{controller.name}: {controller.service} is still running "
                                 f"after stop ({state.describe()}); not starting a second "
                                 f"cinder-api")
            output.step(controller.name, "look for leftover cinder-api processes")
            end_leftovers(remote)
            with contextlib.ExitStack() as stack:
                settings = None
                if attach is not None and wheel is not None:
                    from deploy.workflows.attach import attach_session

                    output.step(controller.name, "send debugpy, forward its port")
                    settings = stack.enter_context(attach_session(remote, attach, wheel))
                output.step(controller.name, "cinder-api in the foreground (Ctrl-C ends the "
                                             "session; q at a (Pdb) prompt too)")
                with _noting_interrupts(interrupted):
                    result = remote.run(guard_argv(controller, breaks, start, status,
                                                   attach=settings),
                                        pty=True, hide=False, check=False)
            _judge(controller, result.exited, result.stdout or "")
        finally:
            remote = _restore(controller, remote, timeout)
        if interrupted:
            raise KeyboardInterrupt
    finally:
        remote.close()


def _judge(controller: Controller, code: int, text: str) -> None:
    """Turn the guard's exit code into an error, if it is one."""
    name = controller.name
    if code == 0:
        return
    if code == EXITED_AT_START:
        raise DebugError(f"{name}: cinder-api exited at start; its last output:\n  " +
                         (last_output(text).replace("\n", "\n  ") or "(none)") +
                         (f"\n  (its log: {controller.log_file})" if controller.log_file else ""))
    if code == -1:
        raise DebugError(f"{name}: the SSH connection dropped during the session; the "
                         f"controller's guard ended cinder-api and started the service")
    messages = [line[4:] for line in text.replace("\r\n", "\n").splitlines()
                if line.startswith(f"--> {name}: ")]
    reason = {PORT_TAKEN: "the API port is taken",
              SETUP_FAILED: "the session could not be set up",
              RESTORE_FAILED: "the service did not start again"}.get(code, f"exit {code}")
    raise DebugError(f"{name}: debug session failed ({reason}): "
                     f"{messages[-3] if len(messages) >= 3 else text.strip()[-300:]}")


def _restore(controller: Controller, remote: Remote, timeout: float) -> Remote:
    """Make sure the service runs, show its status; return a live connection."""
    output.step(controller.name, f"{controller.service} back in service")
    try:
        _ensure_running(remote, timeout)
        return remote
    except ConnectError:
        remote.close()
    try:
        fresh = Remote.open(controller)
    except ConnectError as exc:
        raise DebugError(f"{controller.name}: lost the connection and cannot reconnect "
                         f"({exc}); the controller's guard starts {controller.service} "
                         f"again by itself: check with invoke status") from None
    _ensure_running(fresh, timeout)
    return fresh


def _ensure_running(remote: Remote, timeout: float) -> ServiceStatus:
    manager = manager_for(remote.controller)
    state = manager.status(remote)
    if not state.running:
        manager.start(remote)
    api = wait_for_api(remote, timeout)
    state = manager.status(remote)
    if not state.running:
        raise ServiceError(f"{remote.name}: {remote.controller.service} is not running after "
                           f"start ({state.describe()})")
    output.detail(f"{state.describe()}; API {api.detail}")
    return state


@contextlib.contextmanager
def _noting_interrupts(seen: list[int]) -> Iterator[None]:
    """Record Ctrl-C (SIGINT) while still letting it raise KeyboardInterrupt.

    Invoke catches that KeyboardInterrupt to forward ``\\x03`` and then
    keeps waiting; this is how the task learns that the session ended so.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signo: int, frame: object) -> None:
        seen.append(signo)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _last_json(text: str) -> object:
    for line in reversed((text or "").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None

