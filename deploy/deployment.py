"""``invoke deploy``: sync the overlay, keep what it replaced, restart, check.

Each deploy that changes something gets an id and a record on the
controller, ``<state_dir>/deploys/<id>/record.json``, beside a ``backup/``
tree holding every file it replaced (rsync ``--backup-dir``), so the
controller's previous files can always be restored (``invoke rollback``).
The record is written before any file is replaced: a dry run lists what
will change, the record says so (state ``applying``), then the files go and
the record becomes ``applied``. A deploy killed at any point can be rolled
back. Before that, the source tree's MANIFEST.txt (if any) picks the tree
that fits the controller's Cinder, or refuses (:mod:`deploy.manifest`).
"""
from __future__ import annotations

import dataclasses
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from deploy import manifest, output, send
from deploy.commands import STDLIB_ONLY, Remote
from deploy.errors import DevloopError, HealthCheckError, ServiceError
from deploy.facts import Target, locate
from deploy.fleet import Outcome
from deploy.health import ApiState, check_serving, log_mark, wait_for_api
from deploy.inventory import Controller, Inventory
from deploy.precheck import check_changes
from deploy.preview import show_diffs
from deploy.remote import script
from deploy.services import ServiceStatus, manager_for
from deploy.source import source_revision
from deploy.sync import Change, sync_tree


@dataclass
class DeployReport:
    """What one deploy did on one controller."""

    controller: str
    deploy_id: str | None = None
    changes: list[Change] = field(default_factory=list)
    restarted: bool = False
    status: ServiceStatus | None = None
    api: ApiState | None = None
    log_since: int | None = None      # the API log's size before the sync (for the health check)
    target: Target | None = None      # the controller's Cinder, as located
    db: Mapping[str, Any] | None = None   # the database's state, if asked with the sync
    fast_mode: bool | None = None     # fast restart on? (None: not asked)


@dataclass(frozen=True)
class Served:
    """What a restart after a deploy must find served: the files sent, from which tree."""

    sent: Sequence[str]               # relative to the cinder package
    source: Path                      # the local tree they came from
    log_since: int | None = None      # the API log's size before the deploy, if known
    fast_mode: bool | None = None     # fast restart on? (None: ask the controller)


class RolledBack(DevloopError):
    """The deploy broke the service and was rolled back."""


def new_deploy_id() -> str:
    """A sortable, unique id: UTC time to the millisecond plus a little randomness.

    Records are ordered by id; two deploys within one second (``--no-restart``
    ones take less) must still sort in the order they were made.
    """
    now = time.time()
    return (time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z-"
            + secrets.token_hex(3))


def restart_and_check(remote: Remote, timeout: float, served: Served | None = None, *,
                      migrated: bool = False) -> tuple[ServiceStatus, ApiState]:
    """Restart the service, wait until the API answers, return the new state.

    After a deploy (``served``), a controller in fast-restart mode forks a
    fresh cinder-api from its warm parent unless the deploy changed a
    migration or ``migrated`` the database (see :mod:`deploy.fastrestart`).

    With ``served`` (what a deploy just sent), healthy also means serving
    it: no failure of sent code in the log written since the restart, and
    every sent extension listed by the API (:func:`check_serving`).

    Raises:
        ServiceError: the service manager refused.
        HealthCheckError: no answer before the deadline (log tail shown), or
            the sent code is not served (reason and log lines shown).
    """
    remote.python   # the probe runs with Cinder's python: found now if not yet
    manager = manager_for(remote.controller)
    mark = None
    if served is not None and served.sent:
        mark = served.log_since if served.log_since is not None else log_mark(remote)
        from deploy.auth import prefetch
        prefetch(remote.controller)      # the token for check_serving, while it restarts
    output.step(remote.name, f"restart {remote.controller.service}")
    fast = None
    if served is None or served.fast_mode is False:
        manager.restart(remote)
    else:
        from deploy import fastrestart
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


def locate_for(remote: Remote, inventory: Inventory) -> Target:
    """:func:`deploy.facts.locate`, hashing what the source's manifest replaces."""
    paths = manifest.hash_paths(inventory.source) if inventory.source_host is None else []
    return locate(remote, paths)


def fitting(remote: Remote, inventory: Inventory, target: Target, *,
            ignore_manifest: bool = False) -> Inventory:
    """``inventory`` with the source tree that fits this controller's Cinder.

    Raises:
        ManifestRefused: no tree of the source fits; nothing was changed.
    """
    if inventory.source_host is not None:
        return inventory   # the manifest lives on the devbox: not checked (yet)
    source = manifest.fitting_source(inventory.source, remote.name, target,
                                     ignore=ignore_manifest)
    return inventory if source == inventory.source else \
        dataclasses.replace(inventory, source=source)


