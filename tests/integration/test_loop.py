"""The edit -> deploy -> migrate -> restart loop against real controllers of every kind.

Real sshd, real rsync, real cinder-api under supervisord (the sandbox),
under systemd with Keystone in front (the rdo controller, whose inventory
entry holds only what a user writes for a real RDO controller), or under
systemd on Python 2.7 with Cinder Train (the legacy controller, inventory
defaults only): each test drives the CLI (``python -m invoke ...``) and then
looks at the controller itself through the ``controller`` handle.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.controllers import SupervisordController, kinds
from tests.support import free_port, invoke, wait_until, write_inventory, write_migration

pytestmark = pytest.mark.integration


@pytest.fixture
def source(tmp_path) -> Path:
    """A source tree whose path has spaces and quotes, as a workstation's might."""
    tree = tmp_path / """it's a "checkout" """ / "cinder"
    tree.mkdir(parents=True)
    return tree


@pytest.fixture
def hosts(tmp_path, sandbox, source) -> Path:
    return write_inventory(tmp_path / "hosts.yaml", source,
                           {"sbx": sandbox.controller_entry()})


@pytest.fixture
def cinder_dir(controller) -> Path:
    return controller.cinder_dir


def api_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def answers(url: str) -> bool:
    try:
        return api_status(url) < 500
    except OSError:
        return False


def deploy_dirs(controller) -> set[str]:
    root = controller.host_path(controller.state_dir) / "deploys"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def probe_file(source: Path, text: str) -> tuple[Path, str]:
    """A uniquely named file in a package no Cinder code imports."""
    rel = f"devloop_it/probe_{uuid.uuid4().hex[:8]}.py"
    path = source / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, rel


