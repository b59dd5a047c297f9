"""The feature's two layers on every kind: the common tree with a release tree over it.

A copy of the repo's cinder_patch gets a file in both its common tree and
the release tree of the controller's Cinder, with other bytes in each:
deploy sends the release tree's (and ``--dry-run --diff`` shows it, sending
nothing); a save in either layer is what the next
deploy sends (and only that, as this checkout last sent the rest);
``status`` sees a layer's unsent change as drift; ``rollback`` takes it all
back. On the supervisord sandbox: ``watch`` deploys a save in either layer;
a layered tree too large for one call goes through rsync the same way; a
release without a tree of its own is one error line and nothing is sent.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.test_fast_restart_fallback import newest_applied_deploy
from tests.support import PROJECT_ROOT, Watcher, invoke, write_inventory

pytestmark = pytest.mark.integration

PROBE = "cluster_manage/devloop_layer_probe.py"


@pytest.fixture
def layers(tmp_path) -> tuple[Path, Path]:
    """A copy of cinder_patch: (its common tree, the release tree of each kind's Cinder)."""
    shutil.copytree(PROJECT_ROOT / "cinder_patch", tmp_path / "cinder_patch")
    return tmp_path / "cinder_patch" / "cinder", tmp_path / "cinder_patch"


def release_layer(copy: Path, controller) -> Path:
    return copy / Path(controller.release_tree).relative_to("cinder_patch")


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def roll_back_to(before: str, hosts: Path) -> None:
    """Undo the spec's deploys: the controller runs the repo's feature again."""
    undone = invoke("rollback", "--inventory", str(hosts), "--to", before)
    assert undone.returncode == 0 or "already the newest" in undone.stderr, undone.stderr


def test_a_release_trees_file_wins_and_a_save_in_either_layer_is_sent(
        controller, feature_controller, layers, tmp_path):
    common, copy = layers
    release = release_layer(copy, controller)
    (common / PROBE).write_text("LAYER = 'common'\n")
    (release / PROBE).write_text("LAYER = 'release'\n")
    hosts = write_inventory(tmp_path / "hosts.yaml", common, {"ctl": controller.entry()})
    deployed = controller.host_path(f"{controller.cinder_path}/{PROBE}")
    before = newest_applied_deploy(controller)
    try:
        preview = invoke("deploy", "--inventory", str(hosts), "--dry-run", "--diff")
        assert preview.returncode == 0, preview.stderr
        assert f"+++ b/cinder/{PROBE}" in preview.stdout and "+LAYER = 'release'" in preview.stdout
        assert "LAYER = 'common'" not in preview.stdout
        assert not deployed.exists()

        first = invoke("deploy", "--inventory", str(hosts), "--no-restart")

        assert first.returncode == 0, first.stderr
        assert f"sync {common} + {release} -> {controller.cinder_path}" in first.stderr
        # the rest of the copy is the feature the controller already runs
        assert f"ctl: new     cinder/{PROBE}" in first.stdout
        assert first.stdout.count("cinder/") == 1, first.stdout
        assert deployed.read_text() == "LAYER = 'release'\n"

        (release / PROBE).write_text("LAYER = 'release, saved again'\n")
        append(common / "cluster_manage" / "api.py", "# saved in the common tree\n")
        status = invoke("status", "--inventory", str(hosts))
        assert "local tree: DIFFERS, 2 file(s)" in status.stdout, status.stdout

        second = invoke("deploy", "--inventory", str(hosts), "--no-restart")

        assert second.returncode == 0, second.stderr
        assert "2 file(s) changed since this checkout's last deploy here" in second.stderr
        assert deployed.read_text() == "LAYER = 'release, saved again'\n"
        assert controller.host_path(f"{controller.cinder_path}/cluster_manage/api.py") \
            .read_text().endswith("# saved in the common tree\n")
        status = invoke("status", "--inventory", str(hosts))
        assert "local tree: same as deployed" in status.stdout, status.stdout
    finally:
        roll_back_to(before, hosts)
    assert not deployed.exists()


def test_watch_deploys_a_save_in_either_layer(sandbox, deployed_feature, layers, tmp_path):
    from tests.integration.controllers import SupervisordController

    controller = SupervisordController(sandbox)
    common, copy = layers
    release = release_layer(copy, controller)
    hosts = write_inventory(tmp_path / "hosts.yaml", common, {"ctl": controller.entry()})
    deployed = controller.host_path(f"{controller.cinder_path}/{PROBE}")
    before = newest_applied_deploy(controller)
    try:
        with Watcher("--inventory", str(hosts), "--debounce", "200") as watch:
            line = watch.read_until("watching")
            assert str(common) in line and str(release) in line
            (release / PROBE).write_text("LAYER = 'release'\n")
            ok = watch.read_until(f"ctl: {PROBE} -> ", timeout=120)
            assert "-> OK: 1 file(s)" in ok, ok
            assert deployed.read_text() == "LAYER = 'release'\n"
            (common / PROBE).write_text("LAYER = 'common, under the release tree'\n")
            append(common / "cluster_manage" / "api.py", "# saved while watching\n")
            ok = watch.read_until("ctl: cluster_manage/", timeout=120)
            assert "-> OK: 1 file(s)" in ok, ok      # api.py; the probe stays the release's
            assert deployed.read_text() == "LAYER = 'release'\n"
            assert watch.interrupt() == 0
    finally:
        roll_back_to(before, hosts)
    assert not deployed.exists()


@pytest.mark.parametrize("breakage, message", [
    ("release", "{copy}/MANIFEST.txt: 'release 16.0.0' in a common tree: a release needs a tree "
                "of its own ('variant <dir>' with <dir>/MANIFEST.txt and <dir>/cinder/, see "
                "cinder_patch/README.md)"),
    ("no tree", "{copy}/releases/train/MANIFEST.txt: Cinder 15.6.0 has no tree of its own: "
                "{copy}/releases/train/cinder is not a directory"),
])
def test_a_release_without_a_tree_of_its_own_is_one_error_line_and_nothing_is_sent(
        sandbox, deployed_feature, layers, tmp_path, breakage, message):
    from tests.integration.controllers import SupervisordController

    controller = SupervisordController(sandbox)
    common, copy = layers
    if breakage == "release":
        append(copy / "MANIFEST.txt", "release 16.0.0\n")
    else:
        shutil.rmtree(copy / "releases" / "train" / "cinder")
    (common / PROBE).write_text("LAYER = 'common'\n")
    hosts = write_inventory(tmp_path / "hosts.yaml", common, {"ctl": controller.entry()})
    before = newest_applied_deploy(controller)

    result = invoke("deploy", "--inventory", str(hosts))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {message.format(copy=copy)}"], result.stderr
    assert not controller.host_path(f"{controller.cinder_path}/{PROBE}").exists()
    assert newest_applied_deploy(controller) == before


def test_a_layered_tree_too_large_for_one_call_goes_through_rsync(
        sandbox, deployed_feature, layers, tmp_path):
    from tests.integration.controllers import SupervisordController

    controller = SupervisordController(sandbox)
    common, copy = layers
    release = release_layer(copy, controller)
    (common / PROBE).write_text("LAYER = 'common'\n")
    (release / PROBE).write_text("LAYER = 'release'\n")
    large = os.urandom(5 * 1024 * 1024)           # over the one call's 4 MiB
    (release / "devloop_large.bin").write_bytes(large)
    hosts = write_inventory(tmp_path / "hosts.yaml", common, {"ctl": controller.entry()})
    before = newest_applied_deploy(controller)
    try:
        result = invoke("deploy", "--inventory", str(hosts), "--no-restart", "-v")

        assert result.returncode == 0, result.stderr
        assert f"sync {common} + {release} -> {controller.cinder_path}" in result.stderr
        assert "in one call" not in result.stderr and "rsync " in result.stderr, result.stderr
        assert controller.host_path(f"{controller.cinder_path}/{PROBE}").read_text() == \
            "LAYER = 'release'\n"
        assert controller.host_path(f"{controller.cinder_path}/devloop_large.bin") \
            .read_bytes() == large
    finally:
        roll_back_to(before, hosts)
    assert not controller.host_path(f"{controller.cinder_path}/devloop_large.bin").exists()
