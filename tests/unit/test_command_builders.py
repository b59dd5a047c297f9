"""Commands are built as argv lists and quoted once: what goes in comes out intact."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from deploy.base.inventory import Controller
from deploy.transport.commands import as_user, describe
from deploy.transport.connection import ssh_argv
from deploy.transport.sync import Change, build_rsync_argv, parse_changes
from deploy.workflows.logs import tail_argv

AWKWARD = """/srv/it's a "tree"/with $dollar and `ticks`"""


def controller(**overrides) -> Controller:
    values = dict(name="ctl1", address="192.0.2.10", port=2222, user="root",
                  identity_file=Path("/keys/id ed25519"), known_hosts=Path("/keys/known hosts"))
    values.update(overrides)
    return Controller(**values)


class TestSshArgv:
    def test_pins_the_inventory_known_hosts_and_never_prompts(self):
        argv = ssh_argv(controller())
        assert argv[:3] == ["ssh", "-F", "/dev/null"]
        pairs = dict(zip(argv, argv[1:]))
        options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
        assert "BatchMode=yes" in options
        assert "StrictHostKeyChecking=yes" in options
        assert "UserKnownHostsFile=/keys/known hosts" in options
        assert "GlobalKnownHostsFile=/dev/null" in options
        assert pairs["-p"] == "2222" and pairs["-l"] == "root"
        assert pairs["-i"] == "/keys/id ed25519"

    def test_each_option_appears_once_because_ssh_keeps_the_first(self):
        argv = ssh_argv(controller())
        assert argv.count("-p") == 1
        assert sum(a.startswith("UserKnownHostsFile=") for a in argv) == 1

    def test_without_identity_file_ssh_uses_its_defaults(self):
        assert "-i" not in ssh_argv(controller(identity_file=None))

    def test_a_silent_host_is_given_up_within_about_one_and_a_half_connect_timeouts(self):
        argv = ssh_argv(controller(connect_timeout=8.0))
        options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
        assert {"ConnectTimeout=8", "ServerAliveInterval=4", "ServerAliveCountMax=2"} \
            <= set(options)


def test_a_command_in_a_message_is_shortened_and_shows_an_inline_script_as_such():
    assert describe(["python3", "-c", "import sys\nprint(1)", "/x"]) == \
        "python3 -c '<script>' /x"
    long = describe(["supervisorctl", "-c", "/" + "d" * 100, "restart"])
    assert len(long) == 80 and long.endswith("…")


class TestRsyncArgv:
    def build(self, **kwargs):
        defaults = dict(excludes=[".vscode/", "*.pyc"])
        defaults.update(kwargs)
        return build_rsync_argv(Path(AWKWARD), controller(),
                                "/usr/lib/python3.9/site-packages/cinder", **defaults)

    def test_times_are_compared_to_the_nanosecond(self):
        assert "--modify-window=-1" in self.build()

    def test_never_deletes_on_the_controller(self):
        assert not any("delete" in arg for arg in self.build())

    def test_source_path_with_spaces_and_quotes_is_one_intact_argument(self):
        argv = self.build()
        assert argv[-2] == AWKWARD + "/"
        assert argv[-1] == "root@192.0.2.10:/usr/lib/python3.9/site-packages/cinder/"

    def test_destination_with_spaces_is_one_argument(self):
        argv = build_rsync_argv(Path("/src"), controller(), "/opt/my cinder", excludes=[])
        assert argv[-1] == "root@192.0.2.10:/opt/my cinder/"

    def test_ssh_for_rsync_is_the_same_argv_as_for_fabric_quoted_once(self):
        argv = self.build()
        assert shlex.split(argv[argv.index("-e") + 1]) == ssh_argv(controller())

    def test_excludes_each_become_one_flag(self):
        argv = self.build(excludes=[".vscode/", "*.pyc", "dir with space/"])
        assert [a for a in argv if a.startswith("--exclude=")] == [
            "--exclude=.vscode/", "--exclude=*.pyc", "--exclude=dir with space/"]

    def test_ownership_and_modes_are_normalised_to_the_controllers(self):
        argv = self.build(owner="root:root")
        assert "--chown=root:root" in argv
        assert "--chmod=D755,F644" in argv

    def test_a_deploy_sends_only_the_files_its_record_lists_read_from_stdin(self):
        argv = self.build(files_from=True)
        assert argv[argv.index("--files-from=-") + 1] == "--from0"
        assert not any(arg.startswith("--backup") for arg in argv)   # the controller keeps them

    @pytest.mark.parametrize("flag, kwargs", [
        ("--dry-run", {"dry_run": True}),
        ("--checksum", {"checksum": True}),
    ])
    def test_optional_flags(self, flag, kwargs):
        assert flag not in self.build()
        assert flag in self.build(**kwargs)


