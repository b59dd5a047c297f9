"""A TCP relay on 127.0.0.1 in front of a controller's sshd, that a spec can break.

The tool connects to the relay (its inventory says so, with the
controller's host key pinned for the relay's address); the relay forwards
every byte both ways until the spec says otherwise:

- ``reset()``: every relayed connection is reset (RST to both ends), and
  so is every new one once accepted, as a controller that crashed or a
  firewall that rejects would;
- ``blackhole()``: the relay keeps every connection open, new ones too,
  but forwards nothing more, either way, as a link that drops every packet
  does (the kernel still acknowledges what is sent, so only the SSH layer
  can tell);
- ``refuse()``: nothing listens any more: new connections are refused.

Threads only; ``close()`` (or leaving the ``with``) ends them all.
"""
from __future__ import annotations

import selectors
import socket
import struct
import threading
from pathlib import Path


class Relay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.forwarding = True
        self.resetting = False
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return                   # refused or closed
            if self.resetting:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peer = {client: server, server: client}
        selector = selectors.DefaultSelector()
        for sock in peer:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if self.forwarding:
                        peer[key.fileobj].setblocking(True)
                        peer[key.fileobj].sendall(data)
                        peer[key.fileobj].setblocking(False)
                    # blackholed: read and dropped, so the sender's kernel is still acked
        except OSError:
            return
        finally:
            selector.close()
            for sock in peer:
                sock.close()

    def reset(self) -> None:
        """Reset every relayed connection (RST both ways), and every new one."""
        self.resetting = True
        self._reset_all()

    def _reset_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def blackhole(self) -> None:
        """Forward nothing more, either way; keep every connection open."""
        self.forwarding = False

    def refuse(self) -> None:
        """Stop listening: connecting is refused from now on."""
        _stop_listening(self.listener)

    def close(self) -> None:
        self._closed = True
        _stop_listening(self.listener)
        self._reset_all()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _stop_listening(listener: socket.socket) -> None:
    # close() alone leaves a socket that a thread blocks in accept() on listening
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


def relayed_entry(entry: dict[str, object], relay: Relay, known_hosts: Path,
                  controller_address: tuple[str, int]) -> dict[str, object]:
    """``entry`` (a controller's hosts.yaml entry) reaching it through ``relay``.

    The controller's pinned host key is pinned again, in ``known_hosts``
    (written here), for the relay's address.
    """
    address, port = controller_address
    name = address if port == 22 else f"[{address}]:{port}"
    lines = []
    for line in Path(str(entry["known_hosts"])).read_text().splitlines():
        hosts, _, key = line.partition(" ")
        if name in hosts.split(","):
            lines.append(f"[127.0.0.1]:{relay.port} {key}")
    assert lines, f"no key pinned for {name} in {entry['known_hosts']}"
    known_hosts.write_text("\n".join(lines) + "\n")
    return {**entry, "address": "127.0.0.1", "port": relay.port,
            "known_hosts": str(known_hosts)}
