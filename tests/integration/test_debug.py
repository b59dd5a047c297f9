"""invoke debug against a real sandbox controller, through a real terminal.

Each interactive test runs ``python -m invoke debug`` under pexpect (a pty,
as a developer's terminal), sends HTTP requests to the foreground
cinder-api, talks to the ``(Pdb)`` prompt, ends the session with Ctrl-C or
``q``, and then looks at the controller: the supervised service runs again
with a new PID and no foreground cinder-api is left.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import supervised_pid
from tests.support import PROJECT_ROOT, free_port, invoke, wait_until, write_inventory

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration

PROJECT = "abc123"          # noauth: a hex project id
SHOW = "cinder.api.contrib.cluster_manage.ClusterManageController.show"


def spawn_debug(inventory: Path, *args: str) -> "pexpect.spawn":
    child = pexpect.spawn(sys.executable,
                          ["-m", "invoke", "--search-root", str(PROJECT_ROOT), "debug",
                           "--inventory", str(inventory), *args],
                          # a log line in another encoding shows as a terminal shows it
                          encoding="utf-8", codec_errors="replace", timeout=90,
                          dimensions=(50, 200),
                          env={**os.environ, "TERM": "xterm"})
    child.transcript = []   # everything the terminal showed, for the assertions
    child.logfile_read = _Transcript(child.transcript)
    return child


class _Transcript:
    def __init__(self, parts: list[str]) -> None:
        self.parts = parts

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass


def end_session(child: "pexpect.spawn | None") -> None:
    """End a debug session a failed spec left running, as its user would (Ctrl-C), so that
    it gives the service and the controller's lock back; force it if that does not end it."""
    if child is None or not child.isalive():
        return
    child.sendcontrol("c")
    try:
        child.expect(pexpect.EOF, timeout=90)
    except (pexpect.TIMEOUT, pexpect.EOF):
        pass
    child.close(force=True)


def text_of(child) -> str:
    return "".join(child.transcript).replace("\r\n", "\n")


def request(sandbox, method: str, path: str, body: object | None = None,
            timeout: float = 60) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{sandbox.api_url}v3/{PROJECT}/{path}", data=data,
                                 method=method,
                                 headers={"X-Auth-Token": f"admin:{PROJECT}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def in_background(func, *args) -> tuple[threading.Thread, dict]:
    """Run a (blocking) request while the test talks to pdb."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = func(*args)
        except Exception as exc:  # the session may end with the request open
            outcome["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def cinder_api_processes(sandbox) -> list[int]:
    """PIDs whose argv is <python> <the sandbox's cinder-api> ..."""
    entry = str(sandbox.venv / "bin/cinder-api")
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and len(argv) > 1 and argv[1].decode() == entry:
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def end_by_pid(marker: str, *procs: subprocess.Popen, pids: list[int] = ()) -> None:
    """End what a test started: ``su`` and, in the session su made, its child.

    ``su -c`` runs its command in a new session, so the child is found by
    the ``marker`` in its command line, then everything is ended by PID.
    """
    marked = [int(p.name) for p in Path("/proc").iterdir()
              if p.name.isdigit() and marker.encode() in _cmdline(p)]
    # a stray the test started, only if that PID still runs the sandbox's cinder-api
    marked += [pid for pid in pids if b"cinder-api" in _cmdline(Path(f"/proc/{pid}"))]
    for pid in marked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for started in procs:
        if started.poll() is None:
            started.kill()
        started.wait(10)


def assert_service_restored(sandbox, before: int | None) -> None:
    after = supervised_pid(sandbox)
    assert after and after != before, (before, after)
    service_group = os.getpgid(after)
    leftover = [p for p in cinder_api_processes(sandbox) if os.getpgid(p) != service_group]
    assert leftover == [], f"foreground cinder-api left: {leftover}"


@pytest.fixture
def service_back(sandbox):
    """Whatever a test does, leave the sandbox's service running."""
    yield
    ctl = ["supervisorctl", "-c", str(sandbox.supervisor_conf)]
    if not supervised_pid(sandbox):
        subprocess.run([*ctl, "start", "cinder-api"], capture_output=True)
    wait_until(lambda: supervised_pid(sandbox), timeout=60)


class TestBreakWithoutEditingCode:
    def test_break_on_the_cluster_show_handler_stops_a_get_at_pdb_and_ctrl_c_restores_the_service(
            self, sandbox, deployed_feature, service_back):
        before = supervised_pid(sandbox)
        child = spawn_debug(deployed_feature, "--break", SHOW)
        child.expect("answers at")
        status, created = request(sandbox, "POST", "os-cluster-manage", {"cluster": {
            "name": "c1", "metadata": {"attr10": "kaska", "attr2": "111"}}})
        assert status == 200, created
        cluster_id = created["cluster"]["id"]

        thread, got = in_background(request, sandbox, "GET", f"os-cluster-manage/{cluster_id}")
        child.expect(r"\(Pdb\) ")
        assert "cluster_manage.py(127)show()" in text_of(child)
        assert "-> context = req.environ['cinder.context']" in text_of(child)
        for command in ("n", "n", "n"):       # past `cluster = self.cluster_api.get(...)`
            child.sendline(command)
            child.expect(r"\(Pdb\) ")
        child.sendline("p cluster")
        child.expect(r"\(Pdb\) ")
        printed = child.before
        assert f"'id': '{cluster_id}'" in printed
        assert "'name': 'c1'" in printed
        assert "'metadata': {'attr10': 'kaska', 'attr2': '111'}" in printed
        child.sendline("c")
        thread.join(30)
        assert got["value"][0] == 200
        assert got["value"][1]["cluster"]["metadata"] == {"attr10": "kaska", "attr2": "111"}

        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=90)
        child.close()

        assert child.exitstatus == 130
        transcript = text_of(child)
        assert "Aborted!" in transcript
        assert "cinder-api back in service" in transcript
        assert_service_restored(sandbox, before)

    def test_a_location_that_names_no_code_is_refused_before_anything_stops(
            self, sandbox, deployed_feature):
        before = supervised_pid(sandbox)
        result = invoke("debug", "--inventory", str(deployed_feature),
                        "--break", "cinder.api.contrib.cluster_manage.ClusterManageController.nope",
                        "--break", "api/contrib/cluster_manage.py:2")
        assert result.returncode == 1
        assert "has no attribute 'nope'" in result.stderr
        assert "line 2 of" in result.stderr and "holds no statement" in result.stderr
        assert "nothing was stopped" in result.stderr
        assert "Traceback" not in result.stderr
        assert supervised_pid(sandbox) == before


