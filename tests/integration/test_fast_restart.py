"""Fast restart on the sandbox: cinder-api forked from a warm parent, proven over HTTP.

The sandbox runs the cluster feature (``deployed_feature``); these specs
deploy a copy of the feature (the common tree ``cinder_patch/cinder`` with the
29.0.0 release tree laid over it) with edits and ask the API for
what the edit changes. At the end fast mode is turned off and the
pristine feature deployed again.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_api import Client
from tests.cinder_patch.cinder_env import feature_tree
from tests.integration.conftest import supervised_pid
from tests.support import invoke, wait_until, write_inventory

pytestmark = pytest.mark.integration

CONTRIB = Path("api/contrib/cluster_manage.py")
DB_API = Path("db/cluster_manage_api.py")
SORT_MESSAGE = '"Invalid sort key %(key)s, must be one of %(keys)s."'


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the feature the sandbox runs (its layers composed) that the specs edit."""
    copy = tmp_path_factory.mktemp("fast") / "cinder"
    shutil.copytree(feature_tree("29.0.0"), copy)
    return copy


@pytest.fixture(scope="module")
def fast_hosts(sandbox, deployed_feature, tree, tmp_path_factory) -> Path:
    """An inventory deploying ``tree`` to the sandbox, with fast restart on."""
    hosts = write_inventory(tmp_path_factory.mktemp("fast-hosts") / "hosts.yaml", tree,
                            {"sandbox": sandbox.controller_entry()})
    result = invoke("fast-restart", "on", "--inventory", str(hosts))
    assert result.returncode == 0, result.stderr
    try:
        yield hosts
    finally:
        invoke("fast-restart", "off", "--inventory", str(hosts))
        invoke("deploy", "--inventory", str(deployed_feature))


def warm_state(sandbox) -> dict:
    fast = Path(sandbox.controller_entry()["state_dir"]) / "fast" / "run" / "warm.json"
    return json.loads(fast.read_text())


def deploy(hosts: Path) -> subprocess.CompletedProcess[str]:
    result = invoke("deploy", "--inventory", str(hosts))
    assert result.returncode == 0, result.stderr
    return result


def describe(tree: Path, text: str) -> None:
    """Make ``text`` the extension's description (its class docstring)."""
    path = tree / CONTRIB
    descriptor = r'(class Cluster_manage\(extensions\.ExtensionDescriptor\):\n    )"""[^\n]*"""'
    new, count = re.subn(descriptor,
                         lambda m: m.group(1) + f'"""{text}"""', path.read_text())
    assert count == 1
    path.write_text(new)


def described(sandbox) -> str:
    reply = Client(sandbox.api_url.rstrip("/")).get("/extensions/os-cluster-manage",
                                                     with_project=False)
    return reply.json["extension"]["description"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_turning_fast_restart_off_leaves_the_service_definition_as_it_was(sandbox, tmp_path):
    before = sandbox.supervisor_conf.read_bytes()
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path,
                            {"sandbox": sandbox.controller_entry()})
    on = invoke("fast-restart", "on", "--inventory", str(hosts))
    assert on.returncode == 0, on.stderr
    assert sandbox.supervisor_conf.read_bytes() != before
    again = invoke("fast-restart", "on", "--inventory", str(hosts))   # twice: still one copy
    assert again.returncode == 0, again.stderr
    off = invoke("fast-restart", "off", "--inventory", str(hosts))
    assert off.returncode == 0, off.stderr
    assert sandbox.supervisor_conf.read_bytes() == before
    status = invoke("status", "--inventory", str(hosts))
    assert "restart   normal (fast restart off)" in status.stdout
    assert "service   RUNNING" in status.stdout


