"""``invoke deploy``: sync the overlay, keep what it replaced, restart, check.

Each deploy that changes something gets an id and a record on the
controller, ``<state_dir>/deploys/<id>/record.json``, beside a ``backup/``
tree holding every file it replaced, so the controller's previous files
can always be restored (``invoke rollback``). Each backup is proven (its
size and sha256, read back, in the record) and the record written before
any file is replaced: a dry run lists what will change, the record says so
(state ``applying``), then the files go and the record becomes ``applied``.
A deploy killed at any point can be rolled back; one that meets a full disk
replaces nothing, or is undone at once, or names the ``invoke rollback``
that undoes it (:mod:`deploy.controller.applying`). Root never writes
through a symlink below the package. Before that, the source tree's
MANIFEST.txt (if any) picks the tree that fits the controller's Cinder, or
refuses (:mod:`deploy.controller.manifest`).
"""
from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from deploy.base import output
from deploy.base.errors import DeployCut, DevloopError, HealthCheckError, ServiceError, SyncError
from deploy.base.inventory import Controller, Inventory
from deploy.controller import applying, manifest, send, sent_state
from deploy.controller.checkout import guard_checkout
from deploy.controller.facts import Target, locate
from deploy.controller.health import ApiState
from deploy.controller.precheck import check_changes
from deploy.controller.records import begin_record, end_record
from deploy.controller.restart import Served, restart_and_check
from deploy.controller.services import ServiceStatus
from deploy.transport.commands import Remote
from deploy.transport.fleet import Outcome
from deploy.transport.source import source_revision
from deploy.transport.sync import Change, sync_tree
from deploy.transport.tree import EXCLUDES, LeftOut, Tree, read_tree, shown, stage, staging
from deploy.workflows.preview import show_diffs


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
    #: what the source tree held that was not sent, and why (a local tree read whole)
    left_out: list[LeftOut] = field(default_factory=list)
    source: Path | None = None        # the local tree sent (a manifest's pick), if any


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


def locate_for(remote: Remote, inventory: Inventory) -> Target:
    """:func:`deploy.controller.facts.locate`, hashing what the source's manifest replaces."""
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
    fitted = manifest.fitting(inventory.source, remote.name, target,
                              ignore=ignore_manifest, excludes=inventory.excludes)
    return inventory if fitted.path == inventory.source else \
        dataclasses.replace(inventory, source=fitted.path, layers=fitted.layers)


def sync_step(remote: Remote, inventory: Inventory, target: Target | None = None, *,
              dry_run: bool = False, checksum: bool = False, diff: bool = False,
              ignore_manifest: bool = False, db: bool = False,
              force: bool = False, seen: Sequence[str] | None = None) -> DeployReport:
    """Locate Cinder (unless ``target``), check the manifest, compile, record the deploy,
    sync the source into the package; no restart.

    A local tree goes in one remote call that also locates Cinder and, with
    ``db``, reads the database's state (:mod:`deploy.controller.send`): after a first
    deploy, only the files changed since the last one this checkout sent
    there, with a record of the rest for the controller to check
    (:mod:`deploy.controller.sent_state`); the first time, the whole tree if it is
    small. A tree too large for that, or one on a devbox, goes through rsync
    (``report.db`` is then None). Unless ``force``, nothing is sent when a
    file to replace holds uncommitted work of the controller's git checkout
    (DevStack's). ``seen`` (``watch``): the files, relative
    to the source, saved since the last run; only those are looked at here.

    Raises:
        DevloopError: Cinder cannot be found on the controller.
        ManifestRefused: the source does not fit the controller's Cinder.
        CompileError: a changed .py file does not compile with the
            controller's python (nothing sent).
        UncommittedChanges: the checkout's own work would be replaced (nothing sent).
        UnsafePath: a symlink below the controller's package on the way (nothing sent).
        NoSpace: no room on the controller for the backups, the record or the
            files (nothing changed).
        DeployCut: replacing the files failed part-way (rsync failed, a full
            disk); undone, or the message names the ``invoke rollback`` to run.
    """
    declined = None
    undo = applying.rollback_command(str(inventory.path), remote.name)
    if inventory.source_host is None:
        outcome = _send_step(remote, inventory, target, dry_run=dry_run, checksum=checksum,
                             diff=diff, ignore_manifest=ignore_manifest, db=db, seen=seen,
                             force=force, undo=undo)
        if isinstance(outcome, DeployReport):
            _show_changes(remote.name, outcome.changes, dry_run)
            _show_left_out(remote.name, outcome.left_out, dry_run)
            return outcome
        declined = outcome
        inventory, target = declined.inventory, declined.target
    else:
        target = target or locate_for(remote, inventory)
        inventory = fitting(remote, inventory, target, ignore_manifest=ignore_manifest)
    _announce(remote, inventory, target, dry_run)
    report = _rsync_step(remote, inventory, target, dry_run=dry_run, checksum=checksum,
                         diff=diff, force=force, undo=undo,
                         tree=declined.plan.tree if declined is not None else None)
    report.target, report.source = target, inventory.source
    if declined is not None and declined.plan.scanned is not None and not (dry_run or checksum):
        sent_state.save(declined.plan.record, declined.plan.scanned)
    _show_changes(remote.name, report.changes, dry_run)
    _show_left_out(remote.name, report.left_out, dry_run)
    return report


