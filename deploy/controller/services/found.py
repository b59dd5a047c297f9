"""Cinder's services on one controller, found from what is installed there.

The API is the inventory's ``service``. Beside it, the scheduler, volume and
backup services count when their unit (systemd: ``LoadState`` not
``not-found``) or program (supervisord: listed by ``supervisorctl avail``)
is present, under the names the controller's kind gives them
(:data:`deploy.controller.service_map.UNITS`); the inventory's ``services:``
limits them. Each service logs to ``<name>.log`` beside the API's log file
(RDO's and the sandbox's layout), or to its unit's journal (DevStack).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

from deploy.base.errors import ServiceError
from deploy.controller.service_map import BINARIES, NAMES, UNITS
from deploy.controller.services import ServiceManager, manager_for
from deploy.controller.services.supervisord import Supervisord
from deploy.controller.services.systemd import Systemd
from deploy.transport.commands import Remote


@dataclass(frozen=True)
class Service:
    """One of Cinder's services on a controller."""

    name: str               # api, scheduler, volume, backup
    unit: str               # the unit or program that runs it
    manager: ServiceManager
    log_file: str           # "": its unit's journal only

    @property
    def binary(self) -> str:
        return BINARIES[self.name]


def kind_of(remote: Remote) -> str:
    """``supervisord``, ``rdo`` or ``devstack``: how the controller names its services."""
    ctl = remote.controller
    if ctl.service_manager == "supervisord":
        return "supervisord"
    return "devstack" if ctl.layout == "devstack" else "rdo"


def _present(remote: Remote, names: dict[str, str]) -> set[str]:
    """Which of ``names``' units or programs exist on the controller (one call)."""
    ctl = remote.controller
    if ctl.service_manager == "supervisord":
        result = remote.run(["supervisorctl", "-c", ctl.supervisor_config or "", "avail"],
                            check=False)
        if result.exited != 0 or "refused connection" in result.stdout + result.stderr:
            raise ServiceError(f"{remote.name}: cannot list supervisord's programs "
                               f"({(result.stderr or result.stdout).strip() or 'no answer'}); "
                               f"is supervisord running with {ctl.supervisor_config}?")
        programs = {line.split()[0] for line in result.stdout.splitlines() if line.split()}
        return {name for name, unit in names.items() if unit in programs}
    units = list(names.values())
    result = remote.run(["systemctl", "show", "--property=Id,LoadState", "--", *units],
                        check=False)
    loaded: set[str] = set()
    for block in result.stdout.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("LoadState") not in (None, "", "not-found"):
            loaded.add(props.get("Id", ""))
    return {name for name, unit in names.items()
            if unit in loaded or f"{unit}.service" in loaded}


def found_services(remote: Remote) -> dict[str, Service]:
    """The controller's services in :data:`NAMES` order: as installed, as the inventory limits them.

    The API counts as installed whatever the service manager says: it is
    the inventory's ``service``, checked when it is restarted.
    """
    ctl = remote.controller
    kind = kind_of(remote)
    wanted = ctl.services if ctl.services is not None else NAMES
    others = {name: unit for name, unit in UNITS[kind].items() if name in wanted}
    present = _present(remote, others) if others else set()
    found: dict[str, Service] = {}
    log_dir = posixpath.dirname(ctl.log_file) if ctl.log_file else ""
    for name in NAMES:
        if name == "api" and "api" in wanted:
            found[name] = Service(name, ctl.service, manager_for(ctl), ctl.log_file)
        elif name in present:
            unit = others[name]
            manager: ServiceManager = (Supervisord(ctl.supervisor_config or "", unit)
                                       if kind == "supervisord" else Systemd(unit))
            found[name] = Service(name, unit, manager,
                                  posixpath.join(log_dir, f"{name}.log") if log_dir else "")
    return found
