"""``invoke debug``: cinder-api (or another service) in the foreground under pdb; restored.

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

With ``--service scheduler|volume|backup``, the service is one found on
the controller (:mod:`deploy.controller.services.found`): its unit or
program is stopped in step 2 (cinder-api keeps running), the leftovers of
step 3 are that service's processes, and the guard runs the command its
unit or program runs (:mod:`deploy.controller.services.command`) as the
user that definition names; it is back once its manager runs it and it
reports ``up`` in the service list again.

Ctrl-C is not handled here: with a pty, Fabric forwards it as ``\\x03`` and
the remote terminal signals cinder-api. It is noted, so that once the
service is back the task ends with "Aborted!" (exit 130).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shlex
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from deploy.base import output
from deploy.base.errors import ConnectError, DebugError, ServiceError, UsageError
from deploy.base.inventory import Controller
from deploy.controller.facts import cinder_python, locate
from deploy.controller.health import wait_for_api
from deploy.controller.services import ServiceManager, ServiceStatus, manager_for
from deploy.controller.services.command import ServiceCommand
from deploy.controller.services.found import Service
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail

if TYPE_CHECKING:
    from deploy.workflows.attach import AttachOptions

STRAY_GRACE = 10.0      # seconds between TERM and KILL for leftover cinder-api processes
SESSION_GRACE = 5.0     # the same when the debug session ends (a worker at a prompt ignores TERM)
SERVICE_SETTLE = 5.0    # seconds a service runs before it counts as started (it has no port)

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


def end_leftovers(remote: Remote, grace: float = STRAY_GRACE,
                  command: ServiceCommand | None = None,
                  binary: str = "cinder-api") -> list[int]:
    """End the cinder-api processes (with ``command``: that service's) still running as the
    service user; return PIDs.

    Raises:
        DebugError: a process survived KILL.
    """
    ctl = remote.controller
    entry, user = (command.entry, command.user) if command else (ctl.cinder_api,
                                                                 ctl.service_user)
    result = remote.run([cinder_python(remote), "-c", script("debug_processes"), entry,
                         user, f"{grace:g}"], check=False)
    answer = _last_json(result.stdout)
    if result.exited != 0 or not isinstance(answer, dict) or "found" not in answer:
        detail = answer.get("error") if isinstance(answer, dict) else None
        raise DebugError(f"{remote.name}: cannot look for leftover {binary} processes: "
                         f"{detail or tail(result.stderr or result.stdout, 5) or 'no output'}")
    if not answer["found"]:
        output.detail(f"no leftover {binary} process")
    for process in answer["found"]:
        output.detail(f"leftover {binary} pid {process['pid']}: "
                      f"{' '.join(process['argv'])}")
    killed = set(answer["killed"])
    for process in answer["found"]:
        pid = process["pid"]
        if pid not in answer["left"]:
            output.detail(f"ended pid {pid} ({'KILL' if pid in killed else 'TERM'})")
    if answer["left"]:
        raise DebugError(f"{remote.name}: {binary} process(es) "
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
               attach: dict[str, object] | None = None,
               command: ServiceCommand | None = None, binary: str = "cinder-api",
               settle: float = SERVICE_SETTLE) -> list[str]:
    """``<python> -c <remote/debug_guard.py> <session JSON>``.

    The JSON carries everything the guard needs: the cinder-api command
    (``<python> <cinder_api> --config-file ... --log-file <log_file>``),
    the service user, the breakpoints and the hook's source, the API URL
    (its port tells when cinder-api is ready) and the service's start and
    status commands.

    With ``command`` (a service's, ``debug --service``): its argv, user,
    environment and directory instead, and ``binary`` to name it; it is
    ready after ``settle`` seconds.
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
    if command is not None:
        session.update({"argv": list(command.argv), "user": command.user,
                        "directory": command.directory, "binary": binary, "settle": settle})
        if command.env:
            session["env_file"] = env_file(controller)
    if attach:
        session["attach"] = attach
    return [python, "-c", script("debug_guard"), json.dumps(session)]


def env_file(controller: Controller) -> str:
    """Where a service's environment waits for the guard (root's alone, read once)."""
    return f"{controller.state_dir}/debug/service-env.json"


def keep_env(remote: Remote, env: Mapping[str, str]) -> None:
    """Hand a service's environment to the guard in a root-only file, over stdin: a
    unit's ``Environment=`` may hold secrets, and argv is anyone's to read."""
    argv = [cinder_python(remote), *STDLIB_ONLY, "-c", script("debug_env"),
            env_file(remote.controller)]
    result = remote.dialogue(argv).finish(json.dumps(dict(env)).encode())
    if result.exited != 0 or _last_json(result.stdout) != {"ok": True}:
        raise DebugError(f"{remote.name}: could not keep the service's environment for the "
                         f"session (exit {result.exited}): "
                         f"{tail(result.stderr + result.stdout, 3) or 'no output'}")


def session_holding(remote: Remote) -> str:
    """A debug session that holds the controller now, described; "" when none."""
    path = f"{remote.controller.state_dir}/debug/session.json"
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c", script("debug_session"), path],
                        check=False)
    answer = _last_json(result.stdout)
    if not isinstance(answer, dict) or not answer.get("guard"):
        return ""
    binary = answer.get("binary") or "cinder-api"
    what = f" of {binary}" if binary != "cinder-api" else ""
    kind = (f"the IDE's (debugpy on the controller's 127.0.0.1:{answer.get('port')})"
            if answer.get("mode") == "attach" else "pdb in a terminal")
    return (f"a debug session{what} holds it: {kind}, guard pid {answer['guard']}, for "
            f"{answer.get('age', 0)} s; the service starts again when it ends")


def last_output(text: str, lines: int = 15, binary: str = "cinder-api") -> str:
    """What cinder-api (``binary``) printed before it exited (from the session's pty output)."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").splitlines():
        if line.startswith("--> ") and (f"{binary} exited" in line or
                                        f"{binary} was killed" in line):
            break
        if line.strip() and not line.startswith("--> "):
            kept.append(line.rstrip())
    return "\n".join(kept[-lines:])


@dataclass(frozen=True)
class _Subject:
    """What a session runs in the foreground: cinder-api, or a service found beside it."""

    binary: str                         # cinder-api, cinder-volume...
    unit: str                           # the unit or program stopped and started again
    manager: ServiceManager
    service: Service | None = None      # None: the API (the inventory's service)
    command: ServiceCommand | None = None


def find_subject(remote: Remote, service: str | None) -> _Subject:
    """The API (``service`` None or ``api``), or the named service as found on the controller,
    with the command its unit or program runs.

    Raises:
        DebugError: the controller runs no such service, or what it runs cannot be read.
    """
    from deploy.controller.services.command import read_command
    from deploy.controller.services.found import found_services

    ctl = remote.controller
    if service in (None, "api"):
        return _Subject("cinder-api", ctl.service, manager_for(ctl))
    found = found_services(remote)
    if service not in found:
        raise DebugError(f"{remote.name}: --service {service}: this controller runs no "
                         f"{service} service (it runs: {', '.join(found) or 'none'}; found "
                         f"from its units or programs, limited by the inventory's services); "
                         f"nothing was stopped")
    chosen = found[service]
    command = read_command(remote, ctl.service_manager, chosen.unit)
    if not command.user:
        # the definition names no user (it would run as root): the inventory's service user
        command = dataclasses.replace(command, user=ctl.service_user)
    return _Subject(chosen.binary, chosen.unit, chosen.manager, chosen, command)


def debug(controller: Controller, locations: Sequence[str], timeout: float = 60.0,
          attach: "AttachOptions | None" = None, service: str | None = None) -> None:
    """Run one debugging session on ``controller`` (with ``attach``: for the IDE).

    ``service``: ``scheduler``, ``volume`` or ``backup`` runs that service
    in the foreground instead of cinder-api (None or ``api``: cinder-api).

    Raises:
        UsageError: a malformed ``--break``.
        ConnectError: the controller cannot be reached.
        DebugError: a location names no code, the controller runs no such
            service, the service would not stop, it exited at start, the
            connection dropped.
        ServiceError / HealthCheckError: the service did not come back.
        KeyboardInterrupt: the session ended with Ctrl-C (after the
            service was restored).
    """
    parsed = [parse_break_location(text) for text in locations]
    remote = Remote.open(controller)
    try:
        locate(remote)   # the python that runs cinder-api, and where Cinder is
        controller = remote.controller
        subject = find_subject(remote, service)
        if subject.command is not None:
            output.step(controller.name, f"{subject.binary}: {subject.command.source}")
            output.detail(f"as {subject.command.user}: {shlex.join(subject.command.argv)}")
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
        manager = subject.manager
        start, status = service_argvs(manager)
        before = None
        if subject.service is not None:
            from deploy.controller.service_health import up_before

            before = up_before(remote)
        interrupted: list[int] = []
        try:
            output.step(controller.name, f"stop {subject.unit}")
            manager.stop(remote)
            state = manager.status(remote)
            if state.running:
                raise DebugError(f"{controller.name}: {subject.unit} is still running "
                                 f"after stop ({state.describe()}); not starting a second "
                                 f"{subject.binary}")
            output.step(controller.name, f"look for leftover {subject.binary} processes")
            end_leftovers(remote, command=subject.command, binary=subject.binary)
            with contextlib.ExitStack() as stack:
                settings = None
                if attach is not None and wheel is not None:
                    from deploy.workflows.attach import attach_session

                    output.step(controller.name, "send debugpy, forward its port")
                    settings = stack.enter_context(attach_session(remote, attach, wheel))
                output.step(controller.name, f"{subject.binary} in the foreground (Ctrl-C ends "
                                             f"the session; q at a (Pdb) prompt too)")
                if subject.command is not None and subject.command.env:
                    keep_env(remote, subject.command.env)
                with _noting_interrupts(interrupted):
                    result = remote.run(guard_argv(controller, breaks, start, status,
                                                   attach=settings, command=subject.command,
                                                   binary=subject.binary),
                                        pty=True, hide=False, check=False)
            _judge(controller, result.exited, result.stdout or "", subject.binary)
        finally:
            remote = _restore(controller, remote, timeout, subject, before)
        if interrupted:
            raise KeyboardInterrupt
    finally:
        remote.close()


def _judge(controller: Controller, code: int, text: str, binary: str = "cinder-api") -> None:
    """Turn the guard's exit code into an error, if it is one."""
    name = controller.name
    if code == 0:
        return
    if code == EXITED_AT_START:
        log = controller.log_file if binary == "cinder-api" else ""
        raise DebugError(f"{name}: {binary} exited at start; its last output:\n  " +
                         (last_output(text, binary=binary).replace("\n", "\n  ") or "(none)") +
                         (f"\n  (its log: {log})" if log else ""))
    if code == -1:
        raise DebugError(f"{name}: the SSH connection dropped during the session; the "
                         f"controller's guard ended {binary} and started the service")
    messages = [line[4:] for line in text.replace("\r\n", "\n").splitlines()
                if line.startswith(f"--> {name}: ")]
    reason = {PORT_TAKEN: "the API port is taken",
              SETUP_FAILED: "the session could not be set up",
              RESTORE_FAILED: "the service did not start again"}.get(code, f"exit {code}")
    raise DebugError(f"{name}: debug session failed ({reason}): "
                     f"{messages[-3] if len(messages) >= 3 else text.strip()[-300:]}")


def _restore(controller: Controller, remote: Remote, timeout: float,
             subject: _Subject | None = None,
             before: dict[str, set[str]] | None = None) -> Remote:
    """Make sure the service runs, show its status; return a live connection."""
    unit = subject.unit if subject is not None else controller.service
    output.step(controller.name, f"{unit} back in service")
    try:
        _ensure_running(remote, timeout, subject, before)
        return remote
    except ConnectError:
        remote.close()
    try:
        fresh = Remote.open(controller)
    except ConnectError as exc:
        raise DebugError(f"{controller.name}: lost the connection and cannot reconnect "
                         f"({exc}); the controller's guard starts {unit} "
                         f"again by itself: check with invoke status") from None
    _ensure_running(fresh, timeout, subject, before)
    return fresh


def _ensure_running(remote: Remote, timeout: float, subject: _Subject | None = None,
                    before: dict[str, set[str]] | None = None) -> ServiceStatus:
    if subject is not None and subject.service is not None:
        return _ensure_service(remote, timeout, subject.service, before)
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


def _ensure_service(remote: Remote, timeout: float, service: Service,
                    before: dict[str, set[str]] | None) -> ServiceStatus:
    """The service beside the API runs under its manager and reports ``up`` again."""
    from deploy.controller import service_health

    state = service.manager.status(remote)
    if not state.running:
        service.manager.start(remote)
        state = service.manager.status(remote)
    if not state.running:
        raise ServiceError(f"{remote.name}: {service.unit} is not running after start "
                           f"({state.describe()})")
    since = service_health.controller_time(remote)
    shown = service_health.wait_for_services(remote, [service], since, before or {},
                                             {service.name: state.pid}, {service.name: None},
                                             timeout)
    output.detail(f"{service.binary}: {shown.get(service.name) or state.describe()}")
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

