"""Controllers that run a real systemd: ``systemd-nspawn --boot`` on this machine.

A *kind* of container controller is two things (``ContainerKind``): how to
build its root filesystem (a ``TreeRecipe``) and how to make one booted
copy of that tree a controller of this kind (``configure``). Everything
else is shared and lives here:

* the tree is built once with ``mmdebstrap`` plus the recipe's own steps,
  packed as ``<kind>-<digest>.tar.zst`` under ``/var/cache/cinder-devloop``
  (the digest hashes everything that built it) and kept unpacked beside it;
  an ``flock`` makes sure two runs never build or unpack at once;
* each instance boots a fresh overlay of it (the cache is never written),
  in its own network namespace (a veth pair, a /30 of 10.213.0.0/16) and
  its own cgroup, so several instances never collide;
* ``--register=no --keep-unit``: no machined and no host systemd needed;
* sshd inside listens on port 22 of the instance's address, with a host
  key and an authorized key made for this instance;
* teardown is by PID: TERM to nspawn (systemd powers off), then the
  overlay is unmounted, the cgroups removed, the namespace deleted.

Facts and timings behind this: ``../shared/CONTROLLER_NOTES.md`` §1.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from deploy.base import output
from deploy.base.errors import SandboxError
from deploy.sandbox.common import (
    CACHE_DIR,
    ClientFiles,
    alive,
    api_answers,
    end_process,
    ensure_key,
    known_hosts_name,
    locked,
    pid_from,
    port_open,
    wait,
    write_known_hosts,
)
from deploy.transport.commands import as_user, run_local

SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: packages every container tree has: systemd, sshd, and what the tool runs there
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "procps",
                 "rsync", "iproute2", "libpam-systemd", "ca-certificates")
TOOLS = ("systemd-nspawn", "mmdebstrap", "zstd", "ip", "ssh-keygen")


@dataclass(frozen=True, slots=True)
class TreeRecipe:
    """How to build one kind's root filesystem.

    ``build(tree)`` runs after mmdebstrap, on this machine, as root, with
    the tree at ``tree``: install what the kind needs into it (never from
    inside a booted container: it has no outbound network). ``inputs`` are
    the texts that decide the result (pins, unit files, the build code's
    version): their hash names the cache entry, so changing one rebuilds.
    """

    name: str
    build: Callable[[Path], None]
    packages: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    suite: str = "bookworm"

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.name, self.suite, *BASE_PACKAGES, *self.packages, *self.inputs):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    @property
    def archive(self) -> Path:
        return CACHE_DIR / f"{self.name}-{self.digest}.tar.zst"

    @property
    def tree(self) -> Path:
        """The unpacked tree: every instance's read-only lower layer."""
        return CACHE_DIR / "trees" / f"{self.name}-{self.digest}"


