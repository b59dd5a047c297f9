"""One interface over the controller's service manager.

A manager only formats commands (``systemctl restart X``,
``supervisorctl -c CONF restart X``) and reads their answers; running them
is ``Remote.run``'s job. ``manager_for`` picks the implementation named by
the inventory's ``service_manager``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from deploy.commands import Remote
from deploy.inventory import Controller


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What the service manager says about the service."""

    state: str              # e.g. "RUNNING" / "active (running)" / "STOPPED"
    running: bool
    pid: int | None = None
    uptime: str = ""

    def describe(self) -> str:
        parts = [self.state]
        if self.pid:
            parts.append(f"pid {self.pid}")
        if self.uptime:
            parts.append(self.uptime)
        return ", ".join(parts)


class ServiceManager(Protocol):
    """Start, stop and inspect the API service on one controller."""

    def start(self, remote: Remote) -> None: ...

    def stop(self, remote: Remote) -> None: ...

    def restart(self, remote: Remote) -> None: ...

    def status(self, remote: Remote) -> ServiceStatus: ...


def manager_for(controller: Controller) -> ServiceManager:
    """Return the service manager the inventory names for ``controller``."""
    if controller.service_manager == "supervisord":
        from deploy.services.supervisord import Supervisord
        return Supervisord(controller.supervisor_config or "", controller.service)
    from deploy.services.systemd import Systemd
    return Systemd(controller.service)
