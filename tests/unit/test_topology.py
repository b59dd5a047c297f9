"""Gateways and a devbox source: the ssh/rsync command lines and Fabric hops, host-free."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest

from deploy.base.errors import ConnectError, HostKeyUnknown, SyncError
from deploy.base.inventory import Controller, Host, Inventory
from deploy.sandbox import SandboxLayout
from deploy.transport import connection
from deploy.transport.connection import (
    gateway_chain,
    known_hosts_name,
    ssh_argv,
    translate_ssh_errors,
)
from deploy.transport.source import build_remote_git_argv
from deploy.transport.sync import (
    DevboxSync,
    _changes_or_raise,
    build_devbox_sync,
    check_agent_holds,
    devbox_hops,
    pinned_lines,
    public_key_of,
)

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER = "AAAAC3NzaC1lZDI1NTE5AAAAIHHnUkOHxQM0GzI3Ut0ZV1MslGQKSiA2uiNsgFqV2f5y"


def options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]


def option(argv: list[str], name: str) -> str:
    values = [o.split("=", 1)[1] for o in options(argv) if o.startswith(name + "=")]
    assert len(values) == 1, f"{name} appears {len(values)} times"
    return values[0]


@pytest.fixture
def keys(tmp_path) -> Path:
    """A directory of known_hosts files, one per hop, each pinning its host."""
    (tmp_path / "bastion_kh").write_text(f"[198.51.100.1]:2200 ssh-ed25519 {ED25519}\n")
    (tmp_path / "devbox_kh").write_text(f"10.0.0.2 ssh-ed25519 {ED25519}\n")
    (tmp_path / "ctl_kh").write_text(f"other ssh-ed25519 {OTHER}\n"
                                     f"[10.0.1.5]:2222 ssh-ed25519 {OTHER}\n")
    return tmp_path


def bastion(keys: Path) -> Host:
    return Host("bastion", "198.51.100.1", port=2200, known_hosts=keys / "bastion_kh",
                identity_file=keys / "bastion id")


def devbox(keys: Path, gateway: Host | None = None) -> Host:
    return Host("devbox", "10.0.0.2", known_hosts=keys / "devbox_kh",
                identity_file=keys / "devbox_id", gateway=gateway)


def ctl(keys: Path, gateway: Host | None = None, **kw: object) -> Controller:
    values: dict[str, object] = dict(port=2222, known_hosts=keys / "ctl_kh",
                                     identity_file=keys / "ctl_id", gateway=gateway)
    values.update(kw)
    return Controller("ctl", "10.0.1.5", **values)  # type: ignore[arg-type]


def proxy_of(argv: list[str]) -> list[str]:
    """The ProxyCommand of ``argv`` as the shell will split it (after ssh's %-expansion)."""
    return shlex.split(option(argv, "ProxyCommand").replace("%%", "%"))


class TestGatewaySshArgv:
    def test_no_gateway_no_proxy_command(self, keys):
        assert not any(o.startswith("ProxyCommand=") for o in options(ssh_argv(ctl(keys))))

    def test_gateway_becomes_a_proxy_command_from_the_gateways_own_argv(self, keys):
        gw = devbox(keys)
        argv = ssh_argv(ctl(keys, gateway=gw))
        assert proxy_of(argv) == ssh_argv(gw) + ["-W", "%h:%p", "10.0.0.2"]

    def test_each_hop_is_pinned_by_its_own_known_hosts_and_key(self, keys):
        argv = ssh_argv(ctl(keys, gateway=devbox(keys)))
        proxy = proxy_of(argv)
        assert option(argv, "UserKnownHostsFile") == str(keys / "ctl_kh")
        assert option(proxy, "UserKnownHostsFile") == str(keys / "devbox_kh")
        assert argv[argv.index("-i") + 1] == str(keys / "ctl_id")
        assert proxy[proxy.index("-i") + 1] == str(keys / "devbox_id")
        for hop in (argv, proxy):
            assert "StrictHostKeyChecking=yes" in options(hop)
            assert "BatchMode=yes" in options(hop)
            assert "GlobalKnownHostsFile=/dev/null" in options(hop)

    def test_every_option_once_on_every_hop_because_ssh_keeps_the_first(self, keys):
        argv = ssh_argv(ctl(keys, gateway=devbox(keys, gateway=bastion(keys))))
        hops = [argv, proxy_of(argv)]
        hops.append(proxy_of(hops[1]))
        for hop in hops:
            assert hop.count("-p") == 1 and hop.count("-l") == 1
            option(hop, "UserKnownHostsFile")
        assert hops[2][hops[2].index("-p") + 1] == "2200"

    def test_chained_gateways_nest_and_inner_tokens_survive_the_outer_expansion(self, keys):
        argv = ssh_argv(ctl(keys, gateway=devbox(keys, gateway=bastion(keys))))
        first = proxy_of(argv)                     # ssh to the devbox ...
        assert first[-3:] == ["-W", "%h:%p", "10.0.0.2"]
        second = proxy_of(first)                   # ... through the bastion
        assert second[-3:] == ["-W", "%h:%p", "198.51.100.1"]
        assert second[second.index("-i") + 1] == str(keys / "bastion id")

    def test_a_percent_in_a_path_is_not_taken_for_an_ssh_token(self, keys):
        odd = keys / "50%kh"
        odd.write_text("")
        argv = ssh_argv(ctl(keys, known_hosts=odd, gateway=devbox(keys)))
        assert option(argv, "UserKnownHostsFile") == str(keys / "50%%kh")

    def test_proxy_command_quoting_survives_rsync_and_the_shell(self, keys):
        gw = Host("gw", "10.0.0.9", known_hosts=keys / "it's a \"dir\"/kh")
        argv = ssh_argv(ctl(keys, gateway=gw))
        # rsync's -e value is the shlex-joined argv; ssh hands ProxyCommand to sh
        assert shlex.split(shlex.join(argv)) == argv
        assert option(proxy_of(argv), "UserKnownHostsFile") == str(keys / "it's a \"dir\"/kh")

    def test_gateway_chain_lists_the_first_hop_first(self, keys):
        b = bastion(keys)
        d = devbox(keys, gateway=b)
        assert gateway_chain(ctl(keys, gateway=d)) == [b, d]
        assert gateway_chain(ctl(keys)) == []

    def test_ssh_on_a_hop_of_the_chain_starts_after_it(self, keys):
        b = bastion(keys)
        d = devbox(keys, gateway=b)
        c = ctl(keys, gateway=d)
        assert not any(o.startswith("ProxyCommand") for o in options(
            ssh_argv(c, start_after="devbox")))
        from_bastion = ssh_argv(c, start_after="bastion")
        assert proxy_of(from_bastion)[-1] == "10.0.0.2"
        assert not any(o.startswith("ProxyCommand") for o in options(proxy_of(from_bastion)))

    def test_control_master_options_share_one_connection_per_host(self, keys):
        argv = ssh_argv(ctl(keys), control_dir="/run/devloop-x")
        assert "ControlMaster=auto" in options(argv)
        assert option(argv, "ControlPath") == "/run/devloop-x/%C"

    @pytest.mark.parametrize("port, name", [(22, "10.0.1.5"), (2222, "[10.0.1.5]:2222")])
    def test_known_hosts_name(self, keys, port, name):
        assert known_hosts_name(ctl(keys, port=port)) == name


class TestFabricGateway:
    def test_every_hop_rejects_unknown_keys_and_loads_its_own_known_hosts(self, keys):
        conn = connection._connection(ctl(keys, gateway=devbox(keys, gateway=bastion(keys))))
        hops = [conn, conn.gateway, conn.gateway.gateway]
        for hop in hops:
            assert isinstance(hop.client._policy, paramiko.RejectPolicy)
        assert hops[0].client.get_host_keys().lookup("[10.0.1.5]:2222")
        assert hops[1].client.get_host_keys().lookup("10.0.0.2")
        assert hops[2].client.get_host_keys().lookup("[198.51.100.1]:2200")
        assert hops[2].gateway is False
        assert (hops[1].host, hops[1].port) == ("10.0.0.2", 22)

    def test_missing_known_hosts_of_a_gateway_names_the_gateway(self, keys):
        gw = Host("devbox", "10.0.0.2", known_hosts=keys / "nope")
        with pytest.raises(HostKeyUnknown, match=r"^devbox: known_hosts file .*nope"):
            connection._connection(ctl(keys, gateway=gw))

    def test_gateway_that_cannot_open_the_tunnel_is_named(self, keys):
        gw = devbox(keys)
        with pytest.raises(ConnectError, match=r"^ctl \(root@10\.0\.1\.5:2222\): gateway devbox "
                                               r"\(root@10\.0\.0\.2:22\) could not connect"):
            with translate_ssh_errors(ctl(keys, gateway=gw), via=gw):
                raise paramiko.ChannelException(2, "Connect failed")

    def test_closing_the_connection_closes_its_gateway(self, keys):
        conn = connection._connection(ctl(keys, gateway=devbox(keys)))
        closed = []
        conn.gateway.close = lambda: closed.append(True)
        conn.close()
        assert closed == [True]


def inventory(keys: Path, controller: Controller, source_host: Host,
              source: str = "/home/dev/it's cinder/cinder") -> Inventory:
    return Inventory(path=keys / "hosts.yaml", source=Path(source),
                     excludes=(".git/", "*.pyc"), controllers={controller.name: controller},
                     source_host=source_host, hosts={source_host.name: source_host})


class TestDevboxSync:
    def build(self, keys: Path, controller: Controller | None = None, **kw) -> DevboxSync:
        d = devbox(keys)
        c = controller or ctl(keys)
        kw.setdefault("public_keys", {})
        return build_devbox_sync(inventory(keys, c, d), c, "/usr/lib/python3/cinder",
                                 workdir="/tmp/devloop-sync-x", **kw)

    def test_rsync_pushes_the_devbox_path_to_the_controller(self, keys):
        plan = self.build(keys)
        assert plan.rsync_argv[0] == "rsync"
        assert plan.rsync_argv[-2:] == ["/home/dev/it's cinder/cinder/",
                                        "root@10.0.1.5:/usr/lib/python3/cinder/"]
        assert not any("delete" in a for a in plan.rsync_argv)

    def test_rsync_on_the_devbox_leaves_out_what_is_not_code_and_links_out_of_the_tree(
            self, keys):
        argv = self.build(keys).rsync_argv
        excludes = [a.split("=", 1)[1] for a in argv if a.startswith("--exclude=")]
        assert {"*~", "*.swp", "4913", ".*"} <= set(excludes)
        assert "--filter=:- .gitignore" in argv and "--safe-links" in argv

    def test_the_controller_is_pinned_on_the_devbox_by_the_inventorys_line(self, keys):
        plan = self.build(keys)
        assert plan.files["known_hosts"] == f"[10.0.1.5]:2222 ssh-ed25519 {OTHER}\n"
        ssh = shlex.split(plan.rsync_argv[plan.rsync_argv.index("-e") + 1])
        assert option(ssh, "UserKnownHostsFile") == "/tmp/devloop-sync-x/known_hosts"
        assert "StrictHostKeyChecking=yes" in options(ssh)

    def test_workstation_key_paths_never_reach_the_devbox(self, keys):
        ssh = self.build(keys).rsync_argv
        assert str(keys / "ctl_id") not in " ".join(ssh)

    def test_the_public_key_picks_the_agent_key_to_sign_with(self, keys):
        plan = self.build(keys, public_keys={"ctl": f"ssh-ed25519 {OTHER}"})
        assert plan.files["id-0.pub"] == f"ssh-ed25519 {OTHER}\n"
        ssh = shlex.split(plan.rsync_argv[plan.rsync_argv.index("-e") + 1])
        assert ssh[ssh.index("-i") + 1] == "/tmp/devloop-sync-x/id-0.pub"
        assert "IdentitiesOnly=yes" in options(ssh)

    def test_hashed_known_hosts_entries_are_found(self, keys):
        hashed = paramiko.HostKeys()
        hashed.add(paramiko.HostKeys.hash_host("[10.0.1.5]:2222"), "ssh-ed25519",
                   paramiko.PKey.from_type_string("ssh-ed25519",
                                                  __import__("base64").b64decode(OTHER)))
        hashed.save(str(keys / "hashed_kh"))
        assert "|1|" in (keys / "hashed_kh").read_text()
        c = ctl(keys, known_hosts=keys / "hashed_kh")
        assert pinned_lines(c) == [f"[10.0.1.5]:2222 ssh-ed25519 {OTHER}"]

    def test_an_unpinned_controller_is_refused_before_anything_runs(self, keys):
        c = ctl(keys, port=2200)
        with pytest.raises(HostKeyUnknown, match=r"ctl .*not pinned in .*ctl_kh.*ssh-keyscan "
                                                 r"-p 2200 10\.0\.1\.5"):
            self.build(keys, c)

    def test_gateways_after_the_devbox_are_pinned_too_and_the_devbox_itself_skipped(self, keys):
        b = bastion(keys)
        d = devbox(keys, gateway=b)
        jump = Host("jump", "10.0.0.9", known_hosts=keys / "jump_kh")
        (keys / "jump_kh").write_text(f"10.0.0.9 ssh-ed25519 {ED25519}\n")
        jump = Host("jump", "10.0.0.9", known_hosts=keys / "jump_kh", gateway=d)
        c = ctl(keys, gateway=jump)
        assert devbox_hops(d, c) == [jump, c]
        plan = build_devbox_sync(inventory(keys, c, d), c, "/x", workdir="/tmp/w",
                                 public_keys={})
        assert plan.files["known_hosts"].splitlines() == [
            f"10.0.0.9 ssh-ed25519 {ED25519}", f"[10.0.1.5]:2222 ssh-ed25519 {OTHER}"]
        ssh = shlex.split(plan.rsync_argv[plan.rsync_argv.index("-e") + 1])
        proxy = proxy_of(ssh)
        assert proxy[-1] == "10.0.0.9"
        assert option(proxy, "UserKnownHostsFile") == "/tmp/w/known_hosts"
        assert not any(o.startswith("ProxyCommand") for o in options(proxy))

    def test_the_devbox_command_writes_runs_and_cleans_up(self, tmp_path, keys):
        """Run the script here with sh: files written private, exit code passed, dir removed."""
        work = tmp_path / "work dir"
        plan = DevboxSync(str(work), {"known_hosts": "line 'one'\n", "id-0.pub": "k\n"},
                          ["sh", "-c", 'cat "$0/known_hosts"; ls -ld "$0"; exit 7', str(work)])
        proc = subprocess.run(plan.command(), capture_output=True, text=True)
        assert proc.returncode == 7
        assert proc.stdout.startswith("line 'one'\ndrwx------")
        assert not work.exists()

    def test_an_existing_work_dir_is_never_reused(self, tmp_path):
        work = tmp_path / "taken"
        work.mkdir()
        plan = DevboxSync(str(work), {"known_hosts": "x"}, ["true"])
        assert subprocess.run(plan.command(), capture_output=True).returncode == 90
        assert work.exists()

    def test_remote_git_gets_the_source_path_as_one_argument(self):
        argv = build_remote_git_argv("/home/dev/it's cinder")
        out = subprocess.run(["sh", "-c", shlex.join(argv).replace("git -C", "echo")],
                             capture_output=True, text=True)
        assert argv[:2] == ["sh", "-c"] and argv[-1] == "/home/dev/it's cinder"
        assert out.returncode == 0


class TestAgentCheck:
    def test_no_agent_tells_how_to_start_one(self, keys, monkeypatch):
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        c = ctl(keys)
        with pytest.raises(ConnectError, match=r"ctl .*devbox logs in to it with your forwarded "
                                               r"ssh-agent, but no ssh-agent is running.*ssh-add"):
            check_agent_holds(devbox(keys), [c], {"ctl": f"ssh-ed25519 {OTHER}"})

    def test_nothing_to_check_without_known_keys(self, keys, monkeypatch):
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        check_agent_holds(devbox(keys), [ctl(keys)], {})

    def test_public_key_from_pub_file_or_private_key(self, tmp_path):
        key = tmp_path / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        c = Controller("c", "h", identity_file=key)
        from_pub = public_key_of(c)
        Path(f"{key}.pub").unlink()
        assert public_key_of(c) == from_pub and from_pub.startswith("ssh-ed25519 ")
        assert public_key_of(Controller("c", "h")) is None


class TestNamespacedSandboxLayout:
    def test_default_sandbox_is_unchanged(self):
        layout = SandboxLayout(Path("/s"), 22022, 18776)
        assert layout.controller_entry()["address"] == "127.0.0.1"
        assert layout.known_hosts_name == "[127.0.0.1]:22022"
        assert layout.in_netns(["sshd"]) == ["sshd"]
        assert layout.venv == Path("/s/venv")

    @pytest.mark.parametrize("port, name", [(22, "172.31.0.9"), (2222, "[172.31.0.9]:2222")])
    def test_namespaced_sandbox_is_reached_at_its_listen_address(self, port, name):
        layout = SandboxLayout(Path("/s"), port, 8776, netns="dlp-x", listen_address="172.31.0.9")
        entry = layout.controller_entry()
        assert (entry["address"], entry["port"]) == ("172.31.0.9", port)
        assert entry["api_url"] == "http://127.0.0.1:8776/"  # the namespace's own loopback
        assert layout.known_hosts_name == name
        assert layout.in_netns(["sshd", "-f", "c"]) == ["ip", "netns", "exec", "dlp-x",
                                                        "sshd", "-f", "c"]

    def test_clone_links_files_and_rewrites_the_scripts(self, tmp_path):
        from deploy.sandbox import _requirements_digest, clone_venv

        base = tmp_path / "base"
        (base / "bin").mkdir(parents=True)
        (base / "lib/cinder").mkdir(parents=True)
        (base / "lib/cinder/api.py").write_text("x = 1\n")
        (base / "bin/cinder-api").write_text(f"#!{base}/bin/python3\nimport cinder\n")
        (base / "bin/python3").symlink_to("/usr/bin/python3")
        (base / ".devloop-requirements").write_text(_requirements_digest())
        clone = tmp_path / "clone"

        clone_venv(base, clone)

        assert (clone / "lib/cinder/api.py").stat().st_ino == \
            (base / "lib/cinder/api.py").stat().st_ino
        assert (clone / "bin/cinder-api").read_text().startswith(f"#!{clone}/bin/python3\n")
        assert (base / "bin/cinder-api").read_text().startswith(f"#!{base}/bin/python3\n")
        assert (clone / "bin/python3").is_symlink()


class TestSharedConnection:
    def test_one_connection_per_host_and_a_changed_pin_is_another(self, keys, monkeypatch):
        opened = []

        class Fake:
            is_connected = True

            def close(self):
                pass

        def fake_open(host, forward_agent=False):
            opened.append(host)
            return Fake()

        monkeypatch.setattr(connection, "open_connection", fake_open)
        monkeypatch.setattr(connection, "_shared", {})
        d = devbox(keys)
        first = connection.shared_connection(d)
        assert connection.shared_connection(devbox(keys)) is first
        other = Host("devbox", "10.0.0.2", known_hosts=keys / "ctl_kh",
                     identity_file=keys / "devbox_id")
        assert connection.shared_connection(other) is not first
        assert len(opened) == 2


class TestSshFailureWords:
    """ssh's own words pick the hint: rsync reports ssh's 255 as 12 when it sees the pipe close
    first."""

    def failure(self, keys: Path, rc: int, stderr: str) -> str:
        proc = subprocess.CompletedProcess(["rsync"], rc, b"", stderr.encode())
        with pytest.raises(SyncError) as caught:
            _changes_or_raise(proc, ctl(keys), "/usr/lib/python3/cinder")
        return str(caught.value)

    @pytest.mark.parametrize("rc", [255, 12])
    def test_a_changed_host_key_is_named_whichever_code_rsync_exits_with(self, keys, rc):
        message = self.failure(keys, rc, "Host key verification failed.\r\n"
                               "rsync: connection unexpectedly closed (0 bytes received so far)")
        assert f"exit code {rc}" in message
        assert f"not the one pinned in {keys / 'ctl_kh'}" in message
        assert message.endswith("refused, nothing was sent")

    def test_a_file_rsync_may_not_write_is_not_taken_for_a_refused_login(self, keys):
        message = self.failure(keys, 23, 'rsync: [receiver] mkstemp "/x/.a.py.Q" failed: '
                                         "Permission denied (13)")
        assert "ssh-add" not in message and "pinned" not in message
        assert "Permission denied (13)" in message

    def test_an_unrelated_protocol_error_gets_no_hint(self, keys):
        message = self.failure(keys, 12, "rsync error: error in rsync protocol data stream")
        assert message.endswith("error in rsync protocol data stream")
