"""Bad input against real controllers: one ``error:`` line, a non-zero exit, nothing run or lost.

A service user that looks like an option (``-ctouch /tmp/x``) once made su run
that command as root; it is now refused with the inventory, and even a value
that got past the inventory would reach su after ``--``, as a user name.
The rest, each on the supervisord sandbox: a ``lock.json`` naming a pid that
is no number, a ``--launch-json`` that cannot be written (refused before the
service stops), a missing ``supervisor_config``, a private key open to others
or encrypted, known_hosts lines OpenSSH knows and paramiko does not, a
``state_dir`` the lock cannot use, and a password in Keystone's URL.
The table-driven half (no controller needed) is tests/unit/test_bad_input.py.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from deploy.base.errors import DbSyncError
from deploy.base.inventory import load_inventory
from deploy.controller.db import current_revision
from deploy.transport.commands import Remote
from deploy.transport.connection import close_shared
from deploy.transport.layout import laid_out
from tests.support import invoke, write_inventory

pytestmark = pytest.mark.integration


def only_error(result: subprocess.CompletedProcess[str]) -> str:
    """The run's one ``error:`` line: its last on stderr (after any progress), no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def inventory(tmp_path: Path, source: Path, entry: dict[str, object], **overrides: object) -> Path:
    """An inventory naming ``entry`` (with ``overrides``) as ``sbx``."""
    return write_inventory(tmp_path / f"hosts-{uuid.uuid4().hex[:6]}.yaml", source,
                           {"sbx": {**entry, **overrides}})


# --- values become arguments, never options (every kind) ----------------------------

def test_a_service_user_that_looks_like_an_option_runs_nothing_as_root(controller, tmp_path,
                                                                        source):
    marker = f"/tmp/devloop-pwned-{uuid.uuid4().hex[:8]}"
    hostile = f"-ctouch {marker}"

    # the inventory refuses it: nothing connects, nothing runs
    refused = invoke("db-sync", "--inventory",
                     str(inventory(tmp_path, source, controller.entry(), service_user=hostile)))
    assert refused.returncode == 2
    assert only_error(refused).endswith(f"controllers.sbx.service_user: expected a user name "
                                        f"(letters, digits, '_', '.', '-', not starting with "
                                        f"'-', at most 32 characters), got '{hostile}'")
    assert not controller.host_path(marker).exists()

    # and if such a value got past it, su would read it as a user name (after --)
    ctl = laid_out(load_inventory(inventory(tmp_path, source, controller.entry())).get("sbx"))
    try:
        with pytest.raises(DbSyncError) as caught:
            current_revision(Remote.open(dataclasses.replace(ctl, service_user=hostile)))
        assert "cinder-manage db version failed (exit 1)" in str(caught.value)
        assert not controller.host_path(marker).exists()

        # the service user it names is still who runs cinder-manage (su ... -- cinder)
        assert current_revision(Remote.open(ctl))
    finally:
        close_shared()


# --- the rest, on the supervisord sandbox ---------------------------------------

@pytest.fixture
def entry(sandbox) -> dict[str, object]:
    return sandbox.controller_entry()


def test_a_lock_json_whose_pid_is_no_number_breaks_neither_status_nor_locking(
        sandbox, entry, tmp_path, source):
    hosts = inventory(tmp_path, source, entry)
    lock_json = Path(str(entry["state_dir"])) / "lock.json"
    lock_json.parent.mkdir(parents=True, exist_ok=True)
    (lock_json.parent / "lock").touch()       # a lock taken once, and left by a killed run
    lock_json.write_text('{"user": "mallory", "host": "h", "task": "deploy", "pid": "abc", '
                         '"since": "2026-01-01T00:00:00Z"}')
    try:
        status = invoke("status", "--inventory", str(hosts))
        assert status.returncode == 0, status.stderr
        assert "  lock      free; stale: mallory@h (invoke deploy, pid ?) since " \
               "2026-01-01T00:00:00Z ended without releasing it" in status.stdout

        synced = invoke("db-sync", "--inventory", str(hosts))
        assert synced.returncode == 0, synced.stderr
        assert "warning: sbx: took over the lock from mallory@h (invoke deploy, pid ?)" \
            in synced.stderr
        assert not lock_json.exists()       # released well
    finally:
        lock_json.unlink(missing_ok=True)   # (no later spec meets a stale holder)


@pytest.mark.parametrize("where", ["a-directory", "a-file/launch.json"])
def test_a_launch_json_that_cannot_be_written_is_refused_before_the_service_stops(
        sandbox, entry, tmp_path, source, where):
    from tests.integration.conftest import supervised_pid

    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("")
    before = supervised_pid(sandbox)
    assert before

    result = invoke("debug", "--attach", "--launch-json", str(tmp_path / where),
                    "--inventory", str(inventory(tmp_path, source, entry)))

    assert result.returncode == 2
    assert only_error(result).startswith(f"error: --launch-json {tmp_path / where}: ")
    assert supervised_pid(sandbox) == before      # never stopped


