"""Fast restart: cinder-api forked from a warm parent that holds its libraries.

``invoke fast-restart on`` swaps the service's command (the supervisord
program's ``command``, or the systemd unit's ExecStart through a drop-in)
for the warm parent, ``deploy/remote/warm_api.py``,
run by the same python with the same arguments. It imports every library
cinder-api uses, and no ``cinder`` module, then forks cinder-api; on SIGHUP
it kills that child's process group and forks a fresh one, which reads
every ``cinder.*`` module from disk again. The service manager still owns
the whole tree (stopping the service stops it). ``off`` writes back the
service definition's original bytes (or removes the drop-in).

A deploy restarts fast only in the pure ``cinder/`` case; anything else
(a migration, a config file or a loaded library changed since the warm
parent started, a dead or unready warm parent) is a normal restart, and
the deploy says why. The controller-side check and the fork are one call.

On the controller, ``<state_dir>/fast`` is root's: the warm parent, the kept
definition and its sha256. The warm parent (the service user) writes its
state only into ``fast/run``, which root reads as that user's word and
never trusts for anything it writes, runs or signals as root (the
module docstring of ``deploy/remote/fast_control.py`` says how).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from deploy.base import output
from deploy.base.errors import DevloopError, ServiceError
from deploy.base.inventory import Controller
from deploy.controller.facts import cinder_python
from deploy.controller.health import ApiState
from deploy.controller.records import MIGRATION_DIRS
from deploy.controller.services import ServiceManager, ServiceStatus
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail

#: the deploy's changed paths (relative to the cinder package) that rule a fast restart out:
#: alembic's and (Train and before) sqlalchemy-migrate's migrations, as ``invoke loop`` sees them
_NOT_FAST = tuple((prefix, "a migration changed") for prefix in MIGRATION_DIRS)


@dataclass(frozen=True, slots=True)
class FastState:
    """A controller's restart mode and its warm parent."""

    mode: str                       # "on" or "off"
    reason: str | None = None       # why a fast restart cannot be done now
    parent: int | None = None
    child: int | None = None
    generation: int = 0
    imported: int = 0

    @property
    def on(self) -> bool:
        return self.mode == "on"

    def describe(self) -> str:
        if not self.on:
            return "normal (fast restart off)"
        if self.reason:
            return f"fast, warm parent NOT ready: {self.reason}; the next deploy restarts it"
        return (f"fast: warm parent pid {self.parent} ({self.imported} libraries), "
                f"cinder-api pid {self.child}, {self.generation} fork(s)")


def fast_dir(controller: Controller) -> str:
    """Where the warm parent, its state and the kept service definition live."""
    return f"{controller.state_dir}/fast"


def _control(remote: Remote, *args: str) -> dict[str, Any]:
    """Run ``fast_control.py`` with ``args``; return its JSON answer.

    Raises:
        DevloopError: the controller refused (its message), or no answer.
    """
    argv = [cinder_python(remote), *STDLIB_ONLY, "-c", script("fast_control"), *args]
    result = remote.run(argv, check=False)
    lines = result.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise DevloopError(f"{remote.name}: fast restart control failed (exit {result.exited}): "
                           f"{tail(result.stderr + result.stdout, 5) or 'no output'}")
    if "error" in data:
        raise ServiceError(f"{remote.name}: {data['error']}")
    return data


def _state(data: dict[str, Any]) -> FastState:
    warm = data.get("warm") or {}
    return FastState(data.get("mode", "off"), data.get("reason"), _count(warm.get("pid")),
                     _count(warm.get("child")), _count(warm.get("generation")) or 0,
                     _count((warm.get("warm") or {}).get("imported")) or 0)


def _count(value: object) -> int | None:
    """``value`` if it is a whole number (the warm parent's state, checked there too)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_state(remote: Remote) -> FastState:
    """The controller's restart mode (one remote call)."""
    return _state(_control(remote, "check", fast_dir(remote.controller)))


