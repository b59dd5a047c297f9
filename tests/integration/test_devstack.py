"""The loop on a DevStack-shaped controller: uWSGI, a git checkout installed -e, MariaDB, Keystone.

One devstack container per session (``devstack_controller``). Its
generated inventory holds only what a user writes for a DevStack host;
the tool finds Cinder's python in the unit's ExecStart, deploys into the
checkout, never over the checkout's own uncommitted work unless
``--force``, and restarts the uWSGI unit, reads its journal and refuses
fast restart with the reason.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support import PROJECT_ROOT, invoke, write_inventory

pytestmark = pytest.mark.integration

# an upstream module of the API that a deploy replaces in the specs below
UPSTREAM = "api/contrib/used_limits.py"


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def feature_source(tmp_path) -> Path:
    """A copy of the repo's cinder_patch (manifest, feature, variants) to change in a spec."""
    shutil.copytree(PROJECT_ROOT / "cinder_patch", tmp_path / "cinder_patch")
    return tmp_path / "cinder_patch" / "cinder"


def test_the_written_inventory_holds_only_what_a_devstack_user_writes(devstack_controller):
    written = yaml.safe_load(devstack_controller.layout.hosts_file.read_text())
    (entry,) = written["controllers"].values()
    # no layout: the tool finds DevStack's unit file on the controller
    assert sorted(entry) == ["address", "cloud", "identity_file", "known_hosts"]
    assert set(yaml.safe_load(devstack_controller.layout.clouds_file.read_text())["clouds"]) == \
        {"devstack-admin", "devstack"}


def test_sandbox_status_shows_the_uwsgi_unit_keystone_and_mariadb(devstack_controller):
    layout = devstack_controller.layout
    result = invoke("sandbox.status", "--kind", "devstack", "--root", str(layout.root))
    assert result.returncode == 0, result.stderr
    for unit in ("devstack@c-api.service", "devstack@keystone.service", "mariadb.service"):
        assert f"{unit:<28} active" in result.stdout
    assert f"api          answering at {layout.api_url}" in result.stdout


