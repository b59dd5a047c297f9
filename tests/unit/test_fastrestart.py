"""Fast restart: what rules it out, how the mode reads, how the service command is edited."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deploy.controller.fastrestart import FastState, full_restart_reason
from deploy.remote import script

PYTHONS = ["/root/.pyenv/versions/2.7.18/bin/python", "/root/.pyenv/versions/3.6.15/bin/python",
           sys.executable]


def warm_api(monkeypatch) -> dict:
    """warm_api.py's functions (its module level reads sys.argv)."""
    monkeypatch.setattr(sys, "argv", ["warm_api.py", "/nonexistent", "--", "cinder-api"])
    namespace: dict = {"__name__": "warm_api"}
    exec(compile(script("warm_api"), "warm_api.py", "exec"), namespace)
    return namespace


def control() -> dict:
    namespace: dict = {"__name__": "fast_control"}
    exec(compile(script("fast_control"), "fast_control.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("sent, migrated, reason", [
    (["api/contrib/cluster_manage.py", "db/cluster_manage_api.py"], False, None),
    ([], False, None),
    (["db/migrations/versions/48d74fa840ed_add_clusters.py"], False,
     "a migration changed (cinder/db/migrations/versions/48d74fa840ed_add_clusters.py)"),
    (["db/sqlalchemy/migrate_repo/versions/136_add_clusters.py"], False,
     "a migration changed (cinder/db/sqlalchemy/migrate_repo/versions/136_add_clusters.py)"),
    (["api/contrib/cluster_manage.py"], True, "the database was migrated"),
])
def test_only_a_migration_rules_out_a_fast_restart_from_what_a_deploy_sent(sent, migrated,
                                                                            reason):
    assert full_restart_reason(sent, migrated) == reason


@pytest.mark.parametrize("state, text", [
    (FastState("off"), "normal (fast restart off)"),
    (FastState("on", None, 10, 11, 3, 443),
     "fast: warm parent pid 10 (443 libraries), cinder-api pid 11, 3 fork(s)"),
    (FastState("on", "the warm parent (pid 10) is dead", 10),
     "fast, warm parent NOT ready: the warm parent (pid 10) is dead; "
     "the next deploy restarts it"),
])
def test_status_names_the_restart_mode(state, text):
    assert state.describe() == text


CONF = """[unix_http_server]
file = /x/supervisor.sock

[program:other]
command = /usr/bin/other --flag

[program:cinder-api]
command = /v/bin/cinder-api --config-file /a.conf --log-file /l.log
user = cinder
"""


def test_the_command_of_the_named_program_section_is_found():
    start, end = control()["_command_line"](CONF, "cinder-api")
    assert CONF[start:end] == "/v/bin/cinder-api --config-file /a.conf --log-file /l.log"
    assert control()["_command_line"](CONF, "missing") is None


def test_the_interpreter_comes_from_the_scripts_shebang_or_the_command(tmp_path):
    entry = tmp_path / "cinder-api"
    entry.write_text("#!/usr/bin/python3 -s\nimport sys\n")
    find = control()["_interpreter"]
    assert find([str(entry), "--config-file", "/a"]) == (["/usr/bin/python3", "-s"],
                                                         [str(entry), "--config-file", "/a"])
    assert find(["/usr/bin/python2", str(entry), "-x"]) == (["/usr/bin/python2"],
                                                            [str(entry), "-x"])
    assert find(["/usr/bin/python3", "-m", "cinder.cmd.api"]) is None
    shell = tmp_path / "run.sh"
    shell.write_text("#!/bin/sh\nexec true\n")
    assert find([str(shell)]) is None


@pytest.mark.parametrize("python", PYTHONS)
def test_the_controller_scripts_compile_on_python_2_7_and_3(python):
    for name in ("fast_control", "warm_api"):
        proc = subprocess.run([python, "-c", "import sys; compile(sys.stdin.read(), 'x', 'exec')"],
                              input=script(name), capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)


