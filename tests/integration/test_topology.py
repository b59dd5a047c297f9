"""Three hosts on one machine: the workstation, a devbox and controllers.

The workstation is the root network namespace. The devbox runs an sshd
of its own and holds a source tree that only it sees (bind-mounted in its
sshd's mount namespace). ``ctl`` is a sandbox controller (sshd +
supervisord + cinder-api) reachable from both the workstation and the
devbox; ``hidden`` is one reachable only from the devbox, which then
serves as its gateway. Addresses are a /24 of 172.31.0.0/16 this run
claims (``x.y.N.0/24`` below), used only inside these namespaces; the root
namespace has an ``unreachable`` route for the range while they exist, and
everything is removed afterwards. Names and addresses are this run's own,
so two runs on one machine never meet (tests/netns.py)::

    workstation --N.0/28-- devbox --N.48/28-- hidden (N.50)
         \\                    |
          N.16/28          N.32/28
                 \\            |
                  ctl (N.100 on its loopback, routed from both)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploy.base.errors import ConnectError, HostKeyMismatch, HostKeyUnknown, SyncError
from deploy.base.inventory import load_inventory
from deploy.controller.send import ONE_CALL_BYTES
from deploy.sandbox import SandboxLayout, down, up
from deploy.transport.connection import open_connection
from deploy.transport.sync import sync_tree
from tests import netns
from tests.integration.conftest import supervised_pid
from tests.support import invoke

pytestmark = pytest.mark.integration

# hosts of the range: workstation .1, devbox .2, ctl .100 (its loopback), hidden .50
DEVBOX_HOST, CTL_HOST, HIDDEN_HOST = 2, 100, 50


@dataclass
class Net:
    """Everything the tests need to know about the three-host set-up."""

    base: Path
    topo: netns.Topology
    agent: netns.Agent
    devbox: netns.Sshd
    devbox_key: Path            # the workstation's key for the devbox
    devbox_known_hosts: Path    # the workstation's pin of the devbox's host key
    devbox_disk: Path           # the devbox's source tree, as its disk holds it
    devbox_source: Path         # the same tree's path on the devbox (empty here)
    ctl: SandboxLayout
    hidden: SandboxLayout

    @property
    def devbox_addr(self) -> str:
        return self.topo.addr(DEVBOX_HOST)

    @property
    def ctl_addr(self) -> str:
        return self.topo.addr(CTL_HOST)

    @property
    def hidden_addr(self) -> str:
        return self.topo.addr(HIDDEN_HOST)

    def devbox_entry(self, **overrides: object) -> dict[str, object]:
        entry: dict[str, object] = {"address": self.devbox_addr, "port": 22, "user": "root",
                                    "identity_file": str(self.devbox_key),
                                    "known_hosts": str(self.devbox_known_hosts)}
        entry.update(overrides)
        return entry


def _skip_reason() -> str | None:
    return netns.can_create_namespaces()


@pytest.fixture(scope="module")
def net(sandbox):
    """The namespaces, the devbox's sshd, an ssh-agent and two namespaced controllers."""
    reason = _skip_reason()
    if reason:
        if os.environ.get("DEVLOOP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"three-host topology unavailable: {reason}")
        pytest.skip(f"three-host topology unavailable: {reason}")
    base = Path(tempfile.mkdtemp(prefix="devloop-topo-"))
    base.chmod(0o755)  # the cinder user walks into the sandboxes below
    topo = netns.Topology()
    started: list[object] = []
    layouts: list[SandboxLayout] = []
    try:
        topo.claim_range()
        devbox, ctl, hidden = (topo.add(n) for n in ("devbox", "ctl", "hidden"))
        a = topo.addr
        topo.link(None, devbox, "ws0", "dev0", a(1, 28), a(DEVBOX_HOST, 28))
        topo.link(None, ctl, "ws1", "ctl0", a(17, 28), a(18, 28))
        topo.link(devbox, ctl, "dev1", "ctl1", a(33, 28), a(34, 28))
        topo.link(devbox, hidden, "dev2", "hid0", a(49, 28), a(HIDDEN_HOST, 28))
        topo.address(ctl, a(CTL_HOST, 32))
        topo.route(None, a(CTL_HOST, 32), a(18))
        topo.route(devbox, a(CTL_HOST, 32), a(34))

        agent = netns.Agent.start(base)
        started.append(agent)
        devbox_key = netns.keygen(base / "devbox_id_ed25519", "workstation -> devbox")
        disk, view = base / "devbox-disk" / "src", base / "devbox-view" / "src"
        (disk / "cinder").mkdir(parents=True)
        view.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(disk)], check=True)
        devbox_sshd = netns.start_sshd(devbox, base / "devbox-sshd", a(DEVBOX_HOST),
                                  [Path(f"{devbox_key}.pub")], mounts=[(disk, view)])
        started.append(devbox_sshd)
        known = base / "devbox_known_hosts"
        known.write_text(devbox_sshd.host_key_line + "\n")

        for ns, addr in ((ctl, a(CTL_HOST)), (hidden, a(HIDDEN_HOST))):
            layout = SandboxLayout(base / ns, 22, 8776, name=ns, netns=ns, listen_address=addr,
                                   base_venv=sandbox.venv)
            layouts.append(layout)
            up(layout)
            agent.add(layout.identity_file)
        yield Net(base, topo, agent, devbox_sshd, devbox_key, known, disk, view,
                  layouts[0], layouts[1])
    finally:
        for layout in layouts:
            down(layout, purge=True)
        for thing in reversed(started):
            thing.stop()  # type: ignore[attr-defined]
        problems = topo.down()
        shutil.rmtree(base, ignore_errors=True)
        assert not problems, f"left behind: {problems}"


