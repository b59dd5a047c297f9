"""Bad input, careless or hostile, is one ``error:`` line and a non-zero exit, never a traceback.

Values that become arguments on a controller (users, units, programs,
paths) are checked for their kind when the inventory is read, and every
command builder still passes them where they cannot be read as options.
The end-to-end half, against a sandbox, is tests/integration/test_bad_input.py.
"""
from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import paramiko
import pytest

from deploy.base.errors import InventoryError
from deploy.base.inventory import load_inventory
from deploy.base.output import redacted
from deploy.controller.lock import Holder
from deploy.controller.services.systemd import Systemd
from deploy.transport.commands import as_user
from deploy.transport.connection import _HostKeyNotPinned, _HostKeyRevoked, pin_host_keys
from deploy.workflows.debug import service_argvs
from deploy.workflows.logs import tail_argv
from tests.support import PROJECT_ROOT, invoke

VALID = PROJECT_ROOT / "tests/fixtures/hosts/valid.yaml"
HOSTILE = "-ctouch /tmp/devloop-pwned"


def problems(tmp_path: Path, text: str | bytes) -> list[str]:
    """The inventory's error lines (``hosts.yaml: ...``), or [] when it is accepted."""
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "hosts.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    try:
        load_inventory(path)
    except InventoryError as exc:
        assert exc.exit_code == 2
        return [line.split(": ", 1)[1] for line in exc.lines()]
    return []


def entry(**values: str) -> str:
    """An inventory with one controller ``c1`` holding ``values`` (YAML flow scalars)."""
    fields = ", ".join(f"{key}: {value}" for key, value in {"address": "192.0.2.10",
                                                             **values}.items())
    return f"source: src\ncontrollers:\n  c1: {{{fields}}}\n"


# --- values that name users, units, programs and paths --------------------------

USER = ("expected a user name (letters, digits, '_', '.', '-', not starting with '-', "
        "at most 32 characters)")
UNIT = ("expected a systemd unit name (letters, digits, ':', '_', '.', '@', '-', "
        "not starting with '-')")
PROGRAM = ("expected a supervisord program name, or group:program (letters, digits, '_', '.', "
           "'@', '+', '-', not starting with '-'; not 'all')")
CONTROLLER_PATH = "expected an absolute path on the controller (no control characters)"


@pytest.mark.parametrize("values, expected", [
    # su would read these as its own options: -c replaces the command, run as root
    ({"service_user": f'"{HOSTILE}"'},
     f"controllers.c1.service_user: {USER}, got '{HOSTILE}'"),
    ({"service_user": '"--session-command=id"'},
     f"controllers.c1.service_user: {USER}, got '--session-command=id'"),
    ({"service_user": '"cinder x"'}, f"controllers.c1.service_user: {USER}, got 'cinder x'"),
    ({"service_user": '"1000"'}, f"controllers.c1.service_user: {USER}, got '1000'"),
    ({"service_user": "a" * 33}, f"controllers.c1.service_user: {USER}, got '{'a' * 33}'"),
    ({"user": '"-oProxyCommand=id"'},
     "controllers.c1.user: expected a user name (letters, digits, '_', '.', '-', '@', not "
     "starting with '-'), got '-oProxyCommand=id'"),
    # ssh (rsync's) would read this as an option
    ({"address": '"-oProxyCommand=touch /tmp/x"'},
     "controllers.c1.address: expected a host name or an IP address, "
     "got '-oProxyCommand=touch /tmp/x'"),
    ({"address": '"ctl1 -p 2"'},
     "controllers.c1.address: expected a host name or an IP address, got 'ctl1 -p 2'"),
    ({"service": '"--root=/tmp"'}, f"controllers.c1.service: {UNIT}, got '--root=/tmp'"),
    ({"service": '"cinder api.service"'},
     f"controllers.c1.service: {UNIT}, got 'cinder api.service'"),
    ({"service_manager": "supervisord", "supervisor_config": "/etc/s.conf", "service": "all"},
     f"controllers.c1.service: {PROGRAM}, got 'all'"),
    ({"service_manager": "supervisord", "supervisor_config": "/etc/s.conf", "service": '"-c"'},
     f"controllers.c1.service: {PROGRAM}, got '-c'"),
    ({"service_manager": "supervisord", "supervisor_config": "/etc/s.conf",
      "service": '"api:*"'}, f"controllers.c1.service: {PROGRAM}, got 'api:*'"),
    ({"state_dir": '"/var/lib/x\\ny"'},
     f"controllers.c1.state_dir: {CONTROLLER_PATH}, got '/var/lib/x\\ny'"),
    ({"cinder_manage": "bin/cinder-manage"},
     f"controllers.c1.cinder_manage: {CONTROLLER_PATH}, got 'bin/cinder-manage'"),
    ({"supervisor_config": '"/etc/s\\0.conf"'},
     f"controllers.c1.supervisor_config: {CONTROLLER_PATH}, got '/etc/s\\x00.conf'"),
    ({"config_files": '["/etc/a.conf", "/etc/b\\t.conf"]'},
     "controllers.c1.config_files: expected absolute paths on the controller (no control "
     "characters), got ['/etc/a.conf', '/etc/b\\t.conf']"),
    ({"identity_file": '"id\\0rsa"'},
     "controllers.c1.identity_file: expected a path (no NUL character), got 'id\\x00rsa'"),
    ({"known_hosts": '"kh\\0"'},
     "controllers.c1.known_hosts: expected a path (no NUL character), got 'kh\\x00'"),
    ({"connect_timeout": ".nan"},
     "controllers.c1.connect_timeout: expected a positive number of seconds (at most 3600), "
     "got nan"),
    ({"connect_timeout": ".inf"},
     "controllers.c1.connect_timeout: expected a positive number of seconds (at most 3600), "
     "got inf"),
    ({"connect_timeout": "-1"},
     "controllers.c1.connect_timeout: expected a positive number of seconds (at most 3600), "
     "got -1"),
    ({"api_url": '"http://127.0.0.1:8776/\\n"'},
     "controllers.c1.api_url: expected an http:// or https:// URL, "
     "got 'http://127.0.0.1:8776/\\n'"),
])
def test_a_value_of_the_wrong_kind_is_one_line_naming_its_place(tmp_path, values, expected):
    assert problems(tmp_path, entry(**values)) == [expected]


