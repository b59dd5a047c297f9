"""A hostile service user: what ``cinder`` can write never becomes root's.

cinder-api runs as the service user, so a flaw in it hands that account to
an attacker. The tool runs as root on the controller. These specs play the
attacker's steps as the real service user on the controller (``su``), then
run the tool as a developer would, and check that nothing ran as root,
nothing root-only changed, and any refusal is one ``error:`` line.

On the supervisord sandbox and the systemd kinds rdo and legacy (Python
2.7, Cinder Train), the kinds where fast restart applies:

- the state directory and all below it are root's alone, except the warm
  parent's own run directory (``fast/run/``), which root only reads;
- a program appended to the kept supervisord definition never runs, and a
  line slipped into the kept systemd command never reaches a drop-in;
- symlinks planted for temporary names are never written through;
- ``status`` never shows processes that took a dead warm parent's PIDs as
  the warm parent and its cinder-api;
- a state_dir another user can write is refused before anything changes;
- during ``debug --attach`` a debugger client the service user opens on
  the controller's loopback gets no answer, while the IDE attaches.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.dap_client import DapClient
from tests.integration.controllers import SupervisordController
from tests.support import free_port, invoke, wait_until, write_inventory

pytestmark = pytest.mark.integration

DROP_IN = "/etc/systemd/system/openstack-cinder-api.service.d/zz-devloop-fast-restart.conf"


@pytest.fixture(scope="module", params=["supervisord", "rdo", "legacy"])
def ctl(request):
    """The session's controllers where fast restart applies, in turn."""
    if request.param == "supervisord":
        return SupervisordController(request.getfixturevalue("sandbox"))
    return request.getfixturevalue(f"{request.param}_controller")


@pytest.fixture(scope="module", params=["rdo", "legacy"])
def systemd_ctl(request):
    return request.getfixturevalue(f"{request.param}_controller")


def inventory(tmp_path: Path, ctl) -> Path:
    source = tmp_path / "checkout" / "cinder"
    source.mkdir(parents=True, exist_ok=True)
    return write_inventory(tmp_path / "hosts.yaml", source, {"sbx": ctl.entry()})


def succeeds(*args: str) -> subprocess.CompletedProcess[str]:
    result = invoke(*args)
    assert result.returncode == 0, result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one ``error:`` line and no traceback; that line."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def as_service_user(ctl, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return ctl.run(argv, user=ctl.service_user)


def warm_state(ctl) -> dict:
    return json.loads(ctl.host_path(f"{ctl.state_dir}/fast/run/warm.json").read_text())


def ready_warm_parent(ctl) -> dict:
    return wait_until(lambda: (lambda s: s if s.get("state") == "ready" and
                               s.get("pid") == ctl.service_pid() else None)(warm_state(ctl)),
                      timeout=120)


def exists(ctl, path: str) -> bool:
    return ctl.run(["test", "-e", path]).returncode == 0


def foreign_entries(ctl) -> list[str]:
    """Entries of the state directory that another user than root owns or can write,
    outside the warm parent's run directory (the service user's, read only by root)."""
    # NUL-terminated: a name may hold a newline
    listing = ctl.run(["find", ctl.state_dir, "-printf", "%u %m %p\\0"]).stdout
    run_dir = f"{ctl.state_dir}/fast/run"
    found = []
    for line in filter(None, listing.split("\0")):
        owner, mode, path = line.split(" ", 2)
        if path == run_dir or path.startswith(run_dir + "/"):
            continue
        if owner != "root" or int(mode, 8) & 0o022:
            found.append(line)
    return found


