"""Lay the source tree over the controller's cinder package with rsync.

rsync runs where the source tree lives: on this workstation, or, with
``source_host: devbox`` in the inventory, on the devbox over a Fabric
connection to it (``ssh devbox "rsync ... controller:..."``). Host keys are
pinned on both hops from the inventory: the devbox's by the Fabric
connection, the controller's by a known_hosts file uploaded to the devbox
for this one rsync, holding the workstation's pinned line(s) for it. The
devbox logs in to the controller with the workstation's forwarded ssh-agent.

The tree is an overlay on an installed package, so the sync never deletes
(a delete would remove Cinder itself). A deploy sends exactly the files its
record lists (``entries``: ``--files-from``), each of which the controller has
already kept in the deploy's backup, proven (deploy/remote/begin_deploy.py),
so nothing is lost. rsync writes each file to a temporary name and renames
it into place, so an interrupted transfer leaves every file wholly old or new.
"""
from __future__ import annotations

import base64
import io
import os
import re
import secrets
import shlex
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import paramiko
from fabric import Connection, Result

from deploy.base import output
from deploy.base.errors import ConnectError, HostKeyUnknown, SyncError
from deploy.base.inventory import Controller, Host, Inventory
from deploy.transport.channel_relay import relay
from deploy.transport.connection import (
    SshHost,
    connection_lost,
    gateway_chain,
    keyscan_hint,
    known_hosts_name,
    shared_connection,
    ssh_argv,
    translate_ssh_errors,
)
from deploy.transport.tree import DEVBOX_FILTERS, read_tree, rsync_excludes

# rsync --out-format: a marker keeps file lines apart from ssh/rsync chatter.
_MARK = "devloop:"


@dataclass(frozen=True, slots=True)
class Change:
    """One file rsync created or replaced (``kind`` is "new" or "changed")."""

    kind: str
    path: str


def build_rsync_argv(source: Path, controller: Controller, dest_dir: str, *,
                     excludes: Sequence[str], owner: str | None = None,
                     dry_run: bool = False, checksum: bool = False,
                     ssh: Sequence[str] | None = None, files_from: bool = False,
                     filters: Sequence[str] = ()) -> list[str]:
    """Build the rsync command line for one controller.

    Roughly::

        rsync --recursive --links --times --perms --chmod=D755,F644
              --chown=root:root --itemize-changes --out-format='devloop:%i %n'
              --exclude=.git/ ... [--dry-run] [--checksum]
              -e 'ssh -F /dev/null -o BatchMode=yes ...' SOURCE/ user@host:DEST/

    The modes are normalised to a package's (755 directories, 644 files)
    and ``owner`` (``user:group`` of the installed cinder) replaces the
    workstation's uid. No ``--delete``, ever. With ``files_from``, rsync
    sends exactly the entries named on its stdin, NUL-separated
    (``--files-from=- --from0`` instead of ``--recursive``): the source
    tree's rules chose them (:mod:`deploy.transport.tree`), or a deploy's
    record lists them. No ``--backup``: the files a deploy replaces are
    kept, proven, before rsync runs (deploy/remote/begin_deploy.py).
    """
    # --modify-window=-1: compare times to the nanosecond, so an edit of the
    # same size saved within the second of the last deploy is still sent
    walk = ["--files-from=-", "--from0"] if files_from else ["--recursive"]
    argv = ["rsync", *walk, "--links", "--times", "--modify-window=-1", "--perms",
            "--chmod=D755,F644", "--itemize-changes", f"--out-format={_MARK}%i %n"]
    if owner:
        argv.append(f"--chown={owner}")
    argv += [f"--exclude={pattern}" for pattern in excludes]
    argv += list(filters)
    if dry_run:
        argv.append("--dry-run")
    if checksum:
        argv.append("--checksum")
    argv += ["-e", shlex.join(ssh if ssh is not None else ssh_argv(controller))]
    argv += [f"{source}/", f"{controller.user}@{controller.address}:{dest_dir.rstrip('/')}/"]
    return argv


# rsync prints a name's control characters (and bytes not valid in its
# locale) as a backslash, a hash and three octal digits; a backslash that
# would read as such is itself escaped (\#134)
_ESCAPED = re.compile(rb"\\#([0-7]{3})")


