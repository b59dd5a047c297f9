"""The ``devstack`` sandbox controller: Cinder as DevStack lays it out, under a real systemd.

The controller most people who change Cinder run. A Debian 12 tree
(``nspawn``) with what DevStack's ``stack.sh`` leaves behind for Cinder
29.0.0:

* the user ``stack`` (home ``/opt/stack``);
* ``/opt/stack/cinder``: a clone-like source tree (Cinder's sdist, with a git
  repository initialised in it and everything committed, so "uncommitted
  changes" on the controller mean something), installed ``pip install -e``
  into the venv ``/opt/stack/data/venv`` (made with the tree's own
  ``/usr/bin/python3``; its packages pinned in ``devstack-requirements.txt``);
* ``devstack@c-api.service``: uWSGI (``pyuwsgi``) with DevStack's unit and
  ``/etc/cinder/cinder-api-uwsgi.ini`` (``module =
  cinder.wsgi.api:application``), serving on the container's address:8776
  with ``http-socket`` (DevStack puts Apache in front: skipped here);
* ``/etc/cinder/cinder.conf`` (owned by ``stack``), logs to journald;
* ``devstack@c-sch``, ``devstack@c-vol`` and ``devstack@c-bak``: the venv's
  ``cinder-scheduler``, ``cinder-volume`` and ``cinder-backup`` as plain
  processes, in units as ``lib/cinder``'s ``run_process`` writes them
  (``functions-common``'s ``write_user_unit_file``), on the stand-in
  backend (DevStack's ``fake`` backend's driver) with POSIX backups
  (:mod:`deploy.sandbox.services`);
* RabbitMQ (Debian's ``rabbitmq-server.service``) with DevStack's user
  ``stackrabbit``, ``transport_url = rabbit://stackrabbit:…@ADDRESS:5672/``;
* MariaDB (Debian's ``mariadb-server``): database ``cinder``, PyMySQL;
* Keystone 30.0.0 in the same venv as ``devstack@keystone.service``
  (gunicorn, SQLite: the rdo kind's recipe), bootstrapped on each boot.

Differences from a real DevStack, on purpose: no Apache, one uWSGI worker
(DevStack starts ``API_WORKERS``), Keystone on SQLite under gunicorn.

The hosts.yaml ``up`` writes holds what a user writes for a DevStack
host: address, key, known_hosts, cloud, and ``layout: devstack``.
"""
from __future__ import annotations

import configparser
import json
import secrets
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterator

from deploy.base import output
from deploy.base.errors import SandboxError
from deploy.sandbox import broker, nspawn, rdo, services
from deploy.sandbox.common import end_process, port_open, wait, write_file
from deploy.sandbox.nspawn import chown_in_tree, run_in_tree, system_mounts
from deploy.transport.commands import run_local

DEFAULT_ROOT = Path("/opt/cinder-devloop/devstack")
REQUIREMENTS = Path(__file__).with_name("devstack-requirements.txt")
CINDER_RELEASE = "29.0.0"
STACK = "/opt/stack"
CHECKOUT = "/opt/stack/cinder"
VENV = "/opt/stack/data/venv"
SITE = VENV + "/lib/python3.11/site-packages"
UNIT = "devstack@c-api.service"
KEYSTONE_UNIT = "devstack@keystone.service"
UWSGI_INI = "/etc/cinder/cinder-api-uwsgi.ini"
CINDER_CONF = "/etc/cinder/cinder.conf"
API_PORT = nspawn.API_PORT
KEYSTONE_PORT = rdo.KEYSTONE_PORT
CLOUD_ADMIN, CLOUD_MEMBER = "devstack-admin", "devstack"   # DevStack's clouds.yaml names
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"
BACKUP_DIR = "/opt/stack/data/cinder/backup"
RABBIT_USERID = "stackrabbit"      # DevStack's lib/rpc_backend default
# stack.sh's PATH (the global venv first), as write_user_unit_file records it
STACK_PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# lib/cinder's start_cinder, for c-bak and c-vol
MALLOC_TUNING = "MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=262144"

# As DevStack's functions-common (write_uwsgi_user_unit_file) writes it.
CINDER_API_UNIT = f"""\
[Unit]
Description = Devstack {UNIT}
After = mariadb.service {KEYSTONE_UNIT}

[Service]
ExecReload = /bin/kill -HUP $MAINPID
TimeoutStopSec = 300
KillMode = process
ExecStart = {VENV}/bin/uwsgi --procname-prefix cinder-api --ini {UWSGI_INI}
User = stack
Type = notify
NotifyAccess = all
Restart = always
KillSignal = SIGQUIT

[Install]
WantedBy = multi-user.target
"""

