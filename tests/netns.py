"""Several hosts on one machine: network namespaces, veth links, a private sshd.

A :class:`Topology` creates namespaces joined by veth pairs. Every name it
makes carries a tag of its own (``dlp-<tag>-devbox``, links ``dlp<tag>ws0``)
and its addresses come from a /24 of 172.31.0.0/16 that no other run holds,
so two test runs on one machine never meet. The range is claimed under a
lock by adding an ``unreachable`` route for it in the root namespace (the
workstation), which also makes a wrong address fail at once instead of
leaving the machine. :meth:`Topology.down` removes everything in the order
that works (SANDBOX_NOTES.md): end the processes inside each namespace by
PID, delete the namespace, delete the root-side veth, then the route.

:func:`start_sshd` runs a plain sshd (a devbox or a gateway) in a namespace,
optionally with directories bind-mounted so only that "host" sees them.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from deploy.sandbox import end_process

PREFIX = "dlp"
#: every topology takes one /24 of this for its addresses
SPACE = ipaddress.IPv4Network("172.31.0.0/16")
CLAIM_LOCK = Path("/run/lock/cinder-devloop-netns.lock")


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell); raise with its stderr when ``check`` and it fails."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def missing_tools() -> list[str]:
    """The tools a topology needs that this machine lacks."""
    need = ("ip", "/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-agent", "ssh-add", "rsync",
            "supervisord", "mount")
    return [tool for tool in need if shutil.which(tool) is None]


def can_create_namespaces() -> str | None:
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if missing_tools():
        return f"missing {', '.join(missing_tools())}"
    probe = f"{PREFIX}probe-{os.getpid()}"
    proc = run(["ip", "netns", "add", probe], check=False)
    if proc.returncode != 0:
        return f"ip netns add failed: {proc.stderr.strip()}"
    run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass
class Topology:
    """Network namespaces and veth links of one run, all removed by :meth:`down`."""

    tag: str = ""               # from the claimed range: unique among the runs alive
    namespaces: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    range: ipaddress.IPv4Network | None = None

    def name(self, short: str) -> str:
        """A namespace name of this run: ``dlp-<tag>-<short>``."""
        assert self.tag, "claim_range() first"
        return f"{PREFIX}-{self.tag}-{short}"

    def dev(self, short: str) -> str:
        """A link name of this run: ``dlp<tag><short>`` (at most 15 characters)."""
        name = f"{PREFIX}{self.tag}{short}"
        assert len(name) <= 15, name
        return name

    def addr(self, host: int, prefix: int | None = None) -> str:
        """The ``host``-th address of this run's range, with ``/prefix`` if given."""
        assert self.range is not None, "claim_range() first"
        address = str(self.range.network_address + host)
        return f"{address}/{prefix}" if prefix is not None else address

    def claim_range(self) -> ipaddress.IPv4Network:
        """Take a /24 of :data:`SPACE` that no other run holds (its ``unreachable`` route here).

        The route is what marks a range as taken, so the look and the claim
        happen under one lock.
        """
        CLAIM_LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(CLAIM_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = {line.split()[1] for line in run(["ip", "route", "show"]).stdout.splitlines()
                     if line.startswith("unreachable ")}
            for block in SPACE.subnets(new_prefix=24):
                if str(block) not in taken:
                    run(["ip", "route", "add", "unreachable", str(block)])
                    self.range = block
                    self.tag = f"{block.network_address.packed[2]:02x}"
                    return block
        raise RuntimeError(f"no free /24 left in {SPACE}")

    def add(self, short: str) -> str:
        """Create this run's namespace for ``short``, loopback up; return its name."""
        name = self.name(short)
        if Path("/run/netns", name).exists():
            # the range was free, so this is what a crashed run of the same tag left
            _remove_namespace(name)
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def link(self, a: str | None, b: str, dev_a: str, dev_b: str,
             addr_a: str, addr_b: str) -> None:
        """Join ``a`` (None: the root namespace) and ``b`` with a veth pair.

        ``dev_a``/``dev_b`` are short names made this run's by :meth:`dev`;
        ``addr_a``/``addr_b`` carry their prefix length (``172.31.7.1/28``).
        """
        dev_a, dev_b = self.dev(dev_a), self.dev(dev_b)
        if a is None:
            run(["ip", "link", "del", dev_a], check=False)  # a crashed run's, as above
        run(["ip", "link", "add", dev_a, *(["netns", a] if a else []),
             "type", "veth", "peer", "name", dev_b, "netns", b])
        if a is None:
            self.root_links.append(dev_a)
        for ns, dev, addr in ((a, dev_a, addr_a), (b, dev_b, addr_b)):
            prefix = ["ip", "-n", ns] if ns else ["ip"]
            run([*prefix, "addr", "add", addr, "dev", dev])
            run([*prefix, "link", "set", dev, "up"])

    def address(self, ns: str, addr: str, dev: str = "lo") -> None:
        """Give ``ns`` one more address (one on its loopback, say)."""
        run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])

    def route(self, ns: str | None, dest: str, via: str) -> None:
        """``ip route add DEST via VIA`` in ``ns`` (None: the root namespace)."""
        prefix = ["ip", "-n", ns] if ns else ["ip"]
        run([*prefix, "route", "replace", dest, "via", via])

    def down(self) -> list[str]:
        """Remove everything, in the order that works; return what could not be removed."""
        problems: list[str] = []
        for ns in reversed(self.namespaces):
            problems += _remove_namespace(ns)
        self.namespaces.clear()
        for dev in self.root_links:
            # veth teardown is asynchronous: delete the root side explicitly
            run(["ip", "link", "del", dev], check=False)
        self.root_links.clear()
        leftover = self.leftovers()
        if self.range is not None:
            run(["ip", "route", "del", "unreachable", str(self.range)], check=False)
            self.range = None
        return problems + leftover

    def leftovers(self) -> list[str]:
        """This run's namespaces, links or routes into its range still on the machine."""
        found = [f"namespace {n}" for n in run(["ip", "netns", "list"]).stdout.split()
                 if n.startswith(f"{PREFIX}-{self.tag}-")]
        for line in run(["ip", "-o", "link", "show"]).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(f"{PREFIX}{self.tag}"):
                found.append(f"link {name}")
        if self.range is not None:
            for line in run(["ip", "route", "show"]).stdout.splitlines():
                dest = line.split()[0]
                if dest[0].isdigit() and \
                        ipaddress.ip_network(dest, strict=False).overlaps(self.range):
                    found.append(f"a route to {dest}")
        return found