def cinder_of(layout: SandboxLayout) -> Path:
    return next((layout.venv / "lib").glob("python3*/site-packages/cinder"))


def write_hosts(path: Path, **top: object) -> Path:
    path.write_text(yaml.safe_dump(top, sort_keys=False))
    return path


def probe(tree: Path, text: str) -> str:
    """A uniquely named file under ``tree`` (a package no Cinder code imports)."""
    rel = f"devloop_it/probe_{uuid.uuid4().hex[:8]}.py"
    (tree / rel).parent.mkdir(parents=True, exist_ok=True)
    (tree / rel).write_text(text)
    return rel


def devbox_hosts(net: Net, tmp_path: Path, controller: SandboxLayout, **ctl_overrides: object
                 ) -> Path:
    """An inventory deploying the devbox's tree to ``controller`` (rsync on the devbox)."""
    return write_hosts(tmp_path / "hosts.yaml", source=str(net.devbox_source / "cinder"),
                       source_host="devbox", hosts={"devbox": net.devbox_entry()},
                       controllers={"ctl": {**controller.controller_entry(), **ctl_overrides}})


class TestNamespacedSandbox:
    def test_controller_answers_only_inside_its_namespace(self, net):
        entry = net.ctl.controller_entry()
        assert entry["address"] == net.ctl_addr and entry["port"] == 22
        # port 22: known_hosts names the bare address
        assert net.ctl.known_hosts.read_text().startswith(f"{net.ctl_addr} ssh-ed25519 ")
        answer = subprocess.run(net.ctl.in_netns(["/usr/bin/python3", "-c",
                                "import urllib.request as u\ntry: u.urlopen('http://127.0.0.1:8776/')\n"
                                "except Exception as e: print(getattr(e, 'code', e))"]),
                                capture_output=True, text=True)
        assert answer.stdout.strip() == "300"

    def test_clone_keeps_deploys_away_from_the_base_venv(self, net, sandbox):
        assert cinder_of(net.ctl) != cinder_of(sandbox)
        script = (net.ctl.venv / "bin/cinder-api").read_text().splitlines()[0]
        assert script == f"#!{net.ctl.venv}/bin/python3"


