"""Reach a controller's API from the workstation through its SSH connection.

The API often listens only on the controller (``http://127.0.0.1:8776/``) or
on a network the workstation cannot route to; a local port forwarded over
the already-verified SSH connection reaches it wherever it is.
"""
from __future__ import annotations

import contextlib
import socket
import time
from typing import Iterator
from urllib.parse import urlsplit

from deploy.commands import Remote
from deploy.connection import translate_ssh_errors


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def api_tunnel(remote: Remote) -> Iterator[str]:
    """Yield a local base URL (``http://127.0.0.1:<port>``) for the controller's API."""
    url = urlsplit(remote.controller.api_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    local = _free_port()
    with translate_ssh_errors(remote.controller):
        with remote.conn.forward_local(local, remote_port=port, local_host="127.0.0.1",
                                       remote_host=url.hostname or "127.0.0.1"):
            # Fabric binds the local port in a thread of its own: wait for it.
            deadline = time.monotonic() + 5
            while not _listening(local) and time.monotonic() < deadline:
                time.sleep(0.01)
            yield f"{url.scheme}://127.0.0.1:{local}{url.path.rstrip('/')}"
