"""One handle over every kind of test controller, so a spec is written once.

``SupervisordController`` wraps the quick sandbox (supervisord, noauth);
``RdoController`` the systemd container (``openstack-cinder-api.service``,
Keystone); ``LegacyController`` the systemd container with Python 2.7 and
Cinder Train (sqlalchemy-migrate, noauth). A spec asks the handle, never
supervisorctl or systemctl: ``service_pid()``, ``stop_service()``,
``run(argv)`` on the controller, ``host_path(path)`` to read a controller
file from this machine, ``api()`` for the URL, project and token of an
admin (or of the member user), ``newest_migration()``.

``DevstackController`` the DevStack-shaped container (a checkout installed
-e, uWSGI, MariaDB, Keystone). ``empty_database()`` leaves the controller
an empty database (SQLite: the file removed; MariaDB: dropped and created);
``log_source`` is where the tool reads the API's last lines from.

Every kind runs Cinder's other services and a broker beside the API:
``services`` maps each binary (``cinder-scheduler``, ``cinder-volume``,
``cinder-backup``) to the unit or program that runs it, ``service_user_of``
says which user its process runs as, ``broker`` is RabbitMQ's address and
port as this machine reaches it, ``rabbitmqctl(...)`` runs that tool on
the controller against its broker, ``sandbox_args()`` names the sandbox to
``invoke sandbox.status``.

What differs between kinds and decides which specs apply is a class
attribute: ``migrations`` (``"alembic"`` or ``"sqlalchemy-migrate"``),
``service_manager`` (``"supervisord"`` or ``"systemd"``), ``app_server``
(``"cinder-api"``, whose process exits when Cinder fails to import, or
``"uwsgi"``, whose master stays up and answers 500), ``fast_restart``
(whether ``invoke fast-restart on`` applies); ``kinds(...)`` lists the kinds
that have a property, for a spec's parametrization.
"""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from deploy.openstack.auth import ApiAccess, cloud_access
from deploy.sandbox import SandboxLayout, broker, devstack, legacy, rdo
from deploy.sandbox.devstack import UNIT as DEVSTACK_UNIT
from deploy.sandbox.rdo import CLOUD_ADMIN, CLOUD_MEMBER, UNIT, RdoLayout
from deploy.sandbox.train import CINDER_RELEASE
from tests.cinder_patch.cinder_api import Client
from tests.support import wait_until


class _Services:
    """What every kind shares about the services beside the API."""

    #: binary -> the unit or program that runs it
    services: dict[str, str]
    #: set by ``empty_database()``: the services still hold the old database
    #: (SQLite: the removed file) and its rows of them are gone
    services_stale = False

    def restart_services(self) -> None:
        """Restart scheduler, volume and backup, as an operator does after recreating
        the database."""
        names = list(self.services.values())
        if self.service_manager == "systemd":   # type: ignore[attr-defined]
            result = self.run(["systemctl", "restart", *names])   # type: ignore[attr-defined]
        else:
            result = self._ctl("restart", *names)   # type: ignore[attr-defined]
        assert result.returncode == 0, result.stdout + result.stderr
        self.services_stale = False

    def client(self, member: bool = False) -> Client:
        """A REST client of the controller's API, as the admin (or the member user)."""
        access = self.api(member=member)   # type: ignore[attr-defined]
        return Client(access.base_url, access.project_id, access.token,
                      release=self.release)   # type: ignore[attr-defined]

    def sandbox_args(self) -> list[str]:
        """``--kind K --root R`` (and ports): this sandbox, for ``invoke sandbox.*``."""
        return ["--kind", self.kind, "--root", str(self.layout.root)]  # type: ignore[attr-defined]

    @property
    def broker(self) -> tuple[str, int]:
        """RabbitMQ's address and AMQP port, as this machine reaches it."""
        return self.layout.address, broker.AMQP_PORT    # type: ignore[attr-defined]

    def rabbitmqctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl ARGS`` on the controller, against its broker."""
        return self.run(["rabbitmqctl", *args])    # type: ignore[attr-defined]


class _LogFileAndSqlite:
    """What the kinds with an API log file and an SQLite database share."""

    #: the cluster feature's common tree, which deploy sends every kind
    feature_tree = "cinder_patch/cinder"
    #: the release tree deploy lays over it for this kind's Cinder (29.0.0 here) ...
    release_tree = "cinder_patch/releases/29/cinder"
    #: ... and its migration, relative to the package
    feature_migration = "db/migrations/versions/48d74fa840ed_add_managed_clusters.py"

    @property
    def log_source(self) -> str:
        return self.log_file

    def empty_database(self) -> None:
        """The controller's database, as ``cinder-manage db sync`` finds a new one: empty."""
        self.host_path(self.database_path).unlink()
        self.services_stale = True   # type: ignore[attr-defined]


