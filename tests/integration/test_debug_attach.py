"""invoke debug --attach: an IDE's debugger stops a real request, on every kind.

On the supervisord sandbox, the rdo controller (Keystone: the requests
carry a token) and the legacy one (Python 2.7, Cinder Train, debugpy
1.5.1), a Debug Adapter Protocol client (``tests/dap_client.py``, the
messages VS Code sends) connects to the port the tool forwards to the
controller's loopback, sets a breakpoint in ``cluster_manage.py`` (the
controller's path, or the developer's own through the generated
``pathMappings``: file by file, each from the layer of the feature deploy
took it from), and a GET stops there: the stack shows ``show`` and its
locals the request's cluster; ``continue`` lets the GET answer 200. Meanwhile
``invoke status`` says a debug session holds the controller. Ending the
session with Ctrl-C (or, in the pathMappings variant, killing the tool)
brings the service back and leaves no debugpy process or file on the
controller.
"""
from __future__ import annotations

import json
import os
import signal

import pytest

from tests.dap_client import DapClient
from tests.integration.test_debug import in_background, spawn_debug, text_of
from tests.integration.test_debug_kinds import assert_service_restored, request, show_return_line
from tests.support import PROJECT_ROOT, free_port, invoke, wait_until

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration

READY = "in the API worker; attach the IDE"


def debugpy_traces(controller) -> tuple[list[str], list[str]]:
    """(processes run from a session's debugpy directory, such directories left)."""
    marker = f"{controller.state_dir}/debug/attach-"
    processes = [line for line in controller.run(["ps", "-ww", "-eo", "pid=,args="]
                                                 ).stdout.splitlines() if marker in line]
    listing = controller.run(["ls", "-A", f"{controller.state_dir}/debug"]).stdout.split()
    return processes, [name for name in listing if name.startswith("attach-")]


def assert_layered_mappings(controller, mappings: list[dict[str, str]]) -> dict[str, str]:
    """Each file of the feature maps from the layer deploy took it from; remote -> local.

    The common tree's files from the common tree, the release tree's (its
    migration) from the release tree: file by file, as debugpy tries every
    directory mapping before any file mapping.
    """
    mapped = {m["remoteRoot"]: m["localRoot"] for m in mappings}
    assert len(mapped) == len(mappings)
    common, release = PROJECT_ROOT / controller.feature_tree, PROJECT_ROOT / controller.release_tree
    for remote, local in mapped.items():
        rel = remote.removeprefix(f"{controller.cinder_path}/")
        assert local in (str(common / rel), str(release / rel)), (remote, local)
    assert mapped[f"{controller.cinder_path}/api/contrib/cluster_manage.py"] == \
        str(common / "api/contrib/cluster_manage.py")
    assert mapped[f"{controller.cinder_path}/{controller.feature_migration}"] == \
        str(release / controller.feature_migration)
    return mapped


@pytest.fixture
def service_back(controller):
    yield
    if not controller.service_pid():
        controller.restart_service()
    wait_until(controller.service_pid, timeout=60)