class TestDeploy:
    def test_changed_file_arrives_owned_like_the_controller_and_service_restarts(
            self, controller, controller_hosts, source, cinder_dir):
        path, rel = probe_file(source, "VERSION = 1\n")
        os.chown(path, 65534, 65534)   # the workstation's user is not the controller's
        path.chmod(0o600)
        before = controller.service_pid()

        result = invoke("deploy", "--inventory", str(controller_hosts))

        assert result.returncode == 0, result.stderr
        target = cinder_dir / rel
        assert target.read_text() == "VERSION = 1\n"
        st = target.stat()
        assert (st.st_uid, st.st_gid) == (cinder_dir.stat().st_uid, cinder_dir.stat().st_gid)
        assert st.st_mode & 0o777 == 0o644
        assert f"sbx: new     cinder/{rel}" in result.stdout
        after = controller.service_pid()
        assert after and after != before
        assert api_status(controller.api_url) == 300
        assert f"pid {after}" in result.stderr

    def test_replaced_file_is_kept_in_the_deploy_backup_and_recorded(
            self, controller, controller_hosts, source, cinder_dir):
        path, rel = probe_file(source, "VERSION = 1\n")
        deployed = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")
        assert deployed.returncode == 0
        path.write_text("VERSION = 2  # edited\n")
        known = deploy_dirs(controller)

        result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")

        assert result.returncode == 0, result.stderr
        assert (cinder_dir / rel).read_text() == "VERSION = 2  # edited\n"
        (new_id,) = deploy_dirs(controller) - known
        deploy_dir = controller.host_path(controller.state_dir) / "deploys" / new_id
        assert (deploy_dir / "backup" / rel).read_text() == "VERSION = 1\n"
        record = json.loads((deploy_dir / "record.json").read_text())
        assert record["replaced"] == [rel] and record["added"] == []
        assert f"sbx: changed cinder/{rel}" in result.stdout

    def test_a_small_tree_goes_in_one_remote_call_that_locates_cinder_too_and_no_rsync_runs(
            self, controller, controller_hosts, source, cinder_dir):
        _, rel = probe_file(source, "ONE_CALL = 1\n")
        known = deploy_dirs(controller)

        result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart",
                        "--verbose")

        assert result.returncode == 0, result.stderr
        commands = [line for line in result.stderr.splitlines() if "] $ " in line]
        assert [c for c in commands if "rsync" in c] == []
        # each command echoed whole, its helper's source included; besides the
        # controller's lock, held for the run (see test_lock.py), one call:
        echoed = result.stderr.split("] $ ")[1:]
        locks = [c for c in echoed if "for one run of the tool, or show who holds it" in c]
        assert len(locks) == 1, commands
        # and, where the entry names neither layout nor service (the systemd kinds'
        # generated ones), the run's one look for DevStack's unit file
        looks = [c for c in echoed if c.startswith("test -e /etc/systemd/system/devstack@")]
        assert len(looks) == (controller.service_manager == "systemd"), commands
        # the one call: locate, compare, compile, record, write
        assert len(echoed) - len(locks) - len(looks) == 1, commands
        assert "Lay a small overlay tree" in result.stderr
        assert (cinder_dir / rel).read_text() == "ONE_CALL = 1\n"
        (new_id,) = deploy_dirs(controller) - known
        record = json.loads((controller.host_path(controller.state_dir) / "deploys" / new_id /
                             "record.json").read_text())
        assert record["state"] == "applied" and record["added"] == [rel]

    def test_with_fast_restart_off_the_restart_does_not_ask_for_the_mode(
            self, controller, controller_hosts, source):
        probe_file(source, "PLAIN = 1\n")

        result = invoke("deploy", "--inventory", str(controller_hosts), "--verbose")

        assert result.returncode == 0, result.stderr
        commands = [line for line in result.stderr.splitlines() if "] $ " in line]
        assert "Lay a small overlay tree" in result.stderr    # it says the mode too
        assert not [c for c in commands if "Fast-restart mode on the controller" in c]

    def test_no_restart_leaves_the_service_alone(self, controller, controller_hosts, source):
        probe_file(source, "X = 1\n")
        before = controller.service_pid()
        deployed = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")
        assert deployed.returncode == 0
        assert controller.service_pid() == before

    def test_dry_run_lists_the_files_and_changes_nothing(self, controller, controller_hosts, source,
                                                         cinder_dir):
        _, rel = probe_file(source, "NEVER = True\n")
        before, known = controller.service_pid(), deploy_dirs(controller)

        result = invoke("deploy", "--inventory", str(controller_hosts), "--dry-run")

        assert result.returncode == 0, result.stderr
        assert f"sbx: new     cinder/{rel}" in result.stdout
        assert "would be sent" in result.stderr
        assert not (cinder_dir / rel).exists()
        assert controller.service_pid() == before
        assert deploy_dirs(controller) == known

    def test_nothing_to_send_makes_no_deploy_record(self, controller, controller_hosts, source):
        probe_file(source, "SAME = 1\n")
        deployed = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")
        assert deployed.returncode == 0
        known = deploy_dirs(controller)
        result = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")
        assert result.returncode == 0
        assert "no file changed" in result.stderr
        assert deploy_dirs(controller) == known


    def test_an_api_that_never_answers_fails_at_the_deadline_with_the_log_tail(
            self, tmp_path, controller, source):
        probe_file(source, "DEADLINE = 1\n")
        entry = {**controller.entry(), "api_url": f"http://127.0.0.1:{free_port()}/"}
        hosts = write_inventory(tmp_path / "deadline.yaml", source, {"sbx": entry})

        result = invoke("deploy", "--inventory", str(hosts), "--timeout", "2")

        assert result.returncode == 1
        error = result.stderr[result.stderr.index("error: "):]
        assert error.startswith(f"error: sbx: the API at {entry['api_url']} did not answer "
                                "within 2 s")
        assert f"last lines of {controller.log_source}:" in error
        assert "Traceback" not in result.stderr


