"""The ``legacy`` sandbox controller: Cinder Train on Python 2.7, under a real systemd.

The controller the project's original notes describe: Cinder 15.6.0 in
``/usr/lib/python2.7/site-packages/cinder``, started by the unit
``openstack-cinder-api.service`` as ``/usr/bin/python2 /usr/bin/cinder-api
--config-file /usr/share/cinder/cinder-dist.conf --config-file
/etc/cinder/cinder.conf --logfile /var/log/cinder/api.log``, an SQLite
database managed by sqlalchemy-migrate, ``auth_strategy = noauth``; beside it
``openstack-cinder-scheduler``, ``-volume`` and ``-backup.service`` as RDO
shipped them for Train, on Debian's ``rabbitmq-server`` (Train's
oslo.messaging 10.2.4 / kombu 4.6.6 / amqp 2.5.2 speak AMQP 0-9-1 to
RabbitMQ 3.10), the stand-in volume backend and POSIX backups
(:mod:`deploy.sandbox.services`).

The tree (built once, cached by :mod:`deploy.sandbox.nspawn`) gets this
machine's Python 2.7 (:func:`deploy.sandbox.train.find_python27`) at
prefix ``/usr`` — ``/usr/bin/python2.7`` (+ ``python2``), its shared
library in ``/usr/lib``, the standard library in ``/usr/lib/python2.7`` —
and Train's packages, from the cached wheelhouse of
:mod:`deploy.sandbox.train` through a virtualenv, copied into
``/usr/lib/python2.7/site-packages``. There is no python3 in the tree: the
tool must find and use ``/usr/bin/python2`` by itself. The inventory it
writes (``<root>/hosts.yaml``) holds only address, port, identity file and
known_hosts.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from deploy.base import output
from deploy.base.errors import SandboxError
from deploy.sandbox import broker, nspawn, services, train
from deploy.sandbox.common import api_answers, wait, write_file
from deploy.sandbox.nspawn import chown_in_tree, run_in_tree, system_mounts
from deploy.sandbox.rdo import (
    BACKUP_DIR,
    CINDER_API_UNIT,
    CINDER_CONF,
    DIST_CONF,
    RABBITMQ_ENV_CONF,
    UNIT,
    dist_conf_text,
    enable_units,
    service_lines,
    wait_for_services,
    write_broker_files,
)
from deploy.transport.commands import run_local

DEFAULT_ROOT = Path("/opt/cinder-devloop/legacy")
SITE = "usr/lib/python2.7/site-packages"
API_PORT = nspawn.API_PORT
BUILD_VERSION = "legacy-tree-2"   # bump when the build steps below change
# what the standard library's extension modules link against (no python3 at all)
LIBRARIES = ("libsqlite3-0", "libssl3", "libbz2-1.0", "libexpat1", "zlib1g", "libreadline8",
             "libncursesw6", "libnsl2", "libtirpc3", "libffi8", "liblzma5")

#: rabbitmq-server's dependencies but python3 (only its rabbitmqadmin script needs that):
#: the package itself is installed without it (:func:`_install_rabbitmq`)
RABBITMQ_DEPENDS = ("adduser", "erlang-base", "erlang-crypto", "erlang-eldap", "erlang-inets",
                    "erlang-mnesia", "erlang-os-mon", "erlang-parsetools", "erlang-public-key",
                    "erlang-runtime-tools", "erlang-ssl", "erlang-syntax-tools", "erlang-tools",
                    "erlang-xmerl", "logrotate", "lsb-base", "openssl", "socat")
NOAUTH_PROJECT = "5e1f7e57"   # any hex string names a project under noauth

DIST_CONF_TEXT = dist_conf_text("noauth")


def cinder_conf_text(transport_url: str) -> str:
    """/etc/cinder/cinder.conf: noauth, SQLite, the broker at ``transport_url``."""
    return f"""\
[DEFAULT]
auth_strategy = noauth
osapi_volume_listen = 0.0.0.0
osapi_volume_listen_port = {API_PORT}
osapi_volume_workers = 1
{services.default_options(transport_url, BACKUP_DIR)}
[database]
connection = sqlite:////var/lib/cinder/cinder.sqlite
{services.BACKEND_SECTION}"""


# As RDO's openstack-cinder package shipped them for Train (its train-rdo branch).
SERVICE_UNITS = {
    "openstack-cinder-scheduler.service": """\
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
""",
    "openstack-cinder-volume.service": """\
[Unit]
Description=OpenStack Cinder Volume Server
After=syslog.target network.target

[Service]
LimitNOFILE=131072
LimitNPROC=131072
Type=simple
User=cinder
ExecStart=/usr/bin/cinder-volume --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/volume.log
Restart=on-failure
KillMode=process

[Install]
WantedBy=multi-user.target
""",
    "openstack-cinder-backup.service": """\
[Unit]
Description=OpenStack Cinder Backup Server
After=syslog.target network.target

[Service]
Type=simple
User=cinder
ExecStart=/usr/bin/cinder-backup --config-file /usr/share/cinder/cinder-dist.conf \
--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/backup.log
Restart=on-failure

