"""``invoke rollback``: undo deploys from their records, newest first.

Restores every file a deploy replaced (byte for byte, from its backup, whose
size and sha256 are checked against the record first: a damaged backup is
refused and nothing changes), removes every file it added (each with its
compiled files, so no stale ``.pyc`` is imported instead), marks the record
rolled back, then restarts the service and checks the API. A deploy that
added a migration the database has already applied is undone only after the
database is taken back to the revision before it; Cinder has no downgrade
command, so this uses alembic directly and works only for migrations with a
``downgrade()``. Otherwise the rollback refuses and changes nothing: a
recorded revision whose file is gone would break every later ``db sync``. It
never writes or removes through a symlink below the package either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy.base import output
from deploy.base.errors import DevloopError, UnsafePath
from deploy.base.inventory import Controller
from deploy.controller import facts
from deploy.controller.applying import ask
from deploy.controller.health import ApiState
from deploy.controller.records import Record, applied_records, db_state
from deploy.controller.restart import restart_and_check
from deploy.remote import script
from deploy.transport.commands import Remote, as_user, tail

ORIGINAL = "original"


class RollbackError(DevloopError):
    """A rollback cannot be done safely; nothing was changed."""


@dataclass
class RollbackReport:
    controller: str
    undone: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: .pyc/.pyo files removed beside what was restored or removed
    compiled_removed: list[str] = field(default_factory=list)
    db_downgraded_to: str | None = None
    api: ApiState | None = None


def choose(records: list[Record], to: str | None) -> list[Record]:
    """The applied records to undo, newest first.

    ``to=None`` undoes the newest deploy; ``to=ID`` undoes every deploy after
    ID (ID stays in place); ``to="original"`` undoes them all.

    Raises:
        RollbackError: nothing to undo, or ID is unknown.
    """
    if not records:
        raise RollbackError("nothing to roll back: no applied deploy is recorded")
    if to is None:
        return [records[-1]]
    if to == ORIGINAL:
        return list(reversed(records))
    ids = [r.id for r in records]
    if to not in ids:
        raise RollbackError(f"no applied deploy {to!r}; applied: {', '.join(ids)}")
    newer = records[ids.index(to) + 1:]
    if not newer:
        raise RollbackError(f"deploy {to} is already the newest applied deploy")
    return list(reversed(newer))


def _downgrade_target(remote: Remote, undo: list[Record]) -> str | None:
    """The revision the database must go back to first, or None.

    Raises:
        RollbackError: the database is past a migration being removed and
            that migration cannot be downgraded.
    """
    revisions = [rev for record in undo for rev in record.added_revisions]
    if not revisions:
        return None
    cinder_dir = facts.locate(remote).cinder_dir
    state = db_state(remote, cinder_dir)
    applied = [rev for rev in revisions if rev in state.applied]
    if not applied:
        return None
    if state.kind == "migrate":
        ids = ", ".join(r.id for r in undo)
        raise RollbackError(
            f"{remote.name}: refusing to roll back {ids}: the database has applied migration "
            f"{', '.join(applied)} that these deploys added (migrate_version "
            f"{', '.join(state.current)}), and this Cinder (sqlalchemy-migrate) cannot "
            f"downgrade. Restore the database from a backup first. Nothing was changed.")
    # the oldest removed revision that is applied: go to the one before it
    argv = [facts.cinder_python(remote), "-c",
            "import sys; from alembic.script import ScriptDirectory as S\n"
            "d = S(sys.argv[1])\n"
            "revs = [d.get_revision(r) for r in sys.argv[2:]]\n"
            "print(min(revs, key=lambda r: len(list(d.iterate_revisions(r.revision, 'base'))))"
            ".down_revision)\n",
            f"{cinder_dir}/db/migrations", *applied]
    return remote.run(argv).stdout.strip()


def _downgrade(remote: Remote, revision: str, undo: list[Record]) -> None:
    argv = [facts.cinder_python(remote), "-c", script("downgrade"), revision,
            *remote.controller.config_files]
    result = remote.run(as_user(remote.controller.service_user, argv), check=False)
    if result.exited != 0:
        ids = ", ".join(r.id for r in undo)
        raise RollbackError(
            f"{remote.name}: refusing to roll back {ids}: the database has applied a migration "
            f"these deploys added, and it cannot be taken back to {revision} "
            f"({tail(result.stderr + result.stdout, 1) or 'downgrade failed'}). Cinder has no "
            f"downgrade command; restore the database from a backup first. Nothing was changed.")


def rollback(controller: Controller, *, to: str | None = None, restart: bool = True,
             timeout: float = 60.0) -> RollbackReport:
    """Undo the newest deploy (or every deploy after ``to``) on one controller.

    Raises:
        RollbackError: nothing to undo, unknown id, or the database blocks it.
        DevloopError: the controller, the restart or the health check failed.
    """
    report = RollbackReport(controller.name)
    remote = Remote.open(controller)
    try:
        undo = choose(applied_records(remote), to)
        report.undone = [r.id for r in undo]
        output.step(controller.name, f"roll back {', '.join(report.undone)}")
        revision = _downgrade_target(remote, undo)
        if revision:
            output.detail(f"database back to {revision} first")
            _downgrade(remote, revision, undo)
            report.db_downgraded_to = revision
        summary = ask(remote, "restore", {"records": [r.raw for r in undo]})
        _refuse(remote, summary, undo)
        report.restored, report.removed = summary["restored"], summary["removed"]
        report.compiled_removed = summary["compiled"]
        stale = (f" (and {len(report.compiled_removed)} compiled file(s))"
                 if report.compiled_removed else "")
        output.detail(f"restored {len(report.restored)} file(s), removed "
                      f"{len(report.removed)}{stale}")
        if summary.get("unmarked"):
            output.warn(f"{controller.name}: no room to mark {', '.join(summary['unmarked'])} "
                        f"rolled back: still listed as applied; a rollback again changes "
                        f"nothing more once there is room")
        if restart:
            _, report.api = restart_and_check(remote, timeout)
    finally:
        remote.close()
    return report


def _refuse(remote: Remote, summary: dict[str, Any], undo: list[Record]) -> None:
    """Raise what ``deploy/remote/restore.py`` refused, or where it stopped.

    Raises:
        UnsafePath: a symlink below the package on the way; nothing was changed.
        RollbackError: a backup is damaged (nothing was changed), or restoring
            failed part-way (the rollback can be run again).
    """
    ids = ", ".join(r.id for r in undo)
    if summary.get("refused") and not summary.get("restored") and not summary.get("removed"):
        raise UnsafePath(f"{remote.name}: {summary['refused']}; nothing was changed")
    if summary.get("damaged"):
        damaged = summary["damaged"]
        raise RollbackError(f"{remote.name}: refusing to roll back {damaged['id']}: the backup "
                            f"of cinder/{damaged['rel']} is damaged ({damaged['why']}); "
                            f"nothing was changed")
    failed = summary.get("failed") or ({"error": summary["refused"]} if summary.get("refused")
                                       else None)
    if failed:
        raise RollbackError(f"{remote.name}: rolling back {ids} stopped part-way "
                            f"({failed['error']}): {len(summary['restored'])} file(s) restored, "
                            f"{len(summary['removed'])} removed; every file is wholly old or "
                            f"new, and the rollback can be run again")