# As DevStack's lib/cinder + write_local_uwsgi_http_config write it; no
# "plugins = python3": pyuwsgi has the python plugin built in (and would
# print that it cannot load one), and one worker where DevStack starts
# API_WORKERS of them.
UWSGI_INI_TEXT = f"""\
[uwsgi]
http-socket = 0.0.0.0:{API_PORT}
lazy-apps = true
add-header = Connection: close
buffer-size = 65535
hook-master-start = unix_signal:15 gracefully_kill_them_all
thunder-lock = true
enable-threads = true
worker-reload-mercy = 80
exit-on-reload = false
die-on-term = true
master = true
processes = 1
module = cinder.wsgi.api:application
"""



def user_unit(name: str, command: str, env_vars: str = "") -> str:
    """A unit as DevStack's ``write_user_unit_file`` leaves it.

    That function writes each option with ``iniset``, which inserts a new
    option right under its section's header: the options come out in the
    reverse order of the calls, and a second ``Environment`` (the
    service's own variables) replaces stack.sh's ``PATH``. One line is
    the sandbox's own: ``After`` (stack.sh starts the services after the
    database and the broker; at boot, systemd is told so).
    """
    environment = env_vars or f'"PATH={STACK_PATH}"'
    return f"""
[Unit]
Description = Devstack {name}
After = mariadb.service {broker.UNIT}

[Service]
ExecReload = /usr/bin/kill -HUP $MAINPID
TimeoutStopSec = 300
KillMode = process
ExecStart = {command}
User = stack
Environment = {environment}

[Install]
WantedBy = multi-user.target
"""


#: lib/cinder's start_cinder: run_process c-sch, c-bak and c-vol (plain processes)
SERVICE_UNITS = {
    "devstack@c-sch.service": user_unit(
        "devstack@c-sch.service", f"{VENV}/bin/cinder-scheduler --config-file {CINDER_CONF}"),
    "devstack@c-vol.service": user_unit(
        "devstack@c-vol.service", f"{VENV}/bin/cinder-volume --config-file {CINDER_CONF}",
        MALLOC_TUNING),
    "devstack@c-bak.service": user_unit(
        "devstack@c-bak.service", f"{VENV}/bin/cinder-backup --config-file {CINDER_CONF}",
        MALLOC_TUNING),
}

KEYSTONE_SERVICE_UNIT = f"""\
[Unit]
Description = Devstack {KEYSTONE_UNIT} (Keystone under gunicorn)
After = network.target

[Service]
User = stack
Environment = OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf
ExecStart = {VENV}/bin/gunicorn --workers 1 --bind 0.0.0.0:{KEYSTONE_PORT} \
--no-control-socket --chdir /opt/stack/data/keystone keystone_wsgi:application
Restart = always

[Install]
WantedBy = multi-user.target
"""

KEYSTONE_CONF_TEXT = """\
[database]
connection = sqlite:////opt/stack/data/keystone/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = /etc/keystone/fernet-keys

[fernet_receipts]
key_repository = /etc/keystone/fernet-keys

[credential]
key_repository = /etc/keystone/credential-keys
"""

# What a clone has and a git status should not show.
GITIGNORE = "*.egg*\n*.py[co]\n__pycache__/\n.tox/\nbuild/\n"

BUILD_VERSION = "devstack-tree-3"   # bump when the build steps below change


@dataclass(frozen=True, slots=True)
class DevstackLayout(rdo.RdoLayout):
    """Where a devstack sandbox controller lives on this machine."""

    root: Path = DEFAULT_ROOT
    name: str = "devstack"
    kind: ClassVar[str] = "devstack"
    cloud_admin: ClassVar[str] = CLOUD_ADMIN
    cloud_member: ClassVar[str] = CLOUD_MEMBER
    keystone_manage: ClassVar[str] = f"{VENV}/bin/keystone-manage"
    keystone_user: ClassVar[str] = "stack"

    def controller_entry(self) -> dict[str, object]:
        """This controller as a ``controllers:`` entry: only what a user writes for DevStack."""
        instance = self.instance
        return {"address": self.address,
                "identity_file": str(instance.identity_file),
                "known_hosts": str(instance.known_hosts), "cloud": CLOUD_ADMIN}


# --- building the tree ---------------------------------------------------------------

def _pip_host(*args: str) -> None:
    # Debian's python3 is the tree's (same release): wheels fit. --isolated:
    # this machine's pip config names local indexes.
    run_local(["/usr/bin/python3", "-m", "pip", "--isolated", "--disable-pip-version-check",
               "--quiet", *args], hint="pip needs PyPI (and Debian's python3-pip here)")


