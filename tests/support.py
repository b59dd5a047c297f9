"""Helpers shared by the integration tests: ports, the CLI, inventories."""
from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue
from typing import Callable, Iterator

import yaml

from deploy.sandbox.common import free_port  # noqa: F401  (the specs' one source of ports)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on loopback answering with ``handler``; its URL. Shut down after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wait_until(condition: Callable[[], object], timeout: float = 30.0,
               interval: float = 0.05) -> object:
    """Poll ``condition`` until it returns something true; fail on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def invoke(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI on the project's tasks: the venv's ``invoke`` (``deploy.base.program``)."""
    return subprocess.run([sys.executable, "-m", "deploy.base.program", "--search-root",
                           str(PROJECT_ROOT), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def write_inventory(path: Path, source: Path, controllers: dict[str, dict[str, object]]) -> Path:
    """Write a hosts.yaml naming ``source`` and the given controller entries."""
    path.write_text(yaml.safe_dump({"source": str(source), "controllers": controllers},
                                   sort_keys=False))
    return path


class Watcher:
    """``invoke watch`` running in the background, its output read line by line.

    Use as a context manager: leaving it kills the watch if a spec did not
    stop it (with :meth:`interrupt`) itself.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "watch", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self.lines: list[str] = []
        self._queue: Queue[str] = Queue()
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [self._queue.put(line) for line in stdout],
                         daemon=True).start()

    def read_until(self, fragment: str, timeout: float = 60) -> str:
        """The next line holding ``fragment``; fail with all output on the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                break
            self.lines.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"{fragment!r} not seen in:\n{''.join(self.lines)}")

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a terminal sends it to the whole group; return the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def write_migration(migrations: str, source: Path, parent: str, *, name: str,
                    downgrade: bool) -> tuple[str, str, str]:
    """A migration after ``parent`` that creates a table, written into the overlay ``source``.

    ``migrations`` is the controller's system: "alembic" (a random revision,
    with a ``downgrade()`` dropping the table if asked) or
    "sqlalchemy-migrate" (the next number; Train cannot downgrade).
    Returns (revision, table, the file's path relative to the cinder package).
    """
    if migrations == "sqlalchemy-migrate":
        assert not downgrade, "sqlalchemy-migrate in Train cannot downgrade"
        revision = str(int(parent) + 1)
        table = f"devloop_{name}_{revision}"
        rel = f"db/sqlalchemy/migrate_repo/versions/{revision}_devloop_{name}.py"
        body = ["from sqlalchemy import Column, Integer, MetaData, Table", "", "",
                "def upgrade(migrate_engine):",
                "    meta = MetaData(bind=migrate_engine)",
                f"    Table('{table}', meta, Column('id', Integer, primary_key=True)).create()"]
    else:
        revision = os.urandom(6).hex()
        table = f"devloop_{name}_{revision}"
        rel = f"db/migrations/versions/{revision}_devloop_{name}.py"
        body = [f'"""devloop {name} table\n\nRevision ID: {revision}\nRevises: {parent}\n"""',
                "from alembic import op", "import sqlalchemy as sa", "",
                f"revision = '{revision}'", f"down_revision = '{parent}'",
                "branch_labels = None", "depends_on = None", "", "",
                "def upgrade():",
                f"    op.create_table('{table}', sa.Column('id', sa.Integer, primary_key=True))"]
        if downgrade:
            body += ["", "", "def downgrade():", f"    op.drop_table('{table}')"]
    path = source / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body) + "\n")
    return revision, table, rel
