"""Two people, one controller: a lock held on the controller for each run.

Two runs that change one controller (two checkouts, two users of the same
inventory) must not interleave their syncs, records and restarts. Each
such run holds a lock on the controller itself, not on a laptop:
``deploy/remote/hold_lock.py`` runs over the run's own SSH connection,
takes ``flock`` on ``<state_dir>/lock``, writes who holds it (user, host,
task, pid, since) into ``<state_dir>/lock.json``, and keeps the lock until
the run releases it, or until its stdin closes because the run died or its
connection dropped (the kernel then drops the flock with the process).

A second run waits up to ``--lock-wait`` seconds, then refuses with one
line naming the holder. A lock whose holder ended without releasing it is
taken over, with one warning naming the old holder.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, TypeVar

from deploy.base import output
from deploy.base.errors import DevloopError, LockBusy
from deploy.base.inventory import Controller
from deploy.controller.facts import with_cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail
from deploy.transport.connection import translate_ssh_errors

T = TypeVar("T")

#: seconds a run waits for another run's lock by default
DEFAULT_WAIT = 30.0
#: seconds, beyond the wait, for the helper to start and answer
ANSWER_GRACE = 30.0

# controllers whose lock this process holds: a nested step (a deploy's
# rollback-on-failure) runs under the lock its task already took
_held: dict[str, int] = {}
# released helpers whose end was not waited for (see _release), by controller
_releasing: dict[str, Any] = {}
_held_guard = threading.Lock()


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a controller's lock."""

    user: str
    host: str
    task: str
    pid: int
    since: str
    #: set when that run ended without releasing the lock (killed, disconnected)
    ended: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "Holder | None":
        """The holder ``lock.json`` names; what it holds is only shown, so any value is read.

        A field of the wrong kind (a ``pid`` that is not a number) reads as
        unknown; control characters are not passed on to the terminal.
        """
        if not isinstance(data, Mapping):
            return None
        pid = data.get("pid")
        if isinstance(pid, str) and pid.isdigit():
            pid = int(pid)
        ended = data.get("ended")
        return cls(_shown(data.get("user", "?")), _shown(data.get("host", "?")),
                   _shown(data.get("task", "?")),
                   pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else 0,
                   _shown(data.get("since", "?")), None if ended is None else _shown(ended))

    def describe(self) -> str:
        """``alice@laptop (invoke deploy, pid 4242) since 2026-12-02T23:10:04Z``"""
        return (f"{self.user}@{self.host} (invoke {self.task}, pid {self.pid or '?'}) "
                f"since {self.since}")


def _shown(value: Any, width: int = 80) -> str:
    """``value`` as text fit for one line of a terminal: no control characters, not too long."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= width else text[:width - 1] + "…"


def me(task: str) -> dict[str, object]:
    """What this run says about itself in the lock: user, host, task, pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "task": task, "pid": os.getpid()}


def hold_argv(controller: Controller, task: str, wait: float,
              holder: Mapping[str, object] | None = None) -> list[str]:
    """``<python> -E -s -S -c <remote/hold_lock.py> <python> <state_dir> hold <wait> <json>``

    The python is the one that runs Cinder (the inventory's, else cinder-api's
    ``#!`` line), as for every helper.
    """
    info = json.dumps(dict(holder if holder is not None else me(task)), sort_keys=True)
    return with_cinder_python(controller, STDLIB_ONLY, script("hold_lock"),
                              [controller.state_dir, "hold", f"{wait:g}", info])


def show_argv(controller: Controller) -> list[str]:
    """``<python> -E -s -S -c <remote/hold_lock.py> <python> <state_dir> show``"""
    return with_cinder_python(controller, STDLIB_ONLY, script("hold_lock"),
                              [controller.state_dir, "show"])


def busy_message(name: str, holder: Holder | None, wait: float) -> str:
    """The one line a run that could not get the lock ends with."""
    who = holder.describe() if holder else "another run (it has not said who yet)"
    return (f"{name}: locked by {who}; waited {wait:g} s. Try again when that run ends, "
            f"or wait longer with --lock-wait SECONDS")


def takeover_message(name: str, holder: Holder) -> str:
    """The one warning a run that took over a dead holder's lock prints."""
    return (f"{name}: took over the lock from {holder.describe()}: that run ended without "
            f"releasing it (killed or disconnected{f' at {holder.ended}' if holder.ended else ''})"
            f"; check its work with invoke status")


def status_line(held: bool, holder: Holder | None) -> str:
    """What ``invoke status`` says about the lock."""
    if held:
        return f"held by {holder.describe()}" if holder else "held (holder not written yet)"
    if holder is not None:
        return (f"free; stale: {holder.describe()} ended without releasing it"
                f"{f' at {holder.ended}' if holder.ended else ''} (the next run takes it over)")
    return "free"


