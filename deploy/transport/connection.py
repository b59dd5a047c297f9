"""Open SSH connections that refuse unknown and changed host keys, on every hop.

Fabric's ``Connection`` accepts any host key by default (it installs
paramiko's ``AutoAddPolicy`` and loads no known_hosts), so every connection
here, the gateway connections included, loads its own host's known_hosts
from the inventory and sets ``RejectPolicy``. The same facts feed the
``ssh`` command rsync spawns (:func:`ssh_argv`), so both paths check the
same pinned keys; a gateway becomes a ``ProxyCommand`` built from the
gateway's own ssh argv, so each hop keeps its own known_hosts and key.
paramiko's exceptions are translated into ``ConnectError`` and its two
host-key subclasses at this boundary, naming the hop that failed.

Within one task run, :func:`shared_connection` hands out one open
connection per host (the devbox, say), so the steps that need it reuse a
single SSH handshake. Each open connection is watched (:mod:`deploy.transport.liveness`):
one whose host stops answering is closed within about 1.5 x the host's
``connect_timeout``, and :func:`connection_lost` names the loss.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import shlex
import socket
import threading
from pathlib import Path
from typing import Iterator, Mapping, NoReturn

import paramiko
from fabric import Config, Connection

from deploy.base.errors import ConnectError, HostKeyMismatch, HostKeyUnknown
from deploy.base.inventory import Controller, Host
from deploy.transport import liveness

# paramiko logs a traceback of its own for banner errors; our message suffices.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

#: Anything one can SSH to: a controller, a devbox, a gateway.
SshHost = Host  # controllers are hosts too


def known_hosts_name(host: SshHost) -> str:
    """The name a known_hosts line uses for ``host``: ``addr`` or ``[addr]:port``."""
    if host.port == 22:
        return host.address
    return f"[{host.address}]:{host.port}"


# kept for callers of the old private name
_known_hosts_name = known_hosts_name


def gateway_chain(host: SshHost) -> list[Host]:
    """The gateways in front of ``host``, outermost (first hop) first."""
    chain: list[Host] = []
    hop = host.gateway
    while hop is not None:
        chain.insert(0, hop)
        hop = hop.gateway
    return chain


def _where(host: SshHost) -> str:
    return f"{host.name} ({host.label})"


def _role(host: SshHost) -> str:
    return "controller" if isinstance(host, Controller) else "host"


@contextlib.contextmanager
def translate_ssh_errors(controller: SshHost, via: Host | None = None) -> Iterator[None]:
    """Turn paramiko/socket errors raised inside into ``ConnectError``s.

    ``controller`` is the host being reached (a ``Host`` works as well);
    ``via`` the gateway it is reached through, named when the gateway
    cannot open the tunnel to it.
    """
    host = controller
    where = _where(host)
    role = _role(host)
    try:
        yield
    except _HostKeyRevoked as exc:
        raise HostKeyMismatch(
            f"{where}: host key {exc.key.get_name()} {exc.key.get_fingerprint().hex()} is "
            f"marked @revoked in {host.known_hosts}; refusing to connect, nothing was "
            f"sent") from None
    except _HostKeyNotPinned as exc:
        raise HostKeyUnknown(
            f"{where}: host key is not pinned in {host.known_hosts}{exc.notes}; refusing to "
            f"connect. Verify the {role}'s key, then add it: {keyscan_hint(host)}") from None
    except paramiko.BadHostKeyException as exc:
        raise HostKeyMismatch(
            f"{where}: host key does not match the one pinned in {host.known_hosts} "
            f"(got {exc.key.get_name()} {exc.key.get_fingerprint().hex()}); refusing to connect, "
            f"nothing was sent. If the {role} was reinstalled, verify its new key, then "
            f"replace the line with: ssh-keygen -R '{known_hosts_name(host)}' "
            f"-f {host.known_hosts}") from None
    except paramiko.PasswordRequiredException:
        key = host.identity_file or "a key of yours"
        raise ConnectError(
            f"{where}: {key} is encrypted (passphrase-protected) and the tool never "
            f"prompts; load it into ssh-agent (ssh-add {host.identity_file or 'KEY'}) and "
            f"remove identity_file from the inventory: the agent's keys are then "
            f"used") from None
    except paramiko.AuthenticationException:
        key = host.identity_file or "your default SSH keys"
        raise ConnectError(
            f"{where}: login refused for user {host.user!r} with {key}; "
            f"add its public key to the {role}'s authorized_keys") from None
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes and codes <= {errno.ECONNRESET, errno.ECONNABORTED}:
            raise _reset(where) from None
        if codes and codes <= {errno.EHOSTUNREACH, errno.ENETUNREACH}:
            raise ConnectError(
                f"{where}: no route to {host.address}; is the host up, and reachable from "
                f"here without a gateway?") from None
        raise ConnectError(
            f"{where}: connection refused; is sshd running there and are "
            f"address/port in the inventory right?") from None
    except paramiko.ChannelException as exc:
        # the gateway accepted us but could not open a TCP connection onwards
        gw = f"gateway {_where(via)}" if via is not None else "the gateway"
        raise ConnectError(
            f"{where}: {gw} could not connect to {host.address}:{host.port} "
            f"({exc.text or 'channel open failed'}); is the address right and sshd running "
            f"there, as seen from the gateway?") from None
    except socket.gaierror as exc:
        raise ConnectError(f"{where}: cannot resolve address {host.address!r}: "
                           f"{exc.strerror}") from None
    except (socket.timeout, TimeoutError):
        raise ConnectError(f"{where}: no answer within {host.connect_timeout:g} s; "
                           f"is the host up and reachable?") from None
    except paramiko.SSHException as exc:
        text = str(exc)
        if "reset by peer" in text:
            raise _reset(where) from None
        # (the handshake that times out leaves the login to fail: "No existing session")
        if "protocol banner" in text or text == "No existing session":
            raise ConnectError(f"{where}: no SSH answer within {host.connect_timeout:g} s; "
                               f"is the host up, and is it sshd that listens on port "
                               f"{host.port}?") from None
        if "not found in known_hosts" in text:
            raise HostKeyUnknown(
                f"{where}: host key is not pinned in {host.known_hosts}; refusing to "
                f"connect. Verify the {role}'s key, then add it: {keyscan_hint(host)}") from None
        raise ConnectError(f"{where}: SSH failed: {text or type(exc).__name__}") from None
    except EOFError:
        # (paramiko cannot tell a reset from a close at that point)
        raise ConnectError(f"{where}: the connection was closed or reset before SSH could log "
                           f"in; is sshd running there, and does a firewall let SSH "
                           f"through?") from None
    except ConnectionResetError:
        raise _reset(where) from None
    except OSError as exc:
        raise ConnectError(f"{where}: cannot connect: {exc.strerror or exc}") from None


class _HostKeyRevoked(paramiko.SSHException):
    """The host presented a key its known_hosts marks ``@revoked``."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("revoked host key")
        self.key = key


