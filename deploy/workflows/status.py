"""``invoke status``: service, API, database and deployed code per controller."""
from __future__ import annotations

from dataclasses import dataclass

from deploy.base.errors import DevloopError
from deploy.base.inventory import Controller, Inventory
from deploy.controller import db, fastrestart
from deploy.controller.extensions import FAILED_TO_LOAD, failed_in, failed_since_start
from deploy.controller.health import ApiState, journal_since_start, probe_api
from deploy.controller.lock import read_lock, status_line
from deploy.controller.manifest import ManifestRefused
from deploy.controller.records import Record, applied_records, db_state
from deploy.controller.services import ServiceStatus, manager_for
from deploy.transport.commands import Remote
from deploy.transport.layout import how_settled
from deploy.transport.source import source_revision
from deploy.transport.sync import sync_tree
from deploy.workflows.debug import session_holding
from deploy.workflows.deployment import fitting, locate_for


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
    #: deploys cut off before their end (record left "applying"), oldest first
    interrupted: tuple[str, ...] = ()
    #: "<cinder_dir>, python <python> from <where>" when found in a unit or uWSGI ini
    located: str = ""
    debug_session: str = ""            # debug.session_holding(): "" when none
    lock: str = ""                     # lock.status_line(): free, held by whom, or stale
    layout: str = ""                   # layout.how_settled(): "" when the inventory says

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
        interrupted = ([f"  interrupted {', '.join(self.interrupted)}: cut off before its end "
                        f"(record state applying); each file is wholly old or wholly new; "
                        f"invoke rollback undoes it"] if self.interrupted else [])
        extensions = ("none failed to load since the service started"
                      if not self.failed_extensions else
                      f"{len(self.failed_extensions)} FAILED to load since the service started: "
                      + "; ".join(self.failed_extensions))
        if not self.service.pid:
            extensions = "unknown (the service has no PID)"
        return [
            f"{self.name}:",
            f"  service   {self.service.describe()}",
            *([f"  debug     {self.debug_session}"] if self.debug_session else []),
            f"  api       {'answering, ' if self.api.answering else 'NOT answering: '}"
            f"{self.api.detail}",
            f"  database  {db_line}",
            f"  deployed  {deployed}",
            *interrupted,
            f"  drift     {drift}",
            *([f"  lock      {self.lock}"] if self.lock else []),
            *([f"  restart   {self.restart_mode}"] if self.restart_mode else []),
            *([f"  layout    {self.layout}"] if self.layout else []),
            *([f"  cinder    {self.located}"] if self.located else []),
            f"  extensions {extensions}",
        ]


def failed_extensions(remote: Remote, pid: int | None) -> tuple[str, ...]:
    """The extensions that failed to load in the running service (by its PID's log lines)."""
    if not pid:
        return ()
    if not remote.controller.log_file:     # journald only (DevStack): this start's entries
        lines = journal_since_start(remote, FAILED_TO_LOAD)
        return tuple(failed_in(lines))
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
        holding = session_holding(remote)
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
        dirty = " with local changes" if local["dirty"] else ""
        local_text = (f"{str(local['commit'])[:12]}{dirty}" if local["commit"]
                      else "not a git checkout")
        return ControllerStatus(controller.name, service, api, revision, heads,
                                records[-1] if records else None, len(drift), local_text,
                                failed_extensions(remote, serving_pid), fast.describe(),
                                tuple(r.id for r in records if r.state == "applying"),
                                f"{target}, python {located.python} from {located.python_from}"
                                if located.python_from else "",
                                holding, lock, how_settled(controller))
    finally:
        remote.close()
