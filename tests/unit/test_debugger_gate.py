"""Specs for who may reach the debugger: the gate the debug hook puts into debugpy on
the controller (``deploy/remote/debug_hook.py``, Python 2.7, 3.6 and the project's)
and the forwarded port here (``deploy/transport/port_forward.py``).

debugpy asks a client for no credentials; the gates tell callers apart by the uid
that owns the other end of the connection, as /proc/net/tcp says. The specs run as
root and play another local user as ``nobody``.
"""
from __future__ import annotations

import pwd
import socket
import subprocess
import textwrap

from deploy.remote import script
from deploy.transport.port_forward import _welcome, peer_uid

NOBODY = pwd.getpwnam("nobody")

CLIENT = textwrap.dedent("""
    import socket, sys
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
    sock.sendall(b"hello")
    sock.settimeout(10)
    try:
        data = sock.recv(100)
    except socket.error:
        data = b""
    sys.stdout.write("answered" if data == b"welcome" else "refused")
""")


def client(port: int, as_nobody: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(["/usr/bin/python3", "-c", CLIENT, str(port)], text=True,
                            stdout=subprocess.PIPE,
                            user=NOBODY.pw_uid if as_nobody else None,
                            group=NOBODY.pw_gid if as_nobody else None)


SERVER = textwrap.dedent("""
    import socket, sys
    namespace = {"__name__": "devloop_debug"}
    exec(compile(sys.stdin.read(), "devloop_debug.py", "exec"), namespace)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    socket.socket.accept = namespace["_gated"](socket.socket.accept, port, (0,))
    sys.stdout.write("%d\\n" % port)
    sys.stdout.flush()
    conn, _ = listener.accept()       # only root's connection gets here
    conn.recv(5)
    conn.sendall(b"welcome")
    conn.close()
""")


def test_the_adapter_gate_closes_another_users_connection_and_keeps_roots(python):
    server = subprocess.Popen([python, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdin.write(script("debug_hook"))
        server.stdin.close()
        port = int(server.stdout.readline())
        theirs = client(port, as_nobody=True)
        assert theirs.communicate(timeout=30)[0] == "refused"
        ours = client(port, as_nobody=False)
        assert ours.communicate(timeout=30)[0] == "answered"
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()


def test_the_forwarded_port_knows_its_own_users_connection_from_anothers():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for as_nobody, uid, welcome in ((True, NOBODY.pw_uid, False), (False, 0, True)):
            other = client(port, as_nobody)
            conn, _ = listener.accept()
            with conn:
                assert peer_uid(conn) == uid
                assert _welcome(conn) is welcome
            other.kill()
            other.wait()