def test_deploy_db_sync_status_smoke_pass_through_keystone_into_the_checkout(
        tmp_path, devstack_controller, feature_source):
    ctl = devstack_controller
    hosts = write_inventory(tmp_path / "hosts.yaml", feature_source,
                            {"devstack": ctl.entry()})
    for task in ("deploy", "db-sync", "status", "smoke"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 0, f"invoke {task}:\n{result.stdout}{result.stderr}"
        if task == "deploy":
            assert "restart devstack@c-api.service" in result.stderr
            assert "/opt/stack/cinder/cinder" in result.stderr
        if task == "status":
            assert ("layout    devstack (/etc/systemd/system/devstack@c-api.service found; "
                    "hosts.yaml does not say)") in result.stdout
            assert "active (running), pid " in result.stdout
            assert ("cinder    /opt/stack/cinder/cinder, python /opt/stack/data/venv/bin/python3 "
                    "from the unit devstack@c-api.service (ExecStart: "
                    "/opt/stack/data/venv/bin/uwsgi)") in result.stdout
            assert "none failed to load since the service started" in result.stdout
        if task == "smoke":
            assert "smoke PASSED: 10/10" in result.stdout
    deployed = ctl.host_path(f"{ctl.cinder_path}/api/contrib/cluster_manage.py")
    assert deployed.read_bytes() == (feature_source / "api/contrib/cluster_manage.py").read_bytes()
    # the checkout shows the deploy as what it is: files not in its commit
    status = ctl.run(["git", "-C", ctl.checkout, "status", "--porcelain"], user="stack")
    assert "?? cinder/api/contrib/cluster_manage.py" in status.stdout

    # a second deploy over the files the first one wrote is not the checkout's own work
    with (feature_source / "api/contrib/cluster_manage.py").open("a") as handle:
        handle.write("# changed on the workstation\n")
    again = invoke("loop", "--inventory", str(hosts))
    assert again.returncode == 0, again.stderr
    assert deployed.read_text().endswith("# changed on the workstation\n")


def test_a_deploy_never_replaces_the_checkouts_uncommitted_work_unless_forced(
        tmp_path, devstack_controller):
    ctl = devstack_controller
    target = ctl.host_path(f"{ctl.cinder_path}/{UPSTREAM}")
    pristine = target.read_text()
    source = tmp_path / "cinder"
    (source / UPSTREAM).parent.mkdir(parents=True)
    (source / UPSTREAM).write_text(pristine + "# from the workstation\n")
    hosts = write_inventory(tmp_path / "hosts.yaml", source, {"devstack": ctl.entry()})
    records = ctl.host_path(f"{ctl.state_dir}/deploys")
    before = sorted(records.iterdir()) if records.is_dir() else []
    try:
        ctl.run(["sh", "-c", f"echo '# work on the controller' >> {ctl.cinder_path}/{UPSTREAM}"],
                user="stack")
        line = one_error_line(invoke("deploy", "--inventory", str(hosts)))
        assert line == (f"error: devstack: the checkout {ctl.checkout} has uncommitted changes "
                        f"to 1 file(s) this deploy would replace (cinder/{UPSTREAM}); nothing "
                        f"was changed: commit or stash them there, or deploy with --force")
        assert target.read_text() == pristine + "# work on the controller\n"
        assert (sorted(records.iterdir()) if records.is_dir() else []) == before

        forced = invoke("deploy", "--force", "--inventory", str(hosts))
        assert forced.returncode == 0, forced.stderr
        assert target.read_text() == pristine + "# from the workstation\n"

        # the controller's work was kept: rollback puts it back
        undone = invoke("rollback", "--inventory", str(hosts))
        assert undone.returncode == 0, undone.stderr
        assert target.read_text() == pristine + "# work on the controller\n"
    finally:
        ctl.run(["git", "-C", ctl.checkout, "checkout", "--", f"cinder/{UPSTREAM}"],
                user="stack")
        ctl.restart_service()


def test_the_checkouts_own_git_config_never_runs_as_root(tmp_path, devstack_controller):
    """``stack`` writes the checkout's .git/config: a core.fsmonitor there runs as
    stack, or not at all."""
    ctl = devstack_controller
    hook, ran = "/opt/stack/fsmonitor-hook", "/tmp/devloop-fsmonitor-ran"
    source = tmp_path / "cinder"
    (source / UPSTREAM).parent.mkdir(parents=True)
    (source / UPSTREAM).write_text(
        ctl.host_path(f"{ctl.cinder_path}/{UPSTREAM}").read_text() + "# from the workstation\n")
    hosts = write_inventory(tmp_path / "hosts.yaml", source, {"devstack": ctl.entry()})
    ctl.run(["rm", "-f", ran])
    ctl.run(["sh", "-c", f"printf '#!/bin/sh\\nid -u >> {ran}\\n' > {hook} && chmod 755 {hook}"],
            user="stack")
    ctl.run(["git", "-C", ctl.checkout, "config", "core.fsmonitor", hook], user="stack")
    try:
        result = invoke("deploy", "--no-restart", "--inventory", str(hosts))
        assert result.returncode == 0, result.stderr
        who = ctl.run(["sh", "-c", f"cat {ran} 2>/dev/null || true"]).stdout.split()
        stack_uid = ctl.run(["id", "-u", "stack"]).stdout.strip()
        assert who and set(who) == {stack_uid}, f"fsmonitor ran as uids {who}"
    finally:
        ctl.run(["git", "-C", ctl.checkout, "config", "--unset", "core.fsmonitor"], user="stack")
        ctl.run(["rm", "-f", hook, ran])
        undone = invoke("rollback", "--no-restart", "--inventory", str(hosts))
        assert undone.returncode == 0, undone.stderr


def test_logs_read_the_journal_of_the_uwsgi_unit(tmp_path, devstack_controller):
    (tmp_path / "cinder").mkdir()
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path / "cinder",
                            {"devstack": devstack_controller.entry()})
    result = invoke("logs", "--inventory", str(hosts), "-n", "200")
    assert result.returncode == 0, result.stderr
    assert "journal of devstack@c-api.service" in result.stderr
    assert "uWSGI" in result.stdout