@pytest.mark.parametrize("breakpoint_path", ["controller", "pathMappings"])
def test_an_attached_dap_client_stops_a_real_get_and_sees_its_locals(
        controller, feature_controller, service_back, tmp_path, breakpoint_path):
    before = controller.service_pid()
    port = free_port()
    launch = tmp_path / ".vscode" / "launch.json"
    child = spawn_debug(feature_controller, "--attach", "--port", str(port),
                        "--launch-json", str(launch))
    try:
        child.expect(READY, timeout=240)
        (entry,) = json.loads(launch.read_text())["configurations"]
        assert entry["request"] == "attach" and entry["justMyCode"] is False
        assert entry["connect"] == {"host": "127.0.0.1", "port": port}
        mapped = assert_layered_mappings(controller, entry["pathMappings"])
        held = invoke("status", "--inventory", str(feature_controller))
        assert "a debug session holds it: the IDE's (debugpy on the controller's 127.0.0.1:" \
            in held.stdout, held.stdout + held.stderr
        status, created = request(controller, "POST", "os-cluster-manage",
                                  {"cluster": {"name": "dap", "metadata": {"k": "v"}}})
        assert status == 200, created
        cluster_id = created["cluster"]["id"]

        line = show_return_line(controller.feature_tree)
        if breakpoint_path == "pathMappings":
            source = mapped[f"{controller.cinder_path}/api/contrib/cluster_manage.py"]
            attach_args = {"pathMappings": entry["pathMappings"]}
        else:
            source = f"{controller.cinder_path}/api/contrib/cluster_manage.py"
            attach_args = {}
        with DapClient(port) as dap:
            dap.request("initialize", clientID="vscode", adapterID="debugpy",
                        pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
            attached = dap.send("attach", justMyCode=False, **attach_args)
            dap.wait_event("initialized")
            (set_at,) = dap.request("setBreakpoints", source={"path": source},
                                    breakpoints=[{"line": line}])["breakpoints"]
            assert set_at["verified"], set_at
            dap.request("configurationDone")
            dap.response(attached)

            thread, got = in_background(request, controller, "GET",
                                        f"os-cluster-manage/{cluster_id}")
            stopped = dap.wait_event("stopped", timeout=60)
            assert stopped["reason"] == "breakpoint", stopped
            frames = dap.request("stackTrace", threadId=stopped["threadId"])["stackFrames"]
            top = frames[0]
            assert (top["name"], top["line"]) == ("show", line), top
            assert top["source"]["path"] == source
            scopes = dap.request("scopes", frameId=top["id"])["scopes"]
            local = next(s for s in scopes if s["name"].lower().startswith("locals"))
            variables = {v["name"]: v for v in
                         dap.request("variables",
                                     variablesReference=local["variablesReference"]
                                     )["variables"]}
            assert cluster_id in variables["id"]["value"], variables
            assert "req" in variables
            # the cluster, opened as in the IDE's Variables view (its one-line
            # value is shortened on Python 2.7)
            cluster = variables["cluster"]
            assert "'k'" in cluster["value"], cluster
            fields = dap.request("variables", variablesReference=cluster["variablesReference"]
                                 )["variables"]
            assert any(cluster_id in field["value"] for field in fields), fields
            assert not got, "the GET answered while stopped at the breakpoint"
            dap.request("continue", threadId=stopped["threadId"])
            thread.join(30)
            assert got["value"][0] == 200, got
            dap.request("disconnect")

        if breakpoint_path == "controller":
            child.sendcontrol("c")
            child.expect(pexpect.EOF, timeout=120)
            child.close()
            assert child.exitstatus == 130, text_of(child)
            assert "debugpy removed (" in text_of(child)
        else:   # the tool is killed: the controller's guard cleans up by itself
            os.kill(child.pid, signal.SIGKILL)
            child.close(force=True)
    finally:
        print(text_of(child))     # shown when the spec fails
        if child.isalive():
            child.kill(9)
    assert_service_restored(controller, before)
    assert wait_until(lambda: debugpy_traces(controller) == ([], []), timeout=60)


def test_print_config_gives_one_attach_entry_per_controller_and_changes_nothing(
        controller, feature_controller, tmp_path):
    import yaml

    raw = yaml.safe_load(feature_controller.read_text())
    (entry,) = raw["controllers"].values()
    raw["controllers"] = {"first": entry, "second": entry}
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump(raw))
    before = controller.service_pid()

    result = invoke("debug", "--inventory", str(hosts), "--print-config", "--port", "6000")

    assert result.returncode == 0, result.stderr
    configurations = json.loads(result.stdout)["configurations"]
    assert [(c["name"], c["connect"]["port"]) for c in configurations] == [
        ("cinder-api on first (devloop)", 6000), ("cinder-api on second (devloop)", 6001)]
    for configuration in configurations:
        assert_layered_mappings(controller, configuration["pathMappings"])
    assert controller.service_pid() == before


def test_without_a_wheel_or_an_index_it_says_so_before_stopping_anything(sandbox, hosts,
                                                                          tmp_path):
    from tests.integration.conftest import supervised_pid

    before = supervised_pid(sandbox)
    result = invoke("debug", "--attach", "--inventory", str(hosts),
                    env={"DEVLOOP_CACHE": str(tmp_path / "empty-cache"), "PIP_NO_INDEX": "1",
                         "PIP_FIND_LINKS": ""})

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors and errors[0].startswith("error: cannot fetch debugpy 1.8.17 for the "
                                           "controller's Python 3."), result.stderr
    assert f"put a fitting wheel in {tmp_path / 'empty-cache' / 'debugpy' / '1.8.17'}" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert "stop cinder-api" not in result.stderr
    assert supervised_pid(sandbox) == before