def _checkout(tree: Path) -> None:
    """Cinder's sdist at /opt/stack/cinder, as a git repository with all of it committed."""
    with tempfile.TemporaryDirectory(prefix="devloop-sdist-") as work:
        # --no-binary cinder, not :all:: pip builds the sdist's metadata, and
        # its build requirements (pbr, setuptools) may come as wheels
        _pip_host("download", "--no-binary", "cinder", "--no-deps", "-d", work,
                  f"cinder=={CINDER_RELEASE}")
        (sdist,) = Path(work).glob("cinder-*.tar.gz")
        run_local(["tar", "-xzf", str(sdist), "-C", work])
        unpacked = Path(work) / f"cinder-{CINDER_RELEASE}"
        # a clone has neither: pbr makes them at install
        shutil.rmtree(unpacked / "cinder.egg-info", ignore_errors=True)
        (unpacked / "PKG-INFO").unlink(missing_ok=True)
        (unpacked / ".gitignore").write_text(GITIGNORE)
        shutil.copytree(unpacked, tree / CHECKOUT.lstrip("/"), symlinks=True)
    run_local(["chown", "-R", "--reference", str(tree / STACK.lstrip("/")),
               str(tree / CHECKOUT.lstrip("/"))])
    git = ["git", "-C", CHECKOUT, "-c", "user.name=stack", "-c", "user.email=stack@localhost"]
    run_in_tree(tree, ["git", "init", "--quiet", "--initial-branch", "master", CHECKOUT],
                user="stack")
    run_in_tree(tree, [*git, "add", "--all"], user="stack")
    run_in_tree(tree, [*git, "commit", "--quiet", "-m", f"Cinder {CINDER_RELEASE} (sdist)"],
                user="stack")


def _venv(tree: Path) -> None:
    """The venv at its final path (venvs do not move), filled from wheels downloaded here."""
    (tree / "opt/stack/data").mkdir(parents=True, exist_ok=True)
    chown_in_tree(tree / "opt/stack/data", tree, "stack")
    run_in_tree(tree, ["python3", "-m", "venv", VENV], user="stack")
    wheels = tree / "tmp/devloop-wheels"
    wheels.mkdir(parents=True)
    _pip_host("download", "--only-binary", ":all:", "-d", str(wheels), "-r", str(REQUIREMENTS))
    shutil.copy2(REQUIREMENTS, wheels / "requirements.txt")
    run_local(["chmod", "-R", "a+rX", str(wheels)])
    pip = [f"{VENV}/bin/pip", "--disable-pip-version-check", "install", "--quiet",
           "--no-index", "--find-links", "/tmp/devloop-wheels", "--no-compile"]
    run_in_tree(tree, [*pip, "-r", "/tmp/devloop-wheels/requirements.txt"], user="stack",
                hint="pip install into the devstack venv failed")
    # as stack.sh's setup_develop: pip install -e of the checkout (pbr's
    # version from the release: the fresh repository has no tags)
    run_in_tree(tree, ["env", f"PBR_VERSION={CINDER_RELEASE}", *pip, "--no-deps",
                       "--no-build-isolation", "-e", CHECKOUT], user="stack",
                hint="pip install -e /opt/stack/cinder failed")
    shutil.rmtree(wheels)


