"""OpenStack credentials the way users keep them, against the sandboxes' real Keystone.

``invoke smoke`` reads clouds.yaml as OpenStack's clients read it
(openstacksdk's loader): the password split into secure.yaml, an
application credential, a token, a vendor profile from clouds-public.yaml,
``OS_CLOUD`` alone or with ``OS_CLIENT_CONFIG_FILE`` and
``OS_CLIENT_SECURE_FILE``, and the ``OS_*`` variables alone. The main
forms pass on the rdo and devstack controllers. Each way it can go wrong
is one line naming the cloud and its file, with exit 1: never a traceback,
never a secret.
"""
from __future__ import annotations

import datetime
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.support import invoke, wait_until, write_inventory

pytestmark = pytest.mark.integration


@pytest.fixture(params=["rdo", "devstack"])
def keystone_controller(request):
    """The rdo and devstack controllers in turn (Keystone in front), the cluster
    feature deployed."""
    controller = request.getfixturevalue(f"{request.param}_controller")
    request.getfixturevalue(f"feature_controller_{request.param}")
    return controller


@pytest.fixture
def admin(rdo_controller, feature_controller_rdo) -> dict:
    """The rdo controller's admin cloud, as its clouds.yaml has it (the feature deployed:
    smoke tries it)."""
    return admin_cloud(rdo_controller)


def admin_cloud(controller) -> dict:
    layout = controller.layout
    return yaml.safe_load(layout.clouds_file.read_text())["clouds"][layout.cloud_admin]


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path


def smoke(tmp_path: Path, controller, env: dict[str, str], cloud: str | None = None):
    """``invoke smoke`` of ``controller`` from ``tmp_path``, HOME there, only ``env``'s OS_*.

    ``cloud`` is the inventory's ``cloud:`` (None: none, so OS_CLOUD or OS_* decide).
    """
    (tmp_path / "cinder").mkdir(exist_ok=True)
    entry = {k: v for k, v in controller.entry().items() if k != "cloud"}
    if cloud:
        entry["cloud"] = cloud
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path / "cinder", {"ctl": entry})
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # the session's OS_CLIENT_CONFIG_FILE is not the spec's: empty is unset for openstacksdk
    return invoke("smoke", "--inventory", str(hosts), cwd=tmp_path,
                  env={"OS_CLIENT_CONFIG_FILE": "", "HOME": str(home), **env})


