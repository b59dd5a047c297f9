"""deploy.openstack.auth and .clouds without a network: which cloud, from which file, noauth.

clouds.yaml is read by openstacksdk's loader, as OpenStack's clients read
it; these specs pin what the tool makes of it before any request: the
cloud's files in every message, a missing secret or setting refused up
front, no secret in any message, and no openstacksdk at all for noauth.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.base.errors import AuthError
from deploy.base.inventory import Controller
from deploy.openstack.auth import api_access, keystone_wanted
from deploy.openstack.clouds import load, mask

PASSWORD = "s3cret-Pa55"
AUTH = ("auth: {auth_url: 'http://192.0.2.1:5000/v3', username: admin, project_name: admin, "
        "user_domain_name: Default, project_domain_name: Default")


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """An empty working directory, and no OS_* variable but the spec's own."""
    monkeypatch.chdir(tmp_path)
    for name in ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_without_a_cloud_or_os_variables_the_api_is_called_noauth(here):
    ctl = Controller(name="c", address="h", api_url="http://127.0.0.1:18776/")
    access = api_access(ctl, "abc123")
    assert (access.base_url, access.project_id, access.token, access.cloud) == (
        "http://127.0.0.1:18776", "abc123", "admin:abc123", None)
    assert "admin:abc123" not in repr(access)


def test_a_cloud_os_cloud_or_os_auth_url_means_keystone(here, monkeypatch):
    assert not keystone_wanted(Controller(name="c", address="h"))
    assert keystone_wanted(Controller(name="c", address="h", cloud="mine"))
    monkeypatch.setenv("OS_CLOUD", "theirs")
    assert keystone_wanted(Controller(name="c", address="h"))
    monkeypatch.delenv("OS_CLOUD")
    monkeypatch.setenv("OS_AUTH_URL", "http://192.0.2.1:5000/v3")
    assert keystone_wanted(Controller(name="c", address="h"))


def test_noauth_never_imports_openstacksdk_or_keystoneauth():
    probe = ("import sys; from deploy.base.inventory import Controller; "
             "from deploy.openstack.auth import api_access, prefetch, read_cloud_early; "
             "import tasks; ctl = Controller(name='c', address='h'); "
             "read_cloud_early(ctl); prefetch(ctl); api_access(ctl); "
             "print(sorted({m.split('.')[0] for m in sys.modules} "
             "& {'openstack', 'keystoneauth1'}))")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout
    assert out.strip() == "[]"


