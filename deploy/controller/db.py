"""cinder-manage db sync / db version, run as the service user.

``su -s /bin/sh -c 'cinder-manage --config-file A --config-file B db sync'
cinder``: the database files and config are the service user's, so the
command runs as that user, exactly as the RDO documentation has it.
"""
from __future__ import annotations

from dataclasses import dataclass

from deploy.base.errors import DbSyncError
from deploy.transport.commands import Remote, as_user, tail


def manage_argv(remote: Remote, *args: str) -> list[str]:
    """``cinder-manage --config-file <each config> <args...>``."""
    argv = [remote.controller.cinder_manage]
    for path in remote.controller.config_files:
        argv += ["--config-file", path]
    return argv + list(args)


def current_revision(remote: Remote) -> str:
    """The revision recorded in the controller's database (``db version``).

    Raises:
        DbSyncError: cinder-manage failed; its own message is shown.
    """
    argv = as_user(remote.controller.service_user, manage_argv(remote, "db", "version"))
    result = remote.run(argv, check=False)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.exited != 0 or not lines:
        what = (f"failed (exit {result.exited})" if result.exited != 0 else
                "printed no revision (exit 0)")
        raise DbSyncError(f"{remote.name}: cinder-manage db version {what}:\n  "
                          + (tail(result.stderr + "\n" + result.stdout, 8).replace("\n", "\n  ")
                             or "(no output)"))
    # An empty database has no alembic_version row: cinder-manage says "None".
    return "empty" if lines[-1] == "None" else lines[-1]


@dataclass(frozen=True, slots=True)
class SyncResult:
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def db_sync(remote: Remote) -> SyncResult:
    """Run ``cinder-manage db sync`` and report the revision before and after.

    Raises:
        DbSyncError: the sync failed; cinder-manage's own last lines are shown.
    """
    before = current_revision(remote)
    argv = as_user(remote.controller.service_user, manage_argv(remote, "db", "sync"))
    result = remote.run(argv, check=False)
    if result.exited != 0:
        raise DbSyncError(f"{remote.name}: cinder-manage db sync failed "
                          f"(exit {result.exited}) at revision {before}:\n  "
                          + tail(result.stderr + "\n" + result.stdout, 8).replace("\n", "\n  "))
    return SyncResult(before, current_revision(remote))
