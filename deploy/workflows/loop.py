"""``invoke loop``: deploy, migrate and restart only as far as needed.

1. sync the source (no restart yet);
2. ``db sync`` only if the deploy changed a migration, or the database is
   behind the newest migration on disk;
3. restart only if a file or the database changed, then wait for the API;
4. optionally the smoke test.

Each step prints its duration and a one-line result. Nothing changed means
nothing restarted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

from deploy.base import output
from deploy.base.errors import HealthCheckError, ServiceError
from deploy.base.inventory import Controller, Inventory
from deploy.controller.db import db_sync
from deploy.controller.facts import Target
from deploy.controller.records import MIGRATION_DIRS, db_state, parse_db_state
from deploy.controller.restart import restart_and_check
from deploy.transport.commands import Remote
from deploy.workflows.deployment import DeployReport, served_by, sync_step, undo_failed_deploy

T = TypeVar("T")


@dataclass
class LoopReport:
    """What one run of the loop did on one controller."""

    controller: str
    deploy: DeployReport | None = None
    migrated: str | None = None          # "before -> after"
    restarted: bool = False
    steps: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds, _ in self.steps)

    def one_line(self) -> str:
        changed = len(self.deploy.changes) if self.deploy else 0
        parts = [f"{changed} file(s)"]
        if self.migrated:
            parts.append(f"db {self.migrated}")
        parts.append("restarted" if self.restarted else "not restarted")
        return ", ".join(parts) + f" in {self.seconds:.2f} s"


def _timed(report: LoopReport, name: str, work: Callable[[], T],
           describe: Callable[[T], str]) -> T:
    started = time.monotonic()
    value = work()
    seconds = time.monotonic() - started
    text = describe(value)
    report.steps.append((name, seconds, text))
    output.step(report.controller, f"{name} ({seconds:.2f} s): {text}")
    return value


def _migration_changed(report: DeployReport) -> bool:
    return any(c.path.startswith(MIGRATION_DIRS) for c in report.changes)


def run_loop(inventory: Inventory, remote: Remote, *, target: Target | None = None,
             timeout: float = 60.0, smoke: bool = False, checksum: bool = False,
             rollback_on_failure: bool = False, ignore_manifest: bool = False,
             check_database: bool = True, seen: Sequence[str] | None = None,
             offer_fast_restart: bool = True) -> LoopReport:
    """Run the loop once on an open connection (``watch`` reuses it).

    ``seen``: the files saved since the last successful run, which are all
    that can have changed in the source (``watch``; see ``sync_step``).

    With ``offer_fast_restart``, a restart on a controller whose fast
    restart is off ends with a line saying how to turn it on.

    With ``rollback_on_failure``, a deploy after which the API is not
    healthy (see ``restart_and_check``) is rolled back at once.

    Raises:
        DevloopError: a step failed; the steps before it are done.
        RolledBack: the deploy was not healthy and was undone.
    """
    from deploy.openstack.auth import read_cloud_early

    report = LoopReport(remote.name)
    read_cloud_early(remote.controller)  # a restart's check needs it: read while syncing
    # A small tree's deploy call also locates Cinder (unless ``target``) and
    # reads the database's state; a migration the sync brings forces db-sync
    # anyway, and a sync never removes one, so the answer is the same before
    # or after the sync. With ``check_database`` False (``watch`` after its
    # first run) only a migration the sync brings leads to db-sync.
    report.deploy = _timed(report, "deploy", lambda: sync_step(
        remote, inventory, target, checksum=checksum, ignore_manifest=ignore_manifest,
        db=check_database, seen=seen),
        lambda r: f"{len(r.changes)} file(s) sent" if r.changes else "nothing changed")
    deployed_to = report.deploy.target
    assert deployed_to is not None
    need_sync = _migration_changed(report.deploy)
    if not need_sync and check_database:
        asked = report.deploy.db
        state = _timed(report, "check database",
                       lambda: parse_db_state(remote, asked) if asked is not None else
                       db_state(remote, deployed_to.cinder_dir),
                       lambda s: "behind the newest migration" if s.behind else
                       "up to date" + (" (read in the deploy's call)" if asked else ""))
        need_sync = state.behind
    if need_sync:
        result = _timed(report, "db-sync", lambda: db_sync(remote),
                        lambda r: f"{r.before} -> {r.after}")
        report.migrated = f"{result.before} -> {result.after}"

    if report.deploy.changes or report.migrated:
        deployed = report.deploy
        try:
            _timed(report, "restart", lambda: restart_and_check(
                remote, timeout, served_by(inventory, deployed), migrated=bool(report.migrated)),
                lambda state: f"{state[0].describe()}, API {state[1].detail}")
        except (HealthCheckError, ServiceError) as failure:
            if not (rollback_on_failure and deployed.deploy_id):
                raise
            raise undo_failed_deploy(remote.controller, deployed.deploy_id, failure,
                                     timeout) from None
        report.restarted = True
        if offer_fast_restart and deployed.fast_mode is False:
            output.detail(f"fast restart is off on {remote.name}: `invoke fast-restart on "
                          f"--host {remote.name}` makes a restart after a deploy of cinder/ a "
                          f"fork from a warm parent (under a second; docs/tasks.md: Fast restart)")
    else:
        report.steps.append(("restart", 0.0, "skipped: nothing changed"))
        output.step(remote.name, "restart skipped: nothing changed")

    if smoke:
        from deploy.workflows.smoke_task import SmokeFailed, smoke_on

        smoke_report = _timed(report, "smoke", lambda: smoke_on(remote), lambda r: r.summary())
        if not smoke_report.ok:
            raise SmokeFailed(f"{remote.name}: {smoke_report.summary()}")
    return report


def loop_on(inventory: Inventory, controller: Controller, **options: object) -> LoopReport:
    """Open a connection, run the loop once, close it."""
    remote = Remote.open(controller)
    try:
        report = run_loop(inventory, remote, **options)  # type: ignore[arg-type]
    finally:
        remote.close()
    output.result(f"{controller.name}: {report.one_line()}")
    return report
