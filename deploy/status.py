"""``invoke status``: service, API, database and deployed code per controller."""
from __future__ import annotations

from dataclasses import dataclass

from deploy import db
from deploy.deployment import fitting, locate_for
from deploy.commands import Remote
from deploy.errors import DevloopError
from deploy.health import ApiState, probe_api
from deploy.inventory import Controller, Inventory
from deploy.manifest import ManifestRefused
from deploy.records import Record, applied_records, db_state
from deploy.services import ServiceStatus, manager_for
from deploy.source import source_revision
from deploy.sync import sync_tree


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """A snapshot of one controller."""

    name: str
    service: ServiceStatus
    api: ApiState
    db_revision: str
    migration_heads: tuple[str, ...]
    deployed: Record | None = None
    drift: int = 0                     # files the local tree would still send
    local: str = ""                    # the local tree's commit, for comparison

    @property
    def db_current(self) -> bool:
        return self.db_revision in self.migration_heads

    def lines(self) -> list[str]:
        heads = ", ".join(self.migration_heads) or "none found"
        db_line = (f"{self.db_revision} (newest migration)" if self.db_current else
                   f"{self.db_revision}, newest migration {heads}: run invoke db-sync")
        if self.deployed is None:
            deployed = "nothing deployed by cinder-devloop"
        else:
            deployed = f"{self.deployed.id} from {self.deployed.describe_source()}"
        drift = ("local tree: same as deployed" if not self.drift else
                 f"local tree: DIFFERS, {self.drift} file(s) not on the controller "
                 f"(local {self.local})")
        return [
            f"{self.name}:",
            f"  service   {self.service.describe()}",
            f"  api       {'answering, ' if self.api.answering else 'NOT answering: '}"
            f"{self.api.detail}",
            f"  database  {db_line}",
            f"  deployed  {deployed}",
            f"  drift     {drift}",
        ]


def read_status(inventory: Inventory, controller: Controller) -> ControllerStatus:
    """Gather the status of one controller.

    Raises:
        DevloopError: the controller cannot be reached or read.
    """
    remote = Remote.open(controller)
    try:
        located = locate_for(remote, inventory)    # also: the python the probes run with
        target = located.cinder_dir
        service = manager_for(controller).status(remote)
        api = probe_api(remote)
        try:
            revision = db.current_revision(remote)
        except DevloopError as exc:
            revision = f"unknown ({str(exc).splitlines()[-1].strip()})"
        try:
            heads = db_state(remote, target).heads
        except DevloopError:
            heads = ()                      # the database line already says why
        records = applied_records(remote)
        try:   # the tree a deploy would send (a manifest variant), else the source
            sent = fitting(remote, inventory, located)
        except ManifestRefused:
            sent = inventory
        drift = sync_tree(sent, controller, target, dry_run=True, checksum=True,
                          connection=remote.conn)
        local = source_revision(inventory)
        local_text = (f"{str(local['commit'])[:12]}{' with local changes' if local['dirty'] else ''}"
                      if local["commit"] else "not a git checkout")
        return ControllerStatus(controller.name, service, api, revision, heads,
                                records[-1] if records else None, len(drift), local_text)
    finally:
        remote.close()
