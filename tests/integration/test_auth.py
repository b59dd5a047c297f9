"""OpenStack authentication against the rdo controller's real Keystone.

``invoke smoke`` finds the controller's cloud in clouds.yaml where
OpenStack clients look (or takes OS_CLOUD / OS_* variables), gets a token
from Keystone and the Block Storage endpoint from the catalog; each way
this can go wrong is one line and exit 1, never a traceback.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import invoke, write_inventory

pytestmark = pytest.mark.integration


@pytest.fixture
def clouds(rdo_controller) -> dict:
    return yaml.safe_load(rdo_controller.layout.clouds_file.read_text())


def smoke(tmp_path: Path, entry: dict, env: dict[str, str]):
    (tmp_path / "cinder").mkdir(exist_ok=True)
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path / "cinder", {"rdo": entry})
    return invoke("smoke", "--inventory", str(hosts), env=env, cwd=tmp_path)


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_the_written_inventory_holds_only_what_a_real_rdo_controller_needs(rdo_controller):
    written = yaml.safe_load(rdo_controller.layout.hosts_file.read_text())
    (entry,) = written["controllers"].values()
    assert sorted(entry) == ["address", "cloud", "identity_file", "known_hosts"]
    assert set(yaml.safe_load(rdo_controller.layout.clouds_file.read_text())["clouds"]) == \
        {"rdo-admin", "rdo-member"}


def test_a_cloud_missing_from_every_clouds_yaml_is_one_line(tmp_path, rdo_controller):
    entry = {**rdo_controller.entry(), "cloud": "no-such-cloud"}
    line = one_error_line(smoke(tmp_path, entry, {
        "OS_CLIENT_CONFIG_FILE": str(rdo_controller.layout.clouds_file)}))
    assert line.startswith("error: cloud 'no-such-cloud' is not in "
                           f"{rdo_controller.layout.clouds_file} (clouds there: rdo-admin, "
                           "rdo-member)")


def test_no_clouds_yaml_anywhere_names_the_places_looked(tmp_path, rdo_controller):
    missing = tmp_path / "nowhere.yaml"
    line = one_error_line(smoke(tmp_path, rdo_controller.entry(),
                                {"OS_CLIENT_CONFIG_FILE": str(missing), "HOME": str(tmp_path)}))
    assert line.startswith(f"error: cloud 'rdo-admin': no clouds.yaml found (looked for "
                           f"{missing}, {tmp_path}/clouds.yaml")


def test_a_wrong_password_is_keystones_401_in_one_line(tmp_path, rdo_controller, clouds):
    clouds["clouds"]["rdo-admin"]["auth"]["password"] = "wrong"
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds))   # ./clouds.yaml is read
    line = one_error_line(smoke(tmp_path, rdo_controller.entry(),
                                {"OS_CLIENT_CONFIG_FILE": ""}))
    assert line == (f"error: cloud rdo-admin: Keystone at {rdo_controller.layout.auth_url} "
                    "refused user 'admin' (401: wrong user name, password or project)")


def test_a_catalog_without_block_storage_in_the_region_is_one_line(tmp_path, rdo_controller,
                                                                   clouds):
    clouds["clouds"]["rdo-admin"]["region_name"] = "Elsewhere"
    path = tmp_path / "clouds-elsewhere.yaml"
    path.write_text(yaml.safe_dump(clouds))
    line = one_error_line(smoke(tmp_path, rdo_controller.entry(),
                                {"OS_CLIENT_CONFIG_FILE": str(path)}))
    assert line == ("error: cloud rdo-admin: no Block Storage endpoint "
                    "(block-storage/volumev3, interface public in region Elsewhere) "
                    f"in the catalog of {rdo_controller.layout.auth_url}")


def test_os_variables_alone_authenticate_without_clouds_yaml(tmp_path, rdo_controller, clouds,
                                                             feature_controller_rdo):
    auth = clouds["clouds"]["rdo-member"]["auth"]
    entry = {k: v for k, v in rdo_controller.entry().items() if k != "cloud"}
    env = {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "none.yaml"), "OS_AUTH_URL": auth["auth_url"],
           "OS_USERNAME": "admin", "OS_PASSWORD": clouds["clouds"]["rdo-admin"]["auth"]["password"],
           "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default",
           "OS_PROJECT_DOMAIN_NAME": "Default"}
    result = smoke(tmp_path, entry, env)
    assert result.returncode == 0, result.stderr
    assert "via Keystone (OS_AUTH_URL)" in result.stderr
    assert "smoke PASSED: 10/10" in result.stdout
