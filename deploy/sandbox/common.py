"""What every kind of sandbox controller shares: keys, processes, waiting.

A sandbox controller is built and ended on this machine; whichever kind
it is, the workstation side gets an ssh key and a known_hosts file that
pins the controller's host key, its processes are ended by PID, and its
readiness is polled, never slept for.
"""
from __future__ import annotations

import fcntl
import http.client
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from deploy.base.errors import SandboxError
from deploy.transport.commands import run_local

SERVICE_USER = "cinder"


class ClientFiles:
    """The workstation's side of a sandbox, under its ``root``: the key that logs
    in and the file that pins the sandbox's host key."""

    __slots__ = ()
    root: Path

    @property
    def client_dir(self) -> Path:
        return self.root / "client"

    @property
    def identity_file(self) -> Path:
        return self.client_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.client_dir / "known_hosts"


# --- processes ---------------------------------------------------------------

def pid_from(pidfile: Path, must_contain: str) -> int | None:
    """The live PID in ``pidfile`` whose command line mentions ``must_contain``.

    Checking the command line guards against a stale file whose PID the
    kernel has since given to another process.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None
    return pid if must_contain in cmdline else None


def alive(pid: int) -> bool:
    """Is ``pid`` a process that has not ended (a zombie has)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def end_process(pid: int, grace: float = 15.0) -> None:
    """TERM, then KILL after ``grace`` seconds; returns once it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds.

    Raises:
        SandboxError: it did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SandboxError(f"sandbox: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, address: str = "127.0.0.1") -> bool:
    """Does something accept TCP connections at ``address:port``?"""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


def api_answers(url: str) -> bool:
    """Does ``url`` answer HTTP with a status below 500?"""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    # BadStatusLine & co: a connection to a free port in the kernel's ephemeral
    # range can meet itself (TCP's self-connect) and read its own request back
    except (OSError, http.client.HTTPException):
        return False


# --- files, users, keys ----------------------------------------------------------

def make_dir(path: Path, owner: str | None = None, mode: int = 0o755) -> None:
    """``mkdir -p`` with the given mode (and owner, user and group of that name)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owner:
        shutil.chown(path, owner, owner)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` (its parents made first) and set its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


#: what is built once per machine (container trees, the sandbox venv), keyed by what built it
CACHE_DIR = Path(os.environ.get("DEVLOOP_CACHE_DIR", "/var/cache/cinder-devloop"))


def ensure_service_user(user: str = SERVICE_USER) -> None:
    """Create the nologin system user the API runs as on this machine (once).

    Raises:
        SandboxError: useradd failed for another reason than "exists".
    """
    # two runs at once (two test sessions) would race for /etc/passwd's lock:
    # useradd then fails with 10 ("cannot lock"), so they take turns here
    with locked(Path("/run/lock/cinder-devloop-useradd.lock")):
        proc = run_local(["useradd", "--system", "--home-dir", "/var/lib/cinder",
                          "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                         check=False)
    if proc.returncode not in (0, 9):  # 9: the user exists already
        raise SandboxError(f"sandbox: useradd {user} failed: {proc.stderr.strip()}")


def ensure_key(path: Path, comment: str) -> None:
    """An ed25519 key pair at ``path`` (and ``path.pub``), made once."""
    if not path.exists():
        run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                   "-f", str(path)])


def known_hosts_name(address: str, port: int) -> str:
    """sshd's name in known_hosts: ``[addr]:port``, or the bare address on port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def write_known_hosts(path: Path, name: str, host_public_key: str) -> None:
    """Pin ``host_public_key`` (a ``.pub`` file's text) for ``name`` in ``path``."""
    kind, key = host_public_key.split()[:2]
    path.write_text(f"{name} {kind} {key}\n")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while inside.

    Builds and address allocations that two runs (two test sessions, a
    developer and CI) could do at once take this first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
