"""hosts.yaml: RDO defaults, and every problem reported at once with its place."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.base.errors import InventoryError
from deploy.base.inventory import DEFAULT_EXCLUDES, RDO_CONFIG_FILES, load_inventory

HOSTS = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"


@pytest.fixture(autouse=True)
def _in_fixture_dir(monkeypatch):
    monkeypatch.chdir(HOSTS)


def problems_of(name: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(name)
    assert caught.value.exit_code == 2
    return caught.value.lines()


def test_a_real_controller_needs_only_its_address_the_rest_is_rdo():
    ctl = load_inventory("valid.yaml").get("ctl1")
    assert (ctl.address, ctl.port, ctl.user) == ("controller.example.com", 22, "root")
    assert ctl.service_manager == "systemd"
    assert ctl.service == "openstack-cinder-api.service"
    assert ctl.config_files == RDO_CONFIG_FILES
    assert ctl.log_file == "/var/log/cinder/api.log"
    assert ctl.service_user == "cinder"
    assert ctl.cinder_dir is None  # detected on the controller


def test_source_is_resolved_against_the_inventory_and_excludes_default():
    inv = load_inventory("valid.yaml")
    assert inv.source == HOSTS / "src" / "cinder"
    assert inv.excludes == DEFAULT_EXCLUDES
    assert {".vscode/", ".git/", "__pycache__/", "*.pyc"} <= set(inv.excludes)


def test_defaults_apply_to_every_controller_and_entries_override_them():
    inv = load_inventory("defaults.yaml")
    assert (inv.get("ctl1").user, inv.get("ctl1").port) == ("stack", 2222)
    assert (inv.get("ctl2").user, inv.get("ctl2").port) == ("stack", 22)


@pytest.mark.parametrize("name, expected", [
    ("bad_port.yaml",
     "bad_port.yaml: controllers.ctl1.port: expected an integer, got 'twenty-two'"),
    ("unknown_manager.yaml",
     "unknown_manager.yaml: controllers.ctl1.service_manager: "
     "expected one of systemd, supervisord, "
     "got 'upstart'"),
    ("unknown_key.yaml", "unknown_key.yaml: controllers.ctl1.adress_typo: unknown key"),
    ("missing_address.yaml", "missing_address.yaml: controllers.ctl1.address: missing"),
    ("missing_key_file.yaml",
     "missing_key_file.yaml: controllers.ctl1.identity_file: no such file"),
    ("bad_yaml.yaml", "bad_yaml.yaml: line 5, column 1: invalid YAML"),
    ("no_controllers.yaml", "no_controllers.yaml: controllers: missing or empty"),
    ("absent.yaml", "absent.yaml: no such file"),
])
def test_a_broken_inventory_names_the_place_of_the_problem(name, expected):
    lines = problems_of(name)
    assert len(lines) == 1
    assert lines[0].startswith(expected)


def test_every_problem_is_reported_at_once():
    lines = problems_of("many_problems.yaml")
    assert [line.split(": ")[1] for line in lines] == [
        "colour",
        "controllers.ctl1.port",
        "controllers.ctl1.config_files",
        "controllers.ctl2.address",
        "controllers.ctl2.supervisor_config",
    ]


def test_unknown_controller_name_lists_the_known_ones():
    inv = load_inventory("defaults.yaml")
    with pytest.raises(InventoryError) as caught:
        inv.select(["ctl1,ctl9"])
    assert caught.value.lines() == [
        "defaults.yaml: --host: unknown controller 'ctl9' (known: ctl1, ctl2)"]


@pytest.mark.parametrize("names, expected", [
    (None, ["ctl1", "ctl2"]),
    ([], ["ctl1", "ctl2"]),
    (["ctl2"], ["ctl2"]),
    (["ctl2,ctl1"], ["ctl2", "ctl1"]),
    (["ctl1", "ctl1"], ["ctl1"]),
])
def test_host_selection_accepts_repeats_and_comma_lists(names, expected):
    assert [c.name for c in load_inventory("defaults.yaml").select(names)] == expected


def test_paths_in_messages_are_shown_as_given(tmp_path):
    os.chdir(tmp_path)
    (tmp_path / "hosts.yaml").write_text("controllers: 3\n")
    lines = problems_of("hosts.yaml")
    assert lines[0].startswith("hosts.yaml: source: no such directory")
    assert "hosts.yaml: controllers: expected a mapping, got 3" in lines


def test_devbox_and_gateway_hosts_are_resolved_by_name(tmp_path):
    (tmp_path / "hosts.yaml").write_text(
        "source: /home/dev/cinder/cinder\n"
        "source_host: devbox\n"
        "hosts:\n"
        "  bastion: {address: 198.51.100.1}\n"
        "  devbox: {address: 198.51.100.2, user: dev, gateway: bastion}\n"
        "controllers:\n"
        "  ctl1: {address: 10.0.0.5, gateway: bastion}\n")
    inv = load_inventory(tmp_path / "hosts.yaml")
    assert inv.source_host.name == "devbox"
    assert inv.source_host.gateway.name == "bastion"
    assert inv.get("ctl1").gateway == inv.hosts["bastion"]
    assert str(inv.source) == "/home/dev/cinder/cinder"


def test_unknown_gateway_and_source_host_are_problems(tmp_path):
    os.chdir(tmp_path)
    (tmp_path / "hosts.yaml").write_text(
        "source: cinder\nsource_host: devbx\n"
        "hosts:\n  devbox: {address: h}\n"
        "controllers:\n  ctl1: {address: a, gateway: bastion}\n")
    assert problems_of("hosts.yaml") == [
        "hosts.yaml: source_host: no host 'devbx' under hosts: (known: devbox)",
        "hosts.yaml: source: no such directory: " + str(tmp_path / "cinder"),
        "hosts.yaml: controllers.ctl1.gateway: no host 'bastion' under hosts: (known: devbox)",
    ]


def test_the_repository_inventory_points_at_the_built_in_sandbox():
    import yaml

    from deploy.sandbox import SandboxLayout
    from tests.support import PROJECT_ROOT

    raw = yaml.safe_load((PROJECT_ROOT / "hosts.yaml").read_text())
    assert raw["source"] == "cinder_patch/cinder"
    assert raw["controllers"] == {"sandbox": SandboxLayout().controller_entry()}


def test_a_controller_named_twice_is_an_error_with_its_line_not_a_silent_override():
    lines = problems_of("duplicate_controller.yaml")
    assert lines == ["duplicate_controller.yaml: line 7, column 3: duplicate key 'c1' "
                     "(first at line 3); a key may appear only once in a mapping"]


def test_a_key_repeated_inside_a_controller_is_reported_too(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "hosts.yaml").write_text(
        "source: src\ncontrollers:\n  c1:\n    address: a\n    port: 22\n    port: 2222\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path / "hosts.yaml")
    assert caught.value.exit_code == 2
    assert "line 6, column 5: duplicate key 'port' (first at line 5)" in caught.value.lines()[0]


def test_the_cli_exits_2_naming_the_line_of_a_duplicate_controller():
    from tests.support import invoke

    result = invoke("status", "--inventory", str(HOSTS / "duplicate_controller.yaml"))
    assert result.returncode == 2
    assert "duplicate key 'c1'" in result.stderr and "line 7, column 3" in result.stderr
    assert "Traceback" not in result.stderr
