"""rsync's remote shell when the SSH connection is already open in cinder-devloop.

rsync runs ``<this script> <socket> [-l user] host command...``. The script
hands the command to the relay listening on <socket> (deploy.transport.channel_relay),
which runs it on a new channel of the task's existing SSH connection; the
script then pipes stdin to it and its stdout/stderr back, and exits with
its exit status. Standard library only, so it starts in milliseconds.

Frames on the socket: 1 byte type, 4 bytes big-endian length, data.
"""
import os
import selectors
import socket
import struct
import sys

STDIN, STDOUT, STDERR, EXIT, EOF = 0, 1, 2, 3, 4


def main(argv: "list[str]") -> int:
    path, args = argv[1], argv[2:]
    if args[:1] == ["-l"]:
        args = args[2:]               # the user is the connection's already
    command = " ".join(args[1:])      # as ssh does: the words after the host
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    data = command.encode()
    sock.sendall(struct.pack(">I", len(data)) + data)

    selector = selectors.DefaultSelector()
    stdin = sys.stdin.fileno()
    selector.register(stdin, selectors.EVENT_READ)
    selector.register(sock, selectors.EVENT_READ)
    buffer = b""
    while True:
        for key, _ in selector.select():
            if key.fileobj == stdin:
                chunk = os.read(stdin, 65536)
                try:
                    if chunk:
                        sock.sendall(struct.pack(">BI", STDIN, len(chunk)) + chunk)
                    else:
                        selector.unregister(stdin)
                        sock.sendall(struct.pack(">BI", EOF, 0))
                except OSError:
                    # the remote command ended (a receiver that failed): what it
                    # said and its exit status are queued to be read below
                    if chunk:
                        selector.unregister(stdin)
                continue
            chunk = sock.recv(65536)
            if not chunk:
                return 255
            buffer += chunk
            while len(buffer) >= 5:
                kind, size = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + size:
                    break
                payload, buffer = buffer[5:5 + size], buffer[5 + size:]
                if kind == STDOUT:
                    os.write(1, payload)
                elif kind == STDERR:
                    os.write(2, payload)
                elif kind == EXIT:
                    return struct.unpack(">i", payload)[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