def _announce(remote: Remote, inventory: Inventory, target: Target, dry_run: bool) -> None:
    verb = "preview sync (dry run)" if dry_run else "sync"
    output.step(remote.name, f"{verb} {layered_name(inventory)} -> {target.cinder_dir}")
    if inventory.layers:
        output.detail(f"laid one over the other in {inventory.source}")


def layered_name(inventory: Inventory) -> str:
    """The source as the developer knows it: its layers, if it lays one over another."""
    return " + ".join(map(str, inventory.layers)) if inventory.layers else str(inventory.source)


@dataclass
class _Plan:
    """How one local tree goes to one controller."""

    record: Path                                  # what this checkout last sent there
    scanned: dict[str, sent_state.Stat] | None    # every file of the tree (None: rsync)
    files: list[send.TreeFile] | None             # sent in one call (None: rsync)
    #: files not sent, as last sent: the controller checks them (None: whole tree sent)
    expect: dict[str, sent_state.Stat] | None = None
    #: the whole tree, when it was read (always, for rsync)
    tree: Tree | None = None


@dataclass
class _Declined:
    """The one-call path declined the tree: rsync it (located and chosen already)."""

    inventory: Inventory
    target: Target
    plan: _Plan


def _plan(remote: Remote, chosen: Inventory, target: Target, *, full: bool,
          seen: Sequence[str] | None, scanned: Tree | None = None) -> _Plan:
    """Send what changed since this checkout's last deploy there, else the small tree whole.

    ``scanned``: the tree :func:`read_tree` read of ``chosen.source``, if it
    did already.

    Raises:
        SourceTreeError: the tree cannot be read, or holds a link out of it.
    """
    record = sent_state.state_file(remote.controller.label, target.cinder_dir, chosen.source,
                                   chosen.excludes)
    last = None if full else sent_state.load(record)
    tree = None
    if last is not None and seen is not None:
        local = sent_state.rescan(chosen.source, last, seen)
    else:
        tree = scanned or read_tree(chosen.source, chosen.excludes)
        local = None if tree.links else tree.files
    if local is not None:
        if last is not None:
            delta = sent_state.delta(local, last)
            if send.fits(local, delta.changed):
                return _Plan(record, local, send.tree_files(chosen.source, local, delta.changed),
                             delta.expect, tree)
        elif send.fits(local, list(local)):
            return _Plan(record, local, send.tree_files(chosen.source, local, local), None, tree)
    # rsync: it is given the whole tree's list (a symlink in it, or too large)
    tree = tree or read_tree(chosen.source, chosen.excludes)
    tree.refuse_links_out()
    return _Plan(record, None if tree.links else tree.files, None, None, tree)