def _answer(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line) if line.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def controller_lock(remote: Remote, task: str, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold ``remote``'s controller lock for the body; release it afterwards.

    Already held by this process (a nested step): the body just runs.

    Raises:
        LockBusy: another run held it for ``wait`` seconds.
        DevloopError: the helper could not run on the controller.
    """
    name = remote.name
    with _held_guard:
        nested = _held.get(name, 0) > 0
        _held[name] = _held.get(name, 0) + 1
    try:
        if nested:
            yield
            return
        dialogue = _take(remote, task, wait)
        try:
            yield
        finally:
            _release(remote, dialogue)
    finally:
        with _held_guard:
            _held[name] -= 1


def _take(remote: Remote, task: str, wait: float) -> Any:
    """Start the helper and read until it holds the lock (or refuses)."""
    _settle(remote)
    dialogue = remote.dialogue(hold_argv(remote.controller, task, wait),
                               timeout=wait + ANSWER_GRACE)
    while True:
        line = dialogue.readline()
        answer = _answer(line)
        if answer is None:
            result = dialogue.finish()
            raise _unusable(remote, "take", result.exited,
                            result.stderr + line + result.stdout)
        if "waiting" in answer:
            holder = Holder.from_json(answer["waiting"])
            output.step(remote.name, f"waiting up to {wait:g} s for the lock: held by "
                                     f"{holder.describe() if holder else 'another run'}")
        elif "busy" in answer:
            dialogue.finish()
            raise LockBusy(busy_message(remote.name, Holder.from_json(answer["busy"]), wait))
        elif "held" in answer:
            old = Holder.from_json(answer.get("taken_over"))
            if old is not None:
                output.warn(takeover_message(remote.name, old))
            return dialogue


def _release(remote: Remote, dialogue: Any) -> None:
    """Tell the helper the run ended well, without waiting for it to end.

    "release" then the end of its input: sshd delivers both in order even if
    this process exits at once, so the release costs no round trip. Only a
    later lock on the same controller in this run (chained tasks, the next
    burst of a watch) waits for it first.
    """
    try:
        with translate_ssh_errors(remote.controller):
            dialogue.channel.sendall(b"release\n")
            dialogue.channel.shutdown_write()
    except DevloopError as exc:
        _lost(remote, exc)
        return
    with _held_guard:
        _releasing[remote.name] = dialogue


def _settle(remote: Remote) -> None:
    """Wait until this run's own last lock on the controller has been let go."""
    with _held_guard:
        earlier = _releasing.pop(remote.name, None)
    if earlier is None:
        return
    try:
        earlier.finish()
    except DevloopError as exc:
        _lost(remote, exc)


def _lost(remote: Remote, exc: DevloopError) -> None:
    output.warn(f"{remote.name}: could not release the lock ({str(exc).splitlines()[0]}); "
                f"the controller freed it when the connection dropped")


def locked(task: str, wait: float, work: Callable[[Controller], T]) -> Callable[[Controller], T]:
    """``work`` run under the controller's lock (for :func:`deploy.transport.fleet.on_each`).

    Each controller's lock is taken on its own; the lock travels on the
    run's one connection to that controller, which ``work`` then reuses.
    """
    def run(controller: Controller) -> T:
        remote = Remote.open(controller)
        with controller_lock(remote, task, wait):
            return work(controller)
    return run


def read_lock(remote: Remote) -> tuple[bool, Holder | None]:
    """Whether the controller's lock is held, and who holds (or last held) it.

    Raises:
        CommandFailed: the helper could not run.
    """
    _settle(remote)        # after a chained deploy, not our own lock on its way out
    result = remote.run(show_argv(remote.controller), check=False)
    answer = _answer(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")
    if result.exited != 0 or answer is None:
        raise _unusable(remote, "read", result.exited, result.stderr + result.stdout)
    return bool(answer.get("held")), Holder.from_json(answer.get("holder"))


def _unusable(remote: Remote, verb: str, code: int, text: str) -> DevloopError:
    """One line for a lock helper that failed: what it said last, and where to look.

    The helper is a script passed inline: its source is never shown, only
    its last line (a Python traceback's last line names the error).
    """
    said = tail(text, 1) or "no output"
    state_dir = remote.controller.state_dir
    hint = ("; check state_dir in the inventory (a directory root can create and write)"
            if state_dir in said else "")
    return DevloopError(f"{remote.name}: cannot {verb} the controller's lock in state_dir "
                        f"{state_dir} (exit {code}): {_shown(said, 300)}{hint}")