@dataclass(frozen=True, slots=True)
class Instance(ClientFiles):
    """One booted container: where its files live and its unique names."""

    root: Path
    name: str = "container"

    @property
    def tag(self) -> str:
        """8 hex digits unique to this instance's root: every kernel name derives from it."""
        return hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]

    @property
    def netns(self) -> str:
        return f"devloop-{self.tag}"

    @property
    def veth(self) -> str:
        return f"dl{self.tag}"          # interface names have at most 15 characters

    @property
    def cgroup(self) -> str:
        return f"sysd-devloop-{self.tag}"

    @property
    def machine(self) -> str:
        return f"devloop-{self.tag}"

    @property
    def upper(self) -> Path:
        return self.root / "overlay" / "upper"

    @property
    def work(self) -> Path:
        return self.root / "overlay" / "work"

    @property
    def merged(self) -> Path:
        """The container's ``/`` as seen from this machine."""
        return self.root / "rootfs"

    @property
    def pidfile(self) -> Path:
        return self.root / "nspawn.pid"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def address_file(self) -> Path:
        return self.root / "address"

    @property
    def address(self) -> str:
        """The container's own address (``host0``), once allocated.

        Raises:
            SandboxError: the instance has never been booted.
        """
        try:
            return self.address_file.read_text().strip()
        except OSError:
            raise SandboxError(f"sandbox: {self.root} has no container (run sandbox.up)") \
                from None

    @property
    def host_address(self) -> str:
        """This machine's end of the veth pair (the container's gateway)."""
        return str(ipaddress.ip_address(self.address) - 1)

    def pid(self) -> int | None:
        """The PID of the running ``systemd-nspawn``, or None."""
        return pid_from(self.pidfile, str(self.merged))

    def nsenter(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the container (all its namespaces), from this machine."""
        leader = self.leader()
        return ["nsenter", "-t", str(leader), "-a", *argv]

    def leader(self) -> int:
        """The container's PID 1 as seen from this machine.

        Raises:
            SandboxError: the container is not running.
        """
        pid = self.pid()
        children = Path(f"/proc/{pid}/task/{pid}/children") if pid else None
        try:
            first = children.read_text().split()[0] if children else ""
        except (OSError, IndexError):
            first = ""
        if not first:
            raise SandboxError(f"sandbox: the container in {self.root} is not running")
        return int(first)


API_PORT = 8776   # cinder-api inside every container kind (RDO's default port)


@dataclass(frozen=True, slots=True)
class ContainerLayout:
    """Where one container controller lives on this machine: what every kind has."""

    root: Path
    name: str

    @property
    def instance(self) -> Instance:
        return Instance(self.root, self.name)

    @property
    def hosts_file(self) -> Path:
        """The inventory ``up`` writes for this controller."""
        return self.root / "hosts.yaml"

    @property
    def address(self) -> str:
        return self.instance.address

    @property
    def api_url(self) -> str:
        """cinder-api as this machine reaches it (through the veth)."""
        return f"http://{self.address}:{API_PORT}/"


@dataclass(frozen=True, slots=True)
class ContainerKind:
    """A kind of container controller: its tree, and how to make a copy one.

    ``configure(instance, tree)`` writes the per-instance files into the
    merged tree ``tree`` before it boots (the instance's address is known
    by then). ``after_boot(instance)`` runs once sshd answers.
    """

    name: str
    recipe: TreeRecipe
    configure: Callable[[Instance, Path], None]
    after_boot: Callable[[Instance], None] = field(default=lambda instance: None)


# --- the cached tree -------------------------------------------------------------

def require_tools() -> None:
    """Raises SandboxError naming what is missing for container controllers."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise SandboxError(f"sandbox: missing {', '.join(missing)}; install them with "
                           f"bash .ci/bootstrap (apt: systemd-container mmdebstrap zstd)")
    if os.geteuid() != 0:
        raise SandboxError("sandbox: container controllers need root (mounts, namespaces)")