class _HostKeyNotPinned(paramiko.SSHException):
    """The host's key is not pinned; ``notes`` says which lines could not be used."""

    def __init__(self, notes: str) -> None:
        super().__init__("not found in known_hosts")
        self.notes = notes


class _PinnedOnly(paramiko.RejectPolicy):
    """paramiko's ``RejectPolicy``, saying why a key is refused: revoked, or not pinned."""

    def __init__(self, revoked: list[paramiko.PKey], notes: str) -> None:
        self.revoked = revoked
        self.notes = notes

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> NoReturn:
        if key in self.revoked:
            raise _HostKeyRevoked(key)
        raise _HostKeyNotPinned(self.notes)


def pin_host_keys(client: paramiko.SSHClient, known_hosts: Path) -> None:
    """Load ``known_hosts`` into ``client`` and refuse every key it does not pin.

    Read as OpenSSH reads it, line by line, and never stopped by one line:
    a line that cannot be read (bad base64, an unknown key type, bytes that
    are not text) is skipped, as are ``@cert-authority`` lines (host
    certificates are not supported); a key on a ``@revoked`` line is never
    accepted, whatever other line pins it. If the host turns out not to be
    pinned, the error names the lines that were skipped.

    Raises:
        FileNotFoundError / OSError: the file cannot be read.
    """
    revoked: list[paramiko.PKey] = []
    pinned: list[paramiko.hostkeys.HostKeyEntry] = []
    skipped: list[str] = []
    with open(known_hosts, "rb") as handle:
        data = handle.read()
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
            if marker != "@revoked":
                skipped.append(f"line {number} ({_shown(marker)}: not supported)")
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except Exception:    # paramiko's InvalidHostKey, UnknownKeyType, bad key data
            entry = None
        if entry is None or entry.key is None:
            skipped.append(f"line {number} (not a readable host key)")
        elif marker == "@revoked":
            revoked.append(entry.key)
        else:
            pinned.append(entry)
    keys = client.get_host_keys()
    for entry in pinned:
        if entry.key in revoked:
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    notes = f" (it skipped {', '.join(skipped[:3])}{more})" if skipped else ""
    client.set_missing_host_key_policy(_PinnedOnly(revoked, notes))