class TestDevboxSource:
    def test_deploy_lays_the_devbox_file_into_the_controller_and_restarts(
            self, net, tmp_path, sandbox):
        rel = probe(net.devbox_disk / "cinder", "VERSION = 1\n")
        hosts = devbox_hosts(net, tmp_path, net.ctl)
        assert not (net.devbox_source / "cinder").exists()  # only the devbox sees the tree
        before = supervised_pid(net.ctl)

        result = invoke("deploy", "--inventory", str(hosts), env=net.agent.env)

        assert result.returncode == 0, result.stderr
        assert (cinder_of(net.ctl) / rel).read_text() == "VERSION = 1\n"
        assert not (cinder_of(sandbox) / rel).exists()
        assert f"ctl: new     cinder/{rel}" in result.stdout
        after = supervised_pid(net.ctl)
        assert after and after != before
        assert "API HTTP 300" in result.stderr

        (net.devbox_disk / "cinder" / rel).write_text("VERSION = 2\n")
        again = invoke("deploy", "--inventory", str(hosts), env=net.agent.env)
        assert again.returncode == 0, again.stderr
        assert f"ctl: changed cinder/{rel}" in again.stdout
        assert (cinder_of(net.ctl) / rel).read_text() == "VERSION = 2\n"

    def test_record_carries_the_devbox_checkouts_commit(self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "X = 1\n")
        git = ["git", "-C", str(net.devbox_disk), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "probe"], check=True)
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        result = invoke("deploy", "--inventory", str(devbox_hosts(net, tmp_path, net.ctl)),
                        "--no-restart", env=net.agent.env)
        assert result.returncode == 0, result.stderr
        records = sorted((net.ctl.root / "var/lib/cinder-devloop/deploys").glob("*/record.json"))
        record = json.loads(records[-1].read_text())
        assert record["added"] == [rel]
        assert record["commit"] == commit and record["dirty"] is False

    def test_dry_run_through_the_devbox_lists_and_changes_nothing(self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "DRY = 1\n")
        result = invoke("deploy", "--inventory", str(devbox_hosts(net, tmp_path, net.ctl)),
                        "--dry-run", env=net.agent.env)
        assert result.returncode == 0, result.stderr
        assert f"ctl: new     cinder/{rel}" in result.stdout
        assert not (cinder_of(net.ctl) / rel).exists()

    def test_wrong_devbox_host_key_refuses_and_sends_nothing(self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "NO = 1\n")
        impostor = tmp_path / "impostor"
        netns.keygen(impostor)
        kind, blob = (tmp_path / "impostor.pub").read_text().split()[:2]
        wrong = tmp_path / "devbox_known_hosts"
        wrong.write_text(f"{net.devbox_addr} {kind} {blob}\n")
        hosts = write_hosts(tmp_path / "hosts.yaml", source=str(net.devbox_source / "cinder"),
                            source_host="devbox",
                            hosts={"devbox": net.devbox_entry(known_hosts=str(wrong))},
                            controllers={"ctl": net.ctl.controller_entry()})

        result = invoke("deploy", "--inventory", str(hosts), env=net.agent.env)

        assert result.returncode == 1
        assert "devbox" in result.stderr and "does not match" in result.stderr
        assert not (cinder_of(net.ctl) / rel).exists()

    def test_wrong_controller_key_on_the_devbox_hop_refuses_and_sends_nothing(
            self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "NO = 2\n")
        impostor = netns.keygen(tmp_path / "impostor")
        kind, blob = Path(f"{impostor}.pub").read_text().split()[:2]
        wrong = tmp_path / "ctl_known_hosts"
        wrong.write_text(f"{net.ctl_addr} {kind} {blob}\n")
        inventory = load_inventory(devbox_hosts(net, tmp_path, net.ctl, known_hosts=str(wrong)))

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SSH_AUTH_SOCK", str(net.agent.socket))
            with pytest.raises(SyncError) as caught:
                sync_tree(inventory, inventory.get("ctl"), str(cinder_of(net.ctl)))

        message = str(caught.value)
        assert "rsync on devbox" in message and f"ctl (root@{net.ctl_addr}:22)" in message
        # ssh exits 255; rsync may see the closed pipe first and exit 12 instead
        assert "exit code 255" in message or "exit code 12" in message, message
        assert "Host key verification failed" in message, message
        assert "is not the one pinned in" in message and "nothing was sent" in message, message
        assert not (cinder_of(net.ctl) / rel).exists()

    def test_unpinned_controller_key_is_refused_before_the_devbox_is_asked(self, net, tmp_path):
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        inventory = load_inventory(devbox_hosts(net, tmp_path, net.ctl, known_hosts=str(empty)))
        with pytest.raises(HostKeyUnknown, match="ctl .*not pinned.*ssh-keyscan"):
            sync_tree(inventory, inventory.get("ctl"), str(cinder_of(net.ctl)))

    def test_without_the_key_in_an_agent_the_user_is_told_to_ssh_add(self, net, tmp_path,
                                                                    monkeypatch):
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        inventory = load_inventory(devbox_hosts(net, tmp_path, net.ctl))
        with pytest.raises(ConnectError, match=r"devbox logs in to it with your forwarded "
                                               r"ssh-agent.*ssh-add"):
            sync_tree(inventory, inventory.get("ctl"), str(cinder_of(net.ctl)))