def parse_changes(stdout: str | bytes) -> list[Change]:
    """Read rsync's itemized output into the files created or replaced.

    ``>f+++++++++ x.py`` is a new file, ``>f.st...... x.py`` a changed one;
    a symlink (``cL+++++++++ y.py`` new, ``cLc.t...... y.py`` pointed
    elsewhere) is a change too, so its record lets a rollback remove or
    restore it; directories and attribute-only lines (``.d..t......``) are
    not changes. A name comes back byte for byte from rsync's escapes (bytes
    that are not UTF-8 as Python's surrogateescape holds them).
    """
    if isinstance(stdout, str):
        stdout = stdout.encode("utf-8", "surrogateescape")
    changes = []
    mark = _MARK.encode()
    for line in stdout.split(b"\n"):
        if not line.startswith(mark):
            continue
        item, _, name = line[len(mark):].partition(b" ")
        if (len(item) < 2 or item[1:2] not in (b"f", b"L")
                or item[0:1] not in (b"<", b">", b"c", b"h")):
            continue
        kind = "new" if b"+++++++" in item else "changed"
        raw = _ESCAPED.sub(lambda found: bytes([int(found.group(1), 8)]), name)
        changes.append(Change(kind, os.fsdecode(raw)))
    return changes


def sync_tree(inventory: Inventory, controller: Controller, dest_dir: str, *,
              owner: str | None = None, dry_run: bool = False, checksum: bool = False,
              connection: Connection | None = None, entries: Sequence[str] | None = None,
              source: Path | None = None) -> list[Change]:
    """Run rsync from the inventory's source to ``dest_dir`` on ``controller``.

    With ``source_host`` set, rsync runs on that host (the devbox) and
    pushes from there, with the tree's rules as its own filters; otherwise
    it runs here and sends exactly the entries (files and links, relative
    to the source) the tree's rules keep (:mod:`deploy.transport.tree`),
    or ``entries`` if given (on a devbox too: only those are sent). With
    ``source`` (a private copy of what is sent, made by
    :func:`deploy.transport.tree.stage`), it sends ``entries`` of that
    directory instead, or the whole of it. Returns the files it created or
    replaced (or would, with ``dry_run``).

    Raises:
        SyncError: rsync failed; the message has its exit code and output.
        SourceTreeError: the source tree cannot be read.
        ConnectError / HostKeyUnknown / HostKeyMismatch: the devbox could not
            be reached, or a host key for the devbox hop is not pinned.

    With ``connection`` (the task's open, verified connection to the
    controller), rsync runs over a new channel of it instead of a new ssh.
    """
    if inventory.source_host is not None and source is None:
        return _sync_on(inventory.source_host, inventory, controller, dest_dir, owner=owner,
                        files=entries, dry_run=dry_run, checksum=checksum)
    if source is None and entries is None:
        entries = read_tree(inventory.source, inventory.excludes).entries()
    job = _Job(source or inventory.source, entries, owner, dry_run, checksum)
    transport = connection.client.get_transport() if connection is not None else None
    changes: list[Change] = []
    if transport is not None and transport.is_active():
        with relay(transport) as rsh:
            proc = _run_rsync(job, controller, dest_dir, ssh=rsh)
        if proc.returncode != 0:
            assert connection is not None
            lost = connection_lost(controller, connection, "running rsync")
            if lost is not None:        # not rsync: the controller went away
                raise lost
        if proc.returncode != _STREAM_BROKEN:
            return _changes_or_raise(proc, controller, dest_dir)
        # NOTE: rarely (seen once in ~100 parallel deploys) the relayed stream
        # breaks; rsync is safe to run again, and what the first run already
        # sent is kept in the result (its files were backed up before it ran).
        output.warn(f"{controller.name}: rsync over the open connection broke; "
                    f"running it again over its own ssh")
        changes = parse_changes(proc.stdout)
    proc = _run_rsync(job, controller, dest_dir, ssh=None)
    return changes + [c for c in _changes_or_raise(proc, controller, dest_dir)
                      if c not in changes]


# rsync's exit code for "connection unexpectedly closed"
_STREAM_BROKEN = 12


@dataclass(frozen=True, slots=True)
class _Job:
    """One local rsync: from where, which entries (None: the whole directory), how."""

    root: Path
    entries: Sequence[str] | None
    owner: str | None
    dry_run: bool
    checksum: bool


