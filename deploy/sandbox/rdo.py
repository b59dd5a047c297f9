"""The ``rdo`` sandbox controller: Cinder as RDO lays it out, under a real systemd.

A Debian 12 tree (``nspawn``) with cinder 29.0.0 and keystone 30.0.0 in
the **system** Python's site-packages (pinned in ``rdo-requirements.txt``)
and RDO's layout:

* ``/usr/bin/cinder-api``, ``/usr/bin/cinder-manage``;
* ``/usr/share/cinder/cinder-dist.conf`` + ``/etc/cinder/cinder.conf``
  (``root:cinder``, 640), ``/var/log/cinder/api.log``, ``/var/lib/cinder``
  (SQLite), the ``cinder`` service user;
* the unit ``openstack-cinder-api.service`` as RDO ships it, and Keystone
  (fernet tokens, SQLite) under gunicorn as ``openstack-keystone.service``;
  cinder-api uses ``auth_strategy = keystone``;
* ``openstack-cinder-scheduler``, ``-volume`` and ``-backup.service`` as RDO
  ships them (user ``cinder``, logs ``/var/log/cinder/<service>.log``), the
  volume service on the stand-in backend and backups to
  ``/var/lib/cinder/backup`` (:mod:`deploy.sandbox.services`);
* Debian's ``rabbitmq-server.service`` as the broker
  (:mod:`deploy.sandbox.broker`), with a user ``cinder`` and a password of
  the instance's own.

Each ``up`` boots a fresh overlay in its own network namespace, bootstraps
Keystone (admin; project and user ``demo`` with role ``member``; the
``cinder`` service user; a ``block-storage`` endpoint) and writes into its
root ``hosts.yaml`` (only what a user writes for a real RDO controller:
address, identity_file, known_hosts, cloud) and ``clouds.yaml`` (clouds
``rdo-admin`` and ``rdo-member``).
"""
from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import yaml

from deploy.base import output
from deploy.base.errors import SandboxError
from deploy.sandbox import broker, nspawn, services
from deploy.sandbox.common import api_answers, port_open, wait, write_file
from deploy.sandbox.nspawn import chown_in_tree, run_in_tree, system_mounts
from deploy.transport.commands import as_user, run_local

DEFAULT_ROOT = Path("/opt/cinder-devloop/rdo")
REQUIREMENTS = Path(__file__).with_name("rdo-requirements.txt")
PYTHON_SITE = "usr/local/lib/python3.11/dist-packages"
UNIT = "openstack-cinder-api.service"
KEYSTONE_UNIT = "openstack-keystone.service"
API_PORT = nspawn.API_PORT
KEYSTONE_PORT = 5000
CLOUD_ADMIN, CLOUD_MEMBER = "rdo-admin", "rdo-member"
DIST_CONF = "/usr/share/cinder/cinder-dist.conf"
CINDER_CONF = "/etc/cinder/cinder.conf"
BACKUP_DIR = "/var/lib/cinder/backup"
RABBITMQ_CONF = "/etc/rabbitmq/rabbitmq.conf"
RABBITMQ_ENV_CONF = "/etc/rabbitmq/rabbitmq-env.conf"

# As RDO's openstack-cinder package ships it.
CINDER_API_UNIT = """\
[Unit]
Description=OpenStack Cinder API Server
After=syslog.target network.target

[Service]
Type=simple
User=cinder
ExecStart=/usr/bin/cinder-api --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/api.log
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

# As RDO's openstack-cinder package ships them (rdo-packages/cinder-distgit).
SCHEDULER_UNIT_TEXT = """\
[Unit]
Description=OpenStack Cinder Scheduler Server
After=syslog.target network.target

[Service]
Type=simple
User=cinder
ExecStart=/usr/bin/cinder-scheduler --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/scheduler.log
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

VOLUME_UNIT_TEXT = """\
[Unit]
Description=OpenStack Cinder Volume Server
After=syslog.target network.target

[Service]
LimitNOFILE=131072
LimitNPROC=131072
Type=simple
User=cinder
Environment="MALLOC_ARENA_MAX=1"
Environment="MALLOC_MMAP_THRESHOLD_=131072"
Environment="MALLOC_TRIM_THRESHOLD_=262144"
ExecStart=/usr/bin/cinder-volume --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/volume.log
Restart=on-failure
KillMode=process

[Install]
WantedBy=multi-user.target
"""