class TestGateway:
    def hosts(self, net: Net, tmp_path: Path, source: Path | str, *, devbox_source: bool = False,
              gateway_known_hosts: Path | None = None) -> Path:
        gateway = net.devbox_entry(**({"known_hosts": str(gateway_known_hosts)}
                                      if gateway_known_hosts else {}))
        top: dict[str, object] = {"source": str(source)}
        if devbox_source:
            top["source_host"] = "devbox"
        top["hosts"] = {"devbox": gateway}
        top["controllers"] = {"hid": {**net.hidden.controller_entry(), "gateway": "devbox"}}
        return write_hosts(tmp_path / "hosts.yaml", **top)

    def test_hidden_controller_is_not_reachable_directly(self, net):
        inventory_ctl = load_inventory(write_hosts(
            Path(net.base) / f"direct-{uuid.uuid4().hex[:6]}.yaml",
            source=str(net.base), controllers={"hid": net.hidden.controller_entry()})).get("hid")
        started = time.monotonic()
        with pytest.raises(ConnectError, match="hid"):
            open_connection(inventory_ctl)
        assert time.monotonic() - started < 2  # the unreachable route fails at once

    def test_a_controller_the_gateway_cannot_reach_is_reported_naming_the_gateway(
            self, net, tmp_path):
        hosts = self.hosts(net, tmp_path, net.base)
        raw = yaml.safe_load(hosts.read_text())
        raw["controllers"]["hid"]["port"] = 2222  # nothing listens there
        hid = load_inventory(write_hosts(hosts, **raw)).get("hid")
        hid_addr, devbox_addr = re.escape(net.hidden_addr), re.escape(net.devbox_addr)
        with pytest.raises(ConnectError, match=rf"^hid \(root@{hid_addr}:2222\): gateway "
                                               rf"devbox \(root@{devbox_addr}:22\) could not "
                                               rf"connect to {hid_addr}:2222"):
            open_connection(hid)

    def test_deploy_from_the_workstation_through_the_gateway(self, net, tmp_path):
        tree = tmp_path / "src" / "cinder"
        tree.mkdir(parents=True)
        rel = probe(tree, "GW = 1\n")
        before = supervised_pid(net.hidden)

        result = invoke("deploy", "--inventory", str(self.hosts(net, tmp_path, tree)),
                        "--verbose")

        assert result.returncode == 0, result.stderr
        assert (cinder_of(net.hidden) / rel).read_text() == "GW = 1\n"
        assert f"hid: new     cinder/{rel}" in result.stdout
        # the tree rode the one connection, which went through the gateway
        assert "Lay a small overlay tree" in result.stderr and "rsh_shim.py" not in result.stderr
        after = supervised_pid(net.hidden)
        assert after and after != before
        assert "API HTTP 300" in result.stderr

    def test_a_tree_too_large_for_one_call_is_rsynced_through_the_gateway(self, net, tmp_path):
        tree = tmp_path / "src" / "cinder"
        tree.mkdir(parents=True)
        rel = probe(tree, "GW = 3\n")
        (tree / "devloop_topo_blob.bin").write_bytes(os.urandom(ONE_CALL_BYTES + 1))

        result = invoke("deploy", "--inventory", str(self.hosts(net, tmp_path, tree)),
                        "--no-restart", "--verbose")

        assert result.returncode == 0, result.stderr
        assert (cinder_of(net.hidden) / rel).read_text() == "GW = 3\n"
        # rsync rode a channel of the one connection, which went through the gateway
        assert "rsh_shim.py" in result.stderr
        (cinder_of(net.hidden) / "devloop_topo_blob.bin").unlink()

    def test_deploy_from_the_devbox_that_is_also_the_gateway(self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "GW = 2\n")
        hosts = self.hosts(net, tmp_path, net.devbox_source / "cinder", devbox_source=True)
        result = invoke("deploy", "--inventory", str(hosts), "--verbose", env=net.agent.env)
        assert result.returncode == 0, result.stderr
        assert (cinder_of(net.hidden) / rel).read_text() == "GW = 2\n"
        assert f"hid: new     cinder/{rel}" in result.stdout

    def test_two_controllers_in_parallel_from_one_devbox(self, net, tmp_path):
        rel = probe(net.devbox_disk / "cinder", "BOTH = 1\n")
        hosts = write_hosts(tmp_path / "hosts.yaml", source=str(net.devbox_source / "cinder"),
                            source_host="devbox", hosts={"devbox": net.devbox_entry()},
                            controllers={
                                "ctl": net.ctl.controller_entry(),
                                "hid": {**net.hidden.controller_entry(), "gateway": "devbox"}})
        result = invoke("deploy", "--inventory", str(hosts), "--no-restart", env=net.agent.env)
        assert result.returncode == 0, result.stderr
        for layout, name in ((net.ctl, "ctl"), (net.hidden, "hid")):
            assert (cinder_of(layout) / rel).read_text() == "BOTH = 1\n"
            assert f"{name}: new     cinder/{rel}" in result.stdout

    def test_an_ide_attaches_to_a_controller_behind_the_gateway(self, net, tmp_path):
        import pexpect

        from tests.dap_client import DapClient
        from tests.integration.test_debug import spawn_debug, text_of
        from tests.support import free_port, wait_until

        before = supervised_pid(net.hidden)
        port = free_port()
        child = spawn_debug(self.hosts(net, tmp_path, net.base), "--attach", "--port", str(port))
        try:
            child.expect("in the API worker; attach the IDE", timeout=240)
            with DapClient(port) as dap:   # its channel rides the connection via the gateway
                dap.request("initialize", clientID="vscode", adapterID="debugpy")
                attached = dap.send("attach", justMyCode=False)
                dap.wait_event("initialized")
                dap.request("configurationDone")
                dap.response(attached)
                assert dap.request("threads")["threads"], "no thread in the worker"
                dap.request("disconnect")
            child.sendcontrol("c")
            child.expect(pexpect.EOF, timeout=120)
            child.close()
            assert child.exitstatus == 130, text_of(child)
        finally:
            print(text_of(child))     # shown when the spec fails
            if child.isalive():
                child.kill(9)
        assert "debugpy removed (" in text_of(child)
        after = wait_until(lambda: supervised_pid(net.hidden), timeout=60)
        assert after != before

    def test_wrong_gateway_key_refuses_for_fabric_and_rsync(self, net, tmp_path):
        tree = tmp_path / "src" / "cinder"
        tree.mkdir(parents=True)
        rel = probe(tree, "NO = 3\n")
        impostor = netns.keygen(tmp_path / "impostor")
        kind, blob = Path(f"{impostor}.pub").read_text().split()[:2]
        wrong = tmp_path / "gw_known_hosts"
        wrong.write_text(f"{net.devbox_addr} {kind} {blob}\n")
        inventory = load_inventory(self.hosts(net, tmp_path, tree, gateway_known_hosts=wrong))
        hid = inventory.get("hid")

        devbox_addr = re.escape(net.devbox_addr)
        with pytest.raises(HostKeyMismatch, match=rf"^devbox \(root@{devbox_addr}:22\): host key"):
            open_connection(hid)
        with pytest.raises(SyncError, match="Host key verification failed"):
            sync_tree(inventory, hid, str(cinder_of(net.hidden)))
        assert not (cinder_of(net.hidden) / rel).exists()