@pytest.mark.parametrize("values", [
    {"service_user": "cinder"}, {"service_user": "stack"}, {"service_user": "svc.api-1"},
    {"service_user": "_cinder"}, {"service_user": "Admin"}, {"user": "root"},
    {"user": "jdoe@corp.example.com"},
    {"address": "ctl-1.example.com"}, {"address": "192.0.2.10"}, {"address": '"fe80::1%eth0"'},
    {"service": "openstack-cinder-api.service"}, {"service": '"devstack@c-api.service"'},
    {"service": "openstack-cinder-api"},
    {"service_manager": "supervisord", "supervisor_config": "/etc/s.conf",
     "service": "cinder-api"},
    {"service_manager": "supervisord", "supervisor_config": "/etc/s.conf",
     "service": "cinder:cinder-api"},
    {"state_dir": '"/var/lib/cinder devloop"'}, {"connect_timeout": "0.5"},
])
def test_the_values_real_controllers_use_are_accepted(tmp_path, values):
    assert problems(tmp_path, entry(**values)) == []


def test_a_devstack_layout_s_defaults_pass_their_own_checks(tmp_path):
    assert problems(tmp_path, entry(layout="devstack")) == []


def test_every_bad_value_is_reported_at_once(tmp_path):
    found = problems(tmp_path, entry(service_user='"-c id"', service='"-x"', state_dir="rel"))
    assert [line.split(":")[0] for line in found] == [
        "controllers.c1.service_user", "controllers.c1.state_dir", "controllers.c1.service"]


# --- broken files ---------------------------------------------------------------

def bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


@pytest.mark.parametrize("text, expected", [
    (b"source: src\ncontrollers:\n  c1: {address: \"\xff\xfe\"}\n",
     "line 3: not UTF-8 text (byte 0xff); save it as UTF-8"),
    (f"source: src\n{bomb()}\ncontrollers: *l9\n",
     "refused: its aliases expand it to more than 100000 values (an alias bomb?); write it "
     "out without such aliases"),
    ("source: src\nloop: &a [1, *a]\ncontrollers:\n  c1: {address: a}\n",
     "refused: line 2: an alias refers to a value that holds it; an inventory cannot be "
     "recursive"),
    ("source: src\ncontrollers:\n  c1: {address: a}\nx: " + "[" * 3000 + "]" * 3000 + "\n",
     "refused: its values are nested too deeply"),
    ("# " + "x" * (256 * 1024) + "\n",
     "refused: larger than 256 KiB; an inventory is a few lines of YAML"),
])
def test_a_broken_file_is_one_line_not_a_traceback(tmp_path, text, expected):
    assert problems(tmp_path, text) == [expected]