class TestLeftovers:
    def test_a_stray_cinder_api_is_ended_and_an_unrelated_cinder_api_command_line_is_not(
            self, sandbox, deployed_feature, service_back):
        ctl = ["supervisorctl", "-c", str(sandbox.supervisor_conf)]
        subprocess.run([*ctl, "stop", "cinder-api"], check=True, capture_output=True)
        entry = str(sandbox.venv / "bin/cinder-api")
        marker = f"devloop-it-{uuid.uuid4().hex[:8]}"
        stray = subprocess.Popen(
            ["su", "-s", "/bin/sh", "-c", shlex.join(
                [entry, "--config-file", str(sandbox.dist_conf), "--config-file",
                 str(sandbox.cinder_conf), "--log-file", str(sandbox.log_file)]), "cinder"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        unrelated = subprocess.Popen(
            ["su", "-s", "/bin/sh", "-c", shlex.join(
                ["exec", str(sandbox.python), "-c", f"import time; time.sleep(600)  # {marker}",
                 entry, "cinder-api"]), "cinder"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        strays: list[int] = []
        child = None
        try:
            strays = wait_until(lambda: len(cinder_api_processes(sandbox)) == 2 and
                                cinder_api_processes(sandbox), timeout=30)
            wait_until(lambda: request(sandbox, "GET", "os-cluster-manage")[0] == 200,
                       timeout=30)
            sleeper = wait_until(lambda: [p for p in Path("/proc").iterdir() if p.name.isdigit()
                                          and b"time.sleep(600)" in _cmdline(p)], timeout=10)[0]

            child = spawn_debug(deployed_feature)
            child.expect("answers at")
            transcript = text_of(child)
            for pid in strays:
                assert f"leftover cinder-api pid {pid}: " in transcript
                # TERM, or KILL once the grace period passed (a loaded machine's slow shutdown)
                assert (f"ended pid {pid} (TERM)" in transcript
                        or f"ended pid {pid} (KILL)" in transcript), transcript
                assert not alive(pid)
            assert alive(int(sleeper.name)), "an unrelated process was ended"
            assert f"pid {sleeper.name}" not in transcript.split("answers at")[0]

            child.sendcontrol("c")
            child.expect(pexpect.EOF, timeout=90)
            child.close()
            assert child.exitstatus == 130
            assert_service_restored(sandbox, None)
        finally:
            end_session(child)
            end_by_pid(marker, stray, unrelated, pids=strays)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


class TestBreakpointInCode:
    @pytest.fixture
    def overlay(self, tmp_path, sandbox, cinder_dir):
        """A tiny contrib extension whose handler calls breakpoint(); removed afterwards."""
        name = f"devloop_bp_{uuid.uuid4().hex[:8]}"
        alias = name.replace("_", "-")
        source = tmp_path / "src" / "cinder"
        (source / "api/contrib").mkdir(parents=True)
        (source / f"api/contrib/{name}.py").write_text(f'''\
"""An extension that stops in pdb (invoke debug integration test)."""
from cinder.api import extensions
from cinder.api.openstack import wsgi


class Controller(wsgi.Controller):
    def index(self, req):
        answer = {{"answer": 42}}
        breakpoint()
        return answer


class {name.capitalize()}(extensions.ExtensionDescriptor):
    """Breakpoint test extension."""

    name = "{name}"
    alias = "{alias}"
    updated = "2026-11-25T00:00:00+00:00"

    def get_resources(self):
        return [extensions.ResourceExtension("{alias}", Controller())]
''')
        hosts = write_inventory(tmp_path / "hosts.yaml", source,
                                {"sandbox": sandbox.controller_entry()})
        yield hosts, alias
        deployed = cinder_dir / f"api/contrib/{name}.py"
        deployed.unlink(missing_ok=True)
        shutil.rmtree(cinder_dir / "api/contrib/__pycache__", ignore_errors=True)
        subprocess.run(["supervisorctl", "-c", str(sandbox.supervisor_conf), "restart",
                        "cinder-api"], capture_output=True)
        wait_until(lambda: supervised_pid(sandbox), timeout=60)

    def test_breakpoint_in_a_deployed_overlay_file_gives_the_prompt_and_q_ends_the_session(
            self, sandbox, overlay, service_back):
        hosts, alias = overlay
        deployed = invoke("deploy", "--inventory", str(hosts), "--no-restart")
        assert deployed.returncode == 0, deployed.stderr
        before = supervised_pid(sandbox)

        child = spawn_debug(hosts)
        child.expect("answers at")
        thread, got = in_background(request, sandbox, "GET", alias)
        child.expect(r"\(Pdb\) ")
        assert "-> return answer" in text_of(child)
        child.sendline("p answer")
        child.expect(r"\(Pdb\) ")
        assert "{'answer': 42}" in child.before
        child.sendline("q")
        child.expect(pexpect.EOF, timeout=90)
        child.close()
        thread.join(10)

        assert child.exitstatus == 0, text_of(child)
        transcript = text_of(child)
        assert "devloop: quit: ending the debug session" in transcript
        assert "cinder-api back in service" in transcript
        assert_service_restored(sandbox, before)


class TestErrors:
    def test_a_cinder_api_that_exits_at_start_shows_its_last_output_and_the_service_returns(
            self, tmp_path, sandbox, deployed_feature, service_back):
        entry = {**sandbox.controller_entry(),
                 "config_files": [str(sandbox.dist_conf), "/nonexistent/cinder.conf"]}
        hosts = write_inventory(tmp_path / "hosts.yaml", PROJECT_ROOT / "cinder_patch/cinder",
                                {"sandbox": entry})
        before = supervised_pid(sandbox)

        result = invoke("debug", "--inventory", str(hosts))

        assert result.returncode == 1
        assert "error: sandbox: cinder-api exited at start; its last output:" in result.stderr
        assert "/nonexistent/cinder.conf" in result.stderr.split("its last output:")[1]
        assert "cinder-api back in service" in result.stderr
        assert_service_restored(sandbox, before)

    def test_a_controller_that_cannot_be_reached_is_a_one_line_error(self, tmp_path, sandbox):
        entry = {**sandbox.controller_entry(), "port": free_port()}
        hosts = write_inventory(tmp_path / "hosts.yaml", PROJECT_ROOT / "cinder_patch/cinder",
                                {"sandbox": entry})
        started = time.monotonic()
        result = invoke("debug", "--inventory", str(hosts))
        assert result.returncode == 1
        assert result.stderr.startswith("error: sandbox (root@127.0.0.1:")
        assert "connection refused" in result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - started < 30
