"""Unit specs of invoke debug --attach's pure parts: launch.json, pip's argv, wheel fit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.base.errors import DebugError
from deploy.base.inventory import Inventory
from deploy.controller.debugpy_wheels import _fits, debugpy_version, download_argv
from deploy.workflows.attach import launch_entry, mappings_for, merge_launch_json


def test_the_attach_entry_is_what_vscode_needs_to_reach_site_packages():
    entry = launch_entry("ctl1", 5678, [("/home/dev/cinder/cinder",
                                          "/usr/lib/python3/dist-packages/cinder")])
    assert entry["request"] == "attach" and entry["type"] == "debugpy"
    assert entry["connect"] == {"host": "127.0.0.1", "port": 5678}
    assert entry["justMyCode"] is False
    assert entry["pathMappings"] == [{"localRoot": "/home/dev/cinder/cinder",
                                      "remoteRoot": "/usr/lib/python3/dist-packages/cinder"}]


def test_a_layered_tree_maps_each_file_from_the_layer_the_controller_runs_it_from(tmp_path):
    common, release = tmp_path / "cinder_patch" / "cinder", tmp_path / "release" / "cinder"
    for rel in ("api/x.py", "x/compat.py", "x/__pycache__/compat.cpython-311.pyc"):
        (common / rel).parent.mkdir(parents=True, exist_ok=True)
        (common / rel).write_text("common\n")
    (release / "x").mkdir(parents=True)
    (release / "x" / "compat.py").write_text("release\n")
    (release / "x" / "migration.py").write_text("release\n")
    chosen = Inventory(tmp_path / "hosts.yaml", tmp_path / "composed" / "cinder",
                       ("__pycache__/",), layers=(common, release))
    # debugpy tries every directory mapping before any file mapping: file by file
    assert mappings_for(chosen, "/usr/lib/python3/dist-packages/cinder/") == [
        (str(common / "api/x.py"), "/usr/lib/python3/dist-packages/cinder/api/x.py"),
        (str(release / "x/compat.py"), "/usr/lib/python3/dist-packages/cinder/x/compat.py"),
        (str(release / "x/migration.py"),
         "/usr/lib/python3/dist-packages/cinder/x/migration.py")]


def test_a_plain_tree_maps_its_root_onto_the_package(tmp_path):
    chosen = Inventory(tmp_path / "hosts.yaml", tmp_path / "cinder", ())
    assert mappings_for(chosen, "/opt/cinder") == [(str(tmp_path / "cinder"), "/opt/cinder")]


def test_writing_the_launch_json_keeps_other_configurations_and_replaces_its_own(tmp_path):
    path = tmp_path / ".vscode" / "launch.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": "0.2.0", "configurations": [
        {"name": "mine", "request": "launch"},
        launch_entry("ctl1", 1, [("/old", "/old")])]}))
    merge_launch_json(path, [launch_entry("ctl1", 5678, [("/src", "/dst")])])
    configurations = json.loads(path.read_text())["configurations"]
    assert [c["name"] for c in configurations] == ["mine", "cinder-api on ctl1 (devloop)"]
    assert configurations[1]["connect"]["port"] == 5678


def test_a_launch_json_with_comments_is_refused_with_the_print_config_hint(tmp_path):
    path = tmp_path / "launch.json"
    path.write_text('{\n // mine\n "configurations": []}')
    with pytest.raises(DebugError, match="--print-config"):
        merge_launch_json(path, [launch_entry("ctl1", 5678, [("/src", "/dst")])])
    assert "// mine" in path.read_text()


@pytest.mark.parametrize("python, version", [((2, 7), "1.5.1"), ((3, 6), "1.8.17"),
                                             ((3, 11), "1.8.17")])
def test_python_2_7_gets_debugpy_1_5_1_the_last_release_for_it(python, version):
    assert debugpy_version(python) == version


def test_pip_fetches_only_wheels_for_the_controllers_python_and_machine():
    argv = download_argv((2, 7), "x86_64", Path("/cache"))
    assert argv[1:4] == ["-m", "pip", "download"]
    assert "debugpy==1.5.1" in argv and "--only-binary=:all:" in argv and "--no-deps" in argv
    assert argv[argv.index("--python-version") + 1] == "2.7"
    assert "manylinux2014_x86_64" in argv and "any" in argv
    assert argv[-2:] == ["-d", "/cache"]


@pytest.mark.parametrize("name, python, machine, fits", [
    ("debugpy-1.5.1-py2.py3-none-any.whl", (2, 7), "x86_64", True),
    ("debugpy-1.8.17-py2.py3-none-any.whl", (3, 11), "aarch64", True),
    ("debugpy-1.8.17-cp311-cp311-manylinux_2_34_x86_64.whl", (3, 11), "x86_64", True),
    ("debugpy-1.8.17-cp311-cp311-manylinux_2_34_x86_64.whl", (3, 11), "aarch64", False),
    ("debugpy-1.8.17-cp312-cp312-manylinux_2_34_x86_64.whl", (3, 11), "x86_64", False),
])
def test_a_cached_wheel_is_used_only_when_it_fits_the_controller(name, python, machine, fits):
    assert _fits(Path(name), python, machine) is fits


@pytest.mark.parametrize("flags, message", [
    (["--attach", "--break", "api/contrib/cluster_manage.py:12"],
     "error: --break is for pdb in this terminal; with --attach, set the breakpoints in the IDE"),
    (["--launch-json", "x.json"], "error: --launch-json goes with --attach"),
    (["--attach", "--port", "70000"],
     "error: --port 70000: expected a port number from 1 to 65535"),
])
def test_attach_flags_that_do_not_fit_are_one_error_line_before_any_connection(flags, message):
    from tests.support import PROJECT_ROOT, invoke

    result = invoke("debug", "--inventory", str(PROJECT_ROOT / "tests/fixtures/hosts/valid.yaml"),
                    "--host", "ctl1", *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [message]
