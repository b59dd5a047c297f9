"""Specs for invoke debug's pure parts: --break parsing, the leftover-process
matcher, where a breakpoint lands, the guard's command line."""
from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from deploy.base.errors import UsageError
from deploy.base.inventory import Controller
from deploy.controller.services.supervisord import Supervisord
from deploy.controller.services.systemd import Systemd
from deploy.workflows.debug import (
    BreakLocation,
    Breakpoint,
    guard_argv,
    last_output,
    parse_break_location,
    service_argvs,
)

REMOTE = Path(__file__).resolve().parents[2] / "deploy" / "remote"


def load_remote(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"remote_{name}", REMOTE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


processes = load_remote("debug_processes")
breaks = load_remote("debug_breaks")
hook = load_remote("debug_hook")

SHOW = "cinder.api.contrib.cluster_manage.ClusterManageController.show"


# --- --break LOCATION ------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("api/contrib/cluster_manage.py:127",
     BreakLocation("api/contrib/cluster_manage.py:127", path="api/contrib/cluster_manage.py",
                   line=127)),
    ("cinder/api/contrib/cluster_manage.py:5",
     BreakLocation("cinder/api/contrib/cluster_manage.py:5",
                   path="api/contrib/cluster_manage.py", line=5)),
    ("cinder_patch/cinder/api/contrib/cluster_manage.py:5",
     BreakLocation("cinder_patch/cinder/api/contrib/cluster_manage.py:5",
                   path="api/contrib/cluster_manage.py", line=5)),
    ("cinder_patch/releases/train/cinder/cluster_manage/compat.py:40",   # a release tree
     BreakLocation("cinder_patch/releases/train/cinder/cluster_manage/compat.py:40",
                   path="cluster_manage/compat.py", line=40)),
    ("cinder_patch/releases/29/cinder/db/migrations/versions/48d74fa840ed_add_managed_"
     "clusters.py:31",
     BreakLocation("cinder_patch/releases/29/cinder/db/migrations/versions/48d74fa840ed_add_"
                   "managed_clusters.py:31",
                   path="db/migrations/versions/48d74fa840ed_add_managed_clusters.py",
                   line=31)),
    ("./cinder/db/sqlalchemy/api.py:7",
     BreakLocation("./cinder/db/sqlalchemy/api.py:7", path="db/sqlalchemy/api.py", line=7)),
    ("/opt/venv/lib/python3.11/site-packages/cinder/api/v3/router.py:40",
     BreakLocation("/opt/venv/lib/python3.11/site-packages/cinder/api/v3/router.py:40",
                   path="/opt/venv/lib/python3.11/site-packages/cinder/api/v3/router.py",
                   line=40)),
    (SHOW, BreakLocation(SHOW, name=SHOW)),
])
def test_break_location_is_a_file_and_line_or_a_dotted_name(text, expected):
    assert parse_break_location(text) == expected


@pytest.mark.parametrize("text, message", [
    ("api/contrib/cluster_manage.py", "a file needs a line number"),
    ("api/contrib/cluster_manage.py:", "expected FILE:LINE"),
    ("api/contrib/cluster_manage.py:abc", "expected FILE:LINE"),
    ("api/contrib/cluster_manage.py:0", "expected FILE:LINE"),
    ("api/contrib/cluster_manage.txt:3", "is not a .py file"),
    ("show", "expected FILE:LINE or a dotted function name"),
    ("cinder..api", "expected FILE:LINE or a dotted function name"),
])
def test_malformed_break_location_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message) as caught:
        parse_break_location(text)
    assert caught.value.exit_code == 2


def test_break_location_travels_as_json_to_the_controller():
    assert parse_break_location("api/x.py:3").as_json() == {
        "text": "api/x.py:3", "path": "api/x.py", "line": 3}
    assert parse_break_location(SHOW).as_json() == {"text": SHOW, "name": SHOW}


# --- leftover cinder-api processes -------------------------------------------------

API = "/usr/bin/cinder-api"


