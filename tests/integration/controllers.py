"""One handle over both kinds of test controller, so a spec is written once.

``SupervisordController`` wraps the quick sandbox (supervisord, noauth);
``RdoController`` the systemd container (``openstack-cinder-api.service``,
Keystone). A spec asks the handle, never supervisorctl or systemctl:
``service_pid()``, ``stop_service()``, ``run(argv)`` on the controller,
``host_path(path)`` to read a controller file from this machine, ``api()``
for the URL, project and token of an admin (or of the member user).
"""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from deploy.auth import ApiAccess, cloud_access
from deploy.sandbox import SandboxLayout
from deploy.sandbox.rdo import CLOUD_ADMIN, CLOUD_MEMBER, RdoLayout, UNIT


class SupervisordController:
    """The supervisord sandbox: cinder-api in a venv, noauth, files on this machine."""

    kind = "supervisord"
    service = "cinder-api"
    running_state = "RUNNING"
    stopped_state = "STOPPED"
    noauth = True

    def __init__(self, layout: SandboxLayout) -> None:
        self.layout = layout

    def entry(self) -> dict[str, object]:
        return self.layout.controller_entry()

    @property
    def api_url(self) -> str:
        """cinder-api as this machine reaches it."""
        return self.layout.api_url

    @property
    def ssh_address(self) -> tuple[str, int]:
        return self.layout.listen_address, self.layout.ssh_port

    @property
    def python(self) -> str:
        return str(self.layout.python)

    @property
    def log_file(self) -> str:
        """The API log's path on the controller."""
        return str(self.layout.log_file)

    @property
    def database_path(self) -> str:
        return str(self.layout.database)

    @property
    def cinder_api(self) -> str:
        return str(self.layout.venv / "bin/cinder-api")

    @property
    def config_files(self) -> list[str]:
        return [str(self.layout.dist_conf), str(self.layout.cinder_conf)]

    @property
    def state_dir(self) -> str:
        return str(self.layout.root / "var/lib/cinder-devloop")

    def host_path(self, path: str) -> Path:
        """A controller path as this machine sees it (the same here)."""
        return Path(path)

    @property
    def cinder_dir(self) -> Path:
        """The installed cinder package, as this machine sees it."""
        return next((self.layout.venv / "lib").glob("python3*/site-packages/cinder"))

    @property
    def cinder_path(self) -> str:
        """The installed cinder package, as the controller names it."""
        return str(self.cinder_dir)

    def run(self, argv: list[str], user: str | None = None) -> subprocess.CompletedProcess[str]:
        if user:
            argv = ["su", "-s", "/bin/sh", "-c", shlex.join(argv), user]
        return subprocess.run(argv, capture_output=True, text=True)

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["supervisorctl", "-c", str(self.layout.supervisor_conf), *args],
                              capture_output=True, text=True)

    def service_pid(self) -> int | None:
        out = self._ctl("pid", "cinder-api").stdout.strip()
        return int(out) if out.isdigit() and int(out) > 0 else None

    def stop_service(self) -> None:
        self._ctl("stop", "cinder-api")

    def restart_service(self) -> None:
        self._ctl("restart", "cinder-api")

    def api(self, member: bool = False) -> ApiAccess:
        """URL, project and token for the admin (noauth: everyone is)."""
        project = "c1a55e7"
        return ApiAccess(self.api_url.rstrip("/"), project, f"admin:{project}")


class RdoController:
    """The rdo container: systemd, the system site-packages, Keystone."""

    kind = "rdo"
    service = UNIT
    running_state = "active (running)"
    stopped_state = "inactive (dead)"
    noauth = False

    def __init__(self, layout: RdoLayout) -> None:
        self.layout = layout
        self.instance = layout.instance

    def entry(self) -> dict[str, object]:
        return self.layout.controller_entry()

    @property
    def api_url(self) -> str:
        return self.layout.api_url

    @property
    def ssh_address(self) -> tuple[str, int]:
        return self.layout.address, 22

    python = "/usr/bin/python3"
    log_file = "/var/log/cinder/api.log"
    database_path = "/var/lib/cinder/cinder.sqlite"
    cinder_api = "/usr/bin/cinder-api"
    config_files = ["/usr/share/cinder/cinder-dist.conf", "/etc/cinder/cinder.conf"]
    state_dir = "/var/lib/cinder-devloop"

    def host_path(self, path: str) -> Path:
        """A controller path as this machine sees it: inside the overlay's merged tree."""
        return self.instance.merged / path.lstrip("/")

    cinder_path = "/usr/local/lib/python3.11/dist-packages/cinder"

    @property
    def cinder_dir(self) -> Path:
        return self.host_path(self.cinder_path)

    def run(self, argv: list[str], user: str | None = None) -> subprocess.CompletedProcess[str]:
        if user:
            argv = ["su", "-s", "/bin/sh", "-c", shlex.join(argv), user]
        return subprocess.run(self.instance.nsenter(argv), capture_output=True, text=True)

    def service_pid(self) -> int | None:
        """The unit's MainPID, as the controller numbers it (what the tool reports)."""
        out = self.run(["systemctl", "show", "--property=MainPID", "--value", UNIT]).stdout
        return int(out.strip() or 0) or None

    def stop_service(self) -> None:
        self.run(["systemctl", "stop", UNIT])

    def restart_service(self) -> None:
        self.run(["systemctl", "restart", UNIT])

    def api(self, member: bool = False) -> ApiAccess:
        """A Keystone token of the admin (or of ``demo``, a member) and the catalog's endpoint."""
        return cloud_access(CLOUD_MEMBER if member else CLOUD_ADMIN,
                            {"OS_CLIENT_CONFIG_FILE": str(self.layout.clouds_file)})


class LegacyController(RdoController):
    """The legacy container: systemd, Python 2.7, Cinder Train (sqlalchemy-migrate), noauth."""

    kind = "legacy"
    noauth = True
    python = "/usr/bin/python2"
    cinder_path = "/usr/lib/python2.7/site-packages/cinder"
    migrate_repo = cinder_path + "/db/sqlalchemy/migrate_repo/versions"

    def __init__(self, layout) -> None:  # a LegacyLayout
        self.layout = layout
        self.instance = layout.instance

    def newest_migration(self) -> int:
        """The number of the newest migrate script on the controller."""
        names = self.host_path(self.migrate_repo).glob("[0-9]*_*.py")
        return max(int(path.name.split("_", 1)[0]) for path in names)

    def api(self, member: bool = False) -> ApiAccess:
        """noauth: the token names the user and project."""
        project = "c1a55e7"
        return ApiAccess(self.api_url.rstrip("/"), project, f"admin:{project}")
