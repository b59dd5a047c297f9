"""``invoke status``: service state, API, and database revision per controller."""
from __future__ import annotations

from dataclasses import dataclass

from deploy import db, facts
from deploy.commands import Remote
from deploy.errors import DevloopError
from deploy.health import ApiState, probe_api
from deploy.inventory import Controller
from deploy.services import ServiceStatus, manager_for


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """A snapshot of one controller."""

    name: str
    service: ServiceStatus
    api: ApiState
    db_revision: str
    migration_heads: tuple[str, ...]

    @property
    def db_current(self) -> bool:
        return self.db_revision in self.migration_heads

    def lines(self) -> list[str]:
        heads = ", ".join(self.migration_heads) or "none found"
        db_line = (f"{self.db_revision} (newest migration)" if self.db_current else
                   f"{self.db_revision}, newest migration {heads}: run invoke db-sync")
        return [
            f"{self.name}:",
            f"  service   {self.service.describe()}",
            f"  api       {'answering, ' if self.api.answering else 'NOT answering: '}"
            f"{self.api.detail}",
            f"  database  {db_line}",
        ]


def read_status(controller: Controller) -> ControllerStatus:
    """Gather the status of one controller.

    Raises:
        DevloopError: the controller cannot be reached or read.
    """
    remote = Remote.open(controller)
    try:
        service = manager_for(controller).status(remote)
        api = probe_api(remote)
        try:
            revision = db.current_revision(remote)
        except DevloopError as exc:
            revision = f"unknown ({str(exc).splitlines()[-1].strip()})"
        heads = tuple(facts.migration_heads(remote, facts.cinder_dir(remote)))
        return ControllerStatus(controller.name, service, api, revision, heads)
    finally:
        remote.close()