@pytest.mark.parametrize("argv", [
    ["/usr/bin/python3", API, "--config-file", "/etc/cinder/cinder.conf"],
    ["/usr/bin/python3.9", "-s", API],            # a shebang with an option
    ["python3", "-W", "ignore", "-u", API],
    [API, "--config-file", "/etc/cinder/cinder.conf"],
])
def test_cinder_api_entry_point_run_by_python_or_directly_is_a_leftover(argv):
    assert processes.is_cinder_api(argv, API)


@pytest.mark.parametrize("argv", [
    ["grep", "cinder-api"],
    ["/usr/bin/python3", "-c", "import time; time.sleep(60)", API],
    ["/usr/bin/python3", "-Ec", "pass", API],
    ["/usr/bin/python3", "-m", "pdb", API],
    ["/usr/bin/python3", "/usr/bin/cinder-api-wsgi"],
    ["/usr/bin/python3", "/opt/other/bin/cinder-api"],
    ["/bin/sh", "-c", "exec /usr/bin/cinder-api"],
    ["tail", "-F", "/var/log/cinder/cinder-api.log"],
    ["/usr/bin/python3", "--version", API],
    [],
])
def test_command_line_that_only_mentions_cinder_api_is_not_a_leftover(argv):
    assert not processes.is_cinder_api(argv, API)


def test_leftover_scan_skips_processes_of_other_users():
    me = processes.find(sys.argv[0], -12345)  # no process runs as that uid
    assert me == []


# --- where a breakpoint lands --------------------------------------------------------

SOURCE = '''\
"""Module docstring."""
import functools


def deco(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


class Controller(object):
    """A controller."""

    @deco
    def show(self, req, id):
        """Return one thing."""
        context = req['context']

        value = (context,
                 id)
        if value:
            return value
        else:
            return None
'''


@pytest.fixture
def module_file(tmp_path) -> Path:
    path = tmp_path / "devloop_unit_sample.py"
    path.write_text(SOURCE)
    return path


@pytest.mark.parametrize("line, expected", [
    (18, (18, "Controller.show")),     # a statement: stop right before it
    (15, (18, "Controller.show")),     # the decorator: the function, after its docstring
    (16, (18, "Controller.show")),     # the def line: the same
    (20, (20, "Controller.show")),
    (2, (2, "")),
])
def test_line_resolves_to_the_statement_to_stop_before(module_file, line, expected):
    assert breaks.resolve_line(str(module_file), line) == expected


@pytest.mark.parametrize("line, message", [
    (19, "holds no statement"),
    (24, "holds no statement"),                           # else:
    (21, "inside the statement that starts at line 20"),
    (99, "has 25 lines; there is no line 99"),
])
def test_line_without_a_statement_is_refused_with_the_nearest_code(module_file, line,
                                                                   message):
    with pytest.raises(breaks.Unresolved, match=message):
        breaks.resolve_line(str(module_file), line)


def test_dotted_name_is_followed_through_decorators_to_the_real_function(module_file,
                                                                        monkeypatch):
    monkeypatch.syspath_prepend(str(module_file.parent))
    path, first = breaks.resolve_name("devloop_unit_sample.Controller.show")
    assert (Path(path), first) == (module_file, 15)
    assert breaks.resolve_line(path, first) == (18, "Controller.show")
    assert breaks.module_for(str(module_file)) == "devloop_unit_sample"


@pytest.mark.parametrize("name, message", [
    ("devloop_unit_sample.Controller.nothing", "has no attribute 'nothing'"),
    ("devloop_unit_sample.Controller", "is a class"),
    ("devloop_unit_nonexistent_module.func", "no module named"),
])
def test_dotted_name_that_names_no_function_is_refused(module_file, monkeypatch, name,
                                                       message):
    monkeypatch.syspath_prepend(str(module_file.parent))
    with pytest.raises(breaks.Unresolved, match=message):
        breaks.resolve_name(name)