def _shown(text: str, width: int = 40) -> str:
    """``text`` from a file, fit for one line of a message."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _reset(where: str) -> ConnectError:
    return ConnectError(f"{where}: the connection was reset while connecting; is sshd running "
                        f"there, and does a firewall let SSH through?")


def keyscan_hint(host: SshHost) -> str:
    """The command that pins ``host``'s key (to be run after verifying it)."""
    scan = f"ssh-keyscan -p {host.port} {host.address}"
    if host.gateway is not None:
        scan = f"ssh {host.gateway.name} {scan}"
    return f"{scan} >> {host.known_hosts}"


class StrictConnection(Connection):
    """A Fabric ``Connection`` that also closes the gateway it opened."""

    def close(self) -> None:
        super().close()
        if isinstance(self.gateway, Connection):
            self.gateway.close()


def _connection(host: SshHost, *, forward_agent: bool = False) -> StrictConnection:
    """Build (not open) the strict connection for ``host`` and its gateways."""
    gateway = _connection(host.gateway) if host.gateway is not None else None
    # every wait of the handshake is bounded too (paramiko's own: 15 s banner, 30 s login,
    # an hour for a channel)
    limit = host.connect_timeout
    connect_kwargs: dict[str, object] = {"banner_timeout": limit, "auth_timeout": limit,
                                         "channel_timeout": limit}
    if host.identity_file is not None:
        connect_kwargs.update(key_filename=str(host.identity_file),
                              look_for_keys=False, allow_agent=False)
    config = Config(overrides={"load_ssh_configs": False})
    conn = StrictConnection(host.address, user=host.user, port=host.port,
                            connect_kwargs=connect_kwargs, connect_timeout=host.connect_timeout,
                            config=config, gateway=gateway if gateway is not None else False,
                            forward_agent=forward_agent)
    # Fabric installs AutoAddPolicy on every client, the gateway's included.
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with translate_ssh_errors(host):
        try:
            pin_host_keys(conn.client, host.known_hosts)
        except FileNotFoundError:
            raise HostKeyUnknown(
                f"{host.name}: known_hosts file {host.known_hosts} does not exist; "
                f"pin the {_role(host)}'s key first: {keyscan_hint(host)}") from None
        except OSError as exc:
            raise HostKeyUnknown(
                f"{host.name}: cannot read known_hosts file {host.known_hosts}: "
                f"{exc.strerror or exc}") from None
    return conn


def _open(conn: Connection, host: SshHost) -> None:
    """Open ``conn``, its gateways first, so an error names the hop that failed."""
    if host.gateway is not None:
        assert isinstance(conn.gateway, Connection)
        _open(conn.gateway, host.gateway)
    with translate_ssh_errors(host, via=host.gateway):
        if host.gateway is None:
            conn.connect_kwargs["sock"] = _socket(host)
        try:
            conn.open()
        finally:
            # a later implicit reopen (after a drop) makes a socket of its own
            conn.connect_kwargs.pop("sock", None)
    liveness.watch(conn.client.get_transport(), host.connect_timeout)