class SupervisordController(_LogFileAndSqlite, _Services):
    """The supervisord sandbox: cinder-api in a venv, noauth, files on this machine."""

    kind = "supervisord"
    release = "29.0.0"          # the Cinder it runs
    migrations = "alembic"
    service_manager = "supervisord"
    # what db-sync reports for a database no migration has touched
    empty_revision = "empty"
    service = "cinder-api"
    running_state = "RUNNING"
    stopped_state = "STOPPED"
    noauth = True
    app_server = "cinder-api"
    fast_restart = True
    service_user = "cinder"
    services = {binary: binary for binary in ("cinder-scheduler", "cinder-volume",
                                              "cinder-backup")}

    def __init__(self, layout: SandboxLayout) -> None:
        self.layout = layout

    def sandbox_args(self) -> list[str]:
        return ["--kind", self.kind, "--root", str(self.layout.root), "--ssh-port",
                str(self.layout.ssh_port), "--api-port", str(self.layout.api_port)]

    @property
    def broker(self) -> tuple[str, int]:
        port = self.layout.broker.amqp_port
        assert port, "the sandbox has no broker"
        return "127.0.0.1", port

    def rabbitmqctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.layout.broker.rabbitmqctl(*args))

    def service_user_of(self, binary: str) -> str:
        """The user the process of ``binary``'s program runs as."""
        out = self._ctl("pid", self.services[binary]).stdout.strip()
        assert out.isdigit() and int(out) > 0, f"{binary} does not run: {out}"
        return self.run(["ps", "-o", "user=", "-p", out]).stdout.strip()

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
        return subprocess.run(argv, capture_output=True, text=True,
                              errors="replace")

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["supervisorctl", "-c", str(self.layout.supervisor_conf), *args],
                              capture_output=True, text=True,
                              errors="replace")

    def service_pid(self) -> int | None:
        out = self._ctl("pid", "cinder-api").stdout.strip()
        return int(out) if out.isdigit() and int(out) > 0 else None

    def stop_service(self) -> None:
        self._ctl("stop", "cinder-api")

    def restart_service(self) -> None:
        self._ctl("restart", "cinder-api")

    def newest_migration(self) -> str:
        """The alembic head of the controller's migrations."""
        return _alembic_head(self)

    def api(self, member: bool = False) -> ApiAccess:
        """URL, project and token for the admin (noauth: everyone is)."""
        project = "c1a55e7"
        return ApiAccess(self.api_url.rstrip("/"), project, f"admin:{project}")


class RdoController(_LogFileAndSqlite, _Services):
    """The rdo container: systemd, the system site-packages, Keystone."""

    kind = "rdo"
    release = "29.0.0"          # the Cinder it runs
    migrations = "alembic"
    service_manager = "systemd"
    empty_revision = "empty"
    service = UNIT
    running_state = "active (running)"
    stopped_state = "inactive (dead)"
    noauth = False
    app_server = "cinder-api"
    fast_restart = True
    service_user = "cinder"
    services = dict(zip(("cinder-scheduler", "cinder-volume", "cinder-backup"),
                        rdo.SERVICE_UNITS))

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
        return subprocess.run(self.instance.nsenter(argv), capture_output=True, text=True,
                              errors="replace")

    def service_pid(self) -> int | None:
        """The unit's MainPID, as the controller numbers it (what the tool reports)."""
        out = self.run(["systemctl", "show", "--property=MainPID", "--value", UNIT]).stdout
        return int(out.strip() or 0) or None

    def stop_service(self) -> None:
        self.run(["systemctl", "stop", UNIT])

    def restart_service(self) -> None:
        self.run(["systemctl", "restart", UNIT])

    def service_user_of(self, binary: str) -> str:
        """The user the main process of ``binary``'s unit runs as (the controller's names)."""
        unit = self.services[binary]
        pid = self.run(["systemctl", "show", "--property=MainPID", "--value", unit]).stdout
        assert pid.strip() not in ("", "0"), f"{unit} does not run"
        return self.run(["ps", "-o", "user=", "-p", pid.strip()]).stdout.strip()

    def newest_migration(self) -> str:
        """The alembic head of the controller's migrations."""
        return _alembic_head(self)

    def api(self, member: bool = False) -> ApiAccess:
        """A Keystone token of the admin (or of ``demo``, a member) and the catalog's endpoint."""
        return cloud_access(CLOUD_MEMBER if member else CLOUD_ADMIN, self.layout.clouds_file)