class TestDbSync:
    def test_brings_a_fresh_database_to_the_newest_revision_and_reports_it(
            self, controller, controller_hosts, cinder_dir):
        head = controller.newest_migration()
        controller.empty_database()   # a controller whose database was just created

        result = invoke("db-sync", "--inventory", str(controller_hosts))

        assert result.returncode == 0, result.stderr
        # (an empty database is "empty" to alembic; Train's cinder-manage
        # puts it under version control at 122 and says so)
        assert result.stdout.strip() == f"sbx: database {controller.empty_revision} -> {head}"
        if controller.database_path:         # an SQLite file: created by the service user
            assert controller.host_path(controller.database_path).stat().st_uid != 0
        again = invoke("db-sync", "--inventory", str(controller_hosts))
        assert f"{head} (already at the newest revision)" in again.stdout
        status = invoke("status", "--inventory", str(controller_hosts))
        assert f"database  {head} (newest migration)" in status.stdout

    def test_a_migration_that_raises_fails_naming_its_exception_and_changes_nothing(
            self, controller, controller_hosts, source, cinder_dir):
        """Where the config sets log_dir (RDO's cinder-dist.conf does), cinder-manage writes
        its traceback to its log file, not to the terminal; the error names it all the same."""
        assert invoke("db-sync", "--inventory", str(controller_hosts)).returncode == 0
        parent = controller.newest_migration()
        _, _, rel = write_migration(controller.migrations, source, parent, name="raises",
                                    downgrade=False)
        text = (source / rel).read_text()
        (source / rel).write_text(re.sub(
            r"(def upgrade\([^)]*\):\n)",
            r"\1    raise RuntimeError('devloop: refused by the spec')\n", text))
        deployed = cinder_dir / rel
        try:
            assert invoke("deploy", "--inventory", str(controller_hosts)).returncode == 0

            result = invoke("db-sync", "--inventory", str(controller_hosts))

            assert result.returncode == 1
            error = result.stderr.split("error: ", 1)[1]
            # (Train's sqlalchemy-migrate wraps it: cinder-manage says "Error during
            # database migration: <message>" and exits 1)
            assert error.splitlines()[0] in (
                f"sbx: cinder-manage db sync failed (exit 1) at revision {parent}: "
                f"{said}devloop: refused by the spec"
                for said in ("RuntimeError: ", "Error during database migration: ")), error
            status = invoke("status", "--inventory", str(controller_hosts))
            assert f"database  {parent}" in status.stdout
        finally:
            if deployed.exists():   # a second head would break every later db-sync
                invoke("rollback", "--inventory", str(controller_hosts))
        assert not deployed.exists()

    def test_failure_shows_cinder_manages_own_message(self, tmp_path, controller, source):
        entry = {**controller.entry(),
                 "config_files": [controller.config_files[0], "/nonexistent/cinder.conf"]}
        hosts = write_inventory(tmp_path / "bad.yaml", source, {"sbx": entry})
        result = invoke("db-sync", "--inventory", str(hosts))
        assert result.returncode == 1
        assert result.stderr.startswith("--> sbx: cinder-manage db sync\nerror: sbx: "
                                        "cinder-manage db version failed")
        assert "/nonexistent/cinder.conf" in result.stderr
        assert "Traceback" not in result.stderr.split("error:")[0]


class TestDbSyncOnALockedSqliteFile:
    """SQLite may refuse a migration with "database is locked" when a service writes at that
    moment; the sync is run again, and when it never gets through the error says why."""

    @pytest.fixture
    def short_wait(self, tmp_path, sandbox, source):
        """An inventory whose cinder-manage waits 1 s for a locked file, not the sandbox's 60."""
        conf = sandbox.root / f"short-wait-{uuid.uuid4().hex[:8]}.conf"
        conf.write_text(f"[database]\nconnection = sqlite:///{sandbox.database}?timeout=1\n")
        conf.chmod(0o644)
        entry = sandbox.controller_entry()
        entry["config_files"] = [*entry["config_files"], str(conf)]
        yield write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry}), conf
        conf.unlink()

    def test_a_sync_refused_as_locked_runs_again_and_gets_through(self, sandbox, short_wait):
        hosts, conf = short_wait
        with lock_while_syncing(sandbox.database, conf, hold_all=False) as locked:
            result = invoke("db-sync", "--inventory", str(hosts))
        assert locked.is_set(), "cinder-manage db sync never ran"
        assert result.returncode == 0, result.stderr
        assert ('SQLite refused the migration with "database is locked" (a service wrote at '
                'that moment); cinder-manage db sync again, attempt 2 of 3') in result.stderr
        assert "(already at the newest revision)" in result.stdout

    def test_a_file_locked_through_every_attempt_fails_naming_the_cause(self, sandbox,
                                                                        short_wait):
        hosts, conf = short_wait
        with lock_while_syncing(sandbox.database, conf, hold_all=True) as locked:
            result = invoke("db-sync", "--inventory", str(hosts))
        assert locked.is_set()
        assert result.returncode == 1
        error = result.stderr.split("error: ", 1)[1]
        assert error.startswith("sbx: cinder-manage db sync failed (exit 1) at revision ")
        first = error.splitlines()[0]
        assert first.endswith("(3 attempts): sqlalchemy.exc.OperationalError: "
                              "(sqlite3.OperationalError) database is locked"), first
        assert "attempt 3 of 3" in result.stderr and "Traceback" not in error


