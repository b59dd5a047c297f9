"""RabbitMQ, the message broker of every sandbox kind (Debian's ``rabbitmq-server``).

Cinder's services call each other over oslo.messaging: the API casts a
volume create to ``cinder-scheduler``, which casts it to ``cinder-volume``.
``transport_url = fake://`` carries nothing between processes, so every
kind runs the broker a real controller runs, started the way that kind
starts its services:

* in the containers, Debian's own ``rabbitmq-server.service`` (and its
  ``epmd.socket``), as packaged; the node is named ``rabbit@localhost`` so
  it does not depend on the container's host name resolving;
* on the supervisord kind, :class:`OwnBroker`: two programs of the
  sandbox's supervisord, ``epmd`` and ``rabbitmq-server``, with a data
  directory, a node name and ports of that sandbox's own (AMQP, Erlang
  distribution and epmd ports come from the kernel), so several sandboxes
  and two test runs on one machine never share or collide; the machine's
  epmd (port 4369) is never used or started.

Each broker has a user and password of the sandbox's own (made when the
sandbox is first built, never ``guest``), written into ``rabbitmq.conf``
(``default_user``/``default_pass``: the broker creates them on its first
boot) and into cinder.conf's ``transport_url``, both readable only by root
and the service's group.

:func:`amqp_server` asks a broker who it is (the AMQP greeting), with no
credentials: what ``sandbox.status`` shows.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deploy.base.errors import SandboxError
from deploy.transport.commands import tail

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
EPMD = "/usr/bin/epmd"
RABBITMQ_USER = "rabbitmq"
UNIT = "rabbitmq-server.service"
AMQP_PORT = 5672
#: Erlang flags for a broker that carries a handful of connections: one
#: scheduler thread, few async threads, a smaller process table (the
#: defaults are sized for production brokers; these save about 40 MB)
ERL_ARGS = "+S 1:1 +A 2 +P 65536"

#: /etc/rabbitmq/rabbitmq-env.conf in the containers
CONTAINER_ENV_CONF = f"""\
# written by cinder-devloop: a node name that does not need the host name to
# resolve, and a broker sized for a sandbox
NODENAME=rabbit@localhost
SERVER_ADDITIONAL_ERL_ARGS="{ERL_ARGS}"
"""


def server_conf(user: str, password: str) -> str:
    """``rabbitmq.conf``: the sandbox's user, made by the broker on its first boot (no guest)."""
    return f"""\
# written by cinder-devloop: the broker makes this user on its first boot
# (instead of guest)
default_user = {user}
default_pass = {password}
"""


def transport_url(user: str, password: str, host: str, port: int = AMQP_PORT) -> str:
    """oslo.messaging's ``rabbit://user:password@host:port/`` (the default virtual host)."""
    return f"rabbit://{user}:{password}@{host}:{port}/"


def new_password() -> str:
    """A broker password: URL-safe, so it goes into ``transport_url`` as it is."""
    return secrets.token_urlsafe(18)


def new_cookie() -> str:
    """An Erlang cookie (the secret of the node's distribution port), as Erlang makes one."""
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20))