class LegacyController(RdoController):
    """The legacy container: systemd, Python 2.7, Cinder Train (sqlalchemy-migrate), noauth."""

    kind = "legacy"
    release = CINDER_RELEASE   # Train
    migrations = "sqlalchemy-migrate"
    release_tree = "cinder_patch/releases/train/cinder"   # Cinder 15.6.0
    feature_migration = "db/sqlalchemy/migrate_repo/versions/133_add_managed_clusters.py"
    # Train's cinder-manage puts an empty database under version control at
    # its INIT_VERSION (the scripts start at 123) and reports that.
    empty_revision = "122"
    noauth = True
    python = "/usr/bin/python2"
    services = dict(zip(("cinder-scheduler", "cinder-volume", "cinder-backup"),
                        legacy.SERVICE_UNITS))
    cinder_path = "/usr/lib/python2.7/site-packages/cinder"
    migrate_repo = cinder_path + "/db/sqlalchemy/migrate_repo/versions"

    def __init__(self, layout) -> None:  # a LegacyLayout
        self.layout = layout
        self.instance = layout.instance

    def newest_migration(self) -> str:
        """The number of the newest migrate script on the controller."""
        names = self.host_path(self.migrate_repo).glob("[0-9]*_*.py")
        return str(max(int(path.name.split("_", 1)[0]) for path in names))

    def api(self, member: bool = False) -> ApiAccess:
        """noauth: the token names the user and project."""
        project = "c1a55e7"
        return ApiAccess(self.api_url.rstrip("/"), project, f"admin:{project}")


class DevstackController(RdoController):
    """The devstack container: a git checkout installed -e in a venv, uWSGI, MariaDB, Keystone.

    Its API logs to journald only (``log_source``) and its database is
    MariaDB (``empty_database`` drops and creates it).
    """

    kind = "devstack"
    service = DEVSTACK_UNIT
    app_server = "uwsgi"
    fast_restart = False       # refused under uWSGI (deploy/controller/fastrestart.py)
    service_user = "stack"
    # uWSGI ends with its own exit code 30 on the unit's KillSignal (SIGQUIT), which
    # DevStack's unit does not list as a success: a stopped c-api reads "failed"
    stopped_state = "failed (failed)"
    python = "/opt/stack/data/venv/bin/python3"
    services = dict(zip(("cinder-scheduler", "cinder-volume", "cinder-backup"),
                        devstack.SERVICE_UNITS))
    log_file = ""
    database_path = None
    cinder_api = "/opt/stack/data/venv/bin/cinder-api"
    config_files = ["/etc/cinder/cinder.conf"]
    cinder_path = "/opt/stack/cinder/cinder"
    checkout = "/opt/stack/cinder"

    @property
    def log_source(self) -> str:
        return f"the journal of {self.service}"

    def empty_database(self) -> None:
        """Drop and create MariaDB's ``cinder`` database, as DevStack's stack.sh makes it."""
        result = self.run(["mariadb", "-e", "DROP DATABASE cinder; "
                           "CREATE DATABASE cinder CHARACTER SET utf8mb4"])
        assert result.returncode == 0, result.stderr
        self.services_stale = True

    def service_pid(self) -> int | None:
        out = self.run(["systemctl", "show", "--property=MainPID", "--value", self.service]).stdout
        return int(out.strip() or 0) or None

    def stop_service(self) -> None:
        self.run(["systemctl", "stop", self.service])

    def restart_service(self, settle: bool = True) -> None:
        """Restart the unit; with ``settle``, return once its worker has loaded Cinder.

        (A worker still loading ignores uWSGI's stop: whatever stops the unit
        next would wait uWSGI's 80 s mercy, unless it waits for the load as the tool does.)
        """
        self.run(["systemctl", "restart", self.service])
        if settle:
            wait_until(self._loaded, timeout=60, interval=0.2)

    def _loaded(self) -> bool:
        journal = self.run(["sh", "-c", 'journalctl --no-pager --output cat '
                            '_SYSTEMD_INVOCATION_ID="$(systemctl show --property InvocationID '
                            '--value "$1")"', "journal", self.service]).stdout
        return "WSGI app 0 (mountpoint=" in journal or "no app loaded" in journal

    def api(self, member: bool = False) -> ApiAccess:
        layout = self.layout
        return cloud_access(layout.cloud_member if member else layout.cloud_admin,
                            layout.clouds_file)


#: the kinds the shared specs run on (``controller``)
CONTROLLERS = (SupervisordController, RdoController, LegacyController, DevstackController)


def kinds(**properties: str) -> list[str]:
    """The kinds whose handle has every one of ``properties``, e.g. ``migrations="alembic"``."""
    return [cls.kind for cls in CONTROLLERS
            if all(getattr(cls, key) == value for key, value in properties.items())]


def _alembic_head(controller) -> str:
    result = controller.run(
        [controller.python, "-c", "import sys; from alembic.script import ScriptDirectory;"
         "print(*ScriptDirectory(sys.argv[1]).get_heads())",
         f"{controller.cinder_path}/db/migrations"])
    (head,) = result.stdout.split()
    return head