def test_fast_restart_takes_on_or_off_only(tmp_path):
    result = invoke("fast-restart", "sideways", "--inventory", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "error: fast-restart takes on or off, not 'sideways'" in result.stderr


def test_an_edit_to_the_extension_module_is_served_after_a_fast_restart(sandbox, fast_hosts,
                                                                          tree):
    parent = supervised_pid(sandbox)
    token = uuid.uuid4().hex[:8]
    describe(tree, f"Managed clusters, edit {token}.")
    result = deploy(fast_hosts)
    assert "fast restart: cinder-api pid" in result.stderr
    assert "full restart" not in result.stderr
    assert described(sandbox) == f"Managed clusters, edit {token}."
    # the service manager still runs the same warm parent; its child is new
    assert supervised_pid(sandbox) == parent
    assert warm_state(sandbox)["pid"] == parent


def test_an_edit_under_cinder_db_is_served_after_a_fast_restart(sandbox, fast_hosts, tree):
    client = Client(sandbox.api_url.rstrip("/"))
    before = client.get("/os-cluster-manage?sort_key=bogus")
    assert before.status == 400
    token = uuid.uuid4().hex[:8]
    edit(tree / DB_API, SORT_MESSAGE, SORT_MESSAGE[:-1] + f' (edit {token})"')
    result = deploy(fast_hosts)
    assert "fast restart: cinder-api pid" in result.stderr
    after = client.get("/os-cluster-manage?sort_key=bogus")
    assert after.status == 400
    assert f"(edit {token})" in after.error_message()
    assert f"(edit {token})" not in before.error_message()


def test_the_warm_parent_holds_no_cinder_module_and_its_child_is_supervised(sandbox, fast_hosts):
    state = warm_state(sandbox)
    parent, child = state["pid"], state["child"]
    assert state["warm"]["imported"] > 100
    # the files of the parent's modules: libraries only
    modules = json.loads((Path(sandbox.controller_entry()["state_dir"]) / "fast" / "run" /
                          "modules.json").read_text())
    assert [path for path in modules if "/site-packages/oslo_config/" in path]
    assert not [path for path in modules if "/site-packages/cinder/" in path]
    assert f"PPid:\t{parent}\n" in Path(f"/proc/{child}/status").read_text()
    status = subprocess.run(["supervisorctl", "-c", str(sandbox.supervisor_conf), "status",
                             "cinder-api"], capture_output=True, text=True).stdout
    assert "RUNNING" in status and f"pid {parent}," in status


def test_a_changed_library_falls_back_to_a_full_restart(sandbox, fast_hosts, tree):
    parent = supervised_pid(sandbox)
    modules = json.loads((Path(sandbox.controller_entry()["state_dir"]) / "fast" / "run" /
                          "modules.json").read_text())
    library = next(Path(path) for path in sorted(modules)
                   if "/site-packages/routes/" in path and path.endswith(".py"))
    # a new file in its place (never write through: the venv may share inodes)
    content = library.read_bytes()
    replacement = library.with_name(library.name + ".devloop-tmp")
    replacement.write_bytes(content + b"\n# changed outside cinder/\n")
    os.replace(replacement, library)
    try:
        describe(tree, "Managed clusters again.")
        result = deploy(fast_hosts)
    finally:
        replacement.write_bytes(content)
        os.replace(replacement, library)
    assert "full restart instead of a fast one" in result.stderr
    assert f"{library}, loaded by the warm parent, changed on disk" in result.stderr
    new_parent = supervised_pid(sandbox)
    assert new_parent != parent
    assert warm_state(sandbox)["pid"] == new_parent   # a new warm parent: fast mode kept
    assert described(sandbox) == "Managed clusters again."


def test_a_changed_config_file_falls_back_to_a_full_restart(sandbox, fast_hosts, tree):
    conf = sandbox.cinder_conf
    content = conf.read_bytes()
    parent = supervised_pid(sandbox)
    conf.write_bytes(content + b"# a comment: the file changed\n")
    try:
        describe(tree, "Managed clusters, config changed.")
        result = deploy(fast_hosts)
    finally:
        conf.write_bytes(content)
    assert "full restart instead of a fast one: " \
        f"{conf} changed since the warm parent started" in result.stderr
    assert supervised_pid(sandbox) != parent
    assert described(sandbox) == "Managed clusters, config changed."
    # (the restored file changes it again: the next deploy restarts in full once more)


def kill_warm_parent(sandbox) -> int:
    """SIGKILL the warm parent; supervisord starts a new one, which takes seconds to warm."""
    parent = warm_state(sandbox)["pid"]
    os.kill(parent, signal.SIGKILL)
    return parent


def test_a_killed_warm_parent_is_reported_by_status(sandbox, fast_hosts):
    kill_warm_parent(sandbox)
    status = invoke("status", "--inventory", str(fast_hosts))
    assert "restart   fast, warm parent NOT ready:" in status.stdout, status.stdout
    state = wait_until(lambda: (lambda s: s if s["state"] == "ready" else None)(
        warm_state(sandbox)), timeout=60)
    status = invoke("status", "--inventory", str(fast_hosts))
    assert f"restart   fast: warm parent pid {state['pid']}" in status.stdout, status.stdout


def test_a_dead_warm_parent_falls_back_to_a_full_restart_that_heals_it(sandbox, fast_hosts,
                                                                       tree):
    describe(tree, "Managed clusters healed.")
    parent = kill_warm_parent(sandbox)
    result = deploy(fast_hosts)
    assert "full restart instead of a fast one: the warm parent" in result.stderr
    state = warm_state(sandbox)
    assert state["pid"] != parent and state["state"] == "ready"
    assert described(sandbox) == "Managed clusters healed."
    again = deploy(fast_hosts)
    assert "fast restart: cinder-api pid" in again.stderr


def test_debug_works_in_fast_mode_and_puts_the_warm_parent_back(sandbox, fast_hosts, tree):
    from tests.integration.test_debug import SHOW, in_background, request, spawn_debug, text_of

    parent = warm_state(sandbox)["pid"]
    child = spawn_debug(fast_hosts, "--break", SHOW)
    child.expect("answers at")
    status, created = request(sandbox, "POST", "os-cluster-manage", {"cluster": {"name": "f"}})
    assert status == 200, created
    thread, _ = in_background(request, sandbox, "GET",
                              f"os-cluster-manage/{created['cluster']['id']}")
    child.expect(r"\(Pdb\) ")
    assert "cluster_manage.py" in text_of(child)
    child.sendline("c")
    thread.join(30)
    child.sendcontrol("c")
    child.expect(pexpect_eof(), timeout=90)
    child.close()
    assert "cinder-api back in service" in text_of(child)
    # the service is back in fast mode: a new warm parent, and a deploy restarts fast
    state = wait_until(lambda: (lambda s: s if s["state"] == "ready" and s["pid"] != parent
                                else None)(warm_state(sandbox)), timeout=60)
    assert supervised_pid(sandbox) == state["pid"]
    describe(tree, "Managed clusters after debugging.")
    result = deploy(fast_hosts)
    assert "fast restart: cinder-api pid" in result.stderr
    assert described(sandbox) == "Managed clusters after debugging."


def test_an_ide_session_in_fast_mode_puts_the_warm_parent_back(sandbox, fast_hosts):
    from tests.dap_client import DapClient
    from tests.integration.test_debug import spawn_debug, text_of
    from tests.support import free_port

    parent = warm_state(sandbox)["pid"]
    port = free_port()
    child = spawn_debug(fast_hosts, "--attach", "--port", str(port))
    child.expect("in the API worker; attach the IDE", timeout=240)
    with DapClient(port) as dap:
        dap.request("initialize", clientID="vscode", adapterID="debugpy")
        attached = dap.send("attach", justMyCode=False)
        dap.wait_event("initialized")
        dap.request("configurationDone")
        dap.response(attached)
        dap.request("disconnect")
    child.sendcontrol("c")
    child.expect(pexpect_eof(), timeout=120)
    child.close()
    assert "debugpy removed (" in text_of(child)
    state = wait_until(lambda: (lambda s: s if s["state"] == "ready" and s["pid"] != parent
                                else None)(warm_state(sandbox)), timeout=60)
    assert supervised_pid(sandbox) == state["pid"]


def pexpect_eof():
    import pexpect

    return pexpect.EOF