# --- who answers ---------------------------------------------------------------------

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def amqp_server(address: str, port: int, timeout: float = 2.0) -> str | None:
    """``"RabbitMQ 3.10.8"``: the product and version an AMQP 0-9-1 broker greets with.

    Sends the protocol header and reads ``Connection.Start`` (no login);
    None when nothing answers AMQP there.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(_AMQP_HEADER)
            data = b""
            while len(data) < 7 or len(data) < 8 + struct.unpack(">I", data[3:7])[0]:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except (OSError, struct.error):
        return None
    properties = _start_properties(data)
    if not properties.get("product"):
        return None
    return f"{properties['product']} {properties.get('version', '')}".strip()


def _start_properties(frame: bytes) -> dict[str, str]:
    """The string entries of ``Connection.Start``'s server-properties table."""
    # frame: type 1 (method), channel 0, size; payload: class 10, method 10,
    # version major and minor, then the server-properties field table
    if len(frame) < 15 or frame[0] != 1 or frame[7:11] != b"\x00\x0a\x00\x0a":
        return {}
    (size,) = struct.unpack(">I", frame[13:17])
    table, found, at = frame[17:17 + size], {}, 0
    widths = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "l": 8, "L": 8,
              "T": 8, "f": 4, "d": 8, "D": 5, "V": 0}
    while at < len(table):
        name_length = table[at]
        name = table[at + 1:at + 1 + name_length].decode(errors="replace")
        at += 1 + name_length
        kind = chr(table[at])
        at += 1
        if kind in ("S", "F", "A", "x"):
            (length,) = struct.unpack(">I", table[at:at + 4])
            if kind == "S":
                found[name] = table[at + 4:at + 4 + length].decode(errors="replace")
            at += 4 + length
        elif kind in widths:
            at += widths[kind]
        else:
            break
    return found


# --- the supervisord kind's own broker -------------------------------------------------

