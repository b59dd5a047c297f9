"""cinder-manage db sync / db version, run as the service user.

``su -s /bin/sh -c 'cinder-manage --config-file A --config-file B db sync'
cinder``: the database files and config are the service user's, so the
command runs as that user, exactly as the RDO documentation has it.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from deploy.base import output
from deploy.base.errors import DbSyncError
from deploy.controller import manage_log
from deploy.transport.commands import Remote, as_user, tail


def manage_argv(remote: Remote, *args: str) -> list[str]:
    """``cinder-manage --config-file <each config> <args...>``."""
    argv = [remote.controller.cinder_manage]
    for path in remote.controller.config_files:
        argv += ["--config-file", path]
    return argv + list(args)


def run_manage(remote: Remote, *args: str) -> tuple[int, str, str]:
    """Run ``cinder-manage <args>`` as the service user: (exit code, stdout, all it said).

    "All it said" is stderr and stdout and, when it failed without saying
    why there, the lines it wrote to its log file (:mod:`manage_log`).
    """
    argv = as_user(remote.controller.service_user,
                   manage_log.with_pid(manage_argv(remote, *args)))
    result = remote.run(argv, check=False)
    pid, stderr = manage_log.split_pid(result.stderr)
    said = stderr + "\n" + result.stdout
    if result.exited != 0 and pid is not None and cause(said) is None:
        said += "\n" + manage_log.logged_by(remote, pid)
    return result.exited, result.stdout, said


def current_revision(remote: Remote) -> str:
    """The revision recorded in the controller's database (``db version``).

    Raises:
        DbSyncError: cinder-manage failed; its own message is shown.
    """
    exited, stdout, said = run_manage(remote, "db", "version")
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if exited != 0 or not lines:
        what = f"failed (exit {exited})" if exited != 0 else "printed no revision (exit 0)"
        why = cause(said) if exited != 0 else None
        raise DbSyncError(f"{remote.name}: cinder-manage db version {what}"
                          + (f": {why}\n  " if why else ":\n  ")
                          + (tail(said, 8).replace("\n", "\n  ") or "(no output)"))
    # An empty database has no alembic_version row: cinder-manage says "None".
    return "empty" if lines[-1] == "None" else lines[-1]


@dataclass(frozen=True, slots=True)
class SyncResult:
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


#: SQLite refuses a write at once, whatever its busy timeout, when waiting
#: could deadlock: a service's heartbeat was committing just as the migration
#: went from reading to writing. SQLite's DDL is transactional, so the
#: migration that failed left nothing behind and running the sync again is safe.
_SQLITE_LOCKED = "database is locked"
SYNC_ATTEMPTS = 3

# oslo.log's prefix: "2026-12-06 10:37:02.382 23509 ERROR cinder "
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \d+ [A-Z]+ \S+ ")
# "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Failure): \S")
# what cinder-manage itself prints for a DBMigrationError (Train's migrations raise it)
_MANAGE_SAID = re.compile(r"^Error during database migration: \S")


def cause(text: str) -> str | None:
    """The last ``SomeError: message`` line of a Python failure, without oslo.log's prefix,
    or cinder-manage's own "Error during database migration: ..." line.

    cinder-manage logs the SQL statement after the exception, so the last
    lines alone often show a CREATE TABLE and not why it failed.
    """
    found = None
    for line in text.splitlines():
        line = _LOG_PREFIX.sub("", line.strip())
        if _EXCEPTION.match(line) or _MANAGE_SAID.match(line):
            found = line
    return found


def db_sync(remote: Remote, pause: float = 2.0) -> SyncResult:
    """Run ``cinder-manage db sync`` and report the revision before and after.

    A sync SQLite refused with "database is locked" is run again, up to
    ``SYNC_ATTEMPTS`` times in all, ``pause`` seconds apart.

    Raises:
        DbSyncError: the sync failed; the exception and cinder-manage's own
            last lines are shown.
    """
    before = current_revision(remote)
    for attempt in range(1, SYNC_ATTEMPTS + 1):
        exited, _, said = run_manage(remote, "db", "sync")
        if exited == 0:
            break
        if _SQLITE_LOCKED not in said or attempt == SYNC_ATTEMPTS:
            why = cause(said)
            raise DbSyncError(f"{remote.name}: cinder-manage db sync failed "
                              f"(exit {exited}) at revision {before}"
                              + (f" ({attempt} attempts)" if attempt > 1 else "")
                              + (f": {why}\n  " if why else ":\n  ")
                              + tail(said, 8).replace("\n", "\n  "))
        output.detail(f"{remote.name}: SQLite refused the migration with \"database is "
                      f"locked\" (a service wrote at that moment); cinder-manage db sync "
                      f"again, attempt {attempt + 1} of {SYNC_ATTEMPTS}")
        time.sleep(pause)
    return SyncResult(before, current_revision(remote))