@pytest.mark.parametrize("python", PYTHONS)
def test_check_reports_off_where_fast_restart_was_never_turned_on(python, tmp_path):
    proc = subprocess.run([python, "-E", "-s", "-S", "-c", script("fast_control"), "check",
                           str(tmp_path / "fast")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"mode": "off"' in proc.stdout


def test_a_conf_file_edited_in_place_in_a_config_dir_changes_what_the_warm_parent_recorded(
        monkeypatch, tmp_path):
    stats = warm_api(monkeypatch)["_config_stats"]
    conf, confd = tmp_path / "cinder.conf", tmp_path / "cinder.conf.d"
    conf.write_text("[DEFAULT]\n")
    confd.mkdir()
    (confd / "10-debug.conf").write_text("[DEFAULT]\ndebug = false\n")
    (confd / "README").write_text("not read by oslo.config\n")
    argv = ["cinder-api", "--config-file", str(conf), f"--config-dir={confd}"]
    before = stats(argv)
    assert sorted(before) == [str(conf), str(confd), str(confd / "10-debug.conf")]
    with open(confd / "10-debug.conf", "a") as handle:     # the same inode: the dir is as it was
        handle.write("verbose = true\n")
    after = stats(argv)
    assert after[str(confd)] == before[str(confd)]
    assert after[str(confd / "10-debug.conf")] != before[str(confd / "10-debug.conf")]


# --- the kept definition: only what the warm parent command already runs comes back ---

WRAPPED = (["/v/bin/python3"], ["/v/bin/cinder-api", "--config-file", "/a.conf"])


def kept_command(capsys, fast, kept_text: str | None, aside=None) -> str | dict:
    """fast_control's _kept_command on a kept definition ``kept_text``; its error if it fails."""
    namespace = control()
    if kept_text is not None:
        namespace["_keep"](str(fast), "supervisord", kept_text.encode())
    try:
        return namespace["_kept_command"](str(fast), aside, "/etc/s.conf", "cinder-api", WRAPPED)
    except SystemExit:
        return json.loads(capsys.readouterr().out)


@pytest.fixture
def fast(tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "fast").mkdir(mode=0o755)
    return tmp_path / "fast"


@pytest.mark.parametrize("command", [
    "/v/bin/cinder-api --config-file /a.conf",
    "/v/bin/python3 /v/bin/cinder-api --config-file /a.conf",
    "/v/bin/cinder-api --config-file '/a.conf'",
])
def test_the_kept_command_comes_back_when_it_runs_what_the_warm_parent_runs(capsys, fast,
                                                                            command):
    kept = CONF.replace("/v/bin/cinder-api --config-file /a.conf --log-file /l.log", command)
    assert kept_command(capsys, fast, kept) == command


def test_a_kept_command_that_runs_anything_else_is_refused_with_the_one_to_put_back(capsys,
                                                                                  fast):
    kept = CONF.replace("/v/bin/cinder-api --config-file /a.conf --log-file /l.log",
                        "/bin/sh -c 'id > /tmp/x'")
    answer = kept_command(capsys, fast, kept)
    assert answer["error"].startswith(f"{fast}/original holds no command for "
                                      f"[program:cinder-api] that runs what /etc/s.conf runs "
                                      f"now: not written back. Put the program's command back "
                                      f"by hand (most likely: command = /v/bin/python3 "
                                      f"/v/bin/cinder-api --config-file /a.conf)")


def test_a_kept_definition_changed_since_it_was_kept_is_refused(capsys, fast):
    kept_command(capsys, fast, CONF)
    with open(fast / "original", "a") as handle:
        handle.write("[program:x]\ncommand = /bin/sh\nuser = root\n")
    answer = kept_command(capsys, fast, None)
    assert answer["error"].startswith(f"{fast}/original changed since fast restart was turned "
                                      f"on (its sha256 is not the one recorded in "
                                      f"original.json): not used")


def test_a_kept_definition_another_user_can_write_is_refused(capsys, fast):
    kept_command(capsys, fast, CONF)
    (fast / "original").chmod(0o666)
    answer = kept_command(capsys, fast, None)
    assert "cannot be trusted" in answer["error"] and "mode 0666" in answer["error"]


def test_only_the_command_of_an_earlier_versions_kept_file_is_used_never_its_other_lines(
        capsys, tmp_path):
    aside = tmp_path / "fast.untrusted-1"
    aside.mkdir()
    hostile = CONF.replace("/v/bin/cinder-api --config-file /a.conf --log-file /l.log",
                           "/v/bin/cinder-api --config-file /a.conf")
    hostile += "\n[program:x]\ncommand = /bin/sh -c 'id > /tmp/x'\nuser = root\n"
    (aside / "original").write_text(hostile)
    assert kept_command(capsys, tmp_path / "fast", None, str(aside)) == \
        "/v/bin/cinder-api --config-file /a.conf"


@pytest.mark.parametrize("word, written", [
    ("/usr/bin/cinder-api", "/usr/bin/cinder-api"),
    ("--config-file=/etc/a b.conf", '"--config-file=/etc/a b.conf"'),
    ('say "hi" 100%', '"say \\"hi\\" 100%%"'),
    ("back\\slash", '"back\\\\slash"'),
])
def test_a_word_of_a_drop_ins_execstart_is_quoted_for_systemd(word, written):
    assert control()["_systemd_word"](word) == written


def test_a_command_word_holding_a_control_character_is_never_written_into_a_definition(capsys):
    with pytest.raises(SystemExit):
        control()["_checked_words"](["/usr/bin/cinder-api", "x\nExecStart=+/bin/sh"],
                                    "openstack-cinder-api.service")
    answer = json.loads(capsys.readouterr().out)
    assert answer["error"].startswith("the command of openstack-cinder-api.service holds a "
                                      "control character")