def _run_rsync(job: _Job, controller: Controller, dest_dir: str, *,
               ssh: Sequence[str] | None) -> subprocess.CompletedProcess[bytes]:
    argv = build_rsync_argv(job.root, controller, dest_dir, excludes=(), owner=job.owner,
                            dry_run=job.dry_run, checksum=job.checksum, ssh=ssh,
                            files_from=job.entries is not None)
    listing = b"".join(os.fsencode(rel) + b"\0" for rel in job.entries or ())
    output.command("local", shlex.join(argv))
    try:
        return subprocess.run(argv, capture_output=True, input=listing)
    except FileNotFoundError:
        raise SyncError("rsync is not installed on this machine "
                        "(apt-get install rsync)") from None


def _changes_or_raise(proc: subprocess.CompletedProcess[bytes], controller: Controller,
                      dest_dir: str) -> list[Change]:
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        error = SyncError(f"{controller.name}: rsync to {controller.label}:{dest_dir} failed "
                          f"with exit code {proc.returncode}:\n  {_detail(stderr)}"
                          + _hint(controller, proc.returncode, stderr))
        error.no_space = _no_space(stderr)
        raise error
    return parse_changes(proc.stdout)


def _no_space(stderr: str) -> bool:
    """Whether rsync's output says the disk (or the quota) was full, on any of its lines."""
    return "No space left on device" in stderr or "Disk quota exceeded" in stderr


def _detail(stderr: str) -> str:
    lines = [line for line in stderr.replace("\r\n", "\n").strip().splitlines() if line.strip()]
    return "\n  ".join(lines[-6:]) or "(no output)"


# ssh's "Permission denied (publickey,password)." and not a file's "(13)"
_SSH_REFUSED = re.compile(r"Permission denied \([a-z]")


def _hint(controller: Controller, rc: int, stderr: str, on: Host | None = None) -> str:
    """What to do next, for the failures ssh reports.

    ssh exits 255 on them, but rsync may notice the closed pipe first and exit
    12 (protocol data stream) instead, so ssh's own words decide, not the code.
    """
    if rc not in (255, 12):
        return ""
    side = f" on the {on.name} hop" if on is not None else ""
    if "Host key verification failed" in stderr or "IDENTIFICATION HAS CHANGED" in stderr:
        return (f"\n  the host key{side} is not the one pinned in {controller.known_hosts} "
                f"(or a gateway's); refused, nothing was sent")
    if _SSH_REFUSED.search(stderr) and on is not None:
        key = controller.identity_file or "the controller's key"
        return (f"\n  {on.name} logs in to {controller.name} with your forwarded ssh-agent: "
                f"load the key with ssh-add {key}")
    return ""


# --- rsync on a devbox ---------------------------------------------------------

# Runs on the devbox: make a private work directory, write the pinned
# known_hosts (and public keys) into it, run rsync, remove the directory.
# Data travels as positional arguments, never spliced into the script.
_DEVBOX_SCRIPT = """\
d=$1; n=$2; shift 2
umask 077
mkdir -m 700 -- "$d" || exit 90
trap 'rm -rf -- "$d"' HUP INT TERM
while [ "$n" -gt 0 ]; do
  printf '%s' "$2" > "$d/$1" || { rm -rf -- "$d"; exit 90; }
  shift 2; n=$((n - 1))
done
"$@"; rc=$?
rm -rf -- "$d"
exit $rc
"""
DEVBOX_WORKDIR_FAILED = 90


@dataclass(frozen=True, slots=True)
class DevboxSync:
    """The command that runs rsync on a devbox, and what it uploads first."""

    workdir: str
    files: Mapping[str, str]          # file name in workdir -> content
    rsync_argv: list[str]

    def command(self) -> list[str]:
        """``sh -c SCRIPT devloop-sync WORKDIR N NAME CONTENT ... rsync ...``."""
        argv = ["sh", "-c", _DEVBOX_SCRIPT, "devloop-sync", self.workdir, str(len(self.files))]
        for name, content in self.files.items():
            argv += [name, content]
        return argv + self.rsync_argv


def devbox_hops(devbox: Host, controller: Controller) -> list[SshHost]:
    """The hosts the devbox's ssh checks the keys of: gateways after the devbox, then
    the controller."""
    chain = gateway_chain(controller)
    names = [g.name for g in chain]
    if devbox.name in names:
        chain = chain[names.index(devbox.name) + 1:]
    return [*chain, controller]


