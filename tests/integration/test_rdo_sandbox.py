"""invoke sandbox.up/status/down --kind rdo: a systemd controller per instance, nothing left.

A second instance boots beside the session's one from the cached tree (in
seconds), gets its own namespace, address, veth and cgroup, answers on its
own, and ``down`` leaves no process, mount, namespace, link or cgroup.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from deploy.sandbox.nspawn import CGROUP_ROOT, Instance
from tests.support import invoke

pytestmark = pytest.mark.integration


def leftovers(instance: Instance) -> list[str]:
    found = []
    if Path("/run/netns", instance.netns).exists():
        found.append(f"netns {instance.netns}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    if f" {instance.veth}@" in links or f" {instance.veth}:" in links:
        found.append(f"link {instance.veth}")
    if str(instance.merged) in Path("/proc/self/mounts").read_text():
        found.append(f"mount {instance.merged}")
    found += [str(p) for p in CGROUP_ROOT.glob(f"*/{instance.cgroup}")]
    found += [str(p) for p in CGROUP_ROOT.glob(instance.cgroup)]
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(instance.merged).encode() in \
                    (proc / "cmdline").read_bytes():
                found.append(f"pid {proc.name}")
        except OSError:
            pass
    return found


def test_a_second_instance_boots_in_seconds_fast_restart_on_beside_the_first_and_down_leaves_nothing(  # noqa: E501
        rdo_controller):
    base = Path(tempfile.mkdtemp(prefix="devloop-it-rdo2-"))
    root = base / "second"
    args = ["--kind", "rdo", "--root", str(root)]
    instance = Instance(root, "rdo")
    try:
        up = invoke("sandbox.up", *args)
        assert up.returncode == 0, up.stderr
        # in seconds because nothing is built again: it boots from the cached tree
        # (how long it takes is the bench's to measure, not a spec's)
        assert "root filesystem (once" not in up.stderr, up.stderr

        first = rdo_controller.instance
        assert {instance.netns, instance.veth, instance.cgroup, instance.address} \
            .isdisjoint({first.netns, first.veth, first.cgroup, first.address})
        status = invoke("sandbox.status", *args)
        assert status.returncode == 0, status.stderr
        assert "openstack-cinder-api.service active" in status.stdout
        assert "openstack-keystone.service   active" in status.stdout
        assert f"api          answering at http://{instance.address}:8776/" in status.stdout

        written = yaml.safe_load((root / "hosts.yaml").read_text())
        assert written["controllers"]["rdo"]["address"] == instance.address
        again = invoke("status", "--inventory", str(root / "hosts.yaml"))
        assert again.returncode == 0, again.stderr
        assert "active (running), pid " in again.stdout
        # a sandbox is a development controller: fast restart is on by default
        assert "fast: warm parent pid " in again.stdout
    finally:
        down = invoke("sandbox.down", *args, "--purge")
    assert down.returncode == 0, down.stderr
    assert leftovers(instance) == []
    assert not root.exists()
    assert rdo_controller.service_pid()            # the first one was left alone
    base.rmdir()


def test_an_unknown_kind_is_one_line_and_exit_2():
    result = invoke("sandbox.up", "--kind", "openshift")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --kind: unknown sandbox kind 'openshift' "
                                     "(known: supervisord, rdo, legacy, devstack)")