def _definition(controller: Controller) -> tuple[str, str]:
    """(kind, file) of the service definition fast mode edits.

    Raises:
        ServiceError: the controller's service manager is not supported.
    """
    if controller.layout == "devstack":
        raise ServiceError(f"{controller.name}: fast restart is not supported under uWSGI: "
                           f"{controller.service} runs the uWSGI master, which loads Cinder "
                           f"in its own workers (lazy-apps) and restarts them itself; a warm "
                           f"parent would have to replace uWSGI, so the unit would no longer "
                           f"run what DevStack configured. A plain restart is used instead")
    if controller.service_manager == "supervisord":
        return "supervisord", controller.supervisor_config or ""
    return "systemd", ""


def switch(controller: Controller, on: bool, timeout: float = 60.0) -> FastState:
    """Turn fast restart on or off on ``controller``; the API answers afterwards.

    Raises:
        ServiceError: unsupported service manager or layout (DevStack's uWSGI), or the
            definition cannot be edited.
        HealthCheckError: the API does not answer within ``timeout``.
    """
    from deploy.controller.health import wait_for_api

    kind, conf = _definition(controller)
    remote = Remote.open(controller)
    try:
        directory = fast_dir(controller)
        if on:
            output.step(controller.name, f"fast restart on: {controller.service} runs from a "
                                         f"warm parent ({directory}/warm_api.py)")
            _control(remote, "on", directory, kind, conf, controller.service,
                     controller.service_user, script("warm_api"), str(timeout))
        else:
            output.step(controller.name, "fast restart off: " + (
                f"{conf} written back as it was" if kind == "supervisord" else
                f"the drop-in for {controller.service} removed"))
            data = _control(remote, "off", directory, kind, conf, controller.service)
            if not data.get("changed"):
                output.detail("it was off")
        api = wait_for_api(remote, timeout)
        state = read_state(remote)
        output.detail(f"{state.describe()}; API {api.detail}")
        return state
    finally:
        remote.close()


def full_restart_reason(sent: Sequence[str], migrated: bool = False) -> str | None:
    """Why this deploy cannot restart fast, from what it changed (None: it can)."""
    if migrated:
        return "the database was migrated"
    for path in sent:
        for prefix, reason in _NOT_FAST:
            if path.startswith(prefix):
                return f"{reason} (cinder/{path})"
    return None


@dataclass(frozen=True, slots=True)
class FastRestart:
    """What a fast restart found: the service (the warm parent) and the API."""

    status: ServiceStatus
    api: ApiState


def restart(remote: Remote, manager: ServiceManager, reason: str | None,
            timeout: float, log_since: int | None = None) -> FastRestart | None:
    """Restart the API after a deploy: fast if the controller is in fast mode and
    nothing rules it out, else through the service manager (returns None).

    A fast restart is one remote call: check, fork, wait for the API, read
    the log written since ``log_since``.

    Raises:
        ServiceError: the service manager refused.
    """
    controller = remote.controller
    data = _control(remote, "restart", fast_dir(controller), str(timeout), reason or "",
                    controller.api_url, controller.log_file,
                    str(-1 if log_since is None else log_since))
    if not data.get("fast"):
        if data.get("mode") == "on":
            output.warn(f"{remote.name}: full restart instead of a fast one: {data.get('reason')}")
        manager.restart(remote)
        return None
    warm, api = data.get("warm") or {}, data.get("api") or {}
    output.detail(f"fast restart: cinder-api pid {warm.get('child')} forked from the warm "
                  f"parent pid {warm.get('pid')} in {data.get('fork_seconds')} s "
                  f"({data.get('checked')} library files unchanged)")
    state = "RUNNING" if controller.service_manager == "supervisord" else "active (running)"
    status = ServiceStatus(state, True, warm.get("pid"),
                           f"warm parent; cinder-api pid {warm.get('child')}")
    if api.get("code") is None:
        return FastRestart(status, ApiState(False, "no answer"))
    return FastRestart(status, ApiState(True, f"HTTP {api['code']} after {api['seconds']:.2f} s",
                                        api.get("log", "")))