class TestItemizedChanges:
    def test_new_and_changed_files_are_reported_directories_are_not(self):
        stdout = "\n".join([
            "devloop:.d..t...... ./",
            "devloop:cd+++++++++ api/contrib/",
            "devloop:>f+++++++++ api/contrib/cluster_manage.py",
            "devloop:>f.st...... db/api.py",
            "devloop:.f...p..... unchanged_but_mode.py",
            "some ssh warning",
        ])
        assert parse_changes(stdout) == [
            Change("new", "api/contrib/cluster_manage.py"),
            Change("changed", "db/api.py"),
        ]

    def test_a_new_or_repointed_symlink_is_a_change_so_a_rollback_can_undo_it(self):
        stdout = "\n".join([
            "devloop:cL+++++++++ api/alias.py",
            "devloop:cLc.t...... db/alias.py",
            "devloop:.L..t...... same_link.py",
        ])
        assert parse_changes(stdout) == [Change("new", "api/alias.py"),
                                         Change("changed", "db/alias.py")]

    def test_file_names_with_spaces_survive(self):
        assert parse_changes("devloop:>f+++++++++ a dir/b c.py") == [Change("new", "a dir/b c.py")]

    def test_the_out_format_names_no_link_target_so_a_name_with_an_arrow_is_whole(self):
        argv = TestRsyncArgv().build()
        assert "--out-format=devloop:%i %n" in argv
        assert parse_changes(b"devloop:cL+++++++++ a -> b.py") == [Change("new", "a -> b.py")]

    @pytest.mark.parametrize("printed, name", [
        (rb"new\#012line.py", "new\nline.py"),                   # a control character
        (rb"latin\#351.py", "latin\udce9.py"),                   # a byte that is not UTF-8
        ("caf\u00e9.py".encode(), "caf\u00e9.py"),                 # UTF-8, printed as is
        (rb"back\#134#012slash.py", "back\\#012slash.py"),        # rsync's escape, escaped
        (rb"-dash.py", "-dash.py"),
    ])
    def test_rsyncs_escapes_are_undone_so_odd_names_are_local_paths_to_the_byte(
            self, printed, name):
        assert parse_changes(b"devloop:>f+++++++++ " + printed + b"\n") == [Change("new", name)]

    def test_the_local_tree_is_listed_on_stdin_one_entry_after_another(self):
        argv = TestRsyncArgv().build(files_from=True)
        assert "--files-from=-" in argv and "--from0" in argv
        assert "--recursive" not in argv
        assert "--recursive" in TestRsyncArgv().build()


class TestRemoteCommands:
    def test_as_user_survives_two_rounds_of_shell_parsing(self):
        inner = ["cinder-manage", "--config-file", AWKWARD, "db", "sync"]
        outer = shlex.split(shlex.join(as_user("cinder", inner)))
        assert outer[:4] == ["su", "-s", "/bin/sh", "-c"]
        assert outer[5:] == ["--", "cinder"]
        assert shlex.split(outer[4]) == inner

    def test_tail_follows_by_name_so_rotation_is_survived(self):
        assert tail_argv("/var/log/cinder/api.log", 20, True) == [
            "tail", "-n", "20", "-F", "--", "/var/log/cinder/api.log"]
        assert "-F" not in tail_argv("/x", 5, False)


class TestRsyncThroughGateway:
    def test_rsyncs_ssh_reaches_the_controller_through_the_gateways_pinned_ssh(self):
        from deploy.base.inventory import Host

        gw = Host("bastion", "198.51.100.1", known_hosts=Path("/keys/bastion kh"))
        argv = build_rsync_argv(Path("/src"), controller(gateway=gw), "/opt/cinder", excludes=[])
        ssh = shlex.split(argv[argv.index("-e") + 1])
        assert ssh == ssh_argv(controller(gateway=gw))
        proxy = [o for o in ssh if o.startswith("ProxyCommand=")]
        assert len(proxy) == 1
        inner = shlex.split(proxy[0].split("=", 1)[1])
        assert "UserKnownHostsFile=/keys/bastion kh" in inner
        assert inner[-3:] == ["-W", "%h:%p", "198.51.100.1"]
        assert argv[-1] == "root@192.0.2.10:/opt/cinder/"


class TestWatchedChanges:
    def test_a_new_directory_stands_for_the_files_in_it(self, tmp_path):
        from deploy.workflows.watch import changed_paths

        (tmp_path / "api" / "contrib").mkdir(parents=True)
        (tmp_path / "api" / "contrib" / "x.py").write_text("")
        (tmp_path / "api" / "contrib" / "x.pyc").write_text("")
        assert changed_paths([(1, str(tmp_path / "api"))], tmp_path, ["*.pyc"]) == [
            "api/contrib/x.py"]

    def test_a_save_in_either_layer_is_named_by_its_path_in_that_layer(self, tmp_path):
        from deploy.workflows.watch import changed_paths

        common, release = tmp_path / "cinder", tmp_path / "releases" / "train" / "cinder"
        for saved in (common / "api" / "x.py", release / "db" / "133_x.py"):
            saved.parent.mkdir(parents=True)
            saved.write_text("")
        assert changed_paths([(1, str(common / "api" / "x.py")),
                              (1, str(release / "db" / "133_x.py"))],
                             [common, release], []) == ["api/x.py", "db/133_x.py"]

    @pytest.mark.parametrize("rel, excluded_", [
        ("api/__pycache__/x.cpython-311.pyc", True),
        ("api/x.pyc", True),
        (".vscode/settings.json", True),
        ("api/contrib/x.py", False),
    ])
    def test_rsync_excludes_apply_to_watched_paths(self, rel, excluded_):
        from deploy.base.inventory import DEFAULT_EXCLUDES
        from deploy.controller.send import excluded

        assert excluded(rel, DEFAULT_EXCLUDES) is excluded_
