"""Restart the API after a change and check it serves: the one way every task restarts.

A controller in fast-restart mode forks a fresh cinder-api from its warm
parent instead of a full restart, unless a migration rules that out
(:mod:`deploy.controller.fastrestart`); either way the restart counts only
once the API answers and, after a deploy, serves what was sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from deploy.base import output
from deploy.base.errors import ServiceError
from deploy.controller.facts import cinder_python
from deploy.controller.health import ApiState, check_serving, log_mark, wait_for_api
from deploy.controller.services import ServiceStatus, manager_for
from deploy.controller.services.found import Service
from deploy.transport.commands import Remote


@dataclass(frozen=True)
class Served:
    """What a restart after a deploy must find served: the files sent, from which tree."""

    sent: Sequence[str]               # relative to the cinder package
    source: Path                      # the local tree they came from
    log_since: int | None = None      # the API log's size before the deploy, if known
    fast_mode: bool | None = None     # fast restart on? (None: ask the controller)


def restart_and_check(remote: Remote, timeout: float, served: Served | None = None, *,
                      migrated: bool = False) -> tuple[ServiceStatus, ApiState]:
    """Restart the service, wait until the API answers, return the new state.

    After a deploy (``served``), a controller in fast-restart mode forks a
    fresh cinder-api from its warm parent unless the deploy changed a
    migration or ``migrated`` the database (see :mod:`deploy.controller.fastrestart`).

    With ``served`` (what a deploy just sent), healthy also means serving
    it: no failure of sent code in the log written since the restart, and
    every sent extension listed by the API (:func:`check_serving`).

    Raises:
        ServiceError: the service manager refused.
        HealthCheckError: no answer before the deadline (log tail shown), or
            the sent code is not served (reason and log lines shown).
    """
    cinder_python(remote)   # the probe runs with Cinder's python: found now if not yet
    manager = manager_for(remote.controller)
    mark = None
    if served is not None and served.sent:
        mark = served.log_since if served.log_since is not None else log_mark(remote)
        from deploy.openstack.auth import prefetch
        prefetch(remote.controller)      # the token for check_serving, while it restarts
    output.step(remote.name, f"restart {remote.controller.service}")
    fast = None
    if served is None or served.fast_mode is False:
        manager.restart(remote)
    else:
        from deploy.controller import fastrestart
        fast = fastrestart.restart(remote, manager,
                                   fastrestart.full_restart_reason(served.sent, migrated),
                                   timeout, mark)
    api = fast.api if fast and fast.api.answering else wait_for_api(
        remote, 1.0 if fast else timeout, mark)
    confirmed = (check_serving(remote, api, served.source, served.sent)
                 if served is not None and served.sent else 0)
    status = fast.status if fast else manager.status(remote)
    listed = f"; {confirmed} extension(s) sent are listed" if confirmed else ""
    output.detail(f"{status.describe()}; API {api.detail}{listed}")
    return status, api


@dataclass
class Restarted:
    """What a restart of the controller's services did."""

    #: service -> why it was restarted (``cinder/volume/manager.py changed``)
    reasons: dict[str, str]
    status: ServiceStatus | None = None     # the API's, if it was restarted
    api: ApiState | None = None
    #: service -> what its check found, for those beside the API
    services: dict[str, str] | None = None



def configured_drivers(remote: Remote, cinder_dir: str | None = None) -> dict[str, list[str]]:
    """Per driver rule of the map, the paths the controller's configured driver loads."""
    import json

    from deploy.controller.facts import locate
    from deploy.controller.service_map import driver_paths
    from deploy.remote import script
    from deploy.transport.commands import STDLIB_ONLY

    cinder_dir = cinder_dir or locate(remote).cinder_dir
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c", script("configured_drivers"),
                         cinder_dir, *remote.controller.config_files])
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    found: dict[str, list[str]] = {}
    for key, option in (("volume driver", "volume_driver"), ("backup driver", "backup_driver")):
        paths = list(answer["modules"][key])
        for driver in answer[option]:
            paths += [p for p in driver_paths(driver) if p not in paths]
        # a module's packages are imported with it
        for path in list(paths):
            parts = path.rstrip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                init = "/".join(parts[:depth]) + "/__init__.py"
                if init not in paths:
                    paths.append(init)
        found[key] = paths
    found["configured volume_driver"] = list(answer["volume_driver"])
    found["configured backup_driver"] = list(answer["backup_driver"])
    return found


