"""One error hierarchy for everything a user can fix.

Every class here carries a message written for the person at the terminal:
what failed, where, and what to do next. ``tasks.py`` shows it as a single
``error: ...`` line and exits with ``exit_code``; anything that is not a
``DevloopError`` is a bug and keeps its traceback.
"""
from __future__ import annotations

from typing import ClassVar, Sequence


class DevloopError(Exception):
    """Base for every error a user can fix; shown as one line, no traceback."""

    exit_code: ClassVar[int] = 1

    def lines(self) -> list[str]:
        """Return the message as the lines to print after ``error: ``."""
        return [str(self)]


# --- configuration -----------------------------------------------------------

class InventoryError(DevloopError):
    """hosts.yaml cannot be used; lists every problem found, each with its place."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {problem}" for problem in self.problems]


class UsageError(DevloopError):
    """A task was called with flags that do not fit together."""

    exit_code = 2


# --- reaching a controller ---------------------------------------------------

class ConnectError(DevloopError):
    """The controller could not be reached or refused the login."""


class HostKeyUnknown(ConnectError):
    """The controller's host key is not pinned in the inventory's known_hosts."""


class HostKeyMismatch(ConnectError):
    """The controller presented a host key other than the pinned one."""


# --- doing things on it ------------------------------------------------------

class CommandFailed(DevloopError):
    """A command exited non-zero; the message shows it, its code and its output."""

    def __init__(self, where: str, command: str, exit_code: int,
                 output_tail: str = "", hint: str = "") -> None:
        self.where = where
        self.command = command
        self.returncode = exit_code
        self.output_tail = output_tail
        message = f"{where}: command failed with exit code {exit_code}: {command}"
        if output_tail:
            message += "\n  " + output_tail.rstrip().replace("\n", "\n  ")
        if hint:
            message += f"\n  {hint}"
        super().__init__(message)


class SyncError(DevloopError):
    """rsync could not lay the source tree over the controller's cinder."""

    #: rsync said the controller's disk (or quota) was full
    no_space: bool = False


class UnsafePath(DevloopError):
    """A symlink (or another non-directory) on a path the tool would write under;
    nothing was changed."""


class NoSpace(DevloopError):
    """The controller's disk had no room for a deploy's backups, record or files;
    nothing was changed."""


class DeployCut(DevloopError):
    """A deploy failed while replacing files: undone at once, or the message names
    the ``invoke rollback`` that undoes it."""


class SourceTreeError(DevloopError):
    """The local source tree cannot be sent as it is (a link out of it, an unreadable
    directory); nothing was sent."""


class CompileError(DevloopError):
    """Changed files do not compile with the controller's python; nothing was sent."""

    def __init__(self, summary: str, problems: Sequence[str]) -> None:
        self.summary = summary
        self.problems = list(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [self.summary, *self.problems]


class UncommittedChanges(DevloopError):
    """The controller's git checkout has its own uncommitted work in files a deploy would
    replace; nothing was sent."""


class ServiceError(DevloopError):
    """The service manager could not start, stop or report the service."""


class DbSyncError(DevloopError):
    """cinder-manage db sync or db version failed."""


class HealthCheckError(DevloopError):
    """The API did not answer before the deadline, or does not serve what was sent."""


class DebugError(DevloopError):
    """The foreground debugging session could not be set up."""


class AuthError(DevloopError):
    """No token or no Block Storage endpoint: clouds.yaml, Keystone or the catalog."""


class SandboxError(DevloopError):
    """The local sandbox controller could not be built, started or stopped."""


class LockBusy(DevloopError):
    """Another run held the controller's lock for the whole ``--lock-wait``."""

    exit_code = 75          # EX_TEMPFAIL: try again later


class ControllersFailed(DevloopError):
    """A task ran on several controllers and some of them failed."""

    def __init__(self, failures: dict[str, DevloopError]) -> None:
        self.failures = failures
        names = ", ".join(sorted(failures))
        super().__init__(f"failed on {len(failures)} controller(s): {names}")

    def lines(self) -> list[str]:
        out = [str(self)]
        for name in sorted(self.failures):
            for line in self.failures[name].lines():
                named = line.startswith((f"{name}:", f"{name} ("))
                out.append(line if named else f"{name}: {line}")
        return out