def sync_step(remote: Remote, inventory: Inventory, target: Target | None = None, *,
              dry_run: bool = False, checksum: bool = False, diff: bool = False,
              ignore_manifest: bool = False, db: bool = False) -> DeployReport:
    """Locate Cinder (unless ``target``), check the manifest, compile, record the deploy,
    sync the source into the package; no restart.

    A small local tree goes in one remote call that also locates Cinder and,
    with ``db``, reads the database's state (:mod:`deploy.send`); a large
    one, or one on a devbox, goes through rsync (``report.db`` is then None).

    Raises:
        DevloopError: Cinder cannot be found on the controller.
        ManifestRefused: the source does not fit the controller's Cinder.
        CompileError: a changed .py file does not compile with the
            controller's python (nothing sent).
        SyncError: rsync failed (the record lists what it meant to send).
    """
    files = (send.one_call_files(inventory.source, inventory.excludes)
             if inventory.source_host is None else None)
    report = None
    if files is not None:
        report = _send_step(remote, inventory, files, target, dry_run=dry_run,
                            checksum=checksum, diff=diff, ignore_manifest=ignore_manifest, db=db)
    if report is None:            # the tree needs rsync
        target = target or locate_for(remote, inventory)
        inventory = fitting(remote, inventory, target, ignore_manifest=ignore_manifest)
        _announce(remote, inventory, target, dry_run)
        report = _rsync_step(remote, inventory, target, dry_run=dry_run, checksum=checksum,
                             diff=diff)
        report.target = target
    _show_changes(remote.name, report.changes, dry_run)
    return report


def _announce(remote: Remote, inventory: Inventory, target: Target, dry_run: bool) -> None:
    verb = "preview sync (dry run)" if dry_run else "sync"
    output.step(remote.name, f"{verb} {inventory.source} -> {target.cinder_dir}")


def _send_step(remote: Remote, inventory: Inventory, source_files: list[send.TreeFile],
               target: Target | None, *, dry_run: bool, checksum: bool, diff: bool,
               ignore_manifest: bool, db: bool) -> DeployReport | None:
    """The deploy of a small local tree in one call: locate, compare, compile, record, write.

    ``source_files`` are the source tree's. Returns None, with nothing
    changed, when the tree the manifest picks for this controller (a variant
    of the source) is too large for one call.
    """
    hash_paths = manifest.hash_paths(inventory.source) if target is None else None
    dialogue = send.start(remote, hash_paths=hash_paths, db=db)
    files = None
    try:
        if target is None:
            target = send.located(remote, dialogue)
        chosen = fitting(remote, inventory, target, ignore_manifest=ignore_manifest)
        files = (source_files if chosen.source == inventory.source else
                 send.one_call_files(chosen.source, chosen.excludes))
    finally:
        if files is None:
            send.cancel(dialogue)
    if files is None:
        return None
    _announce(remote, chosen, target, dry_run)
    output.detail(f"{len(files)} file(s) compared on the controller, in one call")
    report = DeployReport(remote.name, target=target)
    if diff or dry_run:
        planned = send.finish(remote, dialogue, files, target.cinder_dir, owner=target.owner,
                              dry_run=True, checksum=checksum)
        report.db = planned.db
        if diff:
            show_diffs(chosen, remote, target.cinder_dir, planned.changes)
        if dry_run:
            report.changes = planned.changes
            return report
        dialogue = send.start(remote)
    deploy_id = new_deploy_id()
    deploy_dir = f"{remote.controller.state_dir}/deploys/{deploy_id}"
    sent = send.finish(remote, dialogue, files, target.cinder_dir, owner=target.owner,
                       deploy_dir=deploy_dir, record=_record_base(remote, chosen, deploy_id),
                       checksum=checksum)
    report.changes, report.log_since = sent.changes, sent.log_size
    report.db = report.db or sent.db
    report.fast_mode = sent.fast_mode
    report.deploy_id = deploy_id if sent.changes else None
    return report


def _rsync_step(remote: Remote, inventory: Inventory, target: Target, *, dry_run: bool,
                checksum: bool, diff: bool) -> DeployReport:
    """The deploy through rsync: a dry run lists the changes, the record comes first."""
    report = DeployReport(remote.name)
    controller = remote.controller
    planned = sync_tree(inventory, controller, target.cinder_dir, owner=target.owner,
                        dry_run=True, checksum=checksum, connection=remote.conn)
    if diff:
        show_diffs(inventory, remote, target.cinder_dir, planned)
    if dry_run:
        report.changes = planned
    elif planned:
        # nothing is sent if a changed .py file does not compile on the controller
        if inventory.source_host is not None:
            output.detail(f"compile check skipped: the source is on {inventory.source_host.name}")
        else:
            report.log_since = check_changes(remote, inventory.source, planned).log_size
        report.deploy_id = new_deploy_id()
        deploy_dir = f"{controller.state_dir}/deploys/{report.deploy_id}"
        # the record first: a deploy killed from here on can be rolled back
        _record(remote, inventory, report.deploy_id, planned, target.cinder_dir, deploy_dir,
                "applying")
        # rsync creates the whole backup path when it first needs it
        report.changes = sync_tree(inventory, controller, target.cinder_dir,
                                   owner=target.owner, backup_dir=f"{deploy_dir}/backup",
                                   checksum=checksum, connection=remote.conn)
        # a compiled file left beside a rewritten source could win over it
        remote.run([remote.python, *STDLIB_ONLY, "-c", script("drop_bytecode"),
                    f"{deploy_dir}/record.json"])
        _record(remote, inventory, report.deploy_id, report.changes, target.cinder_dir,
                deploy_dir, "applied" if report.changes else "empty")
        if not report.changes:
            report.deploy_id = None
    return report