def choose_services(remote: Remote, found: Mapping[str, Service], changed: Sequence[str] | None,
                    only: Sequence[str] | None, migrated: bool = False,
                    cinder_dir: str | None = None, always_api: bool = False,
                    verb: str = "changed") -> dict[str, str]:
    """Which of ``found`` to restart, and why: ``only`` (``--service``), else those that
    load a ``changed`` file (None: the API, as ``invoke restart`` always did).

    Prints one line per chosen service, and one for changed files nothing loads.

    Raises:
        ServiceError: ``only`` names a service the controller does not run.
    """
    from deploy.controller.service_map import choose, needs_drivers

    if only:
        missing = [name for name in only if name not in found]
        if missing:
            raise ServiceError(f"{remote.name}: --service {missing[0]}: this controller runs no "
                               f"{missing[0]} service (it runs: {', '.join(found) or 'none'}; "
                               f"found from its units or programs, limited by the inventory's "
                               f"services)")
        reasons = {name: "asked for with --service" for name in only}
    elif changed is None:
        reasons = {"api": "restarted as asked"} if "api" in found else {}
    elif migrated:
        reasons = {name: "the database was migrated" for name in found}
    else:
        drivers = configured_drivers(remote, cinder_dir) if needs_drivers(changed) else {}
        reasons, unloaded = choose(changed, found, drivers, verb=verb)
        if unloaded:
            what = ", ".join(f"cinder/{path}" for path in unloaded[:3]) + (
                f" and {len(unloaded) - 3} more" if len(unloaded) > 3 else "")
            configured = "".join(
                f"; {key.split()[1]} is {', '.join(drivers[key])}"
                for key in ("configured volume_driver", "configured backup_driver")
                if drivers.get(key))
            output.result(f"{remote.name}: no running service loads {what}{configured}")
        if always_api and "api" in found and "api" not in reasons:
            reasons = {"api": "nothing to restore: restarted as asked", **reasons}
        if not reasons:
            output.result(f"{remote.name}: nothing restarted: no service running here loads "
                          f"the {verb} files")
    for name, reason in reasons.items():
        output.result(f"{remote.name}: {name}: {reason}")
    return reasons


def restart_services(remote: Remote, timeout: float, served: Served | None = None, *,
                     changed: Sequence[str] | None = None, only: Sequence[str] | None = None,
                     migrated: bool = False, cinder_dir: str | None = None,
                     always_api: bool = False, verb: str = "changed") -> Restarted:
    """Restart the services that run changed code (or ``only`` those), and check each.

    The API goes through :func:`restart_and_check` (fast restart, serving
    check); the scheduler, volume and backup services are restarted first,
    then checked once the API answers: each must report ``up`` in its
    service list after the restart (:mod:`deploy.controller.service_health`).

    Raises:
        ServiceError: a service manager refused.
        HealthCheckError: a service did not come back (its last lines shown).
    """
    from deploy.controller import service_health
    from deploy.controller.services.found import found_services

    found = found_services(remote)
    reasons = choose_services(remote, found, changed, only, migrated, cinder_dir, always_api,
                              verb)
    report = Restarted(reasons)
    others = [found[name] for name in reasons if name != "api"]
    pids: dict[str, int | None] = {}
    marks: dict[str, int | None] = {}
    since = 0.0
    before: dict[str, set[str]] = {}
    if others:
        before = service_health.up_before(remote) or {}
        for service in others:
            marks[service.name] = _size(remote, service.log_file)
            output.step(remote.name, f"restart {service.unit}")
            try:
                service.manager.restart(remote)
            except ServiceError as refused:
                raise service_health.failed(remote, service, f"did not start ({refused})",
                                            marks[service.name]) from None
        since = service_health.controller_time(remote)
        for service in others:
            pids[service.name] = service.manager.status(remote).pid
    if "api" in reasons:
        report.status, report.api = restart_and_check(
            remote, timeout, served if changed is not None else None, migrated=migrated)
    if others:
        report.services = service_health.wait_for_services(remote, others, since, before, pids,
                                                           marks, timeout)
        for name, shown in report.services.items():
            output.detail(f"{found[name].binary}: {shown}")
    return report


def _size(remote: Remote, path: str) -> int | None:
    if not path:
        return None
    result = remote.run(["stat", "-c", "%s", "--", path], check=False)
    text = result.stdout.strip()
    return int(text) if result.exited == 0 and text.isdigit() else 0