def test_an_alias_bomb_is_refused_within_a_second(tmp_path):
    started = time.monotonic()
    found = problems(tmp_path, f"source: src\n{bomb()}\nexcludes: *l9\n"
                               f"controllers:\n  c1: {{address: a}}\n")
    assert time.monotonic() - started < 1.0
    assert found and found[0].startswith("refused: its aliases expand it")


def test_aliases_that_expand_modestly_still_work(tmp_path):
    text = ("source: src\ndefaults: &d {service_user: cinder}\n"
            "controllers:\n  c1: {<<: *d, address: a}\n  c2: {<<: *d, address: b}\n")
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize("mode, expected", [
    (0o600, None),
    (0o400, None),
    (0o644, "is open to others (mode 0644); ssh refuses such a private key: chmod 600"),
    (0o640, "is open to others (mode 0640); ssh refuses such a private key: chmod 600"),
])
def test_a_private_key_open_to_others_is_refused_as_openssh_refuses_it(tmp_path, mode, expected):
    key = tmp_path / "id_ed25519"
    key.write_text("not read here\n")
    key.chmod(mode)
    found = problems(tmp_path, entry(identity_file=str(key)))
    if expected is None:
        assert found == []
    else:
        assert found == [f"controllers.c1.identity_file: {key} {expected} {key}"]


# --- commands: values after "--", wherever the command takes options --------------

def test_su_takes_the_user_after_double_dash_so_it_is_never_an_option():
    argv = shlex.split(shlex.join(as_user(HOSTILE, ["cinder-manage", "db", "version"])))
    assert argv == ["su", "-s", "/bin/sh", "-c", "cinder-manage db version", "--", HOSTILE]


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_systemctl_takes_the_unit_after_double_dash(action):
    assert Systemd("--root=/x").control_argv(action)[-2:] == ["--", "--root=/x"]
    assert Systemd("--root=/x").show_argv()[-2:] == ["--", "--root=/x"]


def test_every_systemctl_of_the_uwsgi_settle_script_takes_the_unit_after_double_dash():
    script = Systemd("u", uwsgi=True).control_argv("stop")[2]
    uses = [line for line in script.splitlines() if '"$unit"' in line and "systemctl" in line]
    assert len(uses) == 4
    assert not [line for line in uses if re.search(r'(?<!-- )"\$unit"', line)], uses


def test_the_debug_guard_s_status_command_takes_the_unit_after_double_dash():
    start, status = service_argvs(Systemd("--root=/x"))
    assert start[-2:] == status[-2:] == ["--", "--root=/x"]


def test_tail_takes_the_log_after_double_dash():
    assert tail_argv("-n1", 5, False) == ["tail", "-n", "5", "--", "-n1"]


# --- what a controller's state_dir holds is only shown ------------------------------

@pytest.mark.parametrize("data, described", [
    ({"user": "a", "host": "h", "task": "deploy", "pid": "abc", "since": "T"},
     "a@h (invoke deploy, pid ?) since T"),
    ({"user": "a", "host": "h", "task": "deploy", "pid": [1], "since": "T"},
     "a@h (invoke deploy, pid ?) since T"),
    ({"user": "a", "host": "h", "task": "deploy", "pid": "42", "since": "T"},
     "a@h (invoke deploy, pid 42) since T"),
    ({"user": "a\x1b[2J", "host": None, "pid": True}, "a?[2J@None (invoke ?, pid ?) since ?"),
])
def test_a_lock_holder_of_any_shape_is_described_not_a_traceback(data, described):
    holder = Holder.from_json(data)
    assert holder is not None and holder.describe() == described


# --- known_hosts, read as OpenSSH reads it -----------------------------------------

