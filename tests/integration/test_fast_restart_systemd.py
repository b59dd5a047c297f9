"""Fast restart on the systemd controllers: rdo (Cinder 29, Python 3, Keystone) and
legacy (Cinder Train, Python 2.7).

The unit's ExecStart is replaced by a drop-in while fast mode is on; the
unit file is never written, and ``off`` removes the drop-in.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support import invoke, wait_until, write_inventory

pytestmark = pytest.mark.integration

DROP_IN = "/etc/systemd/system/openstack-cinder-api.service.d/zz-devloop-fast-restart.conf"


@pytest.fixture(scope="module", params=["rdo", "legacy"])
def systemd_controller(request):
    """The session's rdo and legacy controllers in turn (booted once, see conftest.py)."""
    return request.getfixturevalue(f"{request.param}_controller")


def extension(alias: str) -> str:
    """An extension module both Pythons import (no f-strings)."""
    return ("from cinder.api import extensions\n\n\n"
            "class Devloop_fast_ext(extensions.ExtensionDescriptor):\n"
            '    """Fast restart probe."""\n\n'
            "    name = 'DevloopFast'\n    alias = '%s'\n"
            "    updated = '2026-11-26T00:00:00+00:00'\n" % alias)


def unit_file(controller) -> Path:
    fragment = controller.run(["systemctl", "show", "--property=FragmentPath", "--value",
                               "openstack-cinder-api.service"]).stdout.strip()
    assert fragment
    return controller.host_path(fragment)


def warm_state(controller) -> dict:
    return json.loads(controller.host_path(
        f"{controller.state_dir}/fast/run/warm.json").read_text())


def test_fast_restart_on_a_systemd_controller_serves_each_edit_and_off_leaves_the_unit(
        systemd_controller, tmp_path):
    ctl = systemd_controller
    unit = unit_file(ctl)
    before = unit.read_bytes()
    source = tmp_path / "cinder"
    contrib = source / "api" / "contrib"
    contrib.mkdir(parents=True)
    hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": ctl.entry()})

    on = invoke("fast-restart", "on", "--inventory", str(hosts))
    assert on.returncode == 0, on.stderr
    try:
        assert unit.read_bytes() == before             # the drop-in carries the change
        assert "warm_api.py" in ctl.host_path(DROP_IN).read_text()
        state = warm_state(ctl)
        assert ctl.service_pid() == state["pid"]       # systemd's MainPID is the warm parent
        for _ in range(2):
            alias = f"fast-{uuid.uuid4().hex[:8]}"
            (contrib / "devloop_fast_ext.py").write_text(extension(alias))
            result = invoke("deploy", "--inventory", str(hosts))
            assert result.returncode == 0, result.stderr
            assert "fast restart: cinder-api pid" in result.stderr, result.stderr
            assert "1 extension(s) sent are listed" in result.stderr
        assert ctl.service_pid() == state["pid"]
        status = invoke("status", "--inventory", str(hosts))
        assert f"restart   fast: warm parent pid {state['pid']}" in status.stdout, status.stdout

        # stopping the unit stops the warm parent and its cinder-api
        child = warm_state(ctl)["child"]
        ctl.stop_service()
        assert ctl.run(["test", "-d", f"/proc/{child}"]).returncode != 0
        ctl.restart_service()
        wait_until(lambda: warm_state(ctl)["state"] == "ready" and
                   warm_state(ctl)["pid"] == ctl.service_pid(), timeout=120)
    finally:
        off = invoke("fast-restart", "off", "--inventory", str(hosts))
        for _ in range(2):          # the controller is shared: take the probe away again
            invoke("rollback", "--inventory", str(hosts))
    assert off.returncode == 0, off.stderr
    assert unit.read_bytes() == before
    assert not ctl.host_path(DROP_IN).exists()
    status = invoke("status", "--inventory", str(hosts))
    assert "restart   normal (fast restart off)" in status.stdout, status.stdout
