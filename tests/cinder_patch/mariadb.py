"""A throwaway MariaDB server: Debian's mariadbd, no systemd, no /etc/mysql.

Own datadir, socket and port on 127.0.0.1 (``--no-defaults``), run as the
``mysql`` user, stopped by its PID. Reusable by any test suite::

    server = MariaDB(Path("/tmp/x"))
    server.start()
    url = server.create_database("cinder", "cinder", "secret")
    ...
    server.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from deploy.sandbox.common import free_port

MARIADBD = "/usr/sbin/mariadbd"


class MariaDBError(RuntimeError):
    """MariaDB could not be prepared, started or queried."""


def _which(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}"
                                      if os.path.exists(f"/usr/bin/{name}")
                                      else None)
        if path:
            return path
    raise MariaDBError(f"none of {', '.join(names)} is installed "
                       f"(apt-get install mariadb-server)")


class MariaDB:
    """One mariadbd under ``base``: data/, run/mysqld.sock, error.log."""

    def __init__(self, base: Path, port: int | None = None,
                 user: str = "mysql") -> None:
        self.base = base
        self.data = base / "data"
        self.run_dir = base / "run"
        self.socket = self.run_dir / "mysqld.sock"
        self.error_log = base / "error.log"
        self.port = port or free_port()
        self.user = user
        self.process: subprocess.Popen[bytes] | None = None

    def _chown(self) -> None:
        entry = pwd.getpwnam(self.user)
        for path in (self.base, self.data, self.run_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def install(self) -> None:
        """Create the system tables in a fresh datadir."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self._chown()
        argv = [_which("mariadb-install-db", "mysql_install_db"),
                "--no-defaults", f"--user={self.user}",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=socket", "--skip-test-db"]
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise MariaDBError(f"{' '.join(argv)} failed:\n"
                               f"{result.stdout}{result.stderr}")

    def start(self, timeout: float = 30.0) -> None:
        """Install if needed, start mariadbd and wait until it answers."""
        if not (self.data / "mysql").exists():
            self.install()
        argv = [MARIADBD, "--no-defaults", f"--user={self.user}",
                f"--datadir={self.data}", f"--socket={self.socket}",
                f"--pid-file={self.run_dir / 'mysqld.pid'}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--log-error={self.error_log}", "--skip-name-resolve"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MariaDBError(f"mariadbd exited with "
                                   f"{self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            if self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise MariaDBError(f"mariadbd did not answer in {timeout}s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.error_log.exists():
            return "(no error log)"
        return "\n".join(self.error_log.read_text(errors="replace")
                         .splitlines()[-lines:])

    def sql(self, statements: str, *, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """Run SQL as root over the socket."""
        argv = [_which("mariadb", "mysql"), "--no-defaults",
                f"--socket={self.socket}", "--user=root", "--batch",
                "--skip-column-names", "-e", statements]
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=60)
        if check and result.returncode != 0:
            raise MariaDBError(f"SQL failed: {statements}\n{result.stderr}")
        return result

    def create_database(self, name: str, user: str, password: str) -> str:
        """Create a utf8mb4 database and its user; return a PyMySQL URL."""
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4;"
            f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' "
            f"IDENTIFIED BY '{password}';"
            f"CREATE USER IF NOT EXISTS '{user}'@'localhost' "
            f"IDENTIFIED BY '{password}';"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'127.0.0.1';"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'localhost';")
        return (f"mysql+pymysql://{user}:{password}@127.0.0.1:{self.port}/"
                f"{name}?charset=utf8mb4")

    def create_admin(self, user: str, password: str) -> str:
        """Create a user with every privilege; return its server URL."""
        self.sql(
            f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' "
            f"IDENTIFIED BY '{password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1' "
            f"WITH GRANT OPTION;")
        return f"mysql+pymysql://{user}:{password}@127.0.0.1:{self.port}/"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM mariadbd by PID and wait; SIGKILL if it does not stop."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
