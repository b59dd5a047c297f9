"""What only the legacy controller (Python 2.7, Cinder Train, sqlalchemy-migrate) has.

The loop specs (deploy, db-sync, status, loop, rollback, restart, logs,
debug through a real terminal, the REST specs and smoke) run against it as
one kind of ``controller`` among the others (test_loop.py, test_rollback.py,
test_iterate.py, test_feature.py, test_debug_kinds.py). Here: the inventory
``sandbox.up`` writes holds only what a user writes; the repo's feature lays
its Train release tree over its common tree by itself, and Python 2.7
compiles both there; a feature without a Train release tree is refused with
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


def test_a_feature_without_a_release_tree_for_train_is_refused_and_nothing_changes(
        legacy, tmp_path):
    patch = tmp_path / "cinder_patch"
    shutil.copytree(PROJECT_ROOT / "cinder_patch", patch)
    manifest = (patch / "MANIFEST.txt").read_text()
    (patch / "MANIFEST.txt").write_text(
        "\n".join(line for line in manifest.splitlines()
                  if not line.startswith("variant releases/train")) + "\n")
    hosts = write_inventory(tmp_path / "hosts.yaml", patch / "cinder", {"sbx": legacy.entry()})
    before, deploys = snapshot(legacy.cinder_dir), len(records(legacy))

    result = invoke("deploy", "--inventory", str(hosts))

    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        f"error: sbx: refusing to deploy {patch}/cinder: no release tree of {patch}/MANIFEST.txt "
        f"targets the controller's Cinder 15.6.0 ({patch}/releases/29/MANIFEST.txt: Cinder "
        f"29.0.0); the common tree is never sent alone: add a release tree for it (see "
        f"cinder_patch/README.md). Nothing was changed; --ignore-manifest sends the common "
        f"tree anyway."], result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(legacy.cinder_dir) == before
    assert len(records(legacy)) == deploys


def test_the_repo_patch_sends_its_common_tree_with_the_train_tree_laid_over_it(legacy, tmp_path):
    hosts = write_inventory(tmp_path / "hosts.yaml", PROJECT_ROOT / "cinder_patch" / "cinder",
                            {"sbx": legacy.entry()})
    deploy = invoke("deploy", "--inventory", str(hosts))
    assert deploy.returncode == 0, deploy.stderr
    assert (f"sync {PROJECT_ROOT}/cinder_patch/cinder + {PROJECT_ROOT}/cinder_patch/releases/"
            f"train/cinder -> {legacy.cinder_path}") in deploy.stderr
    assert (legacy.cinder_dir / "db/sqlalchemy/migrate_repo/versions/"
            "133_add_managed_clusters.py").is_file()
    assert not (legacy.cinder_dir / "db" / "migrations").exists()   # the 29.0.0 tree's
    # what was sent is the common tree's files with Train's laid over them ...
    common = PROJECT_ROOT / "cinder_patch" / "cinder"
    train = PROJECT_ROOT / "cinder_patch" / "releases" / "train" / "cinder"
    sent = {str(p.relative_to(common)): p for p in common.rglob("*.py")}
    sent.update({str(p.relative_to(train)): p for p in train.rglob("*.py")})
    for rel, path in sent.items():
        assert (legacy.cinder_dir / rel).read_bytes() == path.read_bytes(), rel
    # ... and the controller's Python 2.7 compiles every one of them
    compiled = legacy.run([legacy.python, "-c", "import sys\n"
                           "for path in sys.argv[1:]: compile(open(path).read(), path, 'exec')",
                           *[f"{legacy.cinder_path}/{rel}" for rel in sorted(sent)]])
    assert compiled.returncode == 0, compiled.stderr
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