[Install]
WantedBy=multi-user.target
""",
}


@dataclass(frozen=True, slots=True)
class LegacyLayout(nspawn.ContainerLayout):
    """Where a legacy sandbox controller lives on this machine."""

    root: Path = DEFAULT_ROOT
    name: str = "legacy"

    @property
    def secrets_file(self) -> Path:
        return self.root / "client" / "passwords.json"

    def controller_entry(self) -> dict[str, object]:
        """This controller as a ``controllers:`` entry: only what a user writes for one."""
        instance = self.instance
        return {"address": self.address, "port": 22, "identity_file": str(instance.identity_file),
                "known_hosts": str(instance.known_hosts)}

    def passwords(self) -> dict[str, str]:
        """The instance's broker password (``rabbitmq``).

        Raises:
            SandboxError: the controller was never brought up.
        """
        try:
            return dict(json.loads(self.secrets_file.read_text()))
        except (OSError, ValueError):
            raise SandboxError(f"sandbox: {self.root} has no legacy controller "
                               f"(run sandbox.up --kind legacy)") from None


# --- building the tree ---------------------------------------------------------------

def _copy_python(python: str, tree: Path) -> None:
    """The interpreter at prefix /usr: binary, shared library, standard library."""
    prefix = Path(python).resolve().parent.parent
    stdlib = prefix / "lib" / "python2.7"
    if not (stdlib / "os.py").is_file():
        raise SandboxError(f"sandbox: {python} has no standard library at {stdlib}")
    shutil.copy2(Path(python).resolve(), tree / "usr/bin/python2.7")
    (tree / "usr/bin/python2").symlink_to("python2.7")
    for lib in prefix.glob("lib/libpython2.7.so*"):
        shutil.copy2(lib, tree / "usr/lib" / lib.name, follow_symlinks=True)
    shutil.copytree(stdlib, tree / "usr/lib/python2.7", symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == stdlib and
                                             n in ("site-packages", "test")] +
                    [n for n in names if n.endswith((".pyc", ".pyo"))])


def _copy_train(tree: Path, python: str) -> None:
    """Train's packages into the system site-packages; scripts with a python2 #! line."""
    with tempfile.TemporaryDirectory(prefix="devloop-train-") as work:
        venv = train.make_virtualenv(Path(work) / "venv", python)
        site = venv / "lib/python2.7/site-packages"
        shutil.copytree(site, tree / SITE, symlinks=True,
                        ignore=lambda d, names: [n for n in names if n.startswith("_virtualenv")
                                                 or n.endswith((".pyc", ".pyo"))])
        for script in ("cinder-api", "cinder-manage", "cinder-scheduler", "cinder-volume",
                       "cinder-backup"):
            body = (venv / "bin" / script).read_text().split("\n", 1)[1]
            write_file(tree / "usr/bin" / script, "#!/usr/bin/python2\n" + body, 0o755)
        shutil.copytree(venv / "etc/cinder", tree / "etc/cinder", dirs_exist_ok=True)


def _install_rabbitmq(tree: Path) -> None:
    """Debian's rabbitmq-server, its python3 dependency ignored: the tree keeps no python3.

    The package comes from this machine's apt (the same Debian release as
    the tree); its other dependencies are in the tree already (mmdebstrap).
    """
    output.detail("rabbitmq-server (without python3: only its rabbitmqadmin needs it)")
    with tempfile.TemporaryDirectory(prefix="devloop-rabbitmq-", dir=tree / "tmp") as work:
        run_local(["env", f"--chdir={work}", "apt-get", "download", "--quiet",
                   "rabbitmq-server"],
                  hint="apt-get download rabbitmq-server failed (apt-get update first?)")
        (deb,) = Path(work).glob("rabbitmq-server_*.deb")
        with system_mounts(tree):
            run_in_tree(tree, ["dpkg", "--install", "--force-depends",
                               f"/tmp/{Path(work).name}/{deb.name}"],
                        hint="dpkg could not install rabbitmq-server in the legacy tree")


