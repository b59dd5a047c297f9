"""A DevStack controller: its inventory defaults, where its python is read from, and the
guard that keeps a deploy off the checkout's own uncommitted work (Python 2.7, 3.6, ours)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from deploy.base.errors import InventoryError
from deploy.base.inventory import parse_inventory, with_layout
from deploy.controller.facts import _FROM_UNIT, with_cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY
from tests.unit.test_remote_helpers import last_json, run


def inventory(tmp_path: Path, entry: dict) -> object:
    (tmp_path / "cinder").mkdir(exist_ok=True)
    text = json.dumps({"source": "cinder", "controllers": {"ds": entry}})
    return parse_inventory(text, tmp_path / "hosts.yaml")


def test_layout_devstack_gives_the_uwsgi_unit_the_venv_and_the_stack_user(tmp_path):
    ctl = inventory(tmp_path, {"address": "192.0.2.7", "layout": "devstack"}).get("ds")
    assert ctl.layout == "devstack"
    assert ctl.service == "devstack@c-api.service"
    assert ctl.cinder_manage == "/opt/stack/data/venv/bin/cinder-manage"
    assert ctl.config_files == ("/etc/cinder/cinder.conf",)
    assert ctl.service_user == "stack"
    assert ctl.log_file == ""           # journald only
    assert ctl.python is None           # read from the unit on the controller


def test_an_entry_overrides_the_devstack_defaults(tmp_path):
    ctl = inventory(tmp_path, {"address": "192.0.2.7", "layout": "devstack",
                               "service": "devstack@c-api-2.service"}).get("ds")
    assert ctl.service == "devstack@c-api-2.service"


def test_an_entry_that_does_not_say_is_asked_of_the_controller(tmp_path):
    # what a DevStack user writes: address, key, known_hosts, cloud
    ctl = inventory(tmp_path, {"address": "192.0.2.7", "cloud": "devstack-admin"}).get("ds")
    assert ctl.needs_layout
    assert with_layout(ctl, "devstack") == dataclasses.replace(
        inventory(tmp_path, {"address": "192.0.2.7", "cloud": "devstack-admin",
                             "layout": "devstack"}).get("ds"),
        given=ctl.given)
    assert with_layout(ctl, "rdo").service == "openstack-cinder-api.service"


@pytest.mark.parametrize("entry", [
    {"service": "openstack-cinder-api.service"},      # the unit is named: nothing to ask
    {"service_manager": "supervisord", "supervisor_config": "/etc/supervisord.conf"},
    {"layout": "rdo"},
])
def test_an_entry_that_names_its_service_or_layout_is_not_asked(tmp_path, entry):
    ctl = inventory(tmp_path, {"address": "192.0.2.7", **entry}).get("ds")
    assert not ctl.needs_layout
    assert ctl.layout == "rdo"


def test_a_found_devstack_layout_keeps_what_the_entry_wrote(tmp_path):
    ctl = inventory(tmp_path, {"address": "192.0.2.7", "service_user": "devuser",
                               "cinder_manage": "/srv/venv/bin/cinder-manage"}).get("ds")
    found = with_layout(ctl, "devstack")
    assert (found.layout, found.service) == ("devstack", "devstack@c-api.service")
    assert (found.service_user, found.cinder_manage) == ("devuser", "/srv/venv/bin/cinder-manage")


def test_an_unknown_layout_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(InventoryError) as caught:
        inventory(tmp_path, {"address": "192.0.2.7", "layout": "kolla"})
    assert caught.value.lines()[-1].endswith("hosts.yaml: controllers.ds.layout: expected one of "
                                             "rdo, devstack, got 'kolla'")


def test_a_devstack_controllers_python_comes_from_its_unit_first(tmp_path):
    ctl = inventory(tmp_path, {"address": "192.0.2.7", "layout": "devstack"}).get("ds")
    argv = with_cinder_python(ctl, ("-E",), "SOURCE", ["a"])
    assert argv == ["sh", "-c", _FROM_UNIT, "devloop-locate", "devstack@c-api.service", "",
                    "-E", "SOURCE", "a"]


def test_without_a_unit_or_ini_the_inventorys_python_is_used_and_said(python, tmp_path):
    # no systemd here: the unit cannot be read, so the inventory's python it is
    proc = subprocess.run(["sh", "-c", _FROM_UNIT, "devloop-locate", "no-such.service", python,
                           " ".join(STDLIB_ONLY), script("locate"), str(tmp_path), str(tmp_path),
                           "[]"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = last_json(proc)
    assert found["python"] == python
    assert found["python_from"] == "the inventory (python)"


def test_no_python_anywhere_is_one_line_naming_the_places_looked(tmp_path):
    proc = subprocess.run(["sh", "-c", _FROM_UNIT, "devloop-locate", "no-such.service", "",
                           "", script("locate"), "", str(tmp_path), "[]"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip() == ("no python found in no-such.service's ExecStart (none) nor in "
                                   "its uWSGI ini (none)")


# --- the checkout guard ------------------------------------------------------------------

def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout of a project with a ``cinder`` package; returns the package."""
    repo = tmp_path / "stack" / "cinder"
    (repo / "cinder" / "api").mkdir(parents=True)
    (repo / "cinder" / "api" / "a.py").write_text("a = 1\n")
    (repo / "cinder" / "api" / "b.py").write_text("b = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "upstream")
    return repo / "cinder"


def guard(python: str, target: Path, state: Path, *rels: str) -> dict:
    return last_json(run(python, "checkout_guard", python, str(target), str(state),
                         json.dumps(rels)))


def test_uncommitted_work_in_a_file_to_replace_is_named(python, checkout, tmp_path):
    (checkout / "api" / "a.py").write_text("a = 2  # the controller's own work\n")
    found = guard(python, checkout, tmp_path / "state", "api/a.py", "api/b.py")
    assert found == {"checkout": str(checkout.parent), "uncommitted": ["api/a.py"]}


def test_a_change_a_deploy_made_is_not_the_checkouts_own_work(python, checkout, tmp_path):
    state = tmp_path / "state"
    deploy = state / "deploys" / "20260101T000000Z-a"
    (deploy / "backup" / "api").mkdir(parents=True)
    (deploy / "backup" / "api" / "a.py").write_text("a = 1\n")      # what HEAD holds
    (deploy / "record.json").write_text(json.dumps({
        "state": "applied", "target": str(checkout), "backup": str(deploy / "backup"),
        "replaced": ["api/a.py"], "added": ["api/new.py"]}))
    (checkout / "api" / "a.py").write_text("a = 3  # deployed\n")
    (checkout / "api" / "new.py").write_text("# deployed\n")
    found = guard(python, checkout, state, "api/a.py", "api/new.py")
    assert found["uncommitted"] == []


def test_work_the_controller_had_before_a_forced_deploy_still_counts(python, checkout, tmp_path):
    state = tmp_path / "state"
    deploy = state / "deploys" / "20260101T000000Z-a"
    (deploy / "backup" / "api").mkdir(parents=True)
    (deploy / "backup" / "api" / "a.py").write_text("a = 2  # the controller's own work\n")
    (deploy / "record.json").write_text(json.dumps({
        "state": "applied", "target": str(checkout), "backup": str(deploy / "backup"),
        "replaced": ["api/a.py"], "added": []}))
    (checkout / "api" / "a.py").write_text("a = 3  # deployed with --force\n")
    assert guard(python, checkout, state, "api/a.py")["uncommitted"] == ["api/a.py"]


def test_a_target_outside_any_git_checkout_has_nothing_to_guard(python, tmp_path):
    package = tmp_path / "site-packages" / "cinder"
    package.mkdir(parents=True)
    (package / "a.py").write_text("a = 1\n")
    env_home = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    proc = run(python, "checkout_guard", python, str(package), str(tmp_path / "state"),
               json.dumps(["a.py"]), env={**os.environ, **env_home})
    assert last_json(proc) == {"checkout": None, "uncommitted": []}