def test_the_state_directory_is_roots_alone_but_for_the_warm_parents_run_directory(
        ctl, tmp_path):
    hosts = inventory(tmp_path, ctl)
    succeeds("fast-restart", "on", "--inventory", str(hosts))
    try:
        assert foreign_entries(ctl) == []
        run_dir = ctl.run(["stat", "-c", "%U %a", f"{ctl.state_dir}/fast/run"]).stdout.split()
        assert run_dir == [ctl.service_user, "700"]
        # what the service runs, it can read and not change
        warm = ctl.run(["stat", "-c", "%U %a", f"{ctl.state_dir}/fast/warm_api.py"]).stdout
        assert warm.split() == ["root", "644"]
        kept = ctl.run(["stat", "-c", "%U %a", f"{ctl.state_dir}/fast/original"]).stdout
        assert kept.split() == ["root", "600"]
        assert as_service_user(ctl, ["touch", f"{ctl.state_dir}/fast/planted"]).returncode != 0
        assert as_service_user(ctl, ["touch", f"{ctl.state_dir}/planted"]).returncode != 0
    finally:
        succeeds("fast-restart", "off", "--inventory", str(hosts))
    assert foreign_entries(ctl) == []


def test_a_program_the_service_user_appends_to_the_kept_definition_never_runs(sandbox, tmp_path):
    ctl = SupervisordController(sandbox)
    conf = sandbox.supervisor_conf
    before = conf.read_bytes()
    marker = tmp_path / "ran-as-root"          # tmp_path is root's (0700)
    hosts = inventory(tmp_path, ctl)
    succeeds("fast-restart", "on", "--inventory", str(hosts))
    try:
        program = ("\n[program:devloop-hostile]\ncommand = /bin/sh -c 'id -u > %s'\n"
                   "user = root\nstartsecs = 0\nautorestart = false\n" % marker)
        # appended: in a copy renamed over the kept file, where the directory lets it
        as_service_user(ctl, ["sh", "-c", 'cat "$2" > "$2.new" && printf "%s" "$1" >> "$2.new" '
                              '&& mv -f "$2.new" "$2"', "append", program,
                              f"{ctl.state_dir}/fast/original"])
        off = invoke("fast-restart", "off", "--inventory", str(hosts))
        hostile = subprocess.run(["supervisorctl", "-c", str(conf), "status", "devloop-hostile"],
                                 capture_output=True, text=True).stdout
    finally:
        if conf.read_bytes() != before:       # the shared sandbox as it was
            conf.write_bytes(before)
            subprocess.run(["supervisorctl", "-c", str(conf), "update"], capture_output=True)
    assert "no such process" in hostile, hostile
    assert not marker.exists()
    assert off.returncode == 0, off.stderr
    assert conf.read_bytes() == before


def test_a_line_the_service_user_slips_into_the_kept_command_never_reaches_a_drop_in(
        systemd_ctl, tmp_path):
    ctl = systemd_ctl
    marker = "/root/devloop-ran-as-root"
    hosts = inventory(tmp_path, ctl)
    succeeds("fast-restart", "on", "--inventory", str(hosts))
    try:
        kept = f"{ctl.state_dir}/fast/original"
        words = [ctl.python, ctl.cinder_api]
        for config in ctl.config_files:
            words += ["--config-file", config]
        hostile = words + ['x\nExecStart=+/bin/sh -c "id -u > %s"\n#' % marker]
        as_service_user(ctl, ["sh", "-c", 'printf "%s" "$1" > "$2.new" && mv -f "$2.new" "$2"',
                              "write", json.dumps({"kind": "systemd", "argv": hostile}), kept])
        again = invoke("fast-restart", "on", "--timeout", "180", "--inventory", str(hosts))
        ran = exists(ctl, marker)
        drop_in = ctl.run(["cat", DROP_IN]).stdout
    finally:
        invoke("fast-restart", "off", "--inventory", str(hosts))
        ctl.run(["rm", "-f", marker])
    assert not ran, "a command of the service user's ran as root"
    assert "devloop-ran-as-root" not in drop_in, drop_in
    assert again.returncode == 0, again.stderr


PLANT = r"""
import os, sys
target, fast = sys.argv[1], sys.argv[2]
with open("/proc/sys/kernel/pid_max") as handle:
    pid_max = int(handle.read())
with open("/proc/sys/kernel/ns_last_pid") as handle:
    last = int(handle.read())
# every PID where they wrap soon (32768 here); else the next 20000 (a container: 4194304)
top = pid_max if pid_max <= 1 << 16 else min(pid_max, last + 20000)
planted = 0
try:
    for pid in range(1, top + 1):
        for name in ("warm_api.py", "original", "original.json"):
            os.symlink(target, "%s/%s.%d.tmp" % (fast, name, pid))
            planted += 1
except OSError as exc:
    sys.stdout.write("stopped: %s\n" % exc)
sys.stdout.write("planted %d\n" % planted)
"""


