"""deploy.openstack.auth without a network: where clouds.yaml is looked for, OS_*, noauth."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy.base.errors import AuthError
from deploy.base.inventory import Controller
from deploy.openstack.auth import api_access, clouds_yaml_candidates, load_cloud


def test_clouds_yaml_is_looked_for_where_openstack_clients_look(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"OS_CLIENT_CONFIG_FILE": "/srv/clouds.yaml"}
    assert clouds_yaml_candidates(env) == [
        Path("/srv/clouds.yaml"), tmp_path / "clouds.yaml",
        Path("~/.config/openstack/clouds.yaml").expanduser(), Path("/etc/openstack/clouds.yaml")]


def test_the_first_clouds_yaml_that_names_the_cloud_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clouds.yaml").write_text("clouds:\n  a: {auth: {username: local}}\n")
    named = tmp_path / "named.yaml"
    named.write_text("clouds:\n  b: {auth: {username: named}}\n")
    env = {"OS_CLIENT_CONFIG_FILE": str(named)}
    assert load_cloud("a", env)["auth"]["username"] == "local"
    assert load_cloud("b", env)["auth"]["username"] == "named"


def test_an_unknown_cloud_lists_the_files_read_and_their_clouds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clouds.yaml").write_text("clouds:\n  a: {}\n  b: {}\n")
    with pytest.raises(AuthError) as err:
        load_cloud("c", {})
    assert str(err.value) == f"cloud 'c' is not in {tmp_path}/clouds.yaml (clouds there: a, b)"


def test_a_broken_clouds_yaml_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clouds.yaml").write_text("clouds: [\n")
    with pytest.raises(AuthError, match=r"^cannot read .*clouds.yaml: "):
        load_cloud("a", {})


def test_without_a_cloud_or_os_variables_the_api_is_called_noauth(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctl = Controller(name="c", address="h", api_url="http://127.0.0.1:18776/")
    access = api_access(ctl, "abc123", env={})
    assert (access.base_url, access.project_id, access.token, access.cloud) == (
        "http://127.0.0.1:18776", "abc123", "admin:abc123", None)
    assert "admin:abc123" not in repr(access)


def test_the_controllers_cloud_comes_before_os_cloud(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctl = Controller(name="c", address="h", cloud="mine")
    with pytest.raises(AuthError, match="^cloud 'mine': no clouds.yaml found"):
        api_access(ctl, env={"OS_CLOUD": "theirs", "HOME": str(tmp_path),
                             "OS_CLIENT_CONFIG_FILE": str(tmp_path / "none.yaml")})
