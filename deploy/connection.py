"""Open SSH connections that refuse unknown and changed host keys.

Fabric's ``Connection`` accepts any host key by default (it installs
paramiko's ``AutoAddPolicy`` and loads no known_hosts), so every connection
here loads the inventory's known_hosts and sets ``RejectPolicy``. The same
facts feed the ``ssh`` command rsync spawns (:func:`ssh_argv`), so both
paths check the same pinned key. paramiko's exceptions are translated into
``ConnectError`` and its two host-key subclasses at this boundary.
"""
from __future__ import annotations

import contextlib
import logging
import socket
from typing import Iterator

import paramiko
from fabric import Config, Connection

from deploy.errors import ConnectError, HostKeyMismatch, HostKeyUnknown
from deploy.inventory import Controller

# paramiko logs a traceback of its own for banner errors; our message suffices.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def _known_hosts_name(controller: Controller) -> str:
    if controller.port == 22:
        return controller.address
    return f"[{controller.address}]:{controller.port}"


@contextlib.contextmanager
def translate_ssh_errors(controller: Controller) -> Iterator[None]:
    """Turn paramiko/socket errors raised inside into ``ConnectError``s."""
    where = f"{controller.name} ({controller.label})"
    try:
        yield
    except paramiko.BadHostKeyException as exc:
        raise HostKeyMismatch(
            f"{where}: host key does not match the one pinned in {controller.known_hosts} "
            f"(got {exc.key.get_name()} {exc.key.get_fingerprint().hex()}); refusing to connect, "
            f"nothing was sent. If the controller was reinstalled, verify its new key, then "
            f"replace the line with: ssh-keygen -R '{_known_hosts_name(controller)}' "
            f"-f {controller.known_hosts}") from None
    except paramiko.AuthenticationException:
        key = controller.identity_file or "your default SSH keys"
        raise ConnectError(
            f"{where}: login refused for user {controller.user!r} with {key}; "
            f"add its public key to the controller's authorized_keys") from None
    except paramiko.ssh_exception.NoValidConnectionsError:
        raise ConnectError(
            f"{where}: connection refused; is sshd running there and are "
            f"address/port in the inventory right?") from None
    except socket.gaierror as exc:
        raise ConnectError(f"{where}: cannot resolve address {controller.address!r}: "
                           f"{exc.strerror}") from None
    except (socket.timeout, TimeoutError):
        raise ConnectError(f"{where}: no answer within {controller.connect_timeout:g} s; "
                           f"is the host up and reachable?") from None
    except paramiko.SSHException as exc:
        text = str(exc)
        if "not found in known_hosts" in text:
            raise HostKeyUnknown(
                f"{where}: host key is not pinned in {controller.known_hosts}; refusing to "
                f"connect. Verify the controller's key, then add it: ssh-keyscan -p "
                f"{controller.port} {controller.address} >> {controller.known_hosts}") from None
        raise ConnectError(f"{where}: SSH failed: {text or type(exc).__name__}") from None
    except OSError as exc:
        raise ConnectError(f"{where}: cannot connect: {exc.strerror or exc}") from None


def open_connection(controller: Controller) -> Connection:
    """Open a strict-host-key Fabric connection to ``controller``.

    The connection is opened here (not lazily on the first ``run``), so
    every failure surfaces in one place and before anything is sent.

    Raises:
        ConnectError: unreachable, refused, login failed.
        HostKeyUnknown / HostKeyMismatch: the host key is not the pinned one.
    """
    connect_kwargs: dict[str, object] = {}
    if controller.identity_file is not None:
        connect_kwargs.update(key_filename=str(controller.identity_file),
                              look_for_keys=False, allow_agent=False)
    config = Config(overrides={"load_ssh_configs": False})
    conn = Connection(controller.address, user=controller.user, port=controller.port,
                      connect_kwargs=connect_kwargs, connect_timeout=controller.connect_timeout,
                      config=config)
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with translate_ssh_errors(controller):
        try:
            conn.client.load_host_keys(str(controller.known_hosts))
        except FileNotFoundError:
            raise HostKeyUnknown(
                f"{controller.name}: known_hosts file {controller.known_hosts} does not exist; "
                f"pin the controller's key first: ssh-keyscan -p {controller.port} "
                f"{controller.address} >> {controller.known_hosts}") from None
        conn.open()
    return conn


def ssh_argv(controller: Controller) -> list[str]:
    """Build the ssh command line that checks the same pinned key as Fabric.

    ``ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
    -o UserKnownHostsFile=<known_hosts> -o GlobalKnownHostsFile=/dev/null
    -o ConnectTimeout=<s> -p <port> -l <user> [-i <key> -o IdentitiesOnly=yes]``

    OpenSSH keeps the first value it sees for an option, so the argv is
    built whole here and never appended to.
    """
    argv = [
        "ssh", "-F", "/dev/null",
        "-o", "BatchMode=yes",  # never prompt inside rsync
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={controller.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={int(controller.connect_timeout)}",
        "-p", str(controller.port),
        "-l", controller.user,
    ]
    if controller.identity_file is not None:
        argv += ["-i", str(controller.identity_file), "-o", "IdentitiesOnly=yes"]
    return argv
