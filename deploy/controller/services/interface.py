"""What every service manager offers: start, stop, restart and status of the API service."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from deploy.transport.commands import Remote


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