def namespace_pids(ns: str) -> list[int]:
    """The PIDs of the processes inside ``ns``."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _remove_namespace(ns: str) -> list[str]:
    # ip netns del with processes inside only removes the name: end them first
    for pid in namespace_pids(ns):
        end_process(pid, grace=5.0)
    run(["ip", "netns", "del", ns], check=False)
    still = namespace_pids(ns) if Path("/run/netns", ns).exists() else []
    return [f"namespace {ns} still has processes {still}"] if still else []


# --- a plain sshd: a devbox or a gateway ------------------------------------------

@dataclass(frozen=True)
class Sshd:
    """A running sshd in a namespace and what a client needs to trust it."""

    pid: int
    address: str
    port: int
    host_key_line: str          # "<name> ssh-ed25519 AAAA..." for known_hosts

    def stop(self) -> None:
        end_process(self.pid, grace=5.0)


def keygen(path: Path, comment: str = "cinder-devloop test") -> Path:
    """An unencrypted ed25519 key at ``path`` (``.pub`` beside it)."""
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def start_sshd(ns: str, directory: Path, address: str, authorized: Sequence[Path], *,
               port: int = 22, mounts: Sequence[tuple[Path, Path]] = ()) -> Sshd:
    """Start sshd in ``ns`` listening on ``address:port``; return once it accepts.

    ``authorized`` are public key files allowed to log in as root;
    ``mounts`` are ``(source, mountpoint)`` directories bind-mounted in the
    sshd's own mount namespace, so only its sessions see them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    host_key = keygen(directory / "ssh_host_ed25519_key", f"{ns} host key")
    (directory / "authorized_keys").write_text(
        "".join(Path(p).read_text() for p in authorized))
    pidfile = directory / "sshd.pid"
    config = directory / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress {address}
HostKey {host_key}
AuthorizedKeysFile {directory}/authorized_keys
PidFile {pidfile}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowAgentForwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    run(["/usr/sbin/sshd", "-t", "-f", str(config)])
    pidfile.unlink(missing_ok=True)
    # ip netns exec gives the command a mount namespace of its own: the bind
    # mounts made there are seen by sshd and its sessions only.
    script = 'while [ "$#" -gt 1 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; ' \
             'exec /usr/sbin/sshd -f "$1"'
    args = [str(p) for pair in mounts for p in pair]
    run(["ip", "netns", "exec", ns, "sh", "-c", script, "start-sshd", *args, str(config)])
    pid = _wait_for_pid(pidfile)
    probe = ("import socket,sys,time\n"
             "d=time.monotonic()+10\n"
             "while time.monotonic()<d:\n"
             "    s=socket.socket(); s.settimeout(0.2)\n"
             "    if s.connect_ex((sys.argv[1],int(sys.argv[2])))==0: sys.exit(0)\n"
             "    s.close(); time.sleep(0.02)\n"
             "sys.exit(1)\n")
    run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", probe, address, str(port)])
    kind, blob = Path(f"{host_key}.pub").read_text().split()[:2]
    name = address if port == 22 else f"[{address}]:{port}"
    return Sshd(pid, address, port, f"{name} {kind} {blob}")


def _wait_for_pid(pidfile: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.02)
    raise RuntimeError(f"sshd wrote no pid file {pidfile} within {timeout} s")


@dataclass
class Agent:
    """An ssh-agent of the test's own, ended by PID."""

    socket: Path
    pid: int

    @classmethod
    def start(cls, directory: Path) -> "Agent":
        sock = directory / "agent.sock"
        sock.unlink(missing_ok=True)
        proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("ssh-agent did not start")
            time.sleep(0.02)
        agent = cls(sock, proc.pid)
        agent._proc = proc  # type: ignore[attr-defined]
        return agent

    @property
    def env(self) -> dict[str, str]:
        return {"SSH_AUTH_SOCK": str(self.socket)}

    def add(self, key: Path) -> None:
        proc = subprocess.run(["ssh-add", str(key)], capture_output=True, text=True,
                              env={**os.environ, **self.env}, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh-add {key} failed: {proc.stderr.strip()}")

    def stop(self) -> None:
        end_process(self.pid, grace=5.0)
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.wait(timeout=5)
