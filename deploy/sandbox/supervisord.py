"""The quick sandbox controller (kind ``supervisord``): real parts, no systemd.

``up`` builds (once) and starts, on this machine:

* an OpenSSH ``sshd`` on loopback with its own config, host key, authorized
  key and pid file; the workstation side gets a key and a known_hosts file
  pinning that host key;
* a venv made with Debian's ``/usr/bin/python3`` holding cinder 29.0.0
  (pinned in ``controller-requirements.txt``): its site-packages plays the
  role of the controller's system site-packages;
* a ``cinder`` system user and an RDO-like pair of configs
  (``usr/share/cinder/cinder-dist.conf`` + ``etc/cinder/cinder.conf``:
  SQLite, ``auth_strategy = noauth``, loopback port, one API worker, the
  sandbox's own RabbitMQ as ``transport_url``, the stand-in volume backend
  and the POSIX backup driver of :mod:`deploy.sandbox.services`), with
  ``cinder-manage db sync`` run as that user;
* supervisord managing ``cinder-api``, ``cinder-scheduler``,
  ``cinder-volume`` and ``cinder-backup`` as ``cinder`` (systemd cannot run
  on these machines; it stays the production default), and the sandbox's
  own broker (:class:`deploy.sandbox.broker.OwnBroker`: ``epmd`` and
  ``rabbitmq-server`` as ``rabbitmq``, on ports the kernel picked).

Everything lives under one root directory and is ended by PID in ``down``.

A sandbox can also be a host of its own: with ``netns`` set, sshd and
supervisord start inside that (existing) network namespace, sshd listening
on ``listen_address`` and cinder-api on the namespace's own 127.0.0.1, so
the controller is reachable only as that namespace's routes allow. Its
files stay on the shared filesystem. ``base_venv`` makes a second sandbox
clone an already built venv (hard links, so about a second instead of a
pip install) rather than installing its own.
"""
from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.base import output
from deploy.base.errors import DevloopError, SandboxError
from deploy.sandbox import broker, services
from deploy.sandbox.common import (
    CACHE_DIR,
    SERVICE_USER,
    ClientFiles,
    end_process,
    ensure_key,
    ensure_service_user,
    free_port,
    locked,
    write_known_hosts,
)
from deploy.sandbox.common import api_answers as _api_answers
from deploy.sandbox.common import make_dir as _mkdir
from deploy.sandbox.common import pid_from as _pid_from
from deploy.sandbox.common import port_open as _port_open
from deploy.sandbox.common import wait as _wait
from deploy.transport.commands import as_user, run_local

#: seconds ``up`` waits for cinder-api to answer, and for sshd to listen
API_DEADLINE = 180
SSHD_DEADLINE = 30
REQUIREMENTS = Path(__file__).with_name("controller-requirements.txt")
DEFAULT_ROOT = Path("/opt/cinder-devloop/sandbox")
PROGRAM = "cinder-api"
#: the programs beside the API, as RDO names their log files: (program, log name)
SERVICE_PROGRAMS = (("cinder-scheduler", "scheduler"), ("cinder-volume", "volume"),
                    ("cinder-backup", "backup"))
#: as RDO's units for the volume and backup services set them (and DevStack's lib/cinder)
MALLOC_TUNING = 'MALLOC_ARENA_MAX="1",MALLOC_MMAP_THRESHOLD_="131072",' \
    'MALLOC_TRIM_THRESHOLD_="262144"'
#: the project noauth requests name (any hex string is a project under noauth)
NOAUTH_PROJECT = "5e1f7e57"