def test_a_missing_supervisor_config_is_an_error_not_an_unknown_state(entry, tmp_path, source):
    missing = f"{entry['supervisor_config']}.missing"
    hosts = inventory(tmp_path, source, entry, supervisor_config=missing)
    for task in ("status", "restart"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 1, result.stderr
        assert only_error(result).endswith(
            f"supervisor_config {missing} does not exist on the controller; check "
            f"supervisor_config in the inventory")


def test_a_private_key_open_to_others_is_refused_before_connecting(entry, tmp_path, source):
    key = tmp_path / "id_open"
    key.write_bytes(Path(str(entry["identity_file"])).read_bytes())
    key.chmod(0o644)
    result = invoke("logs", "-n", "1", "--inventory",
                    str(inventory(tmp_path, source, entry, identity_file=str(key))))
    assert result.returncode == 2
    assert only_error(result).endswith(
        f"controllers.sbx.identity_file: {key} is open to others (mode 0644); ssh refuses such "
        f"a private key: chmod 600 {key}")


def test_an_encrypted_key_is_called_encrypted_with_ssh_agent_as_the_way(entry, tmp_path,
                                                                        source):
    key = tmp_path / "id_encrypted"
    key.write_bytes(Path(str(entry["identity_file"])).read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "a passphrase", "-f", str(key)], check=True,
                   capture_output=True)
    result = invoke("logs", "-n", "1", "--inventory",
                    str(inventory(tmp_path, source, entry, identity_file=str(key))))
    assert result.returncode == 1
    line = only_error(result)
    assert line.endswith(f"{key} is encrypted (passphrase-protected) and the tool never "
                         f"prompts; load it into ssh-agent (ssh-add {key}) and remove "
                         f"identity_file from the inventory: the agent's keys are then used")
    assert "login refused" not in line


def known_hosts(tmp_path: Path, entry: dict[str, object], *before: str, keep: bool = True) -> Path:
    """A known_hosts with lines ``before`` (``{key}``: the sandbox's host key), then its pin."""
    pin = Path(str(entry["known_hosts"])).read_text().strip()
    name, key = pin.split(" ", 1)
    path = tmp_path / f"known_hosts-{uuid.uuid4().hex[:6]}"
    path.write_text("".join(line.format(key=key, name=name) + "\n" for line in before)
                    + (pin + "\n" if keep else ""))
    return path


def test_known_hosts_lines_openssh_knows_are_read_as_openssh_reads_them(entry, tmp_path,
                                                                        source):
    def logs(path: Path) -> subprocess.CompletedProcess[str]:
        return invoke("logs", "-n", "1", "--inventory",
                      str(inventory(tmp_path, source, entry, known_hosts=str(path))))

    # a CA line and an unreadable line beside the pin: skipped, as OpenSSH skips them
    fine = logs(known_hosts(tmp_path, entry, "@cert-authority *.example.com {key}",
                            "{name} ssh-ed25519 AAAA%%%not-base64"))
    assert fine.returncode == 0, fine.stderr

    # the pin marked @revoked: refused
    revoked = logs(known_hosts(tmp_path, entry, "@revoked * {key}"))
    assert revoked.returncode == 1
    assert "is marked @revoked in" in only_error(revoked)

    # only lines it cannot use: not pinned, and it says which lines it skipped
    path = known_hosts(tmp_path, entry, "@cert-authority {name} {key}",
                       "{name} ssh-ed25519 AAAA%%%not-base64", keep=False)
    unpinned = logs(path)
    assert unpinned.returncode == 1
    assert f"host key is not pinned in {path} (it skipped line 1 (@cert-authority: not " \
           f"supported), line 2 (not a readable host key)); refusing to connect" \
        in only_error(unpinned)


def test_a_state_dir_the_lock_cannot_use_is_one_line_not_the_helper_s_source(
        entry, tmp_path, source):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state_dir = f"{blocker}/state"
    hosts = inventory(tmp_path, source, entry, state_dir=state_dir)
    for task in ("status", "db-sync"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 1
        line = only_error(result)
        assert f"the controller's lock in state_dir {state_dir} (exit 2): cannot use state_dir " \
            f"{state_dir}: {blocker} is not a directory" in line
        assert line.endswith("; check state_dir in the inventory (a directory root can "
                             "create and write)")


def test_a_password_in_keystone_s_url_is_never_printed(entry, tmp_path, source):
    from tests.support import free_port

    clouds = tmp_path / "clouds.yaml"
    url = f"http://admin:s3cret-pw@127.0.0.1:{free_port()}/v3"    # nothing listens there
    clouds.write_text(f"clouds:\n  leaky:\n    auth:\n      auth_url: {url}\n"
                      f"      username: admin\n      password: s3cret-pw\n"
                      f"      project_name: admin\n      user_domain_name: Default\n"
                      f"      project_domain_name: Default\n")
    result = invoke("smoke", "--inventory", str(inventory(tmp_path, source, entry, cloud="leaky")),
                    env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert only_error(result).startswith(
        f"error: cloud leaky ({clouds}): cannot reach Keystone at "
        f"{url.replace('s3cret-pw', '***')}: ")
    assert os.environ.get("OS_CLIENT_CONFIG_FILE") != str(clouds)
