"""Root never writes, or removes, through a symlink in the controller's package.

Whoever can write the package (the ``stack`` user owns DevStack's checkout)
could plant a directory symlink in it, ``cinder/zz -> /elsewhere``, to aim
the tool's root writes anywhere. Every helper that writes under the package
walks to each file's directory one real directory at a time (``O_NOFOLLOW``)
and refuses a symlink on the way with one line naming it, before anything
changes: the one-call deploy, the rsync deploy (which would otherwise swap
the symlink for a directory that no record lists and no rollback brings
back), and the rollback. On every kind of controller.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from tests.support import invoke

pytestmark = pytest.mark.integration

PATHS = ("one call", "rsync")


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def elsewhere(controller, tag):
    """A directory outside the package, on the controller, holding one file; removed after.

    (Beside the state directory: a container's /tmp is its own, out of this machine's sight.)
    """
    path = f"{controller.state_dir}-elsewhere-{tag}"
    assert controller.run(["mkdir", "-m", "755", path]).returncode == 0
    assert controller.run(["sh", "-c", 'echo precious > "$1"/keep.py', "sh", path]).returncode == 0
    yield path
    controller.run(["rm", "-rf", "--", path])


def planted(controller, rel: str, to: str) -> Path:
    """``cinder/<rel>`` made a symlink to ``to`` on the controller (as its owner could)."""
    link = f"{controller.cinder_path}/{rel}"
    assert controller.run(["ln", "-s", "--", to, link]).returncode == 0
    return controller.host_path(link)


def listing(controller, path: str) -> dict[str, str]:
    """What ``path`` on the controller holds: name -> sha256."""
    where = controller.host_path(path)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in where.iterdir()}


def records(controller) -> set[str]:
    deploys = controller.host_path(controller.state_dir) / "deploys"
    return {p.name for p in deploys.iterdir()} if deploys.exists() else set()


def force(path: str, source: Path, tag: str) -> None:
    """Make the deploy of ``source`` go ``path``'s way (a tree with a symlink needs rsync)."""
    if path == "rsync":
        (source / f"devloop_link_{tag}.txt").symlink_to("__init__.py")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


@pytest.mark.parametrize("path", PATHS)
def test_a_directory_symlink_in_the_package_is_refused_and_nothing_is_written(
        controller, controller_hosts, source, tag, elsewhere, path):
    zz = f"devloop_zz_{tag}"
    link = planted(controller, zz, elsewhere)
    (source / zz).mkdir()
    (source / zz / "keep.py").write_text("OVERWRITTEN = True\n")
    (source / zz / "planted.py").write_text("PLANTED = True\n")
    force(path, source, tag)
    before, known = listing(controller, elsewhere), records(controller)
    try:
        result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")

        assert result.returncode == 1
        line = one_error_line(result.stderr)
        assert line == (f"error: sbx: refusing to write through {controller.cinder_path}/{zz}: "
                        f"a symlink (to {elsewhere}), not a directory of the package; "
                        f"nothing was changed")
        assert listing(controller, elsewhere) == before          # nothing written there
        assert link.is_symlink() and str(link.readlink()) == elsewhere   # kept as it was
        assert not any(json.loads((controller.host_path(controller.state_dir) / "deploys" / rid
                                   / "record.json").read_text()).get("state") == "applied"
                       for rid in records(controller) - known)
    finally:
        link.unlink()


def test_a_symlinked_pycache_is_refused_so_nothing_outside_the_package_is_removed(
        controller, controller_hosts, source, tag, elsewhere):
    package = f"devloop_pyc_{tag}"
    (source / package).mkdir()
    (source / package / "mod.py").write_text("V = 1\n")
    assert invoke("deploy", "--inventory", str(controller_hosts), "--no-restart").returncode == 0
    # a file named as a compiled mod.py would be, outside the package
    victim = controller.host_path(elsewhere) / "mod.cpython-311.pyc"
    victim.write_bytes(b"not yours to remove")
    (controller.host_path(elsewhere) / "mod.pyc").write_bytes(b"nor this")
    link = planted(controller, f"{package}/__pycache__", elsewhere)
    (source / package / "mod.py").write_text("V = 2\n")
    before = listing(controller, elsewhere)

    result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")

    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: sbx: refusing to write through {controller.cinder_path}/{package}/__pycache__: "
        f"a symlink (to {elsewhere}), not a directory of the package; nothing was changed")
    assert listing(controller, elsewhere) == before
    assert (controller.cinder_dir / package / "mod.py").read_text() == "V = 1\n"
    link.unlink()
    assert invoke("rollback", "--inventory", str(controller_hosts),
                  "--no-restart").returncode == 0
    assert not (controller.cinder_dir / package).exists()


def test_a_rollback_refuses_to_remove_or_restore_through_a_directory_symlink(
        controller, controller_hosts, source, tag, elsewhere):
    zz = f"devloop_zz_{tag}"
    (source / zz).mkdir()
    (source / zz / "keep.py").write_text("DEPLOYED = True\n")
    assert invoke("deploy", "--inventory", str(controller_hosts), "--no-restart").returncode == 0
    deployed = controller.cinder_dir / zz
    # the deployed directory swapped for a symlink to a directory that has keep.py too
    moved = controller.host_path(f"{elsewhere}-moved")
    deployed.rename(moved)
    link = planted(controller, zz, elsewhere)
    before = listing(controller, elsewhere)
    try:
        result = invoke("rollback", "--inventory", str(controller_hosts), "--no-restart")

        assert result.returncode == 1
        assert one_error_line(result.stderr) == (
            f"error: sbx: refusing to write through {controller.cinder_path}/{zz}: "
            f"a symlink (to {elsewhere}), not a directory of the package; nothing was changed")
        assert listing(controller, elsewhere) == before
    finally:
        link.unlink()
        moved.rename(deployed)
    assert invoke("rollback", "--inventory", str(controller_hosts),
                  "--no-restart").returncode == 0
    assert not deployed.exists()


@pytest.mark.parametrize("controller", ["devstack"], indirect=True)
def test_a_checkout_its_owner_swapped_for_a_symlink_is_refused(controller, controller_hosts,
                                                               source, tag):
    """``stack`` owns /opt/stack: it could point /opt/stack/cinder anywhere a ``cinder``
    directory is (``/etc``): root follows no symlink there."""
    checkout, rel = controller.checkout, f"devloop_swap_{tag}.py"
    real = f"{checkout}.real-{tag}"
    (source / rel).write_text("SWAPPED = True\n")
    swap = controller.run(["sh", "-c", 'mv -- "$1" "$2" && ln -s -- "$2" "$1"', "sh",
                           checkout, real], user=controller.service_user)
    assert swap.returncode == 0, swap.stderr
    try:
        result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")

        assert result.returncode == 1
        assert one_error_line(result.stderr) == (
            f"error: sbx: refusing to write through {checkout}: a symlink (to {real}), in a "
            f"directory another user can write; nothing was changed")
        assert not controller.host_path(f"{real}/cinder/{rel}").exists()
    finally:
        controller.run(["sh", "-c", 'rm -- "$1" && mv -- "$2" "$1"', "sh", checkout, real])