def ensure_open(conn: Connection, host: SshHost) -> None:
    """Reopen ``conn`` if it was closed (as :func:`open_connection` opens, watched)."""
    if not conn.is_connected:
        _open(conn, host)


def connection_lost(host: SshHost, conn: Connection, doing: str) -> ConnectError | None:
    """The error to raise if ``conn`` was lost (reset, closed, or silent), else None.

    ``doing`` says what was under way, e.g. ``running 'systemctl restart x'``.
    """
    reason = liveness.lost(conn.client.get_transport())
    if reason is None:
        return None
    return ConnectError(f"{_where(host)}: connection lost while {doing}: {reason}; it may "
                        f"or may not have finished there (invoke status shows the controller)")


def _socket(host: SshHost) -> socket.socket:
    """A TCP connection to ``host`` with Nagle's algorithm off, as OpenSSH's.

    Paramiko leaves it on; SSH's small request/answer packets then wait for
    delayed ACKs: the login alone took 60-100 ms instead of 20 on loopback.

    Raises:
        NoValidConnectionsError: refused or unreachable (as paramiko says it).
    """
    try:
        sock = socket.create_connection((host.address, host.port), timeout=host.connect_timeout)
    except (socket.gaierror, socket.timeout):
        raise
    except OSError as exc:
        raise paramiko.ssh_exception.NoValidConnectionsError(
            {(host.address, host.port): exc}) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_connection(controller: SshHost, *, forward_agent: bool = False) -> Connection:
    """Open a strict-host-key Fabric connection to ``controller`` (or any host).

    With a ``gateway`` in the inventory the connection is tunnelled through
    it (Fabric's ``gateway=Connection(...)``), the gateway's own host key
    checked against the gateway's known_hosts, and so on up a chain of
    gateways. The connection is opened here (not lazily on the first
    ``run``), so every failure surfaces in one place and before anything is
    sent. ``forward_agent`` forwards this machine's ssh-agent (for a
    devbox that runs ssh onwards).

    Raises:
        ConnectError: unreachable, refused, login failed (on any hop; the
            message names the hop).
        HostKeyUnknown / HostKeyMismatch: a host key is not the pinned one.
    """
    conn = _connection(controller, forward_agent=forward_agent)
    try:
        _open(conn, controller)
    except BaseException:
        conn.close()
        raise
    return conn


# --- one connection per host per task run --------------------------------------

_shared: dict[tuple[SshHost, bool], Connection] = {}
_shared_lock = threading.Lock()


def _key(host: SshHost, forward_agent: bool) -> tuple[SshHost, bool]:
    # the whole (frozen) host: another known_hosts or key is another connection
    return (host, forward_agent)


def shared_connection(host: SshHost, *, forward_agent: bool = False) -> Connection:
    """An open connection to ``host``, the same one for the whole task run.

    Steps that talk to the same host (the devbox's rsync, then its ``git``)
    reuse one SSH handshake; the connection is reopened if it dropped and
    closed when the process exits (or by :func:`close_shared`).

    Raises:
        ConnectError / HostKeyUnknown / HostKeyMismatch: see :func:`open_connection`.
    """
    key = _key(host, forward_agent)
    with _shared_lock:
        conn = _shared.get(key)
        if conn is not None and conn.is_connected:
            return conn
        conn = open_connection(host, forward_agent=forward_agent)
        _shared[key] = conn
        return conn


def close_shared() -> None:
    """Close every connection :func:`shared_connection` opened."""
    with _shared_lock:
        for conn in _shared.values():
            with contextlib.suppress(Exception):
                conn.close()
        _shared.clear()


atexit.register(close_shared)


# --- the ssh command line, for rsync -------------------------------------------

def control_options(control_dir: str | Path) -> list[str]:
    """OpenSSH options to share one connection per host through ``control_dir``.

    ``-o ControlMaster=auto -o ControlPath=<dir>/%C -o ControlPersist=60``:
    the first ssh to a host becomes the master, later ones reuse its
    connection. ``%C`` is a hash of host, port and user, so it stays short.
    """
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C",
            "-o", "ControlPersist=60"]