def deploy_to(inventory: Inventory, controller: Controller, *, dry_run: bool = False,
              restart: bool = True, timeout: float = 60.0, checksum: bool = False,
              rollback_on_failure: bool = False, diff: bool = False,
              ignore_manifest: bool = False) -> DeployReport:
    """Deploy the inventory's source tree to one controller.

    With ``rollback_on_failure``, a deploy after which the service does not
    come back is undone at once (files restored, service restarted).

    Raises:
        DevloopError: any step failed (connection, rsync, restart, health).
        RolledBack: the API did not come back and the deploy was undone.
    """
    remote = Remote.open(controller)
    try:
        report = sync_step(remote, inventory, dry_run=dry_run,
                           checksum=checksum, diff=diff, ignore_manifest=ignore_manifest)
        if restart and not dry_run:
            try:
                report.status, report.api = restart_and_check(
                    remote, timeout, served_by(inventory, report))
            except (HealthCheckError, ServiceError) as failure:
                if not (rollback_on_failure and report.deploy_id):
                    raise
                raise undo_failed_deploy(controller, report.deploy_id, failure,
                                         timeout) from None
            report.restarted = True
    finally:
        remote.close()
    return report


def served_by(inventory: Inventory, report: DeployReport) -> Served | None:
    """What ``restart_and_check`` must find served after this deploy."""
    if inventory.source_host is not None:    # the sent files are on the devbox
        return None
    return Served([c.path for c in report.changes], inventory.source, report.log_since,
                  report.fast_mode)


def undo_failed_deploy(controller: Controller, deploy_id: str, failure: DevloopError,
                       timeout: float) -> RolledBack:
    """Roll back a deploy that broke the service; return the error to raise.

    The failure (with its log lines) is shown first.
    """
    from deploy.rollback import rollback

    output.warn(f"{controller.name}: deploy {deploy_id} is not healthy; rolling it back")
    output.detail(str(failure))
    undone = rollback(controller, to=None, timeout=timeout)
    reason = str(failure).splitlines()[0]
    return RolledBack(f"{reason}\n{controller.name}: deploy {deploy_id} was rolled back "
                      f"({len(undone.restored)} file(s) restored, {len(undone.removed)} removed); "
                      f"the API answers again ({undone.api.detail if undone.api else 'unchecked'})")


def _record_base(remote: Remote, inventory: Inventory, deploy_id: str) -> dict[str, object]:
    """What every deploy record says: its id, where and when, and from which source."""
    return {
        "id": deploy_id,
        "controller": remote.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(inventory.source),
        **source_revision(inventory),
    }


def _record(remote: Remote, inventory: Inventory, deploy_id: str, changes: list[Change],
            target: str, deploy_dir: str, state: str) -> None:
    """Write the deploy record (``applying``: the changes it is about to make)."""
    record = {
        **_record_base(remote, inventory, deploy_id),
        "state": state,
        "target": target,
        "added": [c.path for c in changes if c.kind == "new"],
        "replaced": [c.path for c in changes if c.kind == "changed"],
        "backup": f"{deploy_dir}/backup",
    }
    remote.write_file(f"{deploy_dir}/record.json", json.dumps(record, indent=2) + "\n")


def _show_changes(name: str, changes: list[Change], dry_run: bool) -> None:
    if not changes:
        output.detail("no file changed")
        return
    would = "would be " if dry_run else ""
    output.detail(f"{len(changes)} file(s) {would}sent:")
    for change in changes:
        output.result(f"{name}: {change.kind:<7} cinder/{change.path}")


def summary_table(outcomes: list[Outcome[DeployReport]]) -> None:
    """One row per controller: changed, restarted, healthy, time."""
    rows = [("controller", "changed", "restarted", "healthy", "time")]
    for outcome in outcomes:
        report = outcome.result
        if report is None:
            rows.append((outcome.name, "-", "-", "FAILED", f"{outcome.seconds:.1f} s"))
            continue
        healthy = "yes" if report.api and report.api.answering else "-"
        rows.append((outcome.name, str(len(report.changes)),
                     "yes" if report.restarted else "no", healthy, f"{outcome.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        output.result("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