def passes(result, how: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"via Keystone ({how})" in result.stderr, result.stderr
    assert "smoke PASSED" in result.stdout, result.stdout


def one_error_line(result, *secrets: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
    return errors[0]


def keystone_session(controller, user: str):
    """A keystoneauth session of ``user`` (admin, demo) on ``controller``'s Keystone."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    layout = controller.layout
    return session.Session(auth=v3.Password(
        auth_url=layout.auth_url, username=user, password=layout.passwords()[user],
        project_name=user, user_domain_name="Default", project_domain_name="Default"))


@contextmanager
def application_credential(controller, user: str,
                           lifetime: float | None = None) -> Iterator[dict]:
    """An application credential ``user`` creates through Keystone's API (deleted after).

    With ``lifetime`` (seconds) it expires that long after it is created.
    """
    sess = keystone_session(controller, user)
    url = f"{controller.layout.auth_url}/users/{sess.get_user_id()}/application_credentials"
    body: dict[str, object] = {"name": f"devloop-spec-{uuid.uuid4().hex[:8]}"}
    if lifetime is not None:
        expires = utcnow() + datetime.timedelta(seconds=lifetime)
        body["expires_at"] = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
    created = sess.post(url, json={"application_credential": body}).json()
    credential = created["application_credential"]
    try:
        yield credential
    finally:
        sess.delete(f"{url}/{credential['id']}", raise_exc=False)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def application_credential_cloud(controller, credential: dict) -> dict:
    return {"auth_type": "v3applicationcredential",
            "auth": {"auth_url": controller.layout.auth_url,
                     "application_credential_id": credential["id"],
                     "application_credential_secret": credential["secret"]},
            "region_name": "RegionOne"}


# --- the forms that authenticate -------------------------------------------------


def test_the_password_in_secure_yaml_beside_clouds_yaml_authenticates(tmp_path,
                                                                     keystone_controller):
    cloud = admin_cloud(keystone_controller)
    password = cloud["auth"].pop("password")
    config = tmp_path / "home" / ".config" / "openstack"
    write_yaml(config / "clouds.yaml", {"clouds": {"lab": cloud}})
    write_yaml(config / "secure.yaml", {"clouds": {"lab": {"auth": {"password": password}}}})
    passes(smoke(tmp_path, keystone_controller, {}, cloud="lab"), "cloud lab")


def test_an_application_credential_created_through_keystone_authenticates(
        tmp_path, keystone_controller):
    # the admin's: the smoke test manages clusters, an admin API
    with application_credential(keystone_controller, "admin") as credential:
        write_yaml(tmp_path / "clouds.yaml", {"clouds": {
            "app": application_credential_cloud(keystone_controller, credential)}})
        passes(smoke(tmp_path, keystone_controller, {}, cloud="app"), "cloud app")


def test_os_cloud_alone_names_the_cloud_in_the_users_clouds_yaml(tmp_path, keystone_controller):
    layout = keystone_controller.layout
    write_yaml(tmp_path / "home" / ".config" / "openstack" / "clouds.yaml",
               yaml.safe_load(layout.clouds_file.read_text()))
    result = smoke(tmp_path, keystone_controller, {"OS_CLOUD": layout.cloud_admin})
    passes(result, f"cloud {layout.cloud_admin}")


def test_os_cloud_with_os_client_config_file_and_os_client_secure_file(tmp_path,
                                                                      rdo_controller, admin):
    password = admin["auth"].pop("password")
    files = tmp_path / "elsewhere"
    clouds = write_yaml(files / "my-clouds.yaml", {"clouds": {"lab": admin}})
    secure = write_yaml(files / "my-secure.yaml",
                        {"clouds": {"lab": {"auth": {"password": password}}}})
    result = smoke(tmp_path, rdo_controller, {"OS_CLOUD": "lab",
                                              "OS_CLIENT_CONFIG_FILE": str(clouds),
                                              "OS_CLIENT_SECURE_FILE": str(secure)})
    passes(result, "cloud lab")


def test_an_auth_type_token_entry_authenticates(tmp_path, rdo_controller, admin,
                                                feature_controller_rdo):
    token = keystone_session(rdo_controller, "admin").get_token()
    write_yaml(tmp_path / "clouds.yaml", {"clouds": {"with-token": {
        "auth_type": "token",
        "auth": {"auth_url": admin["auth"]["auth_url"], "token": token,
                 "project_name": "admin", "project_domain_name": "Default"},
        "region_name": "RegionOne"}}})
    passes(smoke(tmp_path, rdo_controller, {}, cloud="with-token"), "cloud with-token")


def test_a_vendor_profile_from_clouds_public_yaml_fills_the_cloud_in(tmp_path, rdo_controller,
                                                                     admin,
                                                                     feature_controller_rdo):
    auth = admin["auth"]
    write_yaml(tmp_path / "clouds-public.yaml", {"public-clouds": {"rdo-lab": {
        "auth": {"auth_url": auth["auth_url"], "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "region_name": "RegionOne", "identity_api_version": 3}}})
    write_yaml(tmp_path / "clouds.yaml", {"clouds": {"mine": {
        "profile": "rdo-lab",
        "auth": {"username": "admin", "password": auth["password"], "project_name": "admin"}}}})
    passes(smoke(tmp_path, rdo_controller, {}, cloud="mine"), "cloud mine")


def test_os_variables_alone_authenticate_without_clouds_yaml(tmp_path, rdo_controller, admin,
                                                             feature_controller_rdo):
    auth = admin["auth"]
    env = {"OS_AUTH_URL": auth["auth_url"], "OS_USERNAME": "admin",
           "OS_PASSWORD": auth["password"], "OS_PROJECT_NAME": "admin",
           "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default"}
    result = smoke(tmp_path, rdo_controller, env)
    passes(result, "OS_* variables")
    assert "smoke PASSED: 10/10" in result.stdout


# --- each failure: one line, the cloud and its file, no secret ---------------------


def test_the_written_inventory_holds_only_what_a_real_rdo_controller_needs(rdo_controller):
    written = yaml.safe_load(rdo_controller.layout.hosts_file.read_text())
    (entry,) = written["controllers"].values()
    assert sorted(entry) == ["address", "cloud", "identity_file", "known_hosts"]
    assert set(yaml.safe_load(rdo_controller.layout.clouds_file.read_text())["clouds"]) == \
        {"rdo-admin", "rdo-member"}


def test_a_cloud_missing_from_clouds_yaml_is_one_line(tmp_path, rdo_controller):
    clouds = rdo_controller.layout.clouds_file
    line = one_error_line(smoke(tmp_path, rdo_controller, {"OS_CLIENT_CONFIG_FILE": str(clouds)},
                                cloud="no-such-cloud"))
    assert line == (f"error: cloud 'no-such-cloud' is not in {clouds} "
                    "(clouds there: rdo-admin, rdo-member)")


def test_no_clouds_yaml_anywhere_names_the_places_looked(tmp_path, rdo_controller):
    missing = tmp_path / "nowhere.yaml"
    line = one_error_line(smoke(tmp_path, rdo_controller, {"OS_CLIENT_CONFIG_FILE": str(missing)},
                                cloud="rdo-admin"))
    assert line.startswith(f"error: cloud 'rdo-admin': no clouds.yaml found (looked for "
                           f"{missing}, {tmp_path}/clouds.yaml, ~/.config/openstack/clouds.yaml")


def test_a_missing_password_is_one_line_naming_where_it_was_looked_for(tmp_path, rdo_controller,
                                                                      admin):
    password = admin["auth"].pop("password")
    clouds = write_yaml(tmp_path / "clouds.yaml", {"clouds": {"lab": admin}})
    line = one_error_line(smoke(tmp_path, rdo_controller, {}, cloud="lab"), password)
    assert line.startswith(f"error: cloud lab ({clouds}): password missing: not in {clouds}; "
                           f"no secure.yaml found (looked for {tmp_path}/secure.yaml, ")


def test_a_wrong_password_is_keystones_401_in_one_line(tmp_path, rdo_controller, admin):
    admin["auth"]["password"] = "wrong-Pa55word"
    clouds = write_yaml(tmp_path / "clouds.yaml", {"clouds": {"rdo-admin": admin}})
    line = one_error_line(smoke(tmp_path, rdo_controller, {}, cloud="rdo-admin"),
                          "wrong-Pa55word")
    assert line == (f"error: cloud rdo-admin ({clouds}): Keystone at "
                    f"{rdo_controller.layout.auth_url} refused user 'admin' "
                    "(401: wrong user name, password or project)")


def test_an_expired_application_credential_is_one_line(tmp_path, rdo_controller):
    # the demo user's own; Keystone refuses one created already expired: it expires soon after
    with application_credential(rdo_controller, "demo", lifetime=6) as credential:
        clouds = write_yaml(tmp_path / "clouds.yaml", {"clouds": {
            "app": application_credential_cloud(rdo_controller, credential)}})
        expires = datetime.datetime.fromisoformat(credential["expires_at"].rstrip("Z")).replace(
            tzinfo=datetime.timezone.utc)     # Keystone's times are UTC
        wait_until(lambda: utcnow() > expires, timeout=30, interval=0.2)
        line = one_error_line(smoke(tmp_path, rdo_controller, {}, cloud="app"),
                              credential["secret"])
    assert line == (f"error: cloud app ({clouds}): Keystone at {rdo_controller.layout.auth_url} "
                    f"refused application credential '{credential['id']}' (401: wrong secret, "
                    "or it expired or was deleted)")


def test_an_unreachable_keystone_is_one_line(tmp_path, rdo_controller, admin):
    closed = f"http://{rdo_controller.layout.address}:1/v3"
    admin["auth"]["auth_url"] = closed
    clouds = write_yaml(tmp_path / "clouds.yaml", {"clouds": {"rdo-admin": admin}})
    line = one_error_line(smoke(tmp_path, rdo_controller, {}, cloud="rdo-admin"),
                          admin["auth"]["password"])
    assert line == (f"error: cloud rdo-admin ({clouds}): cannot reach Keystone at {closed}: "
                    "connection refused")


def test_a_catalog_without_block_storage_in_the_region_is_one_line(tmp_path, rdo_controller,
                                                                   admin):
    admin["region_name"] = "Elsewhere"
    clouds = write_yaml(tmp_path / "clouds.yaml", {"clouds": {"rdo-admin": admin}})
    line = one_error_line(smoke(tmp_path, rdo_controller, {}, cloud="rdo-admin"),
                          admin["auth"]["password"])
    assert line == (f"error: cloud rdo-admin ({clouds}): no Block Storage endpoint "
                    "(block-storage/volumev3, interface public in region Elsewhere) "
                    f"in the catalog of {rdo_controller.layout.auth_url}")