def _describe(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _send_step(remote: Remote, inventory: Inventory, target: Target | None, *, dry_run: bool,
               checksum: bool, diff: bool, ignore_manifest: bool, db: bool,
               seen: Sequence[str] | None, force: bool = False,
               undo: str = "invoke rollback") -> DeployReport | _Declined:
    """The deploy of a local tree in one call: locate, compare, compile, record, write.

    Returns :class:`_Declined`, with nothing changed, when the tree the
    manifest picks for this controller needs rsync (too large to send whole,
    or a symlink).
    """
    hash_paths = manifest.hash_paths(inventory.source) if target is None else None
    dialogue = send.start(remote, hash_paths=hash_paths, db=db)
    plan = None
    try:
        # the tree is read while the controller locates Cinder (watch reads no tree)
        early = (read_tree(inventory.source, inventory.excludes)
                 if seen is None and target is None else None)
        if target is None:
            target = send.located(remote, dialogue)
        chosen = fitting(remote, inventory, target, ignore_manifest=ignore_manifest)
        plan = _plan(remote, chosen, target, full=dry_run or diff or checksum,
                     seen=seen if chosen.source == inventory.source else None,
                     scanned=early if chosen.source == inventory.source else None)
    finally:
        if plan is None or plan.files is None:
            send.cancel(dialogue)
    if plan.files is None:
        return _Declined(chosen, target, plan)
    files = plan.files
    _announce(remote, chosen, target, dry_run)
    if plan.expect is not None:
        output.detail(f"{len(files)} file(s) changed since this checkout's last deploy here; "
                      f"{len(plan.expect)} more checked unchanged on the controller, in one call")
    else:
        output.detail(f"{len(files)} file(s) compared on the controller, in one call")
    report = DeployReport(remote.name, target=target, source=chosen.source,
                          left_out=plan.tree.left_out if plan.tree is not None else [])
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
    record = _record_base(remote, chosen, deploy_id)
    sent = send.finish(remote, dialogue, files, target.cinder_dir, owner=target.owner,
                       deploy_dir=deploy_dir, record=record, checksum=checksum,
                       expect=plan.expect, guard=not force, undo=undo)
    report.db = report.db or sent.db
    if sent.stale:
        # another checkout's deploy, a rollback or a hand edit: those files
        # are compared too, as rsync would (nothing was written yet)
        assert plan.scanned is not None
        output.warn(f"{remote.name}: {len(sent.stale)} file(s) on the controller are not as "
                    f"this checkout last sent them ({_describe(sent.stale)}): changed there "
                    f"since (another deploy, a rollback or an edit); comparing them too")
        stale = [rel for rel in sent.stale if rel in plan.scanned]
        files = send.tree_files(chosen.source, plan.scanned,
                                sorted({f.rel for f in files} | set(stale)))
        sent = send.finish(remote, send.start(remote), files, target.cinder_dir,
                           owner=target.owner, deploy_dir=deploy_dir, record=record,
                           checksum=checksum, guard=not force, undo=undo)
    report.changes, report.log_since = sent.changes, sent.log_size
    report.fast_mode = sent.fast_mode
    report.deploy_id = deploy_id if sent.changes else None
    if plan.scanned is not None and not checksum:
        sent_state.save(plan.record, plan.scanned)
    return report


def _rsync_step(remote: Remote, inventory: Inventory, target: Target, *, dry_run: bool,
                checksum: bool, diff: bool, force: bool = False,
                undo: str = "invoke rollback", tree: Tree | None = None) -> DeployReport:
    """The deploy through rsync: a dry run lists the changes, backups and record come first.

    A local tree (``tree``: read whole, its links checked) is sent as the
    tree's rules keep it, from a private copy of what the dry run listed:
    what is compiled is what is sent. A tree on a devbox is listed by rsync
    there, with the rules as its filters; its files are not compiled first.
    Either way the controller then checks the way to every file (no symlink
    below the package), its room for them, keeps every file to replace,
    proven, and writes the record; rsync then sends exactly the files the
    record lists. A failure (a full disk) undoes the deploy at once from its
    proven backups, or names the rollback to run.
    """
    report = DeployReport(remote.name, left_out=tree.left_out if tree is not None else [])
    controller = remote.controller
    entries = tree.entries() if tree is not None else None
    planned = sync_tree(inventory, controller, target.cinder_dir, owner=target.owner,
                        dry_run=True, checksum=checksum, connection=remote.conn,
                        entries=entries)
    if diff:
        show_diffs(inventory, remote, target.cinder_dir, planned)
    if dry_run:
        report.changes = planned
    elif planned:
        if not force:
            guard_checkout(remote, target.cinder_dir,
                           [c.path for c in planned if c.kind == "changed"])
        paths = [c.path for c in planned]
        with staging() as private:
            staged, sizes = None, None
            # nothing is sent if a changed .py file does not compile on the controller
            if tree is None:
                output.detail(f"compile check skipped: the source is on "
                              f"{inventory.source_host.name if inventory.source_host else '?'}")
            else:
                staged = private
                copied = stage(tree, paths, staged)
                sizes = {rel: copied[rel][0] if rel in copied else 0 for rel in paths}
                report.log_since = check_changes(remote, tree, staged, planned).log_size
            report.deploy_id = new_deploy_id()
            deploy_dir = f"{controller.state_dir}/deploys/{report.deploy_id}"
            # the way checked, every file to replace backed up (proven) and the
            # record written: a deploy killed from here on can be rolled back
            record = begin_record(remote, {
                **_record_base(remote, inventory, report.deploy_id),
                "state": "applying", "target": target.cinder_dir,
                "added": [c.path for c in planned if c.kind == "new"],
                "replaced": [c.path for c in planned if c.kind == "changed"],
                "backup": f"{deploy_dir}/backup"}, sizes, undo)
            try:
                report.changes = sync_tree(inventory, controller, target.cinder_dir,
                                           owner=target.owner, checksum=checksum,
                                           connection=remote.conn, entries=paths,
                                           source=staged)
            except SyncError as failure:
                raise _undo_now(remote, record, failure, undo) from None
        # a compiled file left beside a rewritten source could win over it
        end_record(remote, {**record, "state": "applied" if report.changes else "empty",
                            "added": [c.path for c in report.changes if c.kind == "new"],
                            "replaced": [c.path for c in report.changes
                                         if c.kind == "changed"]}, undo)
        if not report.changes:
            report.deploy_id = None
    return report


def _undo_now(remote: Remote, record: Mapping[str, Any], failure: SyncError,
              undo: str) -> DevloopError:
    """Undo a deploy whose rsync failed part-way, from its proven backups; the error to raise."""
    text = str(failure)
    if failure.no_space or "No space left on device" in text or "Disk quota exceeded" in text:
        head = f"{remote.name}: the disk filled up while rsync wrote the files (No space left " \
               f"on device)"
    else:
        head = text
    try:
        answer = applying.ask(remote, "restore", {"records": [dict(record)], "forget": True})
        problem = (answer.get("refused") or (answer.get("damaged") or {}).get("why")
                   or (answer.get("failed") or {}).get("error"))
    except DevloopError as exc:
        problem = str(exc).splitlines()[0]
    return DeployCut(f"{head}; {applying.outcome(record['id'], problem, undo, named=True)}")


def deploy_to(inventory: Inventory, controller: Controller, *, dry_run: bool = False,
              restart: bool = True, timeout: float = 60.0, checksum: bool = False,
              rollback_on_failure: bool = False, diff: bool = False,
              ignore_manifest: bool = False, force: bool = False) -> DeployReport:
    """Deploy the inventory's source tree to one controller.

    With ``rollback_on_failure``, a deploy after which the service does not
    come back is undone at once (files restored, service restarted).

    Raises:
        DevloopError: any step failed (connection, rsync, restart, health).
        RolledBack: the API did not come back and the deploy was undone.
    """
    if restart and not dry_run:
        from deploy.openstack.auth import read_cloud_early
        read_cloud_early(controller)     # the restart's check needs it: read while syncing
    remote = Remote.open(controller)
    try:
        report = sync_step(remote, inventory, dry_run=dry_run,
                           checksum=checksum, diff=diff, ignore_manifest=ignore_manifest,
                           force=force)
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
    return Served([c.path for c in report.changes], report.source or inventory.source,
                  report.log_since, report.fast_mode)


def undo_failed_deploy(controller: Controller, deploy_id: str, failure: DevloopError,
                       timeout: float) -> RolledBack:
    """Roll back a deploy that broke the service; return the error to raise.

    The failure (with its log lines) is shown first.
    """
    from deploy.workflows.rollback import rollback

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
        "source": layered_name(inventory),
        **_revision(inventory),
    }