def chroot(tree: Path, argv: list[str], hint: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``tree`` with chroot (shares this machine's network)."""
    return run_local(["chroot", str(tree), *argv], hint=hint)


def tree_ids(tree: Path, user: str) -> tuple[int, int]:
    """``user``'s uid and gid in ``tree`` (they differ from this machine's).

    Raises:
        SandboxError: ``tree`` has no such user.
    """
    for line in (tree / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise SandboxError(f"sandbox: no user {user!r} in {tree}")


def chown_in_tree(path: Path, tree: Path, user: str, group_of: str | None = None) -> None:
    """Give ``path`` to ``tree``'s ``user`` (and the group of ``group_of``, else ``user``'s)."""
    uid, _ = tree_ids(tree, user)
    _, gid = tree_ids(tree, group_of or user)
    os.chown(path, uid, gid)


@contextmanager
def system_mounts(tree: Path) -> Iterator[None]:
    """/proc and /dev inside ``tree`` while build steps run there."""
    mounted = []
    try:
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
            run_local(["mount", *args, str(tree / target)])
            mounted.append(tree / target)
        yield
    finally:
        for path in reversed(mounted):
            run_local(["umount", str(path)], check=False)


def run_in_tree(tree: Path, argv: list[str], user: str | None = None, hint: str = "") -> None:
    """Run ``argv`` inside ``tree`` (chroot), as ``user`` when one is named."""
    chroot(tree, as_user(user, argv) if user else argv, hint=hint)


def ensure_tree(recipe: TreeRecipe) -> Path:
    """The unpacked tree of ``recipe``: unpacked from the cache, or built once.

    Raises:
        SandboxError / CommandFailed: the build failed (nothing is cached then).
    """
    stamp = recipe.tree / ".devloop-complete"
    if stamp.exists():
        return recipe.tree
    with locked(CACHE_DIR / f"{recipe.name}.lock"):
        if stamp.exists():     # another run finished it while this one waited
            return recipe.tree
        if not recipe.archive.exists():
            _build_archive(recipe)
        output.step(recipe.name, f"unpack {recipe.archive.name}")
        if recipe.tree.exists():
            shutil.rmtree(recipe.tree)
        recipe.tree.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=recipe.tree.parent))
        run_local(["tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf",
                   str(recipe.archive), "-C", str(staging)])
        staging.chmod(0o755)
        os.rename(staging, recipe.tree)
        stamp.write_text(recipe.digest)
        _prune(recipe)
    return recipe.tree


def _prune(recipe: TreeRecipe) -> None:
    """Remove this kind's older archives and trees (a tree still mounted is kept)."""
    mounts = Path("/proc/self/mounts").read_text()
    digest = "?" * len(recipe.digest)
    for old in CACHE_DIR.glob(f"{recipe.name}-{digest}.tar.zst"):
        if old != recipe.archive:
            old.unlink(missing_ok=True)
    for old in (CACHE_DIR / "trees").glob(f"{recipe.name}-{digest}"):
        if old != recipe.tree and f"lowerdir={old}," not in mounts:
            shutil.rmtree(old, ignore_errors=True)


def _build_archive(recipe: TreeRecipe) -> None:
    output.step(recipe.name, f"build the {recipe.name} root filesystem (once, a few minutes)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".build-{recipe.name}-", dir=CACHE_DIR))
    try:
        tree = build / "tree"
        run_local(["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase",
                   "--dpkgopt=force-unsafe-io",
                   "--include=" + ",".join((*BASE_PACKAGES, *recipe.packages)),
                   recipe.suite, str(tree)],
                  hint="mmdebstrap needs Debian's archive (deb.debian.org) to be reachable")
        # the container gets a fresh machine id on each boot
        (tree / "etc/machine-id").write_text("")
        recipe.build(tree)
        shutil.rmtree(tree / "var/cache/apt/archives", ignore_errors=True)
        partial = recipe.archive.with_suffix(".partial")
        run_local(["tar", "--zstd", "--numeric-owner", "--xattrs", "-cpf", str(partial),
                   "-C", str(tree), "."])
        os.rename(partial, recipe.archive)
        output.detail(f"cached {recipe.archive} "
                      f"({recipe.archive.stat().st_size // (1 << 20)} MB)")
    finally:
        shutil.rmtree(build, ignore_errors=True)


# --- one instance ------------------------------------------------------------------

def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = run_local(["ip", "-4", "-o", "addr", "show"]).stdout
    used: set[ipaddress.IPv4Network] = set()
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            iface = ipaddress.IPv4Interface(words[words.index("inet") + 1])
            used.add(ipaddress.IPv4Network(f"{iface.ip}/30", strict=False))
    return used


def _allocate_address(instance: Instance) -> ipaddress.IPv4Network:
    """A free /30 of SUBNET, tried first at a place derived from the tag."""
    blocks = list(SUBNET.subnets(new_prefix=30))
    used = _used_subnets()
    start = int(instance.tag, 16) % len(blocks)
    for i in range(len(blocks)):
        block = blocks[(start + i) % len(blocks)]
        if block not in used and int(block.network_address) & 0xff != 0:
            return block
    raise SandboxError(f"sandbox: no free /30 left in {SUBNET}")


def _setup_network(instance: Instance) -> None:
    """A namespace with ``host0`` (.2/30) whose veth peer here has .1/30."""
    with locked(CACHE_DIR / "network.lock"):
        # an address of the range with no instance behind it fails at once
        # here instead of leaving the machine (an instance's /30 is more specific)
        run_local(["ip", "route", "replace", "unreachable", str(SUBNET)])
        block = _allocate_address(instance)
        host, inside = [str(a) for a in list(block.hosts())[:2]]
        if Path("/run/netns", instance.netns).exists():
            run_local(["ip", "netns", "del", instance.netns], check=False)
        run_local(["ip", "netns", "add", instance.netns])
        run_local(["ip", "link", "add", instance.veth, "type", "veth", "peer", "name",
                   "host0", "netns", instance.netns])
        run_local(["ip", "addr", "add", f"{host}/30", "dev", instance.veth])
        run_local(["ip", "link", "set", instance.veth, "up"])
        ns = ["ip", "-n", instance.netns]
        run_local([*ns, "link", "set", "lo", "up"])
        run_local([*ns, "addr", "add", f"{inside}/30", "dev", "host0"])
        run_local([*ns, "link", "set", "host0", "up"])
        run_local([*ns, "route", "add", "default", "via", host])
        instance.address_file.write_text(inside + "\n")


def _cgroup_dirs(instance: Instance) -> list[Path]:
    """The instance's cgroup in each hierarchy systemd uses (v2, or hybrid v1+v2)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():       # unified (v2 only)
        return [CGROUP_ROOT / instance.cgroup]
    return [CGROUP_ROOT / sub / instance.cgroup for sub in ("systemd", "unified")
            if (CGROUP_ROOT / sub).is_dir()]


def _remove_cgroup(path: Path) -> None:
    """rmdir a cgroup, its children first (cgroup dirs hold no files to delete)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()),
                        key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def _mount_overlay(instance: Instance, tree: Path) -> None:
    for path in (instance.upper, instance.work, instance.merged):
        path.mkdir(parents=True, exist_ok=True)
    run_local(["mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={tree},upperdir={instance.upper},workdir={instance.work}",
               str(instance.merged)])
    instance.merged.chmod(0o755)


def _is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def nspawn_argv(instance: Instance) -> list[str]:
    """``systemd-nspawn --boot …`` for ``instance`` (its namespace, no machined)."""
    return ["systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit",
            f"--directory={instance.merged}", f"--machine={instance.machine}",
            f"--network-namespace-path=/run/netns/{instance.netns}",
            "--console=read-only", "--resolv-conf=off", "--timezone=off"]


def _launch(instance: Instance) -> int:
    cgroups = _cgroup_dirs(instance)
    for path in cgroups:
        path.mkdir(exist_ok=True)

    def enter_cgroups() -> None:     # in the child, before exec: nspawn starts there
        for path in cgroups:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    with open(instance.console_log, "ab") as log:
        proc = subprocess.Popen(nspawn_argv(instance), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=enter_cgroups)
    instance.pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def _write_ssh_access(instance: Instance, tree: Path) -> None:
    """A host key and an authorized key of this instance's own, and sshd on port 22."""
    instance.client_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_key(instance.identity_file, f"cinder-devloop {instance.name}")
    ssh = tree / "root/.ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(Path(f"{instance.identity_file}.pub").read_text())
    (ssh / "authorized_keys").chmod(0o600)
    host_key = tree / "etc/ssh/ssh_host_ed25519_key"
    for old in tree.glob("etc/ssh/ssh_host_*_key*"):
        old.unlink()
    run_local(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", instance.machine,
               "-f", str(host_key)])
    (tree / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (tree / "etc/ssh/sshd_config.d/devloop.conf").write_text(
        "# written by cinder-devloop for this instance\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n")
    write_known_hosts(instance.known_hosts, known_hosts_name(instance.address, 22),
                      Path(f"{host_key}.pub").read_text())


def boot(kind: ContainerKind, instance: Instance, timeout: float = 60.0) -> None:
    """Boot a fresh copy of ``kind``'s tree as ``instance`` and wait for its sshd.

    Raises:
        SandboxError: a part could not be set up, or sshd did not answer.
    """
    require_tools()
    if instance.pid():
        return
    tree = ensure_tree(kind.recipe)
    down(instance)                      # leftovers of a run that did not end cleanly
    instance.root.mkdir(parents=True, exist_ok=True)
    instance.root.chmod(0o755)
    shutil.rmtree(instance.root / "overlay", ignore_errors=True)
    _setup_network(instance)
    _mount_overlay(instance, tree)
    _write_ssh_access(instance, instance.merged)
    # the tree was built on this machine and carries its host name otherwise
    (instance.merged / "etc/hostname").write_text(f"{instance.name}\n")
    # minbase has no /etc/hosts and the container no DNS: without it, "localhost"
    # does not resolve (RabbitMQ's node rabbit@localhost waits on it for ever)
    (instance.merged / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{instance.address}\t{instance.name}\n")
    kind.configure(instance, instance.merged)
    pid = _launch(instance)
    output.detail(f"systemd-nspawn pid {pid}, {instance.address} in netns {instance.netns}")
    try:
        wait(lambda: port_open(22, instance.address) or not alive(pid), timeout,
             f"sshd of {instance.name} at {instance.address}:22")
        if not alive(pid):
            raise SandboxError(f"sandbox: systemd-nspawn exited; its console log "
                               f"({instance.console_log}) ends:\n{_log_tail(instance)}")
        kind.after_boot(instance)
    except BaseException:
        down(instance)
        raise


def _log_tail(instance: Instance, lines: int = 15) -> str:
    try:
        return "\n".join(instance.console_log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console log)"


def down(instance: Instance, grace: float = 30.0) -> None:
    """Power the container off (TERM to nspawn) and remove what it held, by name and PID.

    Safe to call on an instance that is not running or half set up.
    """
    pid = instance.pid()
    if pid:
        end_process(pid, grace)
    if _is_mounted(instance.merged):
        proc = run_local(["umount", str(instance.merged)], check=False)
        if proc.returncode != 0:
            run_local(["umount", "--lazy", str(instance.merged)], check=False)
    for path in _cgroup_dirs(instance):
        _remove_cgroup(path)
    if Path("/run/netns", instance.netns).exists():
        run_local(["ip", "netns", "del", instance.netns], check=False)
    run_local(["ip", "link", "del", instance.veth], check=False)
    instance.pidfile.unlink(missing_ok=True)


def ssh_argv(instance: Instance, command: list[str]) -> list[str]:
    """``ssh root@ADDRESS …`` with the instance's key and pinned host key."""
    import shlex
    return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={instance.known_hosts}", "-i",
            str(instance.identity_file), f"root@{instance.address}", shlex.join(command)]


# --- one controller, whichever kind ---------------------------------------------------

def up_controller(layout: ContainerLayout, kind: ContainerKind, title: str,
                  reach: Callable[[], tuple[str, str]],
                  check: Callable[[], object] = lambda: None) -> None:
    """Boot ``layout``'s controller of ``kind`` (building its tree once) unless it runs.

    ``check()`` runs first, after the step line (one clear message before
    anything else); once it is up, ``reach()`` gives what follows
    ``ssh root@ADDRESS;`` on the "up in" line and a next-step hint.

    Raises:
        SandboxError / CommandFailed: a part could not be built or started.
    """
    output.step(layout.name, f"{title} in {layout.root}")
    check()
    started = time.monotonic()
    instance = layout.instance
    if instance.pid():
        output.detail(f"already running at {layout.address}")
        return
    boot(kind, instance)
    api, hint = reach()
    output.detail(f"up in {time.monotonic() - started:.1f} s: ssh root@{layout.address}; {api}")
    output.detail(hint)


def down_controller(layout: ContainerLayout, kind: str, purge: bool = False) -> None:
    """Power ``layout``'s controller (of ``kind``) off and remove its mount, cgroup and namespace.

    ``purge`` also removes its directory (keys, overlay, hosts.yaml).
    """
    output.step(layout.name, f"stop {kind} controller")
    down(layout.instance)
    if purge and layout.root.exists():
        shutil.rmtree(layout.root)
        output.detail(f"removed {layout.root}")


#: a line of ``status_lines`` beyond the API's: label, "does it answer?", "where?"
#: (both called only while the container runs: they may read its address)
Probe = tuple[str, Callable[[], bool], Callable[[], str]]


def status_lines(layout: ContainerLayout, units: tuple[str, ...],
                 probes: tuple[Probe, ...] = ()) -> list[str]:
    """One line per part: the container, each of ``units`` and sshd, the API, each probe."""
    instance = layout.instance
    pid = instance.pid()
    if not pid:
        return ["container    stopped"]
    lines = [f"container    pid {pid}, {layout.address} (netns {instance.netns})"]
    for unit in (*units, "ssh.service"):
        proc = subprocess.run(instance.nsenter(["systemctl", "is-active", unit]),
                              capture_output=True, text=True)
        lines.append(f"{unit:<28} {proc.stdout.strip() or proc.stderr.strip()}")
    api: Probe = ("api", lambda: api_answers(layout.api_url), lambda: layout.api_url)
    for label, answers, where in (api, *probes):
        lines.append(f"{label:<12} {'answering' if answers() else 'not answering'} "
                     f"at {where()}")
    return lines