@contextlib.contextmanager
def lock_while_syncing(database: Path, conf: Path, hold_all: bool):
    """Hold an exclusive lock on ``database`` from the moment a ``db sync`` reading ``conf``
    starts: until that first cinder-manage process ends (so that it fails, however slowly a
    loaded machine imports it), or (``hold_all``) until the block ends."""
    locked, done = threading.Event(), threading.Event()

    def syncing() -> Path | None:
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(conf).encode() in argv and b"sync" in argv:
                return proc
        return None

    def hold_lock() -> None:
        first = None
        while not done.is_set() and first is None:
            first = syncing()
            time.sleep(0.02)
        if first is None:
            return
        db = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            locked.set()
            while not done.is_set() and (hold_all or first.exists()):
                time.sleep(0.05)
            db.execute("ROLLBACK")
        finally:
            db.close()

    thread = threading.Thread(target=hold_lock, daemon=True)
    thread.start()
    try:
        yield locked
    finally:
        done.set()
        thread.join(60)


class TestStatusRestartLogs:
    def test_status_shows_the_real_service_pid_api_and_revision(self, controller, controller_hosts):
        result = invoke("status", "--inventory", str(controller_hosts))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "sbx:"
        assert f"{controller.running_state}, pid {controller.service_pid()}, " in lines[1]
        assert lines[2].startswith("  api       answering, HTTP 300")
        assert lines[3].startswith("  database  ")
        # the systemd kinds' entries name no service: the controller was asked
        found = {"supervisord": [],
                 "rdo": ["rdo (/etc/systemd/system/devstack@c-api.service absent; "
                         "hosts.yaml does not say)"],
                 "devstack": ["devstack (/etc/systemd/system/devstack@c-api.service found; "
                              "hosts.yaml does not say)"]}
        found["legacy"] = found["rdo"]
        assert [line[len("  layout    "):] for line in lines
                if line.startswith("  layout    ")] == found[controller.kind]

    def test_a_stopped_service_is_reported_and_restart_brings_it_back(self, controller,
                                                                       controller_hosts):
        controller.stop_service()
        stopped = invoke("status", "--inventory", str(controller_hosts))
        assert f"service   {controller.stopped_state}" in stopped.stdout
        assert "api       NOT answering" in stopped.stdout

        restarted = invoke("restart", "--inventory", str(controller_hosts))

        assert restarted.returncode == 0, restarted.stderr
        assert controller.service_pid()
        assert api_status(controller.api_url) == 300

    def test_logs_show_the_lines_cinder_api_wrote(self, controller, controller_hosts):
        marker = f"devloop-marker-{uuid.uuid4().hex[:8]}"
        api_status(controller.api_url + marker)
        result = invoke("logs", "--inventory", str(controller_hosts), "-n", "20")
        assert result.returncode == 0, result.stderr
        assert marker in result.stdout
        assert len(result.stdout.splitlines()) == 20


    @pytest.mark.parametrize("controller", kinds(service_manager="systemd"),
                             indirect=True)   # systemd's journal
    def test_logs_journal_reads_the_units_journal(self, controller, controller_hosts):
        controller.restart_service()
        result = invoke("logs", "--inventory", str(controller_hosts), "--journal", "-n", "200")
        assert result.returncode == 0, result.stderr
        assert f"--> sbx: journal of {controller.service}" in result.stderr
        assert f"Started {controller.service}" in result.stdout
        if controller.kind == "rdo":   # Train's cinder-api writes only to its --logfile
            assert "cinder-api[" in result.stdout
        # leave the API answering for the next spec (a loaded machine takes seconds)
        wait_until(lambda: answers(controller.api_url), timeout=120, interval=0.2)

    def test_logs_journal_on_a_supervisord_controller_is_one_line_and_exit_2(self, hosts):
        result = invoke("logs", "--inventory", str(hosts), "--journal")
        assert result.returncode == 2
        assert result.stderr.startswith("error: sbx: --journal reads systemd's journal; this "
                                        "controller's service_manager is supervisord")
        assert len(result.stderr.strip().splitlines()) == 1