def _revision(inventory: Inventory) -> dict[str, object]:
    """:func:`source_revision` of the source, or of every layer it is made of."""
    if not inventory.layers:
        return source_revision(inventory)
    found = [source_revision(dataclasses.replace(inventory, source=layer, layers=()))
             for layer in inventory.layers]
    dirty = [one["dirty"] for one in found]
    return {"commit": found[0]["commit"],
            "dirty": None if None in dirty else any(dirty)}


def _show_changes(name: str, changes: list[Change], dry_run: bool) -> None:
    if not changes:
        output.detail("no file changed")
        return
    would = "would be " if dry_run else ""
    output.detail(f"{len(changes)} file(s) {would}sent:")
    for change in changes:
        output.result(f"{name}: {change.kind:<7} cinder/{shown(change.path)}")


def _show_left_out(name: str, left_out: Sequence[LeftOut], dry_run: bool) -> None:
    """What the tree held that was not sent: each path and why with ``dry_run``
    (the inventory's excludes counted), else a count of what is not code."""
    not_code = [entry for entry in left_out if entry.reason.kind != EXCLUDES]
    if not dry_run:
        if not_code:
            output.detail(f"{len(not_code)} path(s) of the tree left out as not code "
                          f"(dot names, editors' files, ignored by git); --dry-run lists them")
        return
    for entry in not_code:
        output.result(f"{name}: left out cinder/{shown(entry.rel)} ({entry.reason})")
    excluded = [entry for entry in left_out if entry.reason.kind == EXCLUDES]
    if excluded:
        patterns = sorted({entry.reason.pattern for entry in excluded})
        output.result(f"{name}: left out {len(excluded)} path(s) by the inventory's excludes "
                      f"({', '.join(patterns)})")


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