class TestTimings:
    def test_one_file_deploy_via_devbox_vs_direct(self, net, tmp_path):
        """Prints the wall time of a one-file ``invoke deploy`` each way (run with -s)."""
        tree = tmp_path / "src" / "cinder"
        tree.mkdir(parents=True)
        direct = write_hosts(tmp_path / "direct.yaml", source=str(tree),
                             controllers={"ctl": net.ctl.controller_entry()})
        hop = devbox_hosts(net, tmp_path, net.ctl)
        seconds: dict[str, list[float]] = {"direct": [], "devbox": []}
        for _ in range(2):
            for label, hosts, where in (("direct", direct, tree),
                                        ("devbox", hop, net.devbox_disk / "cinder")):
                probe(where, "T = 1\n")
                started = time.monotonic()
                result = invoke("deploy", "--inventory", str(hosts), "--no-restart",
                                env=net.agent.env)
                seconds[label].append(time.monotonic() - started)
                assert result.returncode == 0, result.stderr
        print(f"\none-file deploy --no-restart (s): {seconds}")

    def test_one_file_sync_via_devbox_vs_direct(self, net, tmp_path, monkeypatch):
        """Prints the time of ``sync_tree`` alone, one new file each time (run with -s)."""
        monkeypatch.setenv("SSH_AUTH_SOCK", str(net.agent.socket))
        tree = tmp_path / "src" / "cinder"
        tree.mkdir(parents=True)
        direct = load_inventory(write_hosts(tmp_path / "direct.yaml", source=str(tree),
                                            controllers={"ctl": net.ctl.controller_entry()}))
        hop = load_inventory(devbox_hosts(net, tmp_path, net.ctl))
        target = str(cinder_of(net.ctl))
        seconds: dict[str, list[float]] = {"direct": [], "devbox": []}
        for _ in range(3):
            for label, inventory, where in (("direct", direct, tree),
                                            ("devbox", hop, net.devbox_disk / "cinder")):
                probe(where, "S = 1\n")
                started = time.monotonic()
                changes = sync_tree(inventory, inventory.get("ctl"), target)
                seconds[label].append(round(time.monotonic() - started, 3))
                assert len(changes) == 1
        print(f"\none-file sync_tree (s; the devbox's first includes its handshake): {seconds}")