def pinned_lines(host: SshHost) -> list[str]:
    """The known_hosts lines pinning ``host``, read from its inventory known_hosts.

    Hashed entries are found too; each line is written out with the plain
    ``[addr]:port`` name, for a file that holds nothing else.

    Raises:
        HostKeyUnknown: the file is missing or has no key for ``host``.
    """
    name = known_hosts_name(host)
    try:
        keys = paramiko.HostKeys(str(host.known_hosts))
    except FileNotFoundError:
        keys = paramiko.HostKeys()
    entry = keys.lookup(name)
    if not entry:
        raise HostKeyUnknown(
            f"{host.name} ({host.label}): host key is not pinned in {host.known_hosts}; "
            f"refusing to connect. Verify its key, then add it: {keyscan_hint(host)}")
    return [f"{name} {key_type} {entry[key_type].get_base64()}" for key_type in entry.keys()]


def public_key_of(host: SshHost) -> str | None:
    """The OpenSSH public key line of ``host``'s identity file, if it can be known.

    From ``<identity_file>.pub`` or, failing that, the private key itself
    when it is not encrypted; None without an identity file.
    """
    if host.identity_file is None:
        return None
    pub = Path(f"{host.identity_file}.pub")
    try:
        parts = pub.read_text().split()
        if len(parts) >= 2:
            return f"{parts[0]} {parts[1]}"
    except OSError:
        pass
    try:
        key = paramiko.PKey.from_path(str(host.identity_file))
    except (OSError, paramiko.SSHException, ValueError):
        return None
    return f"{key.get_name()} {key.get_base64()}"