@dataclass(frozen=True, slots=True)
class SandboxLayout(ClientFiles):
    """Where each part of a sandbox controller lives, and its ports."""

    root: Path = DEFAULT_ROOT
    ssh_port: int = 22022
    api_port: int = 18776
    name: str = "sandbox"
    base_python: str = "/usr/bin/python3"
    #: network namespace to run sshd and supervisord in (None: this host's)
    netns: str | None = None
    #: the address sshd listens on (and the inventory connects to)
    listen_address: str = "127.0.0.1"
    #: an already built sandbox venv to clone instead of installing one
    base_venv: Path | None = None

    # controller side
    @property
    def sshd_dir(self) -> Path:
        return self.root / "sshd"

    @property
    def sshd_config(self) -> Path:
        return self.sshd_dir / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.sshd_dir / "sshd.pid"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python3"

    @property
    def cinder_dir(self) -> Path:
        """The installed cinder package (the controller's "site-packages/cinder")."""
        return self.venv / "lib" / f"python{_python_version(self.base_python)}" / \
            "site-packages" / "cinder"

    @property
    def dist_conf(self) -> Path:
        return self.root / "usr/share/cinder/cinder-dist.conf"

    @property
    def cinder_conf(self) -> Path:
        return self.root / "etc/cinder/cinder.conf"

    @property
    def state_dir(self) -> Path:
        return self.root / "var/lib/cinder"

    @property
    def database(self) -> Path:
        return self.state_dir / "cinder.sqlite"

    @property
    def log_file(self) -> Path:
        return self.root / "var/log/cinder/api.log"

    @property
    def backup_dir(self) -> Path:
        """Where cinder-backup's POSIX driver writes backups."""
        return self.state_dir / "backup"

    @property
    def broker(self) -> broker.OwnBroker:
        """The sandbox's own RabbitMQ (files, node, ports, ``rabbitmqctl``)."""
        return broker.OwnBroker(self.root)

    @property
    def supervisor_dir(self) -> Path:
        return self.root / "supervisor"

    @property
    def supervisor_conf(self) -> Path:
        return self.supervisor_dir / "supervisord.conf"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.supervisor_dir / "supervisord.pid"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/"

    @property
    def known_hosts_name(self) -> str:
        """sshd's name in known_hosts: ``[addr]:port``, or the bare address on port 22."""
        if self.ssh_port == 22:
            return self.listen_address
        return f"[{self.listen_address}]:{self.ssh_port}"

    def in_netns(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the sandbox's network namespace, if it has one."""
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def controller_entry(self) -> dict[str, object]:
        """This sandbox as a ``controllers:`` entry of hosts.yaml."""
        return {
            "address": self.listen_address,
            "port": self.ssh_port,
            "user": "root",
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "service_manager": "supervisord",
            "service": PROGRAM,
            "supervisor_config": str(self.supervisor_conf),
            "python": str(self.python),
            "cinder_api": str(self.venv / "bin/cinder-api"),
            "cinder_manage": str(self.venv / "bin/cinder-manage"),
            "config_files": [str(self.dist_conf), str(self.cinder_conf)],
            "log_file": str(self.log_file),
            "service_user": SERVICE_USER,
            "cinder_dir": str(self.cinder_dir),
            "api_url": self.api_url,
            "state_dir": str(self.root / "var/lib/cinder-devloop"),
        }


@functools.lru_cache(maxsize=None)
def _python_version(python: str) -> str:
    """``3.11`` for the interpreter at ``python`` (the venv's lib/pythonX.Y)."""
    proc = subprocess.run([python, "-I", "-S", "-c",
                           "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"sandbox: cannot run {python} (install python3-venv: "
                           f"bash .ci/bootstrap)")
    return proc.stdout.strip()


# --- processes ---------------------------------------------------------------

# Runs inside a network namespace: wait (up to argv[4] s) for a TCP port or
# an HTTP answer below 500. Exit 0: ready; 1: not within the time.
_NS_PROBE = """\
import socket, sys, time, urllib.error, urllib.request
kind, host, port, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def ready():
    if kind == 'tcp':
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((host, port)) == 0
    try:
        with urllib.request.urlopen('http://%s:%d/' % (host, port), timeout=1):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False
deadline = time.monotonic() + limit
while not ready():
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.05)
"""


def _ready(layout: SandboxLayout, kind: str, address: str, port: int,
           timeout: float = 0.0) -> bool:
    """Is ``address:port`` accepting (``tcp``) or answering (``http``), as seen by the sandbox?

    Waits up to ``timeout`` seconds. In a namespace, one probe process
    runs there and does the polling.
    """
    if layout.netns:
        proc = subprocess.run(layout.in_netns([layout.base_python, "-c", _NS_PROBE, kind,
                                               address, str(port), str(timeout)]),
                              capture_output=True, stdin=subprocess.DEVNULL)
        return proc.returncode == 0
    check = ((lambda: _port_open(port, address)) if kind == "tcp"
             else (lambda: _api_answers(f"http://{address}:{port}/")))
    try:
        _wait(check, timeout, f"{address}:{port}")
    except SandboxError:
        return False
    return True


# --- building ------------------------------------------------------------------

def _require_tools() -> None:
    missing = [tool for tool in ("/usr/sbin/sshd", "rsync", "supervisord", "supervisorctl",
                                 "ssh-keygen")
               if shutil.which(tool) is None]
    if missing:
        raise SandboxError(f"sandbox: missing {', '.join(missing)}; install them with "
                           f"bash .ci/bootstrap (apt: openssh-server rsync supervisor)")


def _ensure_keys(layout: SandboxLayout) -> None:
    host_key = layout.sshd_dir / "ssh_host_ed25519_key"
    ensure_key(host_key, f"cinder-devloop {layout.name}")
    ensure_key(layout.identity_file, f"cinder-devloop {layout.name}")
    (layout.sshd_dir / "authorized_keys").write_text(
        Path(f"{layout.identity_file}.pub").read_text())
    write_known_hosts(layout.known_hosts, layout.known_hosts_name,
                      Path(f"{host_key}.pub").read_text())


def _write_sshd_config(layout: SandboxLayout) -> None:
    d = layout.sshd_dir
    layout.sshd_config.write_text(f"""\
# sshd of the cinder-devloop sandbox controller {layout.name!r}
Port {layout.ssh_port}
ListenAddress {layout.listen_address}
HostKey {d}/ssh_host_ed25519_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {layout.sshd_pidfile}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The sandbox may live under /tmp (world-writable): skip the parent checks.
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
""")


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def _venv_ready(venv: Path) -> bool:
    stamp = venv / ".devloop-requirements"
    return stamp.exists() and stamp.read_text() == _requirements_digest()


def clone_venv(base: Path, venv: Path, hard_links: bool = True) -> None:
    """Make ``venv`` a copy of the built venv ``base``: by hard links, or a full copy.

    With hard links, deploys stay private to the clone: rsync writes every
    file it changes to a temporary name and renames it into place (the
    deploy's backup is one more link to the old file), which replaces the clone's link
    and leaves the base untouched; so does Python writing bytecode. Anything
    that writes a file in place would write the base too, so a base that
    other sandboxes share (the machine's cache) is copied in full. The
    scripts in ``bin/`` name their venv's python in their first line, so
    they are rewritten as files of the clone's own.

    Raises:
        SandboxError: ``base`` is not a built sandbox venv.
    """
    if not _venv_ready(base):
        raise SandboxError(f"sandbox: {base} is not a built sandbox venv (run sandbox.up "
                           f"for the sandbox that owns it first)")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run_local(["cp", "-al" if hard_links else "-a", str(base), str(venv)])
    old, new = str(base).encode(), str(venv).encode()
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        if old not in content:
            continue
        mode = script.stat().st_mode
        script.unlink()  # break the link before writing: the base keeps its copy
        script.write_bytes(content.replace(old, new))
        script.chmod(mode & 0o7777)
    stamp = venv / ".devloop-requirements"
    stamp.unlink()
    stamp.write_text(_requirements_digest())


def _ensure_venv(layout: SandboxLayout) -> None:
    """The sandbox's venv: a copy of the machine's built one, or of ``base_venv``."""
    if _venv_ready(layout.venv):
        return
    base = layout.base_venv or _built_venv(layout)
    output.step(layout.name, f"copy {base} into {layout.venv}")
    clone_venv(base, layout.venv, hard_links=layout.base_venv is not None)


def _built_venv(layout: SandboxLayout) -> Path:
    """The venv with cinder (the pinned requirements) built once per machine, in the cache.

    Keyed by the requirements and the interpreter that made it; built under
    a lock, in a temporary place renamed into its own, so two runs never
    build it twice nor use half of one.
    """
    version = _python_version(layout.base_python)
    built = CACHE_DIR / f"sandbox-venv-{_requirements_digest()}-py{version}"
    with locked(CACHE_DIR / "sandbox-venv.lock"):
        if _venv_ready(built):
            return built
        shutil.rmtree(built, ignore_errors=True)
        output.step(layout.name, f"install cinder into {built} (once per machine, about 30 s)")
        run_local([layout.base_python, "-m", "venv", "--clear", str(built)],
                  hint="Debian's python3-venv package is needed (bash .ci/bootstrap)")
        run_local([str(built / "bin/pip"), "install", "--quiet", "--disable-pip-version-check",
                   "-r", str(REQUIREMENTS)], hint="pip could not install the controller's packages")
        (built / ".devloop-requirements").write_text(_requirements_digest())
        built.chmod(0o755)
        return built


def _write_cinder_configs(layout: SandboxLayout) -> None:
    state, lock = layout.state_dir, layout.state_dir / "tmp"
    layout.dist_conf.write_text(f"""\
# Distribution defaults, as RDO ships them in /usr/share/cinder/cinder-dist.conf.
[DEFAULT]
state_path = {state}
rootwrap_config = {layout.venv}/etc/cinder/rootwrap.conf

[oslo_concurrency]
lock_path = {lock}
""")
    layout.cinder_conf.write_text(f"""\
# The site's settings, as in /etc/cinder/cinder.conf.
[DEFAULT]
auth_strategy = noauth
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {layout.api_port}
osapi_volume_workers = 1
{services.default_options(layout.broker.transport_url(), str(layout.backup_dir))}
[database]
connection = {services.sqlite_url(str(layout.database))}
{services.BACKEND_SECTION}""")
    shutil.copyfile(layout.venv / "etc/cinder/api-paste.ini",
                    layout.cinder_conf.with_name("api-paste.ini"))
    for conf in (layout.dist_conf, layout.cinder_conf):
        shutil.chown(conf, "root", SERVICE_USER)
        conf.chmod(0o640)


def _write_supervisor_config(layout: SandboxLayout) -> None:
    d = layout.supervisor_dir
    command = [str(layout.venv / "bin/cinder-api"), "--config-file", str(layout.dist_conf),
               "--config-file", str(layout.cinder_conf), "--log-file", str(layout.log_file)]
    layout.supervisor_conf.write_text(f"""\
; supervisord of the cinder-devloop sandbox controller {layout.name!r}
[unix_http_server]
file = {d}/supervisor.sock
chmod = 0700

[supervisord]
logfile = {d}/supervisord.log
pidfile = {layout.supervisor_pidfile}
childlogdir = {d}
directory = {layout.root}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{d}/supervisor.sock

[program:{PROGRAM}]
command = {' '.join(command)}
user = {SERVICE_USER}
directory = {layout.state_dir}
environment = HOME="{layout.state_dir}"
startsecs = 1
stopwaitsecs = 15
; without these a stop ends only the parent and the worker keeps the port
stopasgroup = true
killasgroup = true
autorestart = unexpected
redirect_stderr = true
stdout_logfile = {layout.log_file.parent}/api-console.log
""" + "".join(text for _, text in _more_programs(layout)))


def _more_programs(layout: SandboxLayout) -> list[tuple[str, str]]:
    """The programs beside cinder-api: the broker's, then the scheduler, volume and backup."""
    found = layout.broker.programs()
    for program, log in SERVICE_PROGRAMS:
        command = [str(layout.venv / "bin" / program), "--config-file", str(layout.dist_conf),
                   "--config-file", str(layout.cinder_conf), "--log-file",
                   str(layout.log_file.with_name(f"{log}.log"))]
        malloc = f",{MALLOC_TUNING}" if program != "cinder-scheduler" else ""
        found.append((program, f"""
[program:{program}]
command = {' '.join(command)}
user = {SERVICE_USER}
directory = {layout.state_dir}
environment = HOME="{layout.state_dir}"{malloc}
startsecs = 1
stopwaitsecs = 15
stopasgroup = true
killasgroup = true
autorestart = unexpected
redirect_stderr = true
stdout_logfile = {layout.log_file.parent}/{log}-console.log
"""))
    return found


def _add_missing_programs(layout: SandboxLayout) -> bool:
    """Append the programs a sandbox built before them lacks (the file is otherwise kept).

    Returns whether any was added.
    """
    text = layout.supervisor_conf.read_text()
    missing = "".join(section for name, section in _more_programs(layout)
                      if f"[program:{name}]" not in text)
    if missing:
        layout.supervisor_conf.write_text(text + missing)
    return bool(missing)


def _ensure_database(layout: SandboxLayout) -> None:
    if layout.database.exists():
        return
    output.step(layout.name, "cinder-manage db sync (as cinder)")
    manage = [str(layout.venv / "bin/cinder-manage"), "--config-file", str(layout.dist_conf),
              "--config-file", str(layout.cinder_conf), "db", "sync"]
    run_local(as_user(SERVICE_USER, manage), hint="cinder-manage db sync failed")


def _ensure_netns(layout: SandboxLayout) -> None:
    if not layout.netns:
        return
    if not Path("/run/netns", layout.netns).exists():
        raise SandboxError(f"sandbox: network namespace {layout.netns!r} does not exist "
                           f"(create it first: ip netns add {layout.netns})")
    # a new namespace's loopback is down; cinder-api listens on it
    run_local(["ip", "-n", layout.netns, "link", "set", "lo", "up"])


def _start_sshd(layout: SandboxLayout) -> None:
    if _pid_from(layout.sshd_pidfile, str(layout.sshd_config)):
        return
    if _ready(layout, "tcp", layout.listen_address, layout.ssh_port):
        raise SandboxError(f"sandbox: port {layout.ssh_port} is taken by another process; "
                           f"choose another ssh port")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    run_local(["/usr/sbin/sshd", "-t", "-f", str(layout.sshd_config)])
    # sshd daemonizes and writes its PidFile; no systemd needed. Its log (-E)
    # records each login, so a test can count the connections a task made.
    run_local(layout.in_netns(["/usr/sbin/sshd", "-f", str(layout.sshd_config),
                               "-E", str(layout.sshd_dir / "sshd.log")]))
    if not _ready(layout, "tcp", layout.listen_address, layout.ssh_port, SSHD_DEADLINE):
        raise SandboxError(f"sandbox: timed out after {SSHD_DEADLINE} s waiting for sshd on "
                           f"{layout.listen_address}:{layout.ssh_port}")


def _supervisorctl(layout: SandboxLayout, *args: str, check: bool = True
                   ) -> subprocess.CompletedProcess[str]:
    return run_local(["supervisorctl", "-c", str(layout.supervisor_conf), *args], check=check)


def _supervisord_pid(layout: SandboxLayout) -> int | None:
    return _pid_from(layout.supervisor_pidfile, str(layout.supervisor_conf))


def _start_supervisord(layout: SandboxLayout) -> None:
    if _supervisord_pid(layout):
        _supervisorctl(layout, "update", check=False)
        _supervisorctl(layout, "start", "all", check=False)
        return
    if _ready(layout, "tcp", "127.0.0.1", layout.api_port):
        raise SandboxError(f"sandbox: API port {layout.api_port} is taken by another process")
    # the programs inherit supervisord's namespace
    run_local(layout.in_netns(["supervisord", "-c", str(layout.supervisor_conf)]))
    _wait(lambda: _supervisord_pid(layout) is not None, 10, "supervisord")


def _prepare_broker(layout: SandboxLayout) -> None:
    """The broker's files; its ports are kept unless another process took one meanwhile."""
    own = layout.broker
    saved = [port for key, port in own.settings().items() if key.endswith("_port")]
    running = _supervisord_pid(layout) is not None
    reuse = running or not any(_ready(layout, "tcp", "127.0.0.1", int(str(port)))
                                   for port in saved)
    own.prepare(free_port, reuse_ports=reuse)


def _in_sandbox_net(layout: SandboxLayout, module: str,
                    *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m deploy.sandbox.MODULE ARGS`` where the sandbox's 127.0.0.1 is (its netns)."""
    project = Path(__file__).resolve().parents[2]
    return subprocess.run(layout.in_netns([sys.executable, "-m", f"deploy.sandbox.{module}",
                                           *args]),
                          capture_output=True, text=True, cwd=project, stdin=subprocess.DEVNULL)


def _broker_answers(layout: SandboxLayout) -> str:
    """The broker's AMQP greeting (``RabbitMQ 3.10.8``), asked where its 127.0.0.1 is; ""."""
    port = layout.broker.amqp_port
    if port is None:
        return ""
    if layout.netns:
        return _in_sandbox_net(layout, "broker", "127.0.0.1", str(port)).stdout.strip()
    return broker.amqp_server("127.0.0.1", port) or ""


def _wait_for_services(layout: SandboxLayout, timeout: float = 180.0) -> None:
    """Wait until the API's service list shows the scheduler, volume and backup up.

    Raises:
        SandboxError: they were not up in time (the message names which, and the logs).
    """
    api = f"http://127.0.0.1:{layout.api_port}"
    token = f"admin:{NOAUTH_PROJECT}"
    try:
        if layout.netns:
            proc = _in_sandbox_net(layout, "services", "wait", api, NOAUTH_PROJECT, token,
                                   str(timeout))
            if proc.returncode != 0:
                raise SandboxError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                                   else "sandbox: the services did not come up")
        else:
            services.wait_until_up(api, NOAUTH_PROJECT, token, timeout)
    except SandboxError as exc:
        raise SandboxError(f"{exc} (logs: {layout.log_file.parent}/*.log, "
                           f"{layout.broker.log_dir})") from None


def up(layout: SandboxLayout = SandboxLayout()) -> None:
    """Build what is missing and start what is stopped; a second call is fast.

    Raises:
        SandboxError / CommandFailed: a part could not be built or started.
    """
    _require_tools()
    where = f" (network namespace {layout.netns})" if layout.netns else ""
    output.step(layout.name, f"sandbox controller in {layout.root}{where}")
    _ensure_netns(layout)
    for path in (layout.root, layout.client_dir, layout.sshd_dir, layout.supervisor_dir,
                 layout.dist_conf.parent, layout.cinder_conf.parent, layout.root / "var/lib",
                 layout.root / "var/log"):
        _mkdir(path, mode=0o700 if path in (layout.client_dir, layout.sshd_dir) else 0o755)
    ensure_service_user()
    for path in (layout.state_dir, layout.state_dir / "tmp", layout.log_file.parent):
        _mkdir(path, owner=SERVICE_USER)
    _ensure_keys(layout)
    _mkdir(layout.backup_dir, owner=SERVICE_USER, mode=0o750)
    _write_sshd_config(layout)
    _ensure_venv(layout)
    _prepare_broker(layout)
    _write_cinder_configs(layout)
    if not layout.supervisor_conf.exists():
        # written once: fast restart (on by default) edits its command in place
        _write_supervisor_config(layout)
    added = _add_missing_programs(layout)
    _ensure_database(layout)
    _start_sshd(layout)
    running = _supervisord_pid(layout) is not None
    _start_supervisord(layout)
    if added and running:
        # a cinder-api started before the broker existed still has fake:// in mind
        _supervisorctl(layout, "restart", PROGRAM)
    # deadlines, not expectations: on a quiet machine the API answers in about
    # 5 s, but a busy 2-core machine (a parallel test run) can take minutes
    if not _ready(layout, "http", "127.0.0.1", layout.api_port, API_DEADLINE):
        raise SandboxError(f"sandbox: timed out after {API_DEADLINE} s waiting for cinder-api "
                           f"at {layout.api_url}")
    try:
        _wait(lambda: bool(_broker_answers(layout)), 180,
              f"RabbitMQ at 127.0.0.1:{layout.broker.amqp_port}")
    except SandboxError as exc:
        said = layout.broker.last_lines()
        raise SandboxError(f"{exc} (its log: {layout.broker.log_dir})"
                           + (f"; its last lines:\n  {said}" if said else "")) from None
    _wait_for_services(layout)
    output.detail(f"ssh root@{layout.listen_address} -p {layout.ssh_port}; API {layout.api_url}"
                  + (f" in {layout.netns}" if layout.netns else "")
                  + f"; RabbitMQ 127.0.0.1:{layout.broker.amqp_port}")


def down(layout: SandboxLayout = SandboxLayout(), purge: bool = False) -> None:
    """Stop supervisord (and cinder-api with it) and sshd, by PID.

    ``purge`` also removes the sandbox's directory (venv, database, keys).
    """
    output.step(layout.name, "stop sandbox controller")
    supervisord = _pid_from(layout.supervisor_pidfile, str(layout.supervisor_conf))
    if supervisord:
        children = _supervisorctl(layout, "pid", "all", check=False).stdout.split()
        _supervisorctl(layout, "stop", "all", check=False)
        end_process(supervisord)
        for pid in (int(p) for p in children if p.isdigit() and int(p) > 0):
            end_process(pid)
    sshd = _pid_from(layout.sshd_pidfile, str(layout.sshd_config))
    if sshd:
        end_process(sshd)
    if purge and layout.root.exists():
        shutil.rmtree(layout.root)
        output.detail(f"removed {layout.root}")


def status_lines(layout: SandboxLayout = SandboxLayout()) -> list[str]:
    """One line per part: is it running?"""
    names = (PROGRAM, "rabbitmq-server", "epmd", *(name for name, _ in SERVICE_PROGRAMS))
    try:
        answer = _supervisorctl(layout, "status", *names, check=False).stdout
        programs = {line.split()[0]: " ".join(line.split()[1:])
                    for line in answer.splitlines() if line.split()}
    except DevloopError:
        programs = {}
    lines = [
        f"sshd         {_pid_from(layout.sshd_pidfile, str(layout.sshd_config)) or 'stopped'}",
        f"supervisord  {_supervisord_pid(layout) or 'stopped'}",
    ]
    for name in names:
        lines.append(f"{'program':<12} {name:<17} {programs.get(name) or 'unknown'}")
    answering = _ready(layout, "http", "127.0.0.1", layout.api_port)
    lines.append(f"api          {'answering' if answering else 'not answering'} "
                 f"at {layout.api_url}")
    port = layout.broker.amqp_port
    if port is None:
        lines.append("broker       none (run sandbox.up)")
    else:
        lines.append(f"broker       {_broker_answers(layout) or 'not answering'} at "
                     f"amqp://127.0.0.1:{port} (node {layout.broker.node})")
    if answering:
        api, token = f"http://127.0.0.1:{layout.api_port}", f"admin:{NOAUTH_PROJECT}"
        if layout.netns:
            line = _in_sandbox_net(layout, "services", "status", api, NOAUTH_PROJECT,
                                   token).stdout.strip()
        else:
            line = services.status_line(api, NOAUTH_PROJECT, token)
        lines.append(line)
    return lines
