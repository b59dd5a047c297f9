"""invoke debug through a real terminal on every kind of controller.

On the supervisord sandbox, the rdo controller (systemd: the unit is
stopped, cinder-api runs in the foreground as ``cinder`` with
``/usr/bin/cinder-api``, the unit starts again) and the legacy one (the
same with ``/usr/bin/python2`` and Cinder Train): a breakpoint by dotted
name and one by FILE:LINE of the developer's own tree (the feature's common
tree) stop a real request at ``(Pdb)``, and one in the release tree deploy
laid over it for that controller's Cinder is found in its place there, where ``p cluster``
shows the cluster with its metadata, as the original notes' session did;
the service comes back with a new PID, and no foreground cinder-api is
left, both after Ctrl-C and after the workstation's connection drops.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import urllib.error
import urllib.request

import pytest

from tests.integration.test_debug import SHOW, in_background, spawn_debug, text_of
from tests.support import PROJECT_ROOT, wait_until

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration


def request(controller, method: str, path: str, body: object | None = None,
            timeout: float = 60) -> tuple[int, object]:
    access = controller.api()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{access.base_url}/v3/{access.project_id}/{path}", data=data,
                                 method=method, headers={**access.headers,
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:            # not listening (yet)
        return 0, None


def api_processes(controller) -> list[tuple[int, int]]:
    """(pid, process group) of every cinder-api on the controller, as it numbers them."""
    out = controller.run(["ps", "-ww", "-eo", "pid=,pgid=,args="]).stdout   # -ww: never cut
    found = []
    for line in out.splitlines():
        pid, pgid, args = line.split(None, 2)
        if controller.cinder_api in args.split()[:2]:
            found.append((int(pid), int(pgid)))
    return found


def assert_service_restored(controller, before: int | None) -> None:
    after = wait_until(controller.service_pid, timeout=60)
    assert after != before, (before, after)
    groups = {pgid for pid, pgid in api_processes(controller) if pid == after}
    leftover = [pid for pid, pgid in api_processes(controller) if pgid not in groups]
    assert leftover == [], f"foreground cinder-api left: {leftover}"
    wait_until(lambda: request(controller, "GET", "types", timeout=5)[0] == 200, timeout=60)


def show_return_line(tree: str) -> int:
    """The line of ``<tree>/api/contrib/cluster_manage.py`` where show() returns the cluster."""
    lines = (PROJECT_ROOT / tree / "api/contrib/cluster_manage.py").read_text().splitlines()
    start = lines.index("    def show(self, req, id):")
    return lines.index("        return {'cluster': cluster}", start) + 1


@pytest.fixture
def service_back(controller):
    """Whatever a test does, leave the controller's service running."""
    yield
    if not controller.service_pid():
        controller.restart_service()
    wait_until(controller.service_pid, timeout=60)


def test_a_break_stops_a_real_get_at_pdb_and_ctrl_c_brings_the_service_back(
        controller, feature_controller, service_back):
    before = controller.service_pid()
    line = show_return_line(controller.feature_tree)
    migration = f"{controller.release_tree}/{controller.feature_migration}"
    upgrade = next(number for number, text in
                   enumerate((PROJECT_ROOT / migration).read_text().splitlines(), 1)
                   if text.startswith("def upgrade("))
    child = spawn_debug(feature_controller, "--break", SHOW, "--break",
                        f"{controller.feature_tree}/api/contrib/cluster_manage.py:{line}",
                        "--break", f"{migration}:{upgrade}")
    child.expect("answers at")
    # a path in either layer is the file's place in the controller's package
    assert f"{migration}:{upgrade} -> cinder/{controller.feature_migration}:" in \
        text_of(child) and " (upgrade)" in text_of(child)
    status, created = request(controller, "POST", "os-cluster-manage",
                              {"cluster": {"name": "dbg", "metadata": {"k": "v"}}})
    assert status == 200, created
    cluster_id = created["cluster"]["id"]

    thread, got = in_background(request, controller, "GET", f"os-cluster-manage/{cluster_id}")
    child.expect(r"\(Pdb\) ")                       # the dotted name: show()'s first line
    assert "breakpoint 1, " in text_of(child) and "show()" in text_of(child)
    child.sendline("p id")
    child.expect(r"\(Pdb\) ")
    assert cluster_id in child.before
    child.sendline("c")
    child.expect(r"\(Pdb\) ")                       # FILE:LINE: where show() returns
    assert f"breakpoint 2, cinder/api/contrib/cluster_manage.py:{line} " in text_of(child)
    child.sendline("p cluster")
    child.expect(r"\(Pdb\) ")
    # Python 2 shows the JSON strings as u'...'
    assert re.search(r"'metadata': \{u?'k': u?'v'\}", child.before), child.before
    assert cluster_id in child.before
    child.sendline("c")
    thread.join(30)
    assert got["value"][0] == 200

    child.sendcontrol("c")
    child.expect(pexpect.EOF, timeout=90)
    child.close()

    assert child.exitstatus == 130, text_of(child)
    assert f"{controller.service} back in service" in text_of(child)
    assert_service_restored(controller, before)


def test_a_dropped_connection_still_brings_the_service_back(controller, feature_controller,
                                                            service_back):
    before = controller.service_pid()
    child = spawn_debug(feature_controller)
    child.expect("answers at")
    foreground = [pid for pid, _ in api_processes(controller)]
    assert foreground and controller.service_pid() is None

    os.kill(child.pid, signal.SIGKILL)      # the workstation goes away mid-session
    child.close(force=True)

    assert_service_restored(controller, before)
    assert not set(foreground) & {pid for pid, _ in api_processes(controller)}


def test_a_leftover_cinder_api_is_ended_before_the_session(controller, feature_controller,
                                                           service_back):
    controller.stop_service()
    command = [controller.python, controller.cinder_api] + \
        [arg for conf in controller.config_files for arg in ("--config-file", conf)]
    # a cinder-api someone started by hand and forgot, detached from us
    controller.run(["setsid", "sh", "-c", shlex.join(command) + " >/dev/null 2>&1 &"],
                   user=controller.service_user)
    strays: list[int] = []
    try:
        strays = wait_until(lambda: [pid for pid, _ in api_processes(controller)], timeout=30)
        child = spawn_debug(feature_controller)
        child.expect("answers at")
        transcript = text_of(child)
        for pid in strays:
            assert f"leftover cinder-api pid {pid}: " in transcript
            assert f"ended pid {pid} (" in transcript
        assert not set(strays) & {pid for pid, _ in api_processes(controller)}

        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=90)
        child.close()
        assert child.exitstatus == 130, text_of(child)
        assert_service_restored(controller, None)
    finally:
        left = set(strays) & {pid for pid, _ in api_processes(controller)}
        if left:   # only the PIDs this test started, if they still run cinder-api
            controller.run(["kill", "-9", *map(str, sorted(left))])
