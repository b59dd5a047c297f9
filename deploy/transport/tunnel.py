"""Reach a controller's API from the workstation through its SSH connection.

The API often listens only on the controller (``http://127.0.0.1:8776/``) or
on a network the workstation cannot route to. ``api_opener`` returns a
urllib opener whose HTTP connections are SSH ``direct-tcpip`` channels of
the already-verified connection: the URL stays the controller's own, no
local port is opened, and no extra handshake is made.
"""
from __future__ import annotations

import functools
import http.client
import io
import socket
import urllib.request
from typing import Any

import paramiko

from deploy.transport.commands import Remote


class _ChannelSocket:
    """The part of a socket ``http.client`` uses, over an SSH channel.

    urllib closes the connection's socket as soon as the response headers
    are parsed and reads the body from the file ``makefile`` gave. A real
    socket stays open until that file is closed too; so does this one:
    closing the channel earlier would drop every body byte still on the
    way (a long listing ends in ``IncompleteRead``).
    """

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._files = 0
        self._closing = False

    def sendall(self, data: bytes) -> None:
        self._channel.sendall(data)

    def settimeout(self, timeout: float | None) -> None:
        self._channel.settimeout(timeout)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if "r" not in mode or "w" in mode:
            raise ValueError(f"an SSH channel socket reads only, not {mode!r}")
        self._files += 1
        return io.BufferedReader(_ChannelReader(self))

    def recv(self, size: int) -> bytes:
        return self._channel.recv(size)

    def file_closed(self) -> None:
        self._files -= 1
        if self._closing and self._files == 0:
            self._channel.close()

    def close(self) -> None:
        self._closing = True
        if self._files == 0:
            self._channel.close()


class _ChannelReader(io.RawIOBase):
    """The raw stream under a ``_ChannelSocket.makefile`` file."""

    def __init__(self, owner: _ChannelSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._owner.recv(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner.file_closed()


class _ChannelHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is an SSH channel to (host, port)."""

    def __init__(self, host: str, *, transport: paramiko.Transport, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._transport = transport

    def connect(self) -> None:
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else 30.0
        try:
            channel = self._transport.open_channel(
                "direct-tcpip", (self.host, self.port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            # the controller could not connect: e.g. nothing listens there
            raise ConnectionRefusedError(
                f"{self.host}:{self.port} refused on the controller ({exc.text})") from None
        except (paramiko.SSHException, EOFError, socket.error) as exc:
            raise ConnectionError(f"SSH channel to {self.host}:{self.port} failed: {exc}") from None
        channel.settimeout(timeout)
        self.sock = _ChannelSocket(channel)


class _SshHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, transport: paramiko.Transport) -> None:
        super().__init__()
        self._transport = transport

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(  # type: ignore[arg-type]
            functools.partial(_ChannelHTTPConnection, transport=self._transport), req)


def api_opener(remote: Remote) -> urllib.request.OpenerDirector:
    """A urllib opener that sends ``http://`` requests through the controller.

    ``https://`` URLs are opened directly from the workstation.
    """
    transport = remote.conn.client.get_transport()
    if transport is None:
        return urllib.request.build_opener()
    return urllib.request.build_opener(_SshHTTPHandler(transport))