def test_fast_restart_is_refused_under_uwsgi_with_the_reason(tmp_path, devstack_controller):
    (tmp_path / "cinder").mkdir()
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path / "cinder",
                            {"devstack": devstack_controller.entry()})
    line = one_error_line(invoke("fast-restart", "on", "--inventory", str(hosts)))
    assert line.startswith("error: devstack: fast restart is not supported under uWSGI: "
                           "devstack@c-api.service runs the uWSGI master")
    assert devstack_controller.service_pid()


def test_a_restart_while_uwsgi_still_loads_cinder_waits_for_the_load_not_uwsgis_mercy(
        tmp_path, devstack_controller):
    # a worker still importing Cinder ignores uWSGI's stop: the master would wait
    # its worker-reload-mercy (80 s) and then kill it
    (tmp_path / "cinder").mkdir()
    hosts = write_inventory(tmp_path / "hosts.yaml", tmp_path / "cinder",
                            {"devstack": devstack_controller.entry()})
    since = devstack_controller.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    devstack_controller.restart_service(settle=False)  # someone else's: its worker now loads
    result = invoke("restart", "--inventory", str(hosts))
    assert result.returncode == 0, result.stderr
    assert "a uWSGI worker was still loading Cinder; waited" in result.stderr
    journal = devstack_controller.run(["journalctl", "--unit", "devstack@c-api.service",
                                       "--since", since, "--no-pager", "--output", "cat"]).stdout
    assert "NO MERCY" not in journal and "worker 1 buried" in journal
    assert "WSGI app 0 (mountpoint='') ready" in journal.split("buried")[-1]   # and loads again


def test_debug_stops_a_real_get_at_pdb_and_brings_the_uwsgi_unit_back(
        tmp_path, devstack_controller, feature_source):
    from tests.integration.test_debug import SHOW, in_background, spawn_debug, text_of
    from tests.integration.test_debug_kinds import assert_service_restored, pexpect, request

    ctl = devstack_controller
    hosts = write_inventory(tmp_path / "hosts.yaml", feature_source, {"devstack": ctl.entry()})
    for task in ("deploy", "db-sync"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 0, f"invoke {task}:\n{result.stderr}"
    before = ctl.service_pid()
    child = spawn_debug(hosts, "--break", SHOW)
    try:
        child.expect("answers at")
        assert ctl.service_pid() is None          # uWSGI is stopped meanwhile
        status, created = request(ctl, "POST", "os-cluster-manage",
                                  {"cluster": {"name": "dbg", "metadata": {"k": "v"}}})
        assert status == 200, created
        cluster_id = created["cluster"]["id"]
        thread, got = in_background(request, ctl, "GET", f"os-cluster-manage/{cluster_id}")
        child.expect(r"\(Pdb\) ")
        assert "breakpoint 1, " in text_of(child) and "show()" in text_of(child)
        child.sendline("p id")
        child.expect(r"\(Pdb\) ")
        assert cluster_id in child.before
        child.sendline("c")
        thread.join(30)
        assert got["value"][0] == 200
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=90)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130, text_of(child)
    assert "devstack@c-api.service back in service" in text_of(child)
    assert_service_restored(ctl, before)


def test_watch_deploys_each_save_into_the_checkout_and_restarts_uwsgi(
        tmp_path, devstack_controller, feature_source):
    from tests.support import Watcher

    ctl = devstack_controller
    hosts = write_inventory(tmp_path / "hosts.yaml", feature_source, {"devstack": ctl.entry()})
    for task in ("deploy", "db-sync"):
        result = invoke(task, "--inventory", str(hosts))
        assert result.returncode == 0, f"invoke {task}:\n{result.stderr}"
    with Watcher("--inventory", str(hosts), "--debounce", "200") as watch:
        watch.read_until("watching")
        with (feature_source / "api/contrib/cluster_manage.py").open("a") as handle:
            handle.write("# saved while watching\n")
        ok = watch.read_until("devstack: api/contrib/cluster_manage.py -> ", timeout=120)
        assert "-> OK: 1 file(s), restarted in" in ok
        assert watch.interrupt() == 0
    deployed = ctl.host_path(f"{ctl.cinder_path}/api/contrib/cluster_manage.py")
    assert deployed.read_text().endswith("# saved while watching\n")
