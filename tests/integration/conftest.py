"""Real parts for the integration tests: controllers of their own.

The session's sandbox lives in a fresh directory under /tmp (traversable by
the ``cinder`` user) with free ports, so it never touches a developer's
sandbox; it is stopped by PID and removed at the end.

``controller`` is the same specs' controller of each kind in turn: the
supervisord sandbox, an rdo controller (systemd container, Keystone), a
legacy controller (systemd container, Python 2.7, Cinder Train, noauth) and
a devstack controller (a checkout under uWSGI, MariaDB, Keystone), each
container booted once per session from its cached tree in its own
namespace.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from deploy.sandbox import SandboxLayout
from tests.integration.controllers import (
    DevstackController,
    LegacyController,
    RdoController,
    SupervisordController,
)
from tests.support import free_port

KINDS = ("supervisord", "rdo", "legacy", "devstack")


@contextmanager
def booted(kind, make_layout: Callable[[Path], object], prefix: str) -> Iterator:
    """A controller of ``kind`` (its module: ``up``, ``down``) up in a fresh directory.

    ``make_layout(root)`` places it; on the way out it is stopped by PID and
    its directory removed.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    layout = make_layout(base / "controller")
    try:
        kind.up(layout)
        yield layout
    finally:
        kind.down(layout, purge=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def own_cache_dir(tmp_path_factory):
    """What the CLI runs of this session record of their deploys (deploy/controller/sent_state.py)
    stays in this session's directory: no spec reads a record it did not make."""
    previous = os.environ.get("DEVLOOP_USER_CACHE")
    os.environ["DEVLOOP_USER_CACHE"] = str(tmp_path_factory.mktemp("devloop-cache"))
    yield
    if previous is None:
        os.environ.pop("DEVLOOP_USER_CACHE", None)
    else:
        os.environ["DEVLOOP_USER_CACHE"] = previous


@pytest.fixture(scope="session")
def sandbox():
    """A running sandbox controller (sshd, supervisord, cinder-api on SQLite)."""
    from deploy.sandbox import supervisord

    with booted(supervisord, lambda root: SandboxLayout(root, free_port(), free_port(),
                                                        name="it-sandbox"),
                "devloop-it-") as layout:
        yield layout


@pytest.fixture(scope="session")
def session_clouds(tmp_path_factory):
    """One clouds.yaml for the session, with the clouds of every controller booted.

    OS_CLIENT_CONFIG_FILE points at it, as a user with several clouds sets
    it: each controller's cloud names differ (rdo-admin, devstack-admin),
    so whichever controllers a spec uses, its cloud is found.
    """
    merged = tmp_path_factory.mktemp("clouds") / "clouds.yaml"
    clouds: dict = {}

    def add(clouds_file: Path) -> None:
        clouds.update(yaml.safe_load(clouds_file.read_text())["clouds"])
        merged.write_text(yaml.safe_dump({"clouds": clouds}))

    saved = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(merged)
    try:
        yield add
    finally:
        if saved is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = saved


@pytest.fixture(scope="session")
def rdo_controller(session_clouds):
    """A running rdo controller (systemd, openstack-cinder-api.service, Keystone);
    its clouds are in the session's clouds.yaml."""
    from deploy.sandbox import rdo

    with booted(rdo, lambda root: rdo.RdoLayout(root, name="it-rdo"),
                "devloop-it-rdo-") as layout:
        session_clouds(layout.clouds_file)
        yield RdoController(layout)


@pytest.fixture(scope="session")
def legacy_controller():
    """A running legacy controller (systemd, Python 2.7, Cinder 15.6.0, noauth)."""
    from deploy.sandbox import legacy

    with booted(legacy, lambda root: legacy.LegacyLayout(root, name="it-legacy"),
                "devloop-it-legacy-") as layout:
        yield LegacyController(layout)


@pytest.fixture(scope="session")
def devstack_controller(session_clouds):
    """A running devstack controller (uWSGI devstack@c-api, a git checkout, MariaDB, Keystone).

    One of ``controller``'s kinds, with its own specs besides
    (test_devstack.py). Its clouds are in the session's clouds.yaml.
    """
    from deploy.sandbox import devstack

    with booted(devstack, lambda root: devstack.DevstackLayout(root, name="it-devstack"),
                "devloop-it-devstack-") as layout:
        session_clouds(layout.clouds_file)
        yield DevstackController(layout)


@pytest.fixture(scope="session", params=KINDS)
def controller(request):
    """The session's controller of each kind in turn (one spec, every kind)."""
    if request.param == "rdo":
        return request.getfixturevalue("rdo_controller")
    if request.param == "legacy":
        return request.getfixturevalue("legacy_controller")
    if request.param == "devstack":
        return request.getfixturevalue("devstack_controller")
    return SupervisordController(request.getfixturevalue("sandbox"))


@pytest.fixture
def source(tmp_path) -> Path:
    """An empty overlay tree (a checkout's cinder/ package) for one test."""
    tree = tmp_path / "checkout" / "cinder"
    tree.mkdir(parents=True)
    return tree


@pytest.fixture
def hosts(tmp_path, sandbox, source) -> Path:
    """An inventory that deploys ``source`` to the session's sandbox as ``sbx``."""
    from tests.support import write_inventory

    return write_inventory(tmp_path / "hosts.yaml", source, {"sbx": sandbox.controller_entry()})


@pytest.fixture
def cinder_dir(sandbox) -> Path:
    """The sandbox controller's installed cinder package."""
    return next((sandbox.venv / "lib").glob("python3*/site-packages/cinder"))


@pytest.fixture
def controller_hosts(tmp_path, controller, source) -> Path:
    """An inventory that deploys ``source`` to ``controller`` as ``sbx``."""
    from tests.support import write_inventory

    return write_inventory(tmp_path / "hosts.yaml", source, {"sbx": controller.entry()})


def supervised_pid(layout: SandboxLayout) -> int | None:
    """The PID supervisord reports for cinder-api (None when stopped)."""
    out = subprocess.run(["supervisorctl", "-c", str(layout.supervisor_conf), "pid", "cinder-api"],
                         capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() and int(out) > 0 else None


@pytest.fixture(scope="session")
def feature_hosts(sandbox, tmp_path_factory) -> Path:
    """An inventory that deploys the repo's own cinder_patch/ to the sandbox."""
    return _feature_inventory(SupervisordController(sandbox), tmp_path_factory)


@pytest.fixture(scope="module")
def deployed_feature(sandbox, feature_hosts) -> Path:
    """The sandbox with the cluster feature deployed (invoke deploy + db-sync).

    Returns the inventory file; the API serves the os-cluster-manage extension.
    """
    return _kept(SupervisordController(sandbox), feature_hosts)


@pytest.fixture(scope="session")
def _feature_controller_hosts(controller, tmp_path_factory) -> Path:
    return _feature_inventory(controller, tmp_path_factory)


@pytest.fixture(scope="module")
def feature_controller(controller, _feature_controller_hosts) -> Path:
    """The controller (any kind) with the cluster feature deployed; its inventory.

    The inventory names cinder_patch/cinder, the feature's common tree;
    deploy lays over it the release tree of the controller's Cinder
    (cinder_patch/releases/29 or, on the legacy kind, releases/train) by itself.
    """
    return _kept(controller, _feature_controller_hosts)


@pytest.fixture(scope="session")
def _feature_rdo_hosts(rdo_controller, tmp_path_factory) -> Path:
    return _feature_inventory(rdo_controller, tmp_path_factory)


@pytest.fixture(scope="module")
def feature_controller_rdo(rdo_controller, _feature_rdo_hosts) -> Path:
    """The rdo controller with the cluster feature deployed (whichever kind runs now)."""
    return _kept(rdo_controller, _feature_rdo_hosts)


@pytest.fixture(scope="session")
def _feature_devstack_hosts(devstack_controller, tmp_path_factory) -> Path:
    return _feature_inventory(devstack_controller, tmp_path_factory)


@pytest.fixture(scope="module")
def feature_controller_devstack(devstack_controller, _feature_devstack_hosts) -> Path:
    """The devstack controller with the cluster feature deployed (whichever kind runs now)."""
    return _kept(devstack_controller, _feature_devstack_hosts)


def _kept(controller, hosts: Path) -> Path:
    """``hosts``, after deploying the feature (deploy + db-sync) where it is not in place:
    on a fresh controller, or where a spec before took it away.

    A controller serves many modules of specs in one session, and some of
    them roll a deploy back or send other trees; each module of the
    feature's specs finds it whole.
    """
    if not _feature_in_place(controller):
        _deploy_feature(hosts)
    return hosts


def _feature_in_place(controller) -> bool:
    """Whether each file of the layered feature is in the controller's package as here."""
    from deploy.controller.layers import winning_files
    from tests.support import PROJECT_ROOT

    layers = [PROJECT_ROOT / controller.feature_tree, PROJECT_ROOT / controller.release_tree]
    for inside, source in winning_files(layers, ("__pycache__/", "*.pyc")).items():
        there = controller.cinder_dir / inside
        if not there.is_file() or there.read_bytes() != source.read_bytes():
            return False
    return True


def _feature_inventory(controller, tmp_path_factory) -> Path:
    from tests.support import PROJECT_ROOT, write_inventory

    return write_inventory(tmp_path_factory.mktemp("feature") / "hosts.yaml",
                           PROJECT_ROOT / "cinder_patch" / "cinder",
                           {"sandbox": controller.entry()})


def _deploy_feature(hosts: Path) -> Path:
    from tests.support import invoke

    for task in ("deploy", "db-sync"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 0, f"invoke {task} failed:\n{result.stderr}"
    return hosts
