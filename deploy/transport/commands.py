"""The only places that execute things: on the controller and locally.

Remote commands travel over SSH as one string, so they are built as argv
lists and joined with ``shlex.join`` here, once; a value from the inventory
or the command line is therefore quoted exactly once, whatever it holds.
"""
from __future__ import annotations

import contextlib
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from fabric import Connection
from invoke.runners import Result

from deploy.base import output
from deploy.base.errors import CommandFailed, DevloopError
from deploy.base.inventory import Controller
from deploy.transport import liveness
from deploy.transport.connection import (
    connection_lost,
    ensure_open,
    shared_connection,
    translate_ssh_errors,
)

Command = Sequence[str]

# For remote scripts that need only the standard library: no PYTHON*
# variables, no user site, and no site module, which skips the .pth files of
# every installed package (about 0.1 s on a controller's python). Python 2.7
# accepts these too (it rejects 3.4's ``-I``).
STDLIB_ONLY = ("-E", "-s", "-S")


def as_user(user: str, argv: Command) -> list[str]:
    """Wrap ``argv`` to run as a (nologin) service user.

    ``su -s /bin/sh -c '<argv joined>' -- <user>``: plain ``su -c`` fails for
    accounts whose shell is nologin, and su passes the exit code through.
    The ``--`` ends su's options: a user name can never be read as one
    (``-c...`` would replace the command, and it would run as root).
    """
    return ["su", "-s", "/bin/sh", "-c", shlex.join(argv), "--", user]


def tail(text: str, lines: int = 12) -> str:
    """The last ``lines`` non-empty lines of ``text``."""
    kept = [line.rstrip() for line in text.replace("\r\n", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


@dataclass
class Remote:
    """An open connection to one controller, and how to run things on it."""

    controller: Controller
    conn: Connection
    #: what the controller layer found there (``facts.locate``), once per run
    located: Any = None

    @classmethod
    def open(cls, controller: Controller) -> "Remote":
        """Return a handle on the task run's one connection to ``controller``.

        The first call connects (strict host keys); later calls in the same
        run reuse that connection, or reconnect if it dropped.

        Raises:
            ConnectError: see :func:`deploy.transport.connection.open_connection`.
        """
        return cls(controller, shared_connection(controller))

    @property
    def name(self) -> str:
        return self.controller.name

    def run(self, argv: Command, *, check: bool = True, pty: bool = False,
            hide: bool = True, timeout: float | None = None, hint: str = "") -> Result:
        """Run ``argv`` on the controller and return invoke's ``Result``.

        Raises:
            CommandFailed: non-zero exit and ``check`` (stdout/stderr tail shown).
            ConnectError: the connection dropped, or the controller stopped
                answering (:mod:`deploy.transport.liveness`), while it ran.
        """
        text = shlex.join(argv)
        output.command(self.name, text)
        with translate_ssh_errors(self.controller):
            ensure_open(self.conn, self.controller)
            with self.reports_loss(argv):
                result = self.conn.run(text, hide=hide, warn=True, pty=pty,
                                       in_stream=False if not pty else None, timeout=timeout)
            if result.exited != 0 and not pty:    # (a pty session's caller judges a drop)
                self.raise_if_lost(argv)
        if check and result.exited != 0:
            # (a helper passed inline is shown as <script>: its source says nothing)
            raise CommandFailed(self.name, describe(argv, width=400), result.exited,
                                tail((result.stderr or "") + "\n" + (result.stdout or "")), hint)
        return result

    @contextlib.contextmanager
    def reports_loss(self, argv: Command) -> Iterator[None]:
        """Raise the loss of the connection, if that is why what runs inside failed."""
        try:
            yield
        except DevloopError:
            raise
        except Exception as exc:
            liveness.unanswered(self.conn.client.get_transport(), exc)
            self.raise_if_lost(argv)
            raise

    def raise_if_lost(self, argv: Command) -> None:
        """Raise ``ConnectError`` if the connection is lost (reset, closed, silent).

        Raises:
            ConnectError: it is; the message says while running what.
        """
        lost = connection_lost(self.controller, self.conn, f"running {describe(argv)}")
        if lost is not None:
            raise lost from None

    def dialogue(self, argv: Command, timeout: float | None = None) -> "Dialogue":
        """Start ``argv`` for a conversation: lines back, then the rest of its input.

        Its input goes in one write (Invoke's runner forwards a stream in
        small reads with a sleep between them).
        """
        text = shlex.join(argv)
        output.command(self.name, text)
        with translate_ssh_errors(self.controller), self.reports_loss(argv):
            return Dialogue(self, argv, timeout)

    def close(self) -> None:
        """Release the handle; the shared connection closes when the run ends."""


class Dialogue:
    """A remote command that answers before all of its input has come, in one exec.

    The helpers that use it read their questions, print an answer the
    caller needs to build the rest of the input, then read that to the end
    (see ``deploy/remote/receive_tree.py``). The output is captured.
    """

    def __init__(self, remote: Remote, argv: Command, timeout: float | None) -> None:
        self.remote, self.argv, self.text = remote, argv, shlex.join(argv)
        ensure_open(remote.conn, remote.controller)
        self.channel = remote.conn.client.get_transport().open_session()
        self.channel.settimeout(timeout)
        self.channel.exec_command(self.text)
        self.stdout = self.channel.makefile("rb")
        self.result: Result | None = None

    def send(self, data: bytes) -> None:
        with translate_ssh_errors(self.remote.controller), self.remote.reports_loss(self.argv):
            self.channel.sendall(data)

    def readline(self) -> str:
        """The next line of output ("" once the command has ended)."""
        with translate_ssh_errors(self.remote.controller), self.remote.reports_loss(self.argv):
            line = self.stdout.readline().decode("utf-8", "replace")
        if not line:
            self.remote.raise_if_lost(self.argv)
        return line

    def finish(self, data: bytes = b"") -> Result:
        """Send the last of the input, close it, wait for the end; the whole result.

        A second call returns the first one's result.
        """
        if self.result is not None:
            return self.result
        try:
            with translate_ssh_errors(self.remote.controller), \
                    self.remote.reports_loss(self.argv):
                if data:
                    self.channel.sendall(data)
                self.channel.shutdown_write()
                stdout = self.stdout.read()
                stderr = self.channel.makefile_stderr("rb").read()
                exited = self.channel.recv_exit_status()
        finally:
            # on a dead connection close() raises EOFError (paramiko cannot send
            # the close); it must not hide the "connection lost" error above
            with contextlib.suppress(EOFError, OSError):
                self.channel.close()
        if exited != 0:
            self.remote.raise_if_lost(self.argv)
        self.result = Result(stdout=stdout.decode("utf-8", "replace"),
                             stderr=stderr.decode("utf-8", "replace"), command=self.text,
                             exited=exited)
        return self.result


def describe(argv: Command, width: int = 80) -> str:
    """``argv`` shortened for a message: a script passed inline is shown as ``<script>``."""
    words = ["<script>" if "\n" in word else word for word in argv]
    text = shlex.join(words)
    return text if len(text) <= width else text[:width - 1] + "…"


def run_local(argv: Command, *, where: str = "local", check: bool = True,
              hint: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on this machine (never through a shell), capturing output.

    Raises:
        CommandFailed: non-zero exit and ``check``, or the program is missing.
    """
    text = shlex.join(argv)
    output.command(where, text)
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CommandFailed(where, text, 127, f"{argv[0]}: not found", hint) from None
    if check and proc.returncode != 0:
        said = tail(proc.stderr + "\n" + proc.stdout)
        raise CommandFailed(where, text, proc.returncode, said, hint)
    return proc