def build_tree(tree: Path) -> None:
    """Python 2.7 and Cinder Train at the system's places, RDO's layout, noauth, SQLite."""
    python = train.find_python27()
    output.detail(f"Python 2.7 ({python}) at prefix /usr in the tree")
    _copy_python(python, tree)
    output.detail("Cinder 15.6.0 (Train) into /usr/lib/python2.7/site-packages "
                  "(from the cached wheelhouse)")
    _copy_train(tree, python)
    run_in_tree(tree, ["ldconfig"])
    run_in_tree(tree, ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/cinder",
                       "--no-create-home", "--shell", "/usr/sbin/nologin", "cinder"])
    (tree / "etc/cinder").chmod(0o750)
    chown_in_tree(tree / "etc/cinder", tree, "root", "cinder")
    # the broker's password is the instance's own: configure() writes the real one
    for path, text in ((DIST_CONF, DIST_CONF_TEXT),
                       (CINDER_CONF, cinder_conf_text(broker.transport_url("cinder", "unset",
                                                                           "localhost")))):
        write_file(tree / path.lstrip("/"), text, 0o640)
        chown_in_tree(tree / path.lstrip("/"), tree, "root", "cinder")
    for path in ("var/lib/cinder", "var/lib/cinder/tmp", BACKUP_DIR.lstrip("/"),
                 "var/log/cinder"):
        (tree / path).mkdir(parents=True, exist_ok=True)
        (tree / path).chmod(0o750)
        chown_in_tree(tree / path, tree, "cinder")
    _install_rabbitmq(tree)
    write_file(tree / RABBITMQ_ENV_CONF.lstrip("/"), broker.CONTAINER_ENV_CONF)
    enable_units(tree, {UNIT: CINDER_API_UNIT, **SERVICE_UNITS})
    output.detail("compile, db sync (sqlalchemy-migrate), inside the tree")
    with system_mounts(tree):
        # a few Python-3-only files in Train's dependencies do not compile: expected
        subprocess.run(["chroot", str(tree), "python2", "-m", "compileall", "-f", "-q",
                        "/usr/lib/python2.7"], capture_output=True, stdin=subprocess.DEVNULL)
        run_in_tree(tree, ["su", "-s", "/bin/sh", "-c", f"cinder-manage --config-file {DIST_CONF} "
                           f"--config-file {CINDER_CONF} db sync", "cinder"],
                    hint="cinder-manage db sync failed in the legacy tree")


RECIPE = nspawn.TreeRecipe(
    name="legacy", build=build_tree, packages=(*LIBRARIES, *RABBITMQ_DEPENDS),
    inputs=(BUILD_VERSION, train.CINDER_RELEASE, train.CONSTRAINTS.read_text(), CINDER_API_UNIT,
            *SERVICE_UNITS.values(), DIST_CONF_TEXT, cinder_conf_text(""),
            broker.CONTAINER_ENV_CONF))


# --- one controller -------------------------------------------------------------------

def _after_boot(layout: LegacyLayout) -> Callable[[nspawn.Instance], None]:
    def after_boot(instance: nspawn.Instance) -> None:
        source = Path(__file__).resolve().parents[2] / "cinder_patch" / "cinder"
        write_file(layout.hosts_file, "# written by invoke sandbox.up --kind legacy: only what a "
                   "real controller needs\n" + yaml.safe_dump(
                       {"source": str(source),
                        "controllers": {layout.name: layout.controller_entry()}},
                       sort_keys=False))
        wait(lambda: api_answers(layout.api_url), 90, f"cinder-api at {layout.api_url}")
        wait_for_services(layout.name, layout.address, _noauth)
    return after_boot


def _noauth() -> tuple[str, str]:
    return f"admin:{NOAUTH_PROJECT}", NOAUTH_PROJECT


def _configure(layout: LegacyLayout) -> Callable[[nspawn.Instance, Path], None]:
    def configure(instance: nspawn.Instance, tree: Path) -> None:
        passwords = {"rabbitmq": broker.new_password()}
        layout.secrets_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(layout.secrets_file, json.dumps(passwords), 0o600)
        url = broker.transport_url("cinder", passwords["rabbitmq"], instance.address)
        conf = tree / CINDER_CONF.lstrip("/")
        write_file(conf, cinder_conf_text(url), 0o640)
        chown_in_tree(conf, tree, "root", "cinder")
        write_broker_files(tree, "cinder", passwords["rabbitmq"])
    return configure


def kind(layout: LegacyLayout) -> nspawn.ContainerKind:
    """The legacy kind of container, bound to ``layout``."""
    return nspawn.ContainerKind("legacy", RECIPE, _configure(layout), _after_boot(layout))


def up(layout: LegacyLayout = LegacyLayout()) -> None:
    """Boot a fresh legacy controller (building its tree once) and write its hosts.yaml.

    Raises:
        SandboxError: no Python 2.7 on this machine, or a part could not be built.
    """
    nspawn.up_controller(
        layout, kind(layout), "legacy controller (Python 2.7, Cinder Train)", lambda: (
            f"API {layout.api_url} (noauth)",
            f"invoke --inventory {layout.hosts_file} deploy db-sync status"),
        check=train.find_python27)   # one clear message, before anything else


def down(layout: LegacyLayout = LegacyLayout(), purge: bool = False) -> None:
    """Power the controller off and remove its mount, cgroup and namespace.

    ``purge`` also removes its directory (keys, overlay, hosts.yaml).
    """
    nspawn.down_controller(layout, "legacy", purge)


def status_lines(layout: LegacyLayout = LegacyLayout()) -> list[str]:
    """One line per part: container, units, API, the broker, Cinder's service list."""
    lines = nspawn.status_lines(layout, (UNIT, *SERVICE_UNITS, broker.UNIT))
    if layout.instance.pid():
        lines += service_lines(layout.address, _noauth)
    return lines


__all__ = ["DEFAULT_ROOT", "LegacyLayout", "down", "run_local", "status_lines", "up"]