def ssh_argv(controller: SshHost, *, known_hosts: str | Path | None = None,
             identities: Mapping[str, str | None] | None = None,
             start_after: str | None = None,
             control_dir: str | Path | None = None) -> list[str]:
    """Build the ssh command line that checks the same pinned keys as Fabric.

    ``ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
    -o UserKnownHostsFile=<known_hosts> -o GlobalKnownHostsFile=/dev/null
    -o ConnectTimeout=<s> -o ServerAliveInterval=<s/2> -o ServerAliveCountMax=2
    [-o 'ProxyCommand=<gateway's ssh argv> -W %h:%p <gateway>']
    -p <port> -l <user> [-i <key> -o IdentitiesOnly=yes]``

    A gateway becomes a ``ProxyCommand`` built whole from the gateway's own
    argv (``ProxyJump`` cannot carry a per-hop known_hosts or key), so every
    hop is checked against its own pinned key; a chain of gateways nests.

    The keyword arguments describe ssh running somewhere other than this
    workstation (on a devbox): ``known_hosts`` replaces every hop's
    known_hosts path, ``identities`` maps a host's name to the key path to
    use for it there (absent or None: ssh's defaults, e.g. a forwarded
    agent), and ``start_after`` names the host ssh runs on, so the gateway
    chain starts after it. ``control_dir`` adds :func:`control_options`.

    OpenSSH keeps the first value it sees for an option, so the argv is
    built whole here and never appended to.
    """
    host = controller
    argv = [
        "ssh", "-F", "/dev/null",
        "-o", "BatchMode=yes",  # never prompt inside rsync
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={_literal(known_hosts or host.known_hosts)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={max(1, round(host.connect_timeout))}",
        # a host that stops answering is given up, as the paramiko connection is
        "-o", f"ServerAliveInterval={max(1, round(host.connect_timeout / 2))}",
        "-o", "ServerAliveCountMax=2",
    ]
    gateway = host.gateway
    if start_after is not None and start_after in {g.name for g in gateway_chain(host)}:
        # ssh runs on a hop of the chain: only the hops after it are needed
        gateway = _after(host, start_after)
    if gateway is not None:
        inner = ssh_argv(gateway, known_hosts=known_hosts, identities=identities,
                         start_after=start_after, control_dir=control_dir)
        inner += ["-W", "%h:%p", gateway.address]
        # ssh expands %-tokens in ProxyCommand: the gateway's own are escaped
        # (a nested ProxyCommand's %h must reach the inner ssh intact).
        argv += ["-o", "ProxyCommand=" + _proxy_command(inner)]
    if control_dir is not None:
        argv += control_options(control_dir)
    argv += ["-p", str(host.port), "-l", host.user]
    if identities is not None:
        identity: str | Path | None = identities.get(host.name)
    else:
        identity = host.identity_file
    if identity is not None:
        argv += ["-i", _literal(identity), "-o", "IdentitiesOnly=yes"]
    return argv


def _after(host: SshHost, name: str) -> Host | None:
    """The gateway of ``host`` that comes right after hop ``name`` (None: ``name`` is the last)."""
    hop: SshHost = host
    while hop.gateway is not None:
        if hop.gateway.name == name:
            return None if hop is host else _as_host(hop)
        hop = hop.gateway
    return host.gateway


def _as_host(hop: SshHost) -> Host:
    assert isinstance(hop, Host)
    return hop


def _literal(path: str | Path) -> str:
    """``path`` with ``%`` doubled: ssh expands %-tokens in key and known_hosts paths."""
    return str(path).replace("%", "%%")


def _proxy_command(inner: list[str]) -> str:
    """``shlex.join(inner)`` with ssh's %-tokens escaped, except in ``-W %h:%p``.

    ``inner`` ends with ``-W %h:%p <gateway address>``: the outer ssh expands
    ``%h:%p`` to the host it is connecting to, everything else is literal.
    """
    options, address = inner[:-3], inner[-1]
    return (shlex.join(options).replace("%", "%%") + " -W %h:%p "
            + shlex.quote(address).replace("%", "%%"))