def _agent_blobs() -> set[str] | None:
    """Base64 key blobs in this machine's ssh-agent; None without an agent."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return None
    agent = paramiko.Agent()
    try:
        return {base64.b64encode(key.asbytes()).decode() for key in agent.get_keys()}
    finally:
        agent.close()


def check_agent_holds(devbox: Host, hops: Sequence[SshHost],
                      keys: Mapping[str, str]) -> None:
    """Fail early when the devbox would need a key the forwarded agent lacks.

    Raises:
        ConnectError: no agent, or the agent lacks a hop's key.
    """
    if not keys:
        return
    blobs = _agent_blobs()
    for hop in hops:
        pub = keys.get(hop.name)
        if pub is None:
            continue
        if blobs is None or pub.split()[1] not in blobs:
            state = ("no ssh-agent is running here (SSH_AUTH_SOCK is not set)" if blobs is None
                     else f"your ssh-agent does not hold {hop.identity_file}")
            start = 'eval "$(ssh-agent)" && ' if blobs is None else ""
            raise ConnectError(
                f"{hop.name} ({hop.label}): {devbox.name} logs in to it with your forwarded "
                f"ssh-agent, but {state}; run: {start}ssh-add {hop.identity_file}")


def build_devbox_sync(inventory: Inventory, controller: Controller, dest_dir: str, *,
                      workdir: str | None = None, owner: str | None = None,
                      files_from: bool = False, dry_run: bool = False,
                      checksum: bool = False,
                      public_keys: Mapping[str, str] | None = None) -> DevboxSync:
    """Build the command that runs rsync on ``inventory.source_host``.

    The rsync is the same as from the workstation (:func:`build_rsync_argv`)
    but its ssh reads a known_hosts uploaded to ``workdir`` on the devbox,
    holding exactly the inventory's pinned line(s) for the controller (and
    any gateway after the devbox), and offers each hop's public key (so the
    forwarded agent signs with that key only): roughly ::

        sh -c '<mkdir WORKDIR, write files, run, rm -rf WORKDIR>' devloop-sync WORKDIR 2
           known_hosts '[10.0.0.5]:22 ssh-ed25519 AAAA...' id-0.pub 'ssh-ed25519 AAAA...'
           rsync ... -e 'ssh ... -o UserKnownHostsFile=WORKDIR/known_hosts ...
           -i WORKDIR/id-0.pub -o IdentitiesOnly=yes' /src/on/devbox/ root@ctl:DEST/

    ``public_keys`` maps a hop's name to its public key line (default:
    :func:`public_key_of` each hop).

    Raises:
        HostKeyUnknown: a hop's key is not pinned in its known_hosts.
    """
    devbox = inventory.source_host
    if devbox is None:
        raise ValueError("the inventory has no source_host")
    workdir = workdir or f"/tmp/devloop-sync-{secrets.token_hex(8)}"
    hops = devbox_hops(devbox, controller)
    known = "".join(f"{line}\n" for hop in hops for line in pinned_lines(hop))
    if public_keys is None:
        public_keys = {hop.name: pub for hop in hops if (pub := public_key_of(hop)) is not None}
    files = {"known_hosts": known}
    identities: dict[str, str | None] = {}
    for index, hop in enumerate(hops):
        if hop.name in public_keys:
            files[f"id-{index}.pub"] = public_keys[hop.name] + "\n"
            identities[hop.name] = f"{workdir}/id-{index}.pub"
    ssh = ssh_argv(controller, known_hosts=f"{workdir}/known_hosts", identities=identities,
                   start_after=devbox.name)
    # rsync lists the tree there: the rules as its own filters
    rsync = build_rsync_argv(inventory.source, controller, dest_dir,
                             excludes=rsync_excludes(inventory.excludes), owner=owner,
                             files_from=files_from, dry_run=dry_run, checksum=checksum, ssh=ssh,
                             filters=DEVBOX_FILTERS)
    return DevboxSync(workdir, files, rsync)


# Fabric gives every session on a forwarding connection a new paramiko
# AgentRequestHandler and drops the previous one; the dropped handler closes
# its agent proxies. A session opened on the devbox while an rsync there is
# still asking the agent (another controller's git or rsync, in its own
# thread) cuts that rsync's ssh off from the agent, and it waits forever.
# So every session on the source host's forwarding connection runs alone.
_agent_locks: dict[str, threading.Lock] = {}
_agent_locks_guard = threading.Lock()


def _agent_lock(host: Host) -> threading.Lock:
    with _agent_locks_guard:
        return _agent_locks.setdefault(host.label, threading.Lock())


def source_connection(host: Host) -> Connection:
    """The task run's connection to the source host, forwarding the agent when there is one.

    Run commands on it with :func:`run_on_source`, which keeps them one at a time.

    Raises:
        ConnectError / HostKeyUnknown / HostKeyMismatch: see ``open_connection``.
    """
    return shared_connection(host, forward_agent=bool(os.environ.get("SSH_AUTH_SOCK")))


def run_on_source(host: Host, command: str, stdin: str | None = None) -> Result:
    """Run ``command`` on the source host, alone on its connection (see above).

    ``stdin``: what the command reads on its stdin (else nothing).

    Raises:
        ConnectError / HostKeyUnknown / HostKeyMismatch: see ``open_connection``.
    """
    stream = io.StringIO(stdin) if stdin is not None else False
    with translate_ssh_errors(host), _agent_lock(host):
        return source_connection(host).run(command, hide=True, warn=True, in_stream=stream)


def _sync_on(devbox: Host, inventory: Inventory, controller: Controller, dest_dir: str, *,
             owner: str | None, files: Sequence[str] | None, dry_run: bool,
             checksum: bool) -> list[Change]:
    hops = devbox_hops(devbox, controller)
    keys = {hop.name: pub for hop in hops if (pub := public_key_of(hop)) is not None}
    plan = build_devbox_sync(inventory, controller, dest_dir, owner=owner,
                             files_from=files is not None, dry_run=dry_run, checksum=checksum,
                             public_keys=keys)
    check_agent_holds(devbox, hops, keys)
    output.command(devbox.name, shlex.join(plan.rsync_argv))
    # the list of files reaches rsync on the devbox through the script's stdin
    result = run_on_source(devbox, shlex.join(plan.command()),
                           None if files is None else "".join(f"{rel}\0" for rel in files))
    where = (f"{controller.name}: rsync on {devbox.name} ({devbox.label}) to "
             f"{controller.name} ({controller.label}):{dest_dir}")
    if result.exited == DEVBOX_WORKDIR_FAILED:
        raise SyncError(f"{where} could not start: cannot create {plan.workdir} on "
                        f"{devbox.name}:\n  {_detail(result.stderr)}")
    if result.exited == 127 and "rsync" in result.stderr:
        raise SyncError(f"{where} could not start: rsync is not installed on {devbox.name} "
                        f"(apt-get install rsync there)")
    if result.exited != 0:
        error = SyncError(f"{where} failed with exit code {result.exited}:\n  "
                          f"{_detail(result.stderr)}"
                          + _hint(controller, result.exited, result.stderr, on=devbox))
        error.no_space = _no_space(result.stderr)
        raise error
    return parse_changes(result.stdout)
