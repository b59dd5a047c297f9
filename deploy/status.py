"""``invoke status``: service, API, database and deployed code per controller."""
from __future__ import annotations

from dataclasses import dataclass

from deploy import db, fastrestart
from deploy.deployment import fitting, locate_for
from deploy.commands import Remote
from deploy.errors import DevloopError
from deploy.extensions import FAILED_TO_LOAD, failed_since_start
from deploy.health import ApiState, probe_api
from deploy.inventory import Controller, Inventory
from deploy.lock import read_lock, status_line
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
    failed_extensions: tuple[str, ...] = ()   # failed to load since the service started
    restart_mode: str = ""             # fastrestart.FastState.describe()
    lock: str = ""                     # lock.status_line(): free, held by whom, or stale

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
        extensions = ("none failed to load since the service started" if not self.failed_extensions else
                      f"{len(self.failed_extensions)} FAILED to load since the service started: "
                      + "; ".join(self.failed_extensions))
        if not self.service.pid:
            extensions = "unknown (the service has no PID)"
        return [
            f"{self.name}:",
            f"  service   {self.service.describe()}",
            f"  api       {'answering, ' if self.api.answering else 'NOT answering: '}"
            f"{self.api.detail}",
            f"  database  {db_line}",
            f"  deployed  {deployed}",
            f"  drift     {drift}",
            *([f"  lock      {self.lock}"] if self.lock else []),
            *([f"  restart   {self.restart_mode}"] if self.restart_mode else []),
            f"  extensions {extensions}",
        ]


def failed_extensions(remote: Remote, pid: int | None) -> tuple[str, ...]:
    """The extensions that failed to load in the running service (by its PID's log lines)."""
    if not pid:
        return ()
    lines = remote.run(["grep", "-F", FAILED_TO_LOAD, remote.controller.log_file],
                       check=False).stdout
    return tuple(failed_since_start(lines, pid))


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
        fast = fastrestart.read_state(remote)
        # in fast mode the serving cinder-api is the warm parent's child
        serving_pid = fast.child if fast.on and not fast.reason else service.pid
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
        lock = status_line(*read_lock(remote))
        local = source_revision(inventory)
        local_text = (f"{str(local['commit'])[:12]}{' with local changes' if local['dirty'] else ''}"
                      if local["commit"] else "not a git checkout")
        return ControllerStatus(controller.name, service, api, revision, heads,
                                records[-1] if records else None, len(drift), local_text,
                                failed_extensions(remote, serving_pid), fast.describe(), lock)
    finally:
        remote.close()