@pytest.fixture
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    """Two host keys: (one, another)."""
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def known_hosts_line(name: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{name} {key.get_name()} {key.get_base64()}\n"


def pinned(tmp_path: Path, text: str | bytes) -> paramiko.SSHClient:
    path = tmp_path / "known_hosts"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    client = paramiko.SSHClient()
    pin_host_keys(client, path)
    return client


def test_cert_authority_and_unreadable_lines_are_skipped_and_the_rest_is_pinned(tmp_path, keys):
    one, other = keys
    client = pinned(tmp_path, known_hosts_line("*.example.com", other, "@cert-authority")
                    + "[ctl]:22 ssh-ed25519 AAAA%%%not-base64\n"
                    + "ctl ssh-nonsense AAAAC3NzaC1lZDI1NTE5\n"
                    + b"\xff\xfe not text\n".decode("latin-1")
                    + known_hosts_line("ctl", one))
    assert client.get_host_keys().lookup("ctl") == {one.get_name(): one}


def test_a_host_pinned_nowhere_is_told_which_lines_were_skipped(tmp_path, keys):
    one, other = keys
    client = pinned(tmp_path, known_hosts_line("*.example.com", other, "@cert-authority")
                    + "ctl ssh-ed25519 AAAA%%%not-base64\n")
    with pytest.raises(_HostKeyNotPinned) as caught:
        client._policy.missing_host_key(client, "ctl", one)
    assert caught.value.notes == (" (it skipped line 1 (@cert-authority: not supported), "
                                  "line 2 (not a readable host key))")


def test_a_revoked_key_is_refused_even_where_another_line_pins_it(tmp_path, keys):
    one, _ = keys
    client = pinned(tmp_path, known_hosts_line("*", one, "@revoked")
                    + known_hosts_line("ctl", one))
    assert client.get_host_keys().lookup("ctl") is None
    with pytest.raises(_HostKeyRevoked):
        client._policy.missing_host_key(client, "ctl", one)


def test_hashed_host_names_still_match(tmp_path, keys):
    one, _ = keys
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:2222")
    client = pinned(tmp_path, known_hosts_line(hashed, one))
    assert client.get_host_keys().lookup("[127.0.0.1]:2222") == {one.get_name(): one}


# --- passwords in URLs ----------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("cannot reach Keystone at http://admin:secret@192.0.2.10:5000/v3: refused",
     "cannot reach Keystone at http://admin:***@192.0.2.10:5000/v3: refused"),
    ("connection = mysql+pymysql://cinder:p%40ss:w@db/cinder?charset=utf8",
     "connection = mysql+pymysql://cinder:***@db/cinder?charset=utf8"),
    ("two: https://a:b@c/ and http://d:e@f", "two: https://a:***@c/ and http://d:***@f"),
    ("no password: http://admin@192.0.2.10/ and a:b@c", "no password: http://admin@192.0.2.10/ "
                                                        "and a:b@c"),
])
def test_a_password_in_a_url_is_never_printed(text, shown):
    assert redacted(text) == shown


# --- flags: Invoke's parse errors and values out of range ---------------------------

@pytest.mark.parametrize("args, message", [
    (["debug", "--port", "abc"], "error: debug --port: expected a whole number, got 'abc'"),
    (["deploy", "--timeout", "abc"], "error: deploy --timeout: expected a whole number, got 'abc'"),
    (["restart", "--lock-wait=x"], "error: restart --lock-wait: expected a whole number, got 'x'"),
    (["logs", "-n", "abc"], "error: logs -n: expected a whole number, got 'abc'"),
    (["deploy", "--timeout"], "error: deploy: --timeout needs a value"),
    (["deploy", "--nope"], "error: deploy: unknown flag --nope (invoke --help deploy lists the "
                           "flags)"),
    (["nosuch"], "error: no task 'nosuch' (invoke --list shows the tasks)"),
    (["debug", "--port", "0"], "error: --port 0: expected a port number from 1 to 65535"),
    (["debug", "--attach", "--port", "-1"],
     "error: --port -1: expected a port number from 1 to 65535"),
    (["deploy", "--timeout", "-1"], "error: --timeout -1: expected a number of seconds, 0 or more"),
    (["db-sync", "--lock-wait", "-5"],
     "error: --lock-wait -5: expected a number of seconds, 0 or more"),
    (["logs", "-n", "-5"], "error: -n -5: expected a whole number, 0 or more"),
    (["watch", "--debounce", "-1"], "error: --debounce -1: expected a whole number, 0 or more"),
])
def test_a_bad_flag_is_one_error_line_and_exit_2_before_anything_runs(args, message):
    result = invoke(*args, "--inventory", str(VALID))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [message]


def test_print_config_refuses_ports_past_65535_before_any_connection():
    result = invoke("debug", "--print-config", "--port", "65535", "--inventory",
                    str(PROJECT_ROOT / "tests/fixtures/hosts/defaults.yaml"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --port 65535: 2 controllers need ports 65535 to 65536, past 65535; pick a "
        "lower --port"]


@pytest.mark.parametrize("where, message", [
    ("a-directory", "is a directory; name the file (e.g. {path}/launch.json)"),
    ("a-file/launch.json", "{parent} is not a directory"),
    ("/proc/version/launch.json", "/proc/version is not a directory"),
])
def test_a_launch_json_that_cannot_be_written_is_refused_before_any_connection(
        tmp_path, where, message):
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("")
    path = Path(where) if where.startswith("/") else tmp_path / where
    # (the inventory's controller is not reachable: reaching it would be another error)
    result = invoke("debug", "--attach", "--launch-json", str(path), "--inventory", str(VALID))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --launch-json {path}: " + message.format(path=path, parent=path.parent)]
