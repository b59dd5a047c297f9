"""Forward a local loopback port to a port on the controller's loopback.

``invoke debug --attach`` makes debugpy listen on ``127.0.0.1:<port>`` of
the controller only. The IDE connects to ``127.0.0.1:<local port>`` here;
each connection becomes an SSH ``direct-tcpip`` channel of the task's
already-verified connection (through any gateway it goes through), so
nothing new listens anywhere but on this machine's loopback.

debugpy asks a client for no credentials, so that port is as good as a
shell as the service user on the controller. On Linux it serves only the
user who runs the tool (and root): a connection whose other end another
uid owns, as /proc/net/tcp says, is closed before anything is forwarded.
Elsewhere (no /proc) any local process can connect while the session lasts.
"""
from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from typing import Iterator

import paramiko

from deploy.base import output
from deploy.base.errors import DebugError

LOOPBACK = "127.0.0.1"


def _pump(client: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes."""
    with client, channel:
        while True:
            ready, _, _ = select.select([client, channel], [], [], 1.0)
            if client in ready:
                data = client.recv(65536)
                if not data:
                    break
                channel.sendall(data)
            if channel in ready:
                data = channel.recv(65536)
                if not data:
                    break
                client.sendall(data)


def _tcp_row(address: tuple[str, int]) -> str:
    """/proc/net/tcp's name of an IPv4 ``(host, port)``: ``0100007F:1F90``."""
    host = struct.unpack("=I", socket.inet_aton(address[0]))[0]
    return f"{host:08X}:{address[1]:04X}"


def peer_uid(client: socket.socket) -> int | None:
    """The uid owning the other end of ``client``, a loopback connection; None if unknown.

    The other end is a socket on this machine: /proc/net/tcp lists it
    (its local address is our peer's, its remote ours) with its owner.
    """
    wanted = (_tcp_row(client.getpeername()), _tcp_row(client.getsockname()))
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            row = line.split()
            if len(row) > 7 and (row[1], row[2]) == wanted and row[3] == "01":
                return int(row[7])
    return None


def _welcome(client: socket.socket) -> bool:
    """Whether ``client`` belongs to this user (or root); True where the OS cannot say."""
    try:
        uid = peer_uid(client)
    except FileNotFoundError:    # no /proc (not Linux): nothing to tell them apart by
        return True
    except OSError:
        return False
    return uid in (0, os.getuid())


def _serve(listener: socket.socket, transport: paramiko.Transport, port: int,
           stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:          # the listener was closed: the session ended
            return
        if not _welcome(client):
            output.warn(f"refused a connection to the debugger's port {LOOPBACK}:"
                        f"{listener.getsockname()[1]} from another user of this machine")
            client.close()
            continue
        try:
            channel = transport.open_channel("direct-tcpip", (LOOPBACK, port),
                                             client.getpeername(), timeout=10)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            output.warn(f"cannot reach the controller's {LOOPBACK}:{port} for the IDE: "
                        f"{getattr(exc, 'text', None) or exc}")
            client.close()       # nothing listens there (yet): the IDE sees a refusal
            continue
        threading.Thread(target=_pump, args=(client, channel), daemon=True).start()


@contextlib.contextmanager
def forwarded(transport: paramiko.Transport, remote_port: int,
              local_port: int) -> Iterator[int]:
    """Listen on ``127.0.0.1:local_port`` (0: any) while inside; yield the port.

    Raises:
        DebugError: the local port is taken.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((LOOPBACK, local_port))
    except OSError as exc:
        listener.close()
        raise DebugError(f"cannot listen on {LOOPBACK}:{local_port} here ({exc.strerror}); "
                         f"pick another with --port") from None
    listener.listen(4)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(listener, transport, remote_port, stop),
                              daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
