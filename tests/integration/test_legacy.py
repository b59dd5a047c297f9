"""What only the legacy controller (Python 2.7, Cinder Train, sqlalchemy-migrate) has.

The loop specs (deploy, db-sync, status, loop, rollback, restart, logs,
debug through a real terminal, the REST specs and smoke) run against it as
one kind of ``controller`` among the others (test_loop.py, test_rollback.py,
test_iterate.py, test_feature.py, test_debug_kinds.py). Here: the inventory
``sandbox.up`` writes holds only what a user writes; the repo's patch picks
its Train variant by itself; a patch for 29.0.0 alone is refused with
nothing changed; a deploy killed between its record and its end is rolled
back.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT, invoke, write_inventory

pytestmark = pytest.mark.integration


@pytest.fixture
def legacy(legacy_controller):
    """The session's legacy controller (booted once, see conftest.py)."""
    return legacy_controller


@pytest.fixture
def controller(legacy):
    """Here conftest's ``controller`` is the legacy one alone (for ``controller_hosts``)."""
    return legacy


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (no .pyc) and its sha256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".pyc"}


def records(legacy) -> list[dict[str, object]]:
    deploys = legacy.host_path(legacy.state_dir) / "deploys"
    return [json.loads(p.read_text()) for p in sorted(deploys.glob("*/record.json"))]


def test_the_inventory_holds_only_address_port_key_and_known_hosts(legacy):
    import yaml

    written = yaml.safe_load(legacy.layout.hosts_file.read_text())
    assert set(written["controllers"]["it-legacy"]) == {"address", "port", "identity_file",
                                                         "known_hosts"}


def test_a_patch_for_29_only_is_refused_and_nothing_changes(legacy, tmp_path):
    patch = tmp_path / "patch29"
    shutil.copytree(PROJECT_ROOT / "cinder_patch" / "cinder", patch / "cinder")
    manifest = (PROJECT_ROOT / "cinder_patch" / "MANIFEST.txt").read_text()
    (patch / "MANIFEST.txt").write_text(manifest.replace("variant train\n", ""))
    hosts = write_inventory(tmp_path / "hosts.yaml", patch / "cinder", {"sbx": legacy.entry()})
    before, deploys = snapshot(legacy.cinder_dir), len(records(legacy))

    result = invoke("deploy", "--inventory", str(hosts))

    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        f"error: sbx: refusing to deploy {patch}/cinder: {patch}/MANIFEST.txt targets Cinder "
        f"29.0.0, the controller has Cinder 15.6.0 ({patch}/MANIFEST.txt: Cinder 29.0.0). "
        f"Nothing was changed; --ignore-manifest sends it anyway."], result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(legacy.cinder_dir) == before
    assert len(records(legacy)) == deploys


def test_the_repo_patch_sends_its_train_variant(legacy, tmp_path):
    hosts = write_inventory(tmp_path / "hosts.yaml", PROJECT_ROOT / "cinder_patch" / "cinder",
                            {"sbx": legacy.entry()})
    deploy = invoke("deploy", "--inventory", str(hosts))
    assert deploy.returncode == 0, deploy.stderr
    assert f"sync {PROJECT_ROOT}/cinder_patch/train/cinder -> {legacy.cinder_path}" in \
        deploy.stderr
    assert (legacy.cinder_dir / "db/sqlalchemy/migrate_repo/versions/"
            "133_add_managed_clusters.py").is_file()
    assert not (legacy.cinder_dir / "db" / "migrations").exists()   # the 29.0.0 tree's
    # (leave the database current for the specs that follow)
    assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0


def test_a_deploy_killed_during_the_transfer_is_rolled_back(legacy, controller_hosts, source):
    replaced = "api/__init__.py"
    original = (legacy.cinder_dir / replaced).read_bytes()
    (source / "api").mkdir()
    (source / "api" / "__init__.py").write_bytes(original + b"\n# edited\n")
    (source / "zz_large.bin").write_bytes(os.urandom(256 * 1024 * 1024))
    before = snapshot(legacy.cinder_dir)
    deploys = len(records(legacy))

    proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT),
                             "deploy", "--inventory", str(controller_hosts)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                len(records(legacy)) > deploys and records(legacy)[-1]["state"] == "applying"):
            time.sleep(0.02)
        assert records(legacy)[-1]["state"] == "applying", "the record came before the files"
        os.killpg(proc.pid, signal.SIGKILL)   # the deploy and its rsync, mid-transfer
    finally:
        proc.wait()
    killed = records(legacy)[-1]
    assert killed["added"] == ["zz_large.bin"] and killed["replaced"] == [replaced]

    rollback = invoke("rollback", "--inventory", str(controller_hosts))

    assert rollback.returncode == 0, rollback.stderr
    assert snapshot(legacy.cinder_dir) == before
    assert (legacy.cinder_dir / replaced).read_bytes() == original
    assert records(legacy)[-1]["state"] == "rolled back"