def test_symlinks_the_service_user_plants_for_temporary_names_are_never_written_through(
        ctl, tmp_path):
    secret = str(tmp_path / "root-only") if ctl.kind == "supervisord" else "/root/devloop-root-only"
    ctl.run(["sh", "-c", 'umask 077 && printf secret > "$1"', "secret", secret])
    hosts = inventory(tmp_path, ctl)
    fast = f"{ctl.state_dir}/fast"
    succeeds("fast-restart", "on", "--inventory", str(hosts))
    try:
        succeeds("fast-restart", "off", "--inventory", str(hosts))
        as_service_user(ctl, [ctl.python, "-c", PLANT, secret, fast])
        again = invoke("fast-restart", "on", "--inventory", str(hosts))
        after = ctl.run(["stat", "-c", "%a %s", secret]).stdout.split()
        content = ctl.run(["cat", secret]).stdout
    finally:
        invoke("fast-restart", "off", "--inventory", str(hosts))
        ctl.run(["find", fast, "-name", "*.tmp", "-type", "l", "-delete"])
        ctl.run(["rm", "-f", secret])
    assert content == "secret"
    assert after == ["600", "6"]
    assert again.returncode == 0, again.stderr


IMPOSTORS = r"""
import json, os, sys
uid, gid = int(sys.argv[1]), int(sys.argv[2])
spec = sys.argv[3:]

def spawn_at(pid, argv):
    for _ in range(500):
        with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
            handle.write(str(pid - 1))
        child = os.fork()
        if child == 0:
            os.setsid()
            os.setgid(gid)
            os.setuid(uid)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(argv[0], argv)
        if child == pid:
            return True
        os.kill(child, 9)
        os.waitpid(child, 0)
    return False

done = []
for pid, argv in zip(spec[0::2], spec[1::2]):
    if spawn_at(int(pid), json.loads(argv)):
        done.append(pid)
sys.stdout.write(" ".join(done) + "\n")
"""


def in_pid_namespace(ctl, argv: list[str]) -> list[str]:
    """Run ``argv`` (this machine's programs) in the controller's PID namespace; its words.

    A container's /proc/sys is read-only inside it: the process joins only its PID
    namespace, and sets the next PID through this machine's /proc.
    """
    if ctl.kind != "supervisord":
        argv = ["nsenter", "-t", str(ctl.instance.leader()), "-p", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True).stdout.split()


def test_status_never_shows_processes_that_took_a_dead_warm_parents_pids_as_it(ctl, tmp_path):
    hosts = inventory(tmp_path, ctl)
    succeeds("fast-restart", "on", "--inventory", str(hosts))
    placed: list[str] = []
    try:
        state = ready_warm_parent(ctl)
        ctl.run(["kill", "-KILL", str(state["pid"])])
        ctl.stop_service()
        # whatever the state file names now (the killed parent, or a replacement the
        # stop ended while it warmed up) is dead: other processes take those PIDs
        named = warm_state(ctl)
        pids = [pid for pid in (named.get("pid"), named.get("child")) if pid]
        wait_until(lambda: not any(exists(ctl, f"/proc/{pid}") for pid in pids), timeout=30)
        ids = ctl.run(["id", "-u", ctl.service_user]).stdout.strip(), \
            ctl.run(["id", "-g", ctl.service_user]).stdout.strip()
        sleeper = ["/usr/bin/python3", "-c", "import time; time.sleep(300)",
                   f"{ctl.state_dir}/fast/warm_api.py"]
        spec: list[str] = []
        for pid in pids:
            spec += [str(pid), json.dumps(sleeper)]
        placed = in_pid_namespace(ctl, ["/usr/bin/python3", "-c", IMPOSTORS, *ids, *spec])
        assert placed == [str(pid) for pid in pids], "could not place the impostors"
        status = invoke("status", "--inventory", str(hosts))
    finally:
        for pid in placed:
            ctl.run(["kill", "-KILL", pid])
        ctl.restart_service()
        ready_warm_parent(ctl)
        succeeds("fast-restart", "off", "--inventory", str(hosts))
    (restart,) = [line for line in status.stdout.splitlines() if line.startswith("  restart")]
    assert "fast, warm parent NOT ready" in restart, status.stdout
    assert ctl.running_state not in status.stdout.splitlines()[1], status.stdout