class TestRefusals:
    def other_host_key(self, tmp_path, sandbox) -> Path:
        key = tmp_path / "impostor"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        kind, blob = (Path(f"{key}.pub").read_text().split()[:2])
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{sandbox.ssh_port} {kind} {blob}\n")
        return known

    def test_a_host_key_that_does_not_match_refuses_and_sends_nothing(
            self, tmp_path, sandbox, source):
        cinder_dir = SupervisordController(sandbox).cinder_dir
        _, rel = probe_file(source, "STOLEN = True\n")
        entry = {**sandbox.controller_entry(),
                 "known_hosts": str(self.other_host_key(tmp_path, sandbox))}
        hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})

        result = invoke("deploy", "--inventory", str(hosts))

        assert result.returncode == 1
        assert result.stderr.startswith("error: sbx (root@127.0.0.1:")
        assert "host key does not match the one pinned in" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (cinder_dir / rel).exists()

    def test_a_host_missing_from_known_hosts_is_refused_with_a_keyscan_hint(
            self, tmp_path, sandbox, source):
        (tmp_path / "empty_known_hosts").write_text("")
        entry = {**sandbox.controller_entry(), "known_hosts": str(tmp_path / "empty_known_hosts")}
        hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})
        result = invoke("status", "--inventory", str(hosts))
        assert result.returncode == 1
        assert "host key is not pinned in" in result.stderr
        assert f"ssh-keyscan -p {sandbox.ssh_port} 127.0.0.1" in result.stderr

    def test_a_refused_connection_says_so(self, tmp_path, sandbox, source):
        entry = {**sandbox.controller_entry(), "port": free_port()}
        hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})
        result = invoke("deploy", "--inventory", str(hosts))
        assert result.returncode == 1
        assert "connection refused" in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_key_the_controller_does_not_accept_is_a_failed_login(self, tmp_path, sandbox,
                                                                    source):
        key = tmp_path / "stranger"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        entry = {**sandbox.controller_entry(), "identity_file": str(key)}
        hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})
        result = invoke("status", "--inventory", str(hosts))
        assert result.returncode == 1
        assert "login refused for user 'root'" in result.stderr

    def test_an_address_that_does_not_resolve_says_so(self, tmp_path, sandbox, source):
        entry = {**sandbox.controller_entry(), "address": "no-such-host.invalid"}
        hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})
        result = invoke("status", "--inventory", str(hosts))
        assert result.returncode == 1
        assert "cannot resolve address 'no-such-host.invalid'" in result.stderr


@pytest.mark.parametrize("text, expected", [
    ("controllers:\n  c1:\n    address: 127.0.0.1\n    port: twenty-two\n",
     "error: hosts.yaml: controllers.c1.port: expected an integer, got 'twenty-two'"),
    ("controllers: [\n", "error: hosts.yaml: line 3, column 1: invalid YAML"),
    ("controllers:\n  c1:\n    address: h\n    servce: x\n",
     "error: hosts.yaml: controllers.c1.servce: unknown key"),
])
def test_a_broken_inventory_gives_one_line_per_problem_and_exit_2(tmp_path, text, expected):
    (tmp_path / "cinder").mkdir()
    (tmp_path / "hosts.yaml").write_text("source: cinder\n" + text)
    result = invoke("deploy", "--inventory", "hosts.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(expected)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_unknown_controller_name_exits_2(hosts):
    result = invoke("status", "--inventory", "hosts.yaml", "--host", "nope", cwd=hosts.parent)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: hosts.yaml: --host: unknown controller 'nope' (known: sbx)")


def test_logs_follow_prints_new_lines_until_ctrl_c_and_leaves_no_tail_behind(controller,
                                                                            controller_hosts):
    import sys

    import pexpect

    from tests.support import PROJECT_ROOT

    child = pexpect.spawn(sys.executable, ["-m", "invoke", "--search-root", str(PROJECT_ROOT),
                                           "logs", "--follow", "-n", "1",
                                           "--inventory", str(controller_hosts)],
                          encoding="utf-8", timeout=30)
    try:
        # the API log file, or the unit's journal where there is none (DevStack)
        child.expect_exact("api.log" if controller.log_file else f"journal of {controller.service}")
        marker = f"devloop-follow-{uuid.uuid4().hex[:8]}"
        for _ in range(50):                      # until tail is following
            api_status(controller.api_url + marker)
            if child.expect([marker, pexpect.TIMEOUT], timeout=0.5) == 0:
                break
        else:
            raise AssertionError("the followed log never showed the request")
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus in (0, 130)

    def tails() -> list[str]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:1] == [b"tail"] and controller.log_file.encode() in cmd or \
                    cmd[:1] == [b"journalctl"] and controller.service.encode() in cmd:
                found.append(proc.name)
        return found

    from tests.support import wait_until
    wait_until(lambda: not tails(), timeout=10)
