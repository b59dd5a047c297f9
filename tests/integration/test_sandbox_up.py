"""invoke sandbox.up on the quick kind: a development controller, fast restart on by default."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from deploy.sandbox import SandboxLayout
from tests.support import free_port, invoke

pytestmark = pytest.mark.integration


def test_sandbox_up_turns_fast_restart_on_unless_told_not_and_down_leaves_nothing(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="devloop-it-up-"))
    base.chmod(0o755)
    root = base / "sandbox"
    args = ["--root", str(root), "--ssh-port", str(free_port()), "--api-port", str(free_port())]
    try:
        plain = invoke("sandbox.up", *args, "--no-fast-restart", timeout=600)
        assert plain.returncode == 0, plain.stderr
        conf = SandboxLayout(root, int(args[3]), int(args[5])).supervisor_conf
        installed = conf.read_text()
        assert "warm_api.py" not in installed

        fast = invoke("sandbox.up", *args)
        assert fast.returncode == 0, fast.stderr
        assert "fast restart on: cinder-api runs from a warm parent" in fast.stderr
        assert "warm_api.py" in conf.read_text()

        off = invoke("fast-restart", "off", "--inventory", str(inventory(tmp_path, root, args)))
        assert off.returncode == 0, off.stderr
        assert conf.read_text() == installed          # the command as installed, byte for byte
    finally:
        down = invoke("sandbox.down", *args, "--purge")
    assert down.returncode == 0, down.stderr
    assert not root.exists()
    base.rmdir()


def inventory(directory: Path, root: Path, args: list[str]) -> Path:
    """A hosts.yaml for the sandbox at ``root``, as ``--print-config``-free users write it."""
    from tests.support import write_inventory

    layout = SandboxLayout(root, int(args[3]), int(args[5]))
    return write_inventory(directory / "hosts.yaml", directory,
                           {layout.name: layout.controller_entry()})