def test_reading_a_cloud_imports_openstacksdks_config_package_not_the_whole_sdk(tmp_path):
    (tmp_path / "clouds.yaml").write_text(f"clouds:\n  a: {{{AUTH}, password: x}}}}\n")
    probe = ("import sys; from deploy.openstack.clouds import load; load('a'); "
             "print('openstack.config.loader' in sys.modules, "
             "'openstack.connection' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True).stdout
    assert out.split() == ["True", "False"]


def test_threads_that_read_clouds_at_once_all_get_the_whole_config_loader():
    """One thread per controller reads its cloud: none may see the loader half imported."""
    probe = ("import threading, time; from deploy.openstack.clouds import sdk_loader\n"
             "errors = []\n"
             "def read(after):\n"
             "    time.sleep(after)    # one of them lands while another is importing\n"
             "    try: sdk_loader().OpenStackConfig\n"
             "    except Exception as exc: errors.append(repr(exc))\n"
             "threads = [threading.Thread(target=read, args=(n * 0.01,)) for n in range(12)]\n"
             "[t.start() for t in threads]; [t.join() for t in threads]; print(errors)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for _ in range(4):      # unlocked, most runs showed it
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=env, check=True).stdout
        assert out.strip() == "[]"


def test_no_clouds_yaml_anywhere_names_the_places_looked(here, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(here / "none.yaml"))
    with pytest.raises(AuthError) as err:
        load("mine")
    assert str(err.value).startswith(
        f"cloud 'mine': no clouds.yaml found (looked for {here}/none.yaml, {here}/clouds.yaml, ")
    assert str(err.value).endswith("/etc/openstack/clouds.yaml (also .yml, .json); "
                                   "set OS_CLIENT_CONFIG_FILE)")


def test_only_the_first_clouds_yaml_found_is_read_as_openstack_clients_do(here, monkeypatch):
    (here / "clouds.yaml").write_text(f"clouds:\n  local: {{{AUTH}}}}}\n")
    named = here / "named.yaml"
    named.write_text(f"clouds:\n  a: {{{AUTH}, password: x}}}}\n  b: {{{AUTH}, password: x}}}}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(named))
    assert load("a").label == f"cloud a ({named})"
    with pytest.raises(AuthError) as err:
        load("local")
    assert str(err.value) == f"cloud 'local' is not in {named} (clouds there: a, b)"


def test_a_broken_clouds_yaml_is_skipped_with_one_warning(here, capsys):
    (here / "clouds.yaml").write_text("clouds: [\n")
    with pytest.raises(AuthError, match=r"^cloud 'a': no clouds.yaml found"):
        load("a")
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"warning: openstacksdk: Skipping config file {here}/clouds.yaml: ")


def test_the_password_in_secure_yaml_beside_clouds_yaml_is_merged_in(here):
    (here / "clouds.yaml").write_text(f"clouds:\n  a: {{{AUTH}}}}}\n")
    (here / "secure.yaml").write_text(f"clouds:\n  a: {{auth: {{password: {PASSWORD}}}}}\n")
    cloud = load("a")
    assert cloud.label == f"cloud a ({here}/clouds.yaml, {here}/secure.yaml)"
    assert cloud.auth["password"] == PASSWORD
    assert PASSWORD not in repr(cloud)


def test_a_missing_password_is_refused_naming_both_files_read(here):
    (here / "clouds.yaml").write_text(f"clouds:\n  a: {{{AUTH}}}}}\n")
    (here / "secure.yaml").write_text("clouds:\n  other: {auth: {password: x}}\n")
    with pytest.raises(AuthError) as err:
        load("a")
    assert str(err.value) == (f"cloud a ({here}/clouds.yaml): password missing: in neither "
                              f"{here}/clouds.yaml nor {here}/secure.yaml")


def test_a_secure_yaml_beside_a_named_clouds_yaml_needs_os_client_secure_file(here, monkeypatch):
    elsewhere = here / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "clouds.yaml").write_text(f"clouds:\n  a: {{{AUTH}}}}}\n")
    (elsewhere / "secure.yaml").write_text(f"clouds:\n  a: {{auth: {{password: {PASSWORD}}}}}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(elsewhere / "clouds.yaml"))
    with pytest.raises(AuthError) as err:
        load("a")
    message = str(err.value)
    assert message.startswith(f"cloud a ({elsewhere}/clouds.yaml): password missing: not in "
                              f"{elsewhere}/clouds.yaml; no secure.yaml found (looked for ")
    assert message.endswith(f"; {elsewhere}/secure.yaml is read only when OS_CLIENT_SECURE_FILE "
                            "names it)")
    monkeypatch.setenv("OS_CLIENT_SECURE_FILE", str(elsewhere / "secure.yaml"))
    assert load("a").auth["password"] == PASSWORD


@pytest.mark.parametrize(("entry", "missing"), [
    ("{auth_type: v3applicationcredential, auth: {auth_url: 'http://192.0.2.1:5000/v3', "
     "application_credential_id: 0123abcd}}", "application_credential_secret"),
    ("{auth_type: token, auth: {auth_url: 'http://192.0.2.1:5000/v3', project_name: admin, "
     "project_domain_name: Default}}", "token"),
    ("{auth_type: v3totp, auth: {auth_url: 'http://192.0.2.1:5000/v3', username: admin, "
     "user_domain_name: Default}}", "passcode"),
])
def test_each_auth_types_secret_is_required_before_any_request(here, entry, missing):
    (here / "clouds.yaml").write_text(f"clouds:\n  a: {entry}\n")
    with pytest.raises(AuthError) as err:
        load("a")
    assert str(err.value).startswith(f"cloud a ({here}/clouds.yaml): {missing} missing: not in "
                                     f"{here}/clouds.yaml; no secure.yaml found")


def test_an_application_credential_with_its_secret_loads(here):
    (here / "clouds.yaml").write_text(
        "clouds:\n  app:\n    auth_type: v3applicationcredential\n    auth:\n"
        "      auth_url: 'http://192.0.2.1:5000/v3'\n      application_credential_id: 0123abcd\n"
        f"      application_credential_secret: {PASSWORD}\n")
    cloud = load("app")
    assert (cloud.auth_type, cloud.auth["application_credential_id"]) == (
        "v3applicationcredential", "0123abcd")
    assert PASSWORD in cloud.secrets


def test_an_unknown_auth_type_lists_those_keystoneauth_knows(here):
    (here / "clouds.yaml").write_text(f"clouds:\n  a: {{auth_type: kerberos5, {AUTH}}}}}\n")
    with pytest.raises(AuthError) as err:
        load("a")
    assert str(err.value).startswith(f"cloud a ({here}/clouds.yaml): unknown auth_type "
                                     "'kerberos5' (keystoneauth knows: ")
    assert "v3applicationcredential" in str(err.value)


def test_a_vendor_profile_from_clouds_public_yaml_fills_the_cloud_in(here):
    (here / "clouds-public.yaml").write_text(
        "public-clouds:\n  lab:\n    auth: {auth_url: 'http://192.0.2.7:5000/v3'}\n"
        "    region_name: LabOne\n")
    (here / "clouds.yaml").write_text(
        "clouds:\n  a:\n    profile: lab\n    auth: {username: admin, password: x, "
        "project_name: admin, user_domain_name: Default, project_domain_name: Default}\n")
    cloud = load("a")
    assert cloud.auth["auth_url"] == "http://192.0.2.7:5000/v3"
    assert cloud.region.get_region_name("block-storage") == "LabOne"


def test_an_unknown_vendor_profile_is_refused(here):
    (here / "clouds.yaml").write_text("clouds:\n  a:\n    profile: no-such-vendor\n"
                                      "    auth: {username: admin, password: x}\n")
    with pytest.raises(AuthError) as err:
        load("a")
    assert str(err.value).startswith(f"cloud a ({here}/clouds.yaml): unknown vendor profile "
                                     f"'no-such-vendor' (not in {here}/clouds-public.yaml, ")


def test_os_variables_make_the_cloud_and_name_a_missing_one(here, monkeypatch):
    monkeypatch.setenv("OS_AUTH_URL", "http://192.0.2.1:5000/v3")
    monkeypatch.setenv("OS_USERNAME", "admin")
    monkeypatch.setenv("OS_PROJECT_NAME", "admin")
    with pytest.raises(AuthError) as err:
        load(None)
    assert str(err.value) == "the OS_* variables: OS_PASSWORD not set"
    monkeypatch.setenv("OS_PASSWORD", PASSWORD)
    cloud = load(None)
    assert (cloud.label, cloud.short, cloud.auth["password"]) == (
        "the OS_* variables", "OS_* variables", PASSWORD)


def test_the_controllers_cloud_comes_before_os_cloud(here, monkeypatch):
    monkeypatch.setenv("OS_CLOUD", "theirs")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(here / "none.yaml"))
    ctl = Controller(name="c", address="h", cloud="mine")
    with pytest.raises(AuthError, match="^cloud 'mine': no clouds.yaml found"):
        api_access(ctl)


def test_a_named_clouds_file_is_read_alone(here, monkeypatch):
    (here / "clouds.yaml").write_text(f"clouds:\n  a: {{{AUTH}, password: here}}}}\n")
    other = here / "other.yaml"
    other.write_text(f"clouds:\n  a: {{{AUTH}, password: there}}}}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(here / "clouds.yaml"))
    assert load("a", str(other)).auth["password"] == "there"


def test_secret_values_are_masked_wherever_they_appear(here):
    (here / "clouds.yaml").write_text(
        f"clouds:\n  a: {{{AUTH}, password: 123456}}}}\n")
    cloud = load("a")
    assert "123456" in cloud.secrets             # a YAML number is a secret too
    assert cloud.mask("Invalid input for field 'password': 123456 is not of type 'string'") \
        == "Invalid input for field 'password': *** is not of type 'string'"
    assert mask("token abc and abcdef", ["abc", "abcdef"]) == "token *** and ***"
