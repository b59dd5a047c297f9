"""The API opener reaches the controller's side through the SSH connection: real sshd."""
from __future__ import annotations

import hashlib
import http.server

import pytest

from deploy.base.inventory import load_inventory
from deploy.transport.commands import Remote
from deploy.transport.connection import close_shared
from deploy.transport.tunnel import api_opener
from tests.support import http_server

pytestmark = pytest.mark.integration

BODY = hashlib.sha256(b"devloop").hexdigest().encode() * 40000      # 2.5 MB


class _Large(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def large_server():
    """An HTTP server on loopback whose every answer is 2.5 MB long."""
    with http_server(_Large) as url:
        yield url


def test_a_body_longer_than_the_headers_arrives_whole_through_the_channel(hosts, large_server):
    # urllib closes the connection's socket once the headers are parsed; the
    # body must still be read to its last byte (a cut body was an IncompleteRead)
    remote = Remote.open(load_inventory(hosts).controllers["sbx"])
    try:
        opener = api_opener(remote)
        for _ in range(3):
            with opener.open(large_server, timeout=30) as reply:
                assert reply.status == 200
                assert reply.read() == BODY
    finally:
        close_shared()