@dataclass(frozen=True, slots=True)
class OwnBroker:
    """A RabbitMQ node of one sandbox's own, under ``root``, run by its supervisord.

    Files (under ``root``): ``etc/rabbitmq/`` (``rabbitmq-env.conf``: node
    name, ports, paths; ``rabbitmq.conf``: the user; ``enabled_plugins``:
    none), ``var/lib/rabbitmq`` (its home: the Erlang cookie and the
    database), ``var/log/rabbitmq``, and ``etc/rabbitmq/broker.json``
    (root only: the ports and password, kept across ``up``\\ s).
    """

    root: Path
    user: str = "cinder"

    @property
    def etc(self) -> Path:
        return self.root / "etc/rabbitmq"

    @property
    def env_file(self) -> Path:
        return self.etc / "rabbitmq-env.conf"

    @property
    def conf_file(self) -> Path:
        return self.etc / "rabbitmq.conf"

    @property
    def state_file(self) -> Path:
        return self.etc / "broker.json"

    @property
    def home(self) -> Path:
        return self.root / "var/lib/rabbitmq"

    @property
    def log_dir(self) -> Path:
        return self.root / "var/log/rabbitmq"

    def last_lines(self, lines: int = 6) -> str:
        """The last lines of each of the broker's logs, for a failure message: a test
        sandbox's directory is gone by the time someone reads the path."""
        shown = []
        for log in sorted(self.log_dir.glob("*.log")) if self.log_dir.is_dir() else []:
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            kept = tail(text, lines)
            if kept:
                shown.append(f"{log.name}:\n    " + kept.replace("\n", "\n    "))
        return "\n  ".join(shown)

    @property
    def node(self) -> str:
        """A node name unique to this sandbox's directory."""
        tag = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]
        return f"devloop-{tag}@localhost"

    def settings(self) -> dict[str, object]:
        """The ports and password this broker was given (empty before the first ``up``)."""
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def amqp_port(self) -> int | None:
        port = self.settings().get("amqp_port")
        return int(port) if isinstance(port, int) else None

    def transport_url(self) -> str:
        """cinder.conf's ``transport_url`` for this broker.

        Raises:
            SandboxError: the broker was never set up.
        """
        settings = self.settings()
        if not settings:
            raise SandboxError(f"sandbox: {self.root} has no broker (run sandbox.up)")
        return transport_url(self.user, str(settings["password"]), "127.0.0.1",
                             int(str(settings["amqp_port"])))

    def prepare(self, pick_port: Callable[[], int], reuse_ports: bool) -> None:
        """Write the broker's files; the ports and password are kept from the last ``up``.

        ``reuse_ports``: the saved ports are still free (or the broker is
        running on them); otherwise ``pick_port()`` chooses new ones.

        Raises:
            SandboxError: Debian's rabbitmq-server is not installed here.
        """
        if not Path(RABBITMQ_SERVER).exists() or shutil.which("epmd") is None:
            raise SandboxError("sandbox: RabbitMQ is missing; install it with bash .ci/bootstrap "
                               "(apt: rabbitmq-server)")
        settings = self.settings()
        if not settings.get("password"):
            settings = {"password": new_password()}
        if not reuse_ports or "amqp_port" not in settings:
            settings.update(amqp_port=pick_port(), dist_port=pick_port(),
                            epmd_port=pick_port())
        for path in (self.etc, self.home, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.etc.chmod(0o750)
        shutil.chown(self.etc, "root", RABBITMQ_USER)
        for path in (self.home, self.log_dir):
            path.chmod(0o750)
            shutil.chown(path, RABBITMQ_USER, RABBITMQ_USER)
        _write_private(self.state_file, json.dumps(settings), 0o600, "root")
        _write_private(self.conf_file, server_conf(self.user, str(settings["password"])),
                       0o640, RABBITMQ_USER)
        _write_private(self.etc / "enabled_plugins", "[].\n", 0o640, RABBITMQ_USER)
        # read by rabbitmq-env (sourced by the server's and rabbitmqctl's scripts);
        # CTL_ERL_ARGS: a rabbitmqctl that finds no epmd must not start one
        _write_private(self.env_file, f"""\
# written by cinder-devloop: this sandbox's own node, ports and files
NODENAME={self.node}
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT={settings['amqp_port']}
DIST_PORT={settings['dist_port']}
ERL_EPMD_PORT={settings['epmd_port']}
MNESIA_BASE={self.home}/mnesia
LOG_BASE={self.log_dir}
CONFIG_FILE={self.conf_file}
ENABLED_PLUGINS_FILE={self.etc}/enabled_plugins
SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {{127,0,0,1}} \
{ERL_ARGS}"
CTL_ERL_ARGS="-start_epmd false"
""", 0o640, RABBITMQ_USER)

    def programs(self) -> list[tuple[str, str]]:
        """supervisord.conf's ``epmd`` and ``rabbitmq-server`` programs: (name, section)."""
        # epmd in the foreground, on this sandbox's port only: the node is told
        # not to start one (-start_epmd false), so nothing outlives supervisord
        epmd = shlex.join(["/bin/sh", "-c", f'. "$0" && exec {EPMD} -address 127.0.0.1 '
                           f'-port "$ERL_EPMD_PORT"', str(self.env_file)])
        return [("epmd", f"""
[program:epmd]
command = {epmd}
user = {RABBITMQ_USER}
priority = 100
startsecs = 1
autorestart = true
redirect_stderr = true
stdout_logfile = {self.log_dir}/epmd.log
"""), ("rabbitmq-server", f"""
[program:rabbitmq-server]
command = {RABBITMQ_SERVER}
user = {RABBITMQ_USER}
directory = {self.home}
environment = HOME="{self.home}",RABBITMQ_CONF_ENV_FILE="{self.env_file}"
priority = 200
startsecs = 3
; it retries while epmd is still starting
autorestart = true
stopwaitsecs = 30
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile = {self.log_dir}/console.log
""")]

    def rabbitmqctl(self, *args: str) -> list[str]:
        """``rabbitmqctl ARGS`` against this node, run as ``rabbitmq`` (its cookie's owner)."""
        return ["runuser", "-u", RABBITMQ_USER, "--", "env", f"HOME={self.home}",
                f"RABBITMQ_CONF_ENV_FILE={self.env_file}", RABBITMQCTL, *args]


def _write_private(path: Path, text: str, mode: int, group: str) -> None:
    """Write ``text`` to ``path``, owned root:``group`` with ``mode`` before any byte lands."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), mode)
        shutil.chown(path, "root", group)
        handle.write(text)


if __name__ == "__main__":
    # ``ADDRESS PORT``: who answers AMQP there, from a sandbox's network namespace
    import sys

    print(amqp_server(sys.argv[1], int(sys.argv[2])) or "")