def test_the_hook_stops_before_the_statement_and_keeps_the_docstring(module_file):
    tree = ast.parse(SOURCE)
    assert hook._insert_stop(tree, 18, 0)
    calls = []
    stub = types.ModuleType("devloop_debug")
    stub.stop = lambda index: calls.append((index, sys._getframe(1).f_lineno,
                                            dict(sys._getframe(1).f_locals)))
    sys.modules["devloop_debug"] = stub
    try:
        namespace: dict[str, object] = {}
        exec(compile(tree, str(module_file), "exec"), namespace)
        controller = namespace["Controller"]()
        assert controller.show({"context": "ctx"}, 7) == ("ctx", 7)
    finally:
        del sys.modules["devloop_debug"]
    (index, line, local_vars), = calls
    assert (index, line) == (0, 18)
    assert "context" not in local_vars           # before line 18 ran
    assert namespace["Controller"].show.__doc__ == "Return one thing."


def test_the_hook_refuses_a_line_without_a_statement():
    assert not hook._insert_stop(ast.parse(SOURCE), 19, 0)


# --- the guard's command line -----------------------------------------------------------

def controller(**overrides) -> Controller:
    values = dict(name="ctl1", address="192.0.2.10", python="/usr/bin/python3",
                  cinder_api="/usr/bin/cinder-api",
                  config_files=("/usr/share/cinder/cinder-dist.conf", "/etc/cinder/cinder.conf"),
                  log_file="/var/log/cinder/api.log", service_user="cinder",
                  api_url="http://127.0.0.1:8776/", state_dir="/var/lib/cinder-devloop")
    values.update(overrides)
    return Controller(**values)


def test_guard_runs_cinder_api_with_the_inventory_configs_log_and_user():
    bp = Breakpoint("cinder.api.contrib.cluster_manage", "/x/cluster_manage.py", 127,
                    "cinder/api/contrib/cluster_manage.py:127 (ClusterManageController.show)")
    argv = guard_argv(controller(), [bp], ["systemctl", "start", "u"], ["systemctl", "status"])
    assert argv[:2] == ["/usr/bin/python3", "-c"]
    assert "def _run_session" in argv[2]
    session = json.loads(argv[3])
    assert [session["python"], session["cinder_api"], *session["args"]] == [
        "/usr/bin/python3", "/usr/bin/cinder-api",
        "--config-file", "/usr/share/cinder/cinder-dist.conf",
        "--config-file", "/etc/cinder/cinder.conf",
        "--log-file", "/var/log/cinder/api.log"]
    assert session["user"] == "cinder"
    assert session["breaks"] == [{"module": "cinder.api.contrib.cluster_manage",
                                  "file": "/x/cluster_manage.py", "line": 127,
                                  "label": bp.label}]
    assert "def stop(index)" in session["hook"]
    assert session["start"] == ["systemctl", "start", "u"]
    assert session["log"] == "/var/lib/cinder-devloop/debug/guard.log"


@pytest.mark.parametrize("manager, start, status", [
    (Supervisord("/etc/supervisord.conf", "cinder-api"),
     ["supervisorctl", "-c", "/etc/supervisord.conf", "start", "cinder-api"],
     ["supervisorctl", "-c", "/etc/supervisord.conf", "status", "cinder-api"]),
    (Systemd("openstack-cinder-api.service"),
     ["systemctl", "start", "--", "openstack-cinder-api.service"],
     ["systemctl", "--no-pager", "status", "--", "openstack-cinder-api.service"]),
])
def test_guard_restores_the_service_with_its_managers_own_commands(manager, start, status):
    assert service_argvs(manager) == (start, status)


def test_last_output_is_what_cinder_api_printed_before_it_exited():
    text = ("--> ctl1: cinder-api in the foreground as cinder, pid 1: ...\r\n"
            "Traceback (most recent call last):\r\n"
            "oslo_config.cfg.ConfigFilesNotFoundError: Failed to find some config files: "
            "/nonexistent.conf\r\n"
            "--> ctl1: cinder-api exited with status 1; its processes: ended\r\n"
            "--> ctl1: starting the service again\r\n"
            "    cinder-api: started\r\n")
    assert last_output(text) == (
        "Traceback (most recent call last):\n"
        "oslo_config.cfg.ConfigFilesNotFoundError: Failed to find some config files: "
        "/nonexistent.conf")
