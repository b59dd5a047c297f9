"""Run rsync over the SSH connection the task already has open.

rsync wants a remote shell program; starting ``ssh`` would make a second
connection and handshake. Instead, rsync gets ``deploy/transport/rsh_shim.py`` as its
``-e``: the shim passes rsync's remote command through a private Unix
socket to this relay, which runs it on a new session channel of the open
paramiko transport (host key already verified) and pipes the bytes both
ways. One SSH connection per host per task run carries every command and
every transfer.
"""
from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import paramiko

from deploy.transport import liveness

SHIM = Path(__file__).with_name("rsh_shim.py")
STDIN, STDOUT, STDERR, EXIT, EOF = 0, 1, 2, 3, 4


def _frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BI", kind, len(data)) + data


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _serve(client: socket.socket, transport: paramiko.Transport) -> None:
    """Run one command on a channel and relay it to the shim on ``client``."""
    with client:
        try:
            _relay(client, transport)
        except Exception as exc:  # tell rsync why, instead of dying silently
            liveness.unanswered(transport, exc)    # the caller then reports the loss
            with contextlib.suppress(OSError):
                client.sendall(_frame(STDERR, f"devloop relay: {type(exc).__name__}: "
                                              f"{exc}\n".encode())
                               + _frame(EXIT, struct.pack(">i", 255)))


def _relay(client: socket.socket, transport: paramiko.Transport) -> None:
    (size,) = struct.unpack(">I", _recv_exact(client, 4))
    command = _recv_exact(client, size).decode()
    with transport.open_session() as channel:
        channel.exec_command(command)
        buffer, ended = b"", False
        while True:
            readable, _, _ = select.select([channel, client], [], [], 1.0)
            if client in readable:
                chunk = client.recv(65536)
                if not chunk:
                    return                  # the shim died: rsync is gone
                buffer += chunk
                while len(buffer) >= 5:
                    kind, length = struct.unpack(">BI", buffer[:5])
                    if len(buffer) < 5 + length:
                        break
                    payload, buffer = buffer[5:5 + length], buffer[5 + length:]
                    if ended:
                        continue
                    try:
                        if kind == STDIN:
                            channel.sendall(payload)
                        elif kind == EOF:
                            channel.shutdown_write()
                    except OSError:
                        # the command ended (a receiver that failed, a full disk):
                        # what it said, and its exit status, are relayed below
                        ended = True
            while channel.recv_ready():
                client.sendall(_frame(STDOUT, channel.recv(65536)))
            while channel.recv_stderr_ready():
                client.sendall(_frame(STDERR, channel.recv_stderr(65536)))
            if channel.exit_status_ready() and not channel.recv_ready() \
                    and not channel.recv_stderr_ready():
                client.sendall(_frame(EXIT, struct.pack(">i", channel.recv_exit_status())))
                return


@contextlib.contextmanager
def relay(transport: paramiko.Transport) -> Iterator[list[str]]:
    """Serve the relay while inside; yield the ``-e`` argv for rsync."""
    directory = tempfile.mkdtemp(prefix="devloop-relay-")   # mode 700: ours alone
    path = os.path.join(directory, "socket")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    # a byte on this pipe ends the accept loop at once (a select timeout
    # would hold every rsync's end up to that long)
    wake_read, wake_write = os.pipe()

    def accept() -> None:
        while True:
            ready, _, _ = select.select([server.fileno(), wake_read], [], [])
            if wake_read in ready:
                return
            client, _ = server.accept()
            threading.Thread(target=_serve, args=(client, transport), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield [sys.executable, "-I", str(SHIM), path]
    finally:
        os.write(wake_write, b"x")
        thread.join()
        os.close(wake_read)
        os.close(wake_write)
        server.close()
        os.unlink(path)
        os.rmdir(directory)