BACKUP_UNIT_TEXT = """\
[Unit]
Description=OpenStack Cinder Backup Server
After=syslog.target network.target

[Service]
Type=simple
User=cinder
Environment="MALLOC_ARENA_MAX=1"
Environment="MALLOC_MMAP_THRESHOLD_=131072"
Environment="MALLOC_TRIM_THRESHOLD_=262144"
ExecStart=/usr/bin/cinder-backup --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/backup.log
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

#: the units beside the API's: name -> text
SERVICE_UNITS = {"openstack-cinder-scheduler.service": SCHEDULER_UNIT_TEXT,
                 "openstack-cinder-volume.service": VOLUME_UNIT_TEXT,
                 "openstack-cinder-backup.service": BACKUP_UNIT_TEXT}

# RDO serves Keystone from httpd; here gunicorn does, one worker.
KEYSTONE_SERVICE_UNIT = """\
[Unit]
Description=OpenStack Identity Service (Keystone under gunicorn)
After=syslog.target network.target

[Service]
Type=simple
User=keystone
Environment=OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf
ExecStart=/usr/local/bin/gunicorn --workers 1 --bind 0.0.0.0:5000 --no-control-socket \
--chdir /usr/share/keystone --access-logfile /var/log/keystone/access.log \
--error-logfile /var/log/keystone/keystone.log keystone_wsgi:application
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""

# keystone's config parser reads sys.argv: under gunicorn it would see
# gunicorn's own arguments and exit ("unrecognized arguments").
KEYSTONE_WSGI = """\
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
"""


def dist_conf_text(auth_strategy: str) -> str:
    """cinder-dist.conf as RDO ships it, with ``auth_strategy`` (the legacy kind's is noauth)."""
    return f"""\
# Distribution defaults, as RDO ships them in /usr/share/cinder/cinder-dist.conf.
[DEFAULT]
log_dir = /var/log/cinder
state_path = /var/lib/cinder
lock_path = /var/lib/cinder/tmp
rootwrap_config = /etc/cinder/rootwrap.conf
api_paste_config = /etc/cinder/api-paste.ini
auth_strategy = {auth_strategy}

[oslo_concurrency]
lock_path = /var/lib/cinder/tmp
"""


DIST_CONF_TEXT = dist_conf_text("keystone")

KEYSTONE_CONF_TEXT = """\
[database]
connection = sqlite:////var/lib/keystone/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = /etc/keystone/fernet-keys

[fernet_receipts]
key_repository = /etc/keystone/fernet-keys

[credential]
key_repository = /etc/keystone/credential-keys
"""

BUILD_VERSION = "rdo-tree-2"   # bump when the build steps below change