@contextmanager
def _mariadb(tree: Path) -> Iterator[None]:
    """mariadbd running inside ``tree`` (socket only) while build steps use it."""
    run_dir = tree / "run/mysqld"
    run_dir.mkdir(parents=True, exist_ok=True)
    chown_in_tree(run_dir, tree, "mysql")
    if not (tree / "var/lib/mysql/mysql").is_dir():
        run_in_tree(tree, ["mariadb-install-db", "--user=mysql", "--skip-test-db"])
    proc = subprocess.Popen(["chroot", str(tree), "mariadbd", "--user=mysql",
                             "--skip-networking", f"--socket={MYSQL_SOCKET}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(lambda: (tree / MYSQL_SOCKET.lstrip("/")).exists() or proc.poll() is not None,
             60, "mariadbd in the devstack tree")
        if proc.poll() is not None:
            raise SandboxError("sandbox: mariadbd did not start in the devstack tree")
        yield
    finally:
        subprocess.run(["chroot", str(tree), "mariadb-admin", f"--socket={MYSQL_SOCKET}",
                        "shutdown"], capture_output=True)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            end_process(proc.pid)


def _cinder_conf(db_password: str, address: str | None = None,
                 cinder_password: str = "", rabbit_password: str = "") -> str:
    """/etc/cinder/cinder.conf as stack.sh writes it (the broker and Keystone once
    ``address`` is known)."""
    url = broker.transport_url(RABBIT_USERID, rabbit_password or "unset", address or "localhost")
    text = f"""\
[DEFAULT]
auth_strategy = keystone
{services.default_options(url, BACKUP_DIR)}state_path = /opt/stack/data/cinder
rootwrap_config = /etc/cinder/rootwrap.conf
api_paste_config = /etc/cinder/api-paste.ini
resource_query_filters_file = /etc/cinder/resource_filters.json

[oslo_concurrency]
lock_path = /opt/stack/data/cinder

[database]
connection = mysql+pymysql://cinder:{db_password}@127.0.0.1/cinder?charset=utf8
{services.BACKEND_SECTION}"""
    if address:
        text += f"""
[keystone_authtoken]
www_authenticate_uri = http://{address}:{KEYSTONE_PORT}/v3
auth_url = http://127.0.0.1:{KEYSTONE_PORT}/v3
auth_type = password
project_name = service
project_domain_name = Default
username = cinder
user_domain_name = Default
password = {cinder_password}
"""
    return text


def build_tree(tree: Path) -> None:
    """Lay ``tree`` out as stack.sh leaves a Cinder + Keystone DevStack host."""
    output.detail("user stack; Cinder's sdist as the git checkout /opt/stack/cinder")
    run_in_tree(tree, ["useradd", "--user-group", "--create-home", "--home-dir", STACK,
                       "--shell", "/bin/bash", "stack"])
    (tree / STACK.lstrip("/")).chmod(0o755)
    _checkout(tree)
    output.detail("venv /opt/stack/data/venv: keystone, uWSGI, PyMySQL; cinder -e")
    _venv(tree)
    etc = tree / "etc/cinder"
    etc.mkdir(parents=True, exist_ok=True)
    source_etc = tree / CHECKOUT.lstrip("/") / "etc/cinder"
    for name in ("api-paste.ini", "resource_filters.json", "rootwrap.conf"):
        shutil.copy2(source_etc / name, etc / name)
    shutil.copytree(source_etc / "rootwrap.d", etc / "rootwrap.d")
    db_password = secrets.token_urlsafe(12)
    write_file(etc / "cinder.conf", _cinder_conf(db_password), 0o640)
    write_file(etc / "cinder-api-uwsgi.ini", UWSGI_INI_TEXT)
    run_local(["chown", "-R", "--reference", str(tree / STACK.lstrip("/")), str(etc)])
    write_file(tree / rdo.RABBITMQ_ENV_CONF.lstrip("/"), broker.CONTAINER_ENV_CONF)
    for path in ("opt/stack/data/cinder", BACKUP_DIR.lstrip("/"), "opt/stack/data/keystone",
                 "etc/keystone"):
        (tree / path).mkdir(parents=True, exist_ok=True)
        chown_in_tree(tree / path, tree, "stack")
    write_file(tree / "etc/keystone/keystone.conf", KEYSTONE_CONF_TEXT, 0o640)
    chown_in_tree(tree / "etc/keystone/keystone.conf", tree, "stack")
    write_file(tree / "opt/stack/data/keystone/keystone_wsgi.py", rdo.KEYSTONE_WSGI)
    rdo.enable_units(tree, {UNIT: CINDER_API_UNIT, KEYSTONE_UNIT: KEYSTONE_SERVICE_UNIT,
                            **SERVICE_UNITS})
    output.detail("compile; MariaDB database cinder; both databases synced (inside the tree)")
    with system_mounts(tree):
        # as root (-j2 needs /dev/shm, which only root may use here), then given to stack
        run_in_tree(tree, [f"{VENV}/bin/python", "-m", "compileall", "-q", "-j2", SITE,
                           CHECKOUT + "/cinder"])
        run_local(["chown", "-R", "--reference", str(tree / STACK.lstrip("/")),
                   str(tree / STACK.lstrip("/"))])
        keystone_manage = f"{VENV}/bin/keystone-manage"
        run_in_tree(tree, ["env", "OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf",
                           keystone_manage, "db_sync"], user="stack",
                    hint="keystone-manage db_sync failed in the tree")
        for setup in ("fernet_setup", "credential_setup"):
            run_in_tree(tree, [keystone_manage, setup, "--keystone-user", "stack",
                               "--keystone-group", "stack"])
        with _mariadb(tree):
            sql = (f"CREATE DATABASE cinder CHARACTER SET utf8mb4;"
                   f"CREATE USER 'cinder'@'localhost' IDENTIFIED BY '{db_password}';"
                   f"CREATE USER 'cinder'@'127.0.0.1' IDENTIFIED BY '{db_password}';"
                   f"GRANT ALL ON cinder.* TO 'cinder'@'localhost';"
                   f"GRANT ALL ON cinder.* TO 'cinder'@'127.0.0.1';")
            run_in_tree(tree, ["mariadb", f"--socket={MYSQL_SOCKET}", "-e", sql])
            # no network here: the socket, through a config file read after cinder.conf
            socket_conf = tree / "tmp/devloop-db.conf"
            write_file(socket_conf, f"[database]\nconnection = mysql+pymysql://cinder:"
                       f"{db_password}@localhost/cinder?unix_socket={MYSQL_SOCKET}"
                       f"&charset=utf8\n", 0o644)
            run_in_tree(tree, [f"{VENV}/bin/cinder-manage", "--config-file", CINDER_CONF,
                               "--config-file", "/tmp/devloop-db.conf", "db", "sync"],
                        user="stack", hint="cinder-manage db sync failed in the tree")
            socket_conf.unlink()
    for repo in ("fernet-keys", "credential-keys"):
        (tree / "etc/keystone" / repo).chmod(0o700)


RECIPE = nspawn.TreeRecipe(
    name="devstack", build=build_tree,
    packages=("python3", "python3-venv", "git", "mariadb-server", "rabbitmq-server"),
    inputs=(BUILD_VERSION, CINDER_RELEASE, REQUIREMENTS.read_text(), CINDER_API_UNIT,
            *SERVICE_UNITS.values(), UWSGI_INI_TEXT, KEYSTONE_SERVICE_UNIT, rdo.KEYSTONE_WSGI,
            KEYSTONE_CONF_TEXT, GITIGNORE, _cinder_conf("x"), broker.CONTAINER_ENV_CONF))


# --- one controller -------------------------------------------------------------------

def _configure(layout: DevstackLayout) -> Callable[[nspawn.Instance, Path], None]:
    def configure(instance: nspawn.Instance, tree: Path) -> None:
        passwords = {user: secrets.token_urlsafe(12) for user in ("admin", "demo", "cinder")}
        passwords["rabbitmq"] = broker.new_password()
        layout.secrets_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(layout.secrets_file, json.dumps(passwords), 0o600)
        conf = tree / CINDER_CONF.lstrip("/")
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(conf)
        db_password = parser["database"]["connection"].split(":", 2)[2].split("@", 1)[0]
        write_file(conf, _cinder_conf(db_password, instance.address, passwords["cinder"],
                                      passwords["rabbitmq"]), 0o640)
        chown_in_tree(conf, tree, "stack")
        rdo.write_broker_files(tree, RABBIT_USERID, passwords["rabbitmq"])
    return configure


def kind(layout: DevstackLayout) -> nspawn.ContainerKind:
    """The devstack kind of container, bound to ``layout``."""
    return nspawn.ContainerKind("devstack", RECIPE, _configure(layout), rdo._after_boot(layout))


def up(layout: DevstackLayout = DevstackLayout()) -> None:
    """Boot a fresh devstack controller (building its tree once); write hosts.yaml, clouds.yaml.

    Raises:
        SandboxError / CommandFailed: a part could not be built or started.
    """
    nspawn.up_controller(layout, kind(layout), "devstack controller (systemd-nspawn)", lambda: (
        f"API {layout.api_url} (uWSGI); Keystone {layout.auth_url}",
        f"DEVLOOP_INVENTORY={layout.hosts_file} OS_CLIENT_CONFIG_FILE={layout.clouds_file} "
        f"invoke deploy db-sync status smoke"))


def down(layout: DevstackLayout = DevstackLayout(), purge: bool = False) -> None:
    """Power the controller off and remove its mount, cgroup and namespace.

    ``purge`` also removes its directory (keys, overlay, hosts.yaml).
    """
    nspawn.down_controller(layout, "devstack", purge)


def status_lines(layout: DevstackLayout = DevstackLayout()) -> list[str]:
    """One line per part: container, units (uWSGI, c-sch, c-vol, c-bak, Keystone, MariaDB,
    RabbitMQ), API, Keystone, the broker, Cinder's service list."""
    keystone: nspawn.Probe = ("keystone", lambda: port_open(KEYSTONE_PORT, layout.address),
                              lambda: layout.auth_url)
    lines = nspawn.status_lines(layout, (UNIT, *SERVICE_UNITS, KEYSTONE_UNIT, "mariadb.service",
                                         broker.UNIT), (keystone,))
    if layout.instance.pid():
        lines += rdo.service_lines(layout.address, lambda: rdo._admin_token(layout))
    return lines