@pytest.mark.parametrize("change, undo", [
    (["chmod", "0777"], ["chmod", "0755"]),
    (["chown", "{user}"], ["chown", "root"]),
], ids=["writable by others", "owned by the service user"])
def test_a_state_dir_another_user_can_write_is_refused_before_anything_changes(
        ctl, tmp_path, change, undo):
    hosts = inventory(tmp_path, ctl)
    ctl.run(["mkdir", "-p", ctl.state_dir])
    ctl.run([word.format(user=ctl.service_user) for word in change] + [ctl.state_dir])
    try:
        result = invoke("fast-restart", "on", "--inventory", str(hosts))
        kept = exists(ctl, f"{ctl.state_dir}/fast/original")
    finally:
        ctl.run(undo + [ctl.state_dir])
        if kept:
            invoke("fast-restart", "off", "--inventory", str(hosts))
    line = one_error_line(result)
    assert f"state_dir {ctl.state_dir}" in line and "root" in line, line
    assert not kept
    status = invoke("status", "--inventory", str(hosts))
    assert "restart   normal (fast restart off)" in status.stdout, status.stdout


DAP_PROBE = r"""
import json, socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
body = json.dumps({"seq": 1, "type": "request", "command": "initialize",
                   "arguments": {"clientID": "probe", "adapterID": "debugpy"}}).encode("utf-8")
sock.sendall(("Content-Length: %d\r\n\r\n" % len(body)).encode("ascii") + body)
sock.settimeout(15)
data = b""
try:
    while b"initialize" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
except (socket.timeout, socket.error):
    pass
sys.stdout.write("answered\n" if b"initialize" in data else "refused\n")
"""


def test_a_debugger_client_the_service_user_opens_gets_no_answer_while_the_ide_attaches(
        ctl, tmp_path):
    import pexpect

    from tests.integration.test_debug import spawn_debug, text_of

    hosts = inventory(tmp_path, ctl)
    port = free_port()
    child = spawn_debug(hosts, "--attach", "--port", str(port))
    try:
        child.expect(r"debugpy listens on 127\.0\.0\.1:(\d+) in the API worker; attach the IDE",
                     timeout=240)
        controller_port = child.match.group(1)
        probe = as_service_user(ctl, [ctl.python, "-c", DAP_PROBE, controller_port])
        with DapClient(port) as dap:
            dap.request("initialize", clientID="vscode", adapterID="debugpy")
            attached = dap.send("attach", justMyCode=False)
            dap.wait_event("initialized")
            dap.request("configurationDone")
            dap.response(attached)
            dap.request("disconnect")
    finally:
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=120)
        child.close()
    assert probe.stdout.strip() == "refused", (probe.stdout, probe.stderr)
    assert "debugpy removed (" in text_of(child)
    assert foreign_entries(ctl) == []
    wait_until(ctl.service_pid, timeout=60)


def test_the_forwarded_port_here_answers_only_the_user_who_runs_the_tool(sandbox, tmp_path):
    import pexpect

    from tests.integration.test_debug import spawn_debug

    ctl = SupervisordController(sandbox)
    hosts = inventory(tmp_path, ctl)
    port = free_port()
    child = spawn_debug(hosts, "--attach", "--port", str(port))
    try:
        child.expect("in the API worker; attach the IDE", timeout=240)
        other = subprocess.run(["su", "-s", "/bin/sh", "-c",
                                shlex.join(["/usr/bin/python3", "-c", DAP_PROBE, str(port)]),
                                ctl.service_user], capture_output=True, text=True)
        with DapClient(port) as dap:
            dap.request("initialize", clientID="vscode", adapterID="debugpy")
            dap.request("disconnect")
    finally:
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=120)
        child.close()
    assert other.stdout.strip() == "refused", (other.stdout, other.stderr)
    wait_until(ctl.service_pid, timeout=60)