@dataclass(frozen=True, slots=True)
class RdoLayout(nspawn.ContainerLayout):
    """Where an rdo sandbox controller lives on this machine."""

    root: Path = DEFAULT_ROOT
    name: str = "rdo"
    #: what differs for a kind built on this one (devstack): its name, clouds, keystone-manage
    kind: ClassVar[str] = "rdo"
    cloud_admin: ClassVar[str] = CLOUD_ADMIN
    cloud_member: ClassVar[str] = CLOUD_MEMBER
    keystone_manage: ClassVar[str] = "keystone-manage"
    keystone_user: ClassVar[str] = "keystone"

    @property
    def clouds_file(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def secrets_file(self) -> Path:
        return self.root / "client" / "passwords.json"

    @property
    def auth_url(self) -> str:
        return f"http://{self.address}:{KEYSTONE_PORT}/v3"

    def controller_entry(self) -> dict[str, object]:
        """This controller as a ``controllers:`` entry of hosts.yaml.

        Only what a user writes for a real RDO controller; every other key
        keeps its default.
        """
        instance = self.instance
        return {"address": self.address, "identity_file": str(instance.identity_file),
                "known_hosts": str(instance.known_hosts), "cloud": self.cloud_admin}

    def passwords(self) -> dict[str, str]:
        """The admin, demo and cinder passwords of this instance.

        Raises:
            SandboxError: the controller was never brought up.
        """
        try:
            return dict(json.loads(self.secrets_file.read_text()))
        except (OSError, ValueError):
            raise SandboxError(f"sandbox: {self.root} has no {self.kind} controller "
                               f"(run sandbox.up --kind {self.kind})") from None


# --- building the tree ---------------------------------------------------------------

def build_tree(tree: Path) -> None:
    """Install cinder + keystone into ``tree``'s system Python and lay it out as RDO does."""
    output.detail("pip install cinder, keystone, gunicorn into the tree's system site-packages")
    # Debian's own python3 (the tree's interpreter): the pyenv one on PATH
    # would bake its paths into the scripts. --isolated: this machine's pip
    # config names local indexes; --ignore-installed: with --root, pip would
    # count this machine's packages as installed; --no-compile: compiled
    # here, the .pyc files would name host-side paths.
    run_local(["/usr/bin/python3", "-m", "pip", "install", "--quiet", "--isolated",
               "--disable-pip-version-check", "--root", str(tree), "--ignore-installed",
               "--no-warn-script-location", "--no-compile", "-r", str(REQUIREMENTS)],
              hint="pip needs PyPI (and Debian's python3-pip or ensurepip on this machine)")
    for script in ("cinder-api", "cinder-manage", "cinder-scheduler", "cinder-volume",
                   "cinder-backup", "keystone-manage"):
        shutil.copy2(tree / "usr/local/bin" / script, tree / "usr/bin" / script)
    for user, home in (("cinder", "/var/lib/cinder"), ("keystone", "/var/lib/keystone")):
        run_in_tree(tree, ["useradd", "--system", "--user-group", "--home-dir", home,
                           "--no-create-home", "--shell", "/usr/sbin/nologin", user])
    # the package's data files: api-paste.ini, rootwrap, resource_filters.json
    # (without the latter every list filter from a non-admin is a 400)
    shutil.copytree(tree / "usr/local/etc/cinder", tree / "etc/cinder", dirs_exist_ok=True)
    (tree / "etc/cinder").chmod(0o750)
    chown_in_tree(tree / "etc/cinder", tree, "root", "cinder")
    write_file(tree / DIST_CONF.lstrip("/"), DIST_CONF_TEXT, 0o640)
    chown_in_tree(tree / DIST_CONF.lstrip("/"), tree, "root", "cinder")
    write_file(tree / CINDER_CONF.lstrip("/"), _cinder_conf(None, "", ""), 0o640)
    chown_in_tree(tree / CINDER_CONF.lstrip("/"), tree, "root", "cinder")
    write_file(tree / RABBITMQ_ENV_CONF.lstrip("/"), broker.CONTAINER_ENV_CONF)
    for path, user, mode in (("var/lib/cinder", "cinder", 0o750),
                             ("var/lib/cinder/tmp", "cinder", 0o750),
                             (BACKUP_DIR.lstrip("/"), "cinder", 0o750),
                             ("var/log/cinder", "cinder", 0o750),
                             ("var/lib/keystone", "keystone", 0o750),
                             ("var/log/keystone", "keystone", 0o750),
                             ("etc/keystone", "keystone", 0o750)):
        (tree / path).mkdir(parents=True, exist_ok=True)
        (tree / path).chmod(mode)
        chown_in_tree(tree / path, tree, user)
    write_file(tree / "etc/keystone/keystone.conf", KEYSTONE_CONF_TEXT, 0o640)
    chown_in_tree(tree / "etc/keystone/keystone.conf", tree, "root", "keystone")
    write_file(tree / "usr/share/keystone/keystone_wsgi.py", KEYSTONE_WSGI)
    enable_units(tree, {UNIT: CINDER_API_UNIT, KEYSTONE_UNIT: KEYSTONE_SERVICE_UNIT,
                        **SERVICE_UNITS})
    output.detail("compile, sync both databases, make keystone's keys (inside the tree)")
    with system_mounts(tree):
        run_in_tree(tree, ["python3", "-m", "compileall", "-q", "-j2", "/" + PYTHON_SITE,
                           "/usr/share/keystone"])
        run_in_tree(tree, ["keystone-manage", "db_sync"], user="keystone",
                    hint="keystone-manage db_sync failed in the tree")
        for setup in ("fernet_setup", "credential_setup"):
            run_in_tree(tree, ["keystone-manage", setup, "--keystone-user", "keystone",
                               "--keystone-group", "keystone"])
        run_in_tree(tree, ["cinder-manage", "--config-file", DIST_CONF, "--config-file",
                           CINDER_CONF, "db", "sync"], user="cinder",
                    hint="cinder-manage db sync failed in the tree")
    for repo in ("fernet-keys", "credential-keys"):
        (tree / "etc/keystone" / repo).chmod(0o700)


def enable_units(tree: Path, units: dict[str, str]) -> None:
    """Write ``units`` (name: text) into the tree's /etc/systemd/system and enable them,
    with Debian's rabbitmq-server.service (the package enables it; this makes sure)."""
    directory = tree / "etc/systemd/system"
    wants = directory / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit, text in units.items():
        write_file(directory / unit, text)
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
    rabbitmq = wants / broker.UNIT
    if not rabbitmq.is_symlink():
        rabbitmq.symlink_to(f"/lib/systemd/system/{broker.UNIT}")


RECIPE = nspawn.TreeRecipe(
    name="rdo", build=build_tree, packages=("python3", "python3-venv", "rabbitmq-server"),
    inputs=(BUILD_VERSION, REQUIREMENTS.read_text(), CINDER_API_UNIT, KEYSTONE_SERVICE_UNIT,
            *SERVICE_UNITS.values(), KEYSTONE_WSGI, DIST_CONF_TEXT, KEYSTONE_CONF_TEXT,
            broker.CONTAINER_ENV_CONF, services.default_options("", ""),
            services.BACKEND_SECTION))


# --- one controller -------------------------------------------------------------------

def _cinder_conf(address: str | None, cinder_password: str, rabbitmq_password: str) -> str:
    """The site's /etc/cinder/cinder.conf (the broker and Keystone once ``address`` is known)."""
    url = broker.transport_url("cinder", rabbitmq_password, address or "localhost")
    text = f"""\
[DEFAULT]
auth_strategy = keystone
osapi_volume_listen = 0.0.0.0
osapi_volume_listen_port = {API_PORT}
osapi_volume_workers = 1
resource_query_filters_file = /etc/cinder/resource_filters.json
{services.default_options(url, BACKUP_DIR)}
[database]
connection = {services.sqlite_url("/var/lib/cinder/cinder.sqlite")}
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


def _configure(layout: RdoLayout) -> Callable[[nspawn.Instance, Path], None]:
    def configure(instance: nspawn.Instance, tree: Path) -> None:
        passwords = {user: secrets.token_urlsafe(12) for user in ("admin", "demo", "cinder")}
        passwords["rabbitmq"] = broker.new_password()
        layout.secrets_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(layout.secrets_file, json.dumps(passwords), 0o600)
        conf = tree / CINDER_CONF.lstrip("/")
        write_file(conf, _cinder_conf(instance.address, passwords["cinder"],
                                      passwords["rabbitmq"]), 0o640)
        chown_in_tree(conf, tree, "root", "cinder")
        write_broker_files(tree, "cinder", passwords["rabbitmq"])
    return configure


def write_broker_files(tree: Path, user: str, password: str) -> None:
    """The instance's broker user (/etc/rabbitmq/rabbitmq.conf, root:rabbitmq, 640) and
    Erlang cookie: Debian's package made one when the tree was built, which every
    instance booted from that tree would share."""
    conf = tree / RABBITMQ_CONF.lstrip("/")
    write_file(conf, broker.server_conf(user, password), 0o640)
    chown_in_tree(conf, tree, "root", "rabbitmq")
    cookie = tree / "var/lib/rabbitmq/.erlang.cookie"
    cookie.unlink(missing_ok=True)
    write_file(cookie, broker.new_cookie(), 0o400)
    chown_in_tree(cookie, tree, "rabbitmq")


def _after_boot(layout: RdoLayout) -> Callable[[nspawn.Instance], None]:
    def after_boot(instance: nspawn.Instance) -> None:
        passwords = layout.passwords()
        base = f"http://{instance.address}:{KEYSTONE_PORT}/v3/"
        output.detail("keystone-manage bootstrap (admin, identity endpoint)")
        # the password travels on stdin, never on a command line
        script = ("read -r OS_BOOTSTRAP_PASSWORD; export OS_BOOTSTRAP_PASSWORD; exec "
                  + shlex.join([layout.keystone_manage, "bootstrap", "--bootstrap-admin-url", base,
                                "--bootstrap-internal-url", base, "--bootstrap-public-url",
                                base, "--bootstrap-region-id", "RegionOne"]))
        argv = nspawn.ssh_argv(instance, as_user(layout.keystone_user, ["sh", "-c", script]))
        output.command("local", shlex.join(argv))
        proc = subprocess.run(argv, input=passwords["admin"] + "\n", capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise SandboxError(f"sandbox: keystone-manage bootstrap failed in {layout.name}: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        wait(lambda: api_answers(base), 60, f"keystone at {base}")
        try:
            _create_identities(layout, passwords)
        except Exception as exc:     # keystoneauth1's errors: one line, no traceback
            from keystoneauth1.exceptions import ClientException
            if not isinstance(exc, ClientException):
                raise
            raise SandboxError(f"sandbox: creating {layout.name}'s Keystone users failed: "
                               f"{str(exc).splitlines()[0]}") from None
        _write_client_files(layout)
        wait(lambda: api_answers(layout.api_url), 60, f"cinder-api at {layout.api_url}")
        wait_for_services(layout.name, layout.address, lambda: _admin_token(layout))
    return after_boot


def wait_for_services(name: str, address: str, token: Callable[[], tuple[str, str]]) -> None:
    """Wait for the broker, then for the scheduler, volume and backup ``up`` in the service list.

    ``token()`` gives an admin's (token, project).

    Raises:
        SandboxError: one of them did not come in time.
    """
    output.detail("RabbitMQ; cinder-scheduler, cinder-volume, cinder-backup up")
    wait(lambda: broker.amqp_server(address, broker.AMQP_PORT) is not None, 180,
         f"RabbitMQ at {address}:{broker.AMQP_PORT} in {name}")
    admin_token, project = token()
    services.wait_until_up(f"http://{address}:{API_PORT}", project, admin_token)


def _admin_token(layout: RdoLayout) -> tuple[str, str]:
    """A Keystone token of the admin and its project's id.

    Raises:
        SandboxError: Keystone refused or did not answer.
    """
    from keystoneauth1 import session as ks_session
    from keystoneauth1.exceptions import ClientException
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=layout.auth_url, username="admin",
                       password=layout.passwords()["admin"], project_name="admin",
                       user_domain_id="default", project_domain_id="default")
    sess = ks_session.Session(auth=auth)
    try:
        return str(sess.get_token()), str(sess.get_project_id())
    except ClientException as exc:
        raise SandboxError(f"sandbox: {layout.name}'s Keystone gave no admin token: "
                           f"{str(exc).splitlines()[0]}") from None


def service_lines(address: str, token: Callable[[], tuple[str, str]]) -> list[str]:
    """``sandbox.status``'s lines for the broker and Cinder's service list."""
    who = broker.amqp_server(address, broker.AMQP_PORT)
    lines = [f"broker       {who or 'not answering'} at amqp://{address}:{broker.AMQP_PORT}"]
    api = f"http://{address}:{API_PORT}"
    if not api_answers(api + "/"):
        return lines
    try:
        admin_token, project = token()
    except SandboxError as exc:
        return [*lines, f"services     unknown ({exc})"]
    return [*lines, services.status_line(api, project, admin_token)]


def _create_identities(layout: RdoLayout, passwords: dict[str, str]) -> None:
    """Project/user demo (member), project service, user cinder, the block-storage endpoints."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    output.detail("keystone: demo (member), cinder (service), block-storage endpoints")
    auth = v3.Password(auth_url=layout.auth_url, username="admin", password=passwords["admin"],
                       project_name="admin", user_domain_id="default",
                       project_domain_id="default")
    sess = ks_session.Session(auth=auth)

    def post(path: str, key: str, body: dict[str, object]) -> str:
        reply = sess.post(f"{layout.auth_url}/{path}", json={key: body},
                          endpoint_filter=None, raise_exc=True)
        return str(reply.json()[key]["id"])

    def role(name: str) -> str:
        reply = sess.get(f"{layout.auth_url}/roles?name={name}")
        return str(reply.json()["roles"][0]["id"])

    def grant(project: str, user: str, role_name: str) -> None:
        sess.put(f"{layout.auth_url}/projects/{project}/users/{user}/roles/{role(role_name)}")

    demo = post("projects", "project", {"name": "demo", "domain_id": "default"})
    service = post("projects", "project", {"name": "service", "domain_id": "default"})
    demo_user = post("users", "user", {"name": "demo", "password": passwords["demo"],
                                       "domain_id": "default", "default_project_id": demo})
    cinder = post("users", "user", {"name": "cinder", "password": passwords["cinder"],
                                    "domain_id": "default"})
    grant(demo, demo_user, "member")
    grant(service, cinder, "admin")
    grant(service, cinder, "service")
    volume = post("services", "service", {"name": "cinderv3", "type": "block-storage",
                                          "enabled": True})
    url = f"http://{layout.address}:{API_PORT}/v3/%(project_id)s"
    for interface in ("public", "internal", "admin"):
        post("endpoints", "endpoint", {"service_id": volume, "interface": interface,
                                       "url": url, "region_id": "RegionOne"})


def _write_client_files(layout: RdoLayout) -> None:
    passwords = layout.passwords()

    def cloud(user: str, project: str) -> dict[str, object]:
        return {"auth": {"auth_url": layout.auth_url, "username": user,
                         "password": passwords[user], "project_name": project,
                         "user_domain_name": "Default", "project_domain_name": "Default"},
                "region_name": "RegionOne", "identity_api_version": 3}

    write_file(layout.clouds_file, f"# written by invoke sandbox.up --kind {layout.kind}\n"
               + yaml.safe_dump({"clouds": {layout.cloud_admin: cloud("admin", "admin"),
                                            layout.cloud_member: cloud("demo", "demo")}},
                                sort_keys=False), 0o600)
    source = Path(__file__).resolve().parents[2] / "cinder_patch" / "cinder"
    write_file(layout.hosts_file, f"# written by invoke sandbox.up --kind {layout.kind}: only "
               f"what a real {layout.kind} controller needs\n" + yaml.safe_dump(
                   {"source": str(source), "controllers": {layout.name: layout.controller_entry()}},
                   sort_keys=False))


def kind(layout: RdoLayout) -> nspawn.ContainerKind:
    """The rdo kind of container, bound to ``layout``."""
    return nspawn.ContainerKind("rdo", RECIPE, _configure(layout), _after_boot(layout))


def up(layout: RdoLayout = RdoLayout()) -> None:
    """Boot a fresh rdo controller (building its tree once) and write hosts.yaml, clouds.yaml.

    Raises:
        SandboxError / CommandFailed: a part could not be built or started.
    """
    nspawn.up_controller(layout, kind(layout), "rdo controller (systemd-nspawn)", lambda: (
        f"API {layout.api_url}; Keystone {layout.auth_url}",
        f"DEVLOOP_INVENTORY={layout.hosts_file} OS_CLIENT_CONFIG_FILE={layout.clouds_file} "
        f"invoke deploy db-sync smoke"))


def down(layout: RdoLayout = RdoLayout(), purge: bool = False) -> None:
    """Power the controller off and remove its mount, cgroup and namespace.

    ``purge`` also removes its directory (keys, overlay, hosts.yaml).
    """
    nspawn.down_controller(layout, "rdo", purge)


def status_lines(layout: RdoLayout = RdoLayout()) -> list[str]:
    """One line per part: container, units (Cinder's, Keystone, RabbitMQ), API, Keystone,
    the broker, Cinder's service list."""
    keystone: nspawn.Probe = ("keystone", lambda: port_open(KEYSTONE_PORT, layout.address),
                              lambda: layout.auth_url)
    lines = nspawn.status_lines(layout, (UNIT, *SERVICE_UNITS, broker.UNIT, KEYSTONE_UNIT),
                                (keystone,))
    if layout.instance.pid():
        lines += service_lines(layout.address, lambda: _admin_token(layout))
    return lines
