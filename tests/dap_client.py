"""A small Debug Adapter Protocol client, driving debugpy as VS Code does.

DAP messages are JSON bodies behind a ``Content-Length: N\\r\\n\\r\\n`` header,
over TCP: requests (``seq``, ``command``, ``arguments``) answered by
responses (``request_seq``, ``success``, ``body``), and events
(``stopped``, ``initialized`` ...) in between. ``request`` sends and, unless
told not to, waits for its response; ``wait_event`` waits for an event;
whatever else arrives meanwhile is kept for later.
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any


class DapError(Exception):
    """The adapter refused a request, or went quiet past a deadline."""


class DapClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""
        self.seq = 0
        self.pending: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "DapClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command,
                           "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _read(self, deadline: float) -> dict[str, Any]:
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return json.loads(rest[:length])
            left = deadline - time.monotonic()
            if left <= 0:
                raise DapError("no message from the adapter before the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise DapError("no message from the adapter before the deadline") from None
            if not chunk:
                raise DapError("the adapter closed the connection")
            self.buffer += chunk

    def _wait(self, match, timeout: float | None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        for message in list(self.pending):
            if match(message):
                self.pending.remove(message)
                return message
        while True:
            message = self._read(deadline)
            if match(message):
                return message
            self.pending.append(message)

    def response(self, seq: int, timeout: float | None = None) -> dict[str, Any]:
        message = self._wait(lambda m: m.get("type") == "response" and
                             m.get("request_seq") == seq, timeout)
        if not message.get("success"):
            raise DapError(f"{message.get('command')}: {message.get('message')} "
                           f"{message.get('body')}")
        return message.get("body") or {}

    def request(self, command: str, timeout: float | None = None, **arguments: Any
                ) -> dict[str, Any]:
        return self.response(self.send(command, **arguments), timeout)

    def wait_event(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        return self._wait(lambda m: m.get("type") == "event" and m.get("event") == event,
                          timeout).get("body") or {}
