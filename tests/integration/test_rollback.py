"""Rollback restores byte-identical files, guards the database, and can fire by itself.

On every kind of controller: the supervisord sandbox, the rdo controller and
the legacy one. Taking a migration back is alembic's (Cinder 2023.1 and
later); Train's sqlalchemy-migrate cannot downgrade, so there a rollback
past an applied migrate script is always refused.
"""
from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.controllers import kinds
from tests.support import invoke, write_migration

pytestmark = pytest.mark.integration


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hosts(controller_hosts) -> Path:
    return controller_hosts


@pytest.fixture
def cinder_dir(controller) -> Path:
    return controller.cinder_dir


def api_answers(controller) -> bool:
    try:
        with urllib.request.urlopen(controller.api_url, timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def break_cinder(source: Path) -> str:
    """Overlay Cinder's own cinder/api/__init__.py with one that raises at import.

    (It compiles, so the pre-send check lets it through; cinder-api cannot start.)
    """
    (source / "api").mkdir(exist_ok=True)
    (source / "api" / "__init__.py").write_text("raise RuntimeError('broken by a test')\n")
    return "api/__init__.py"


def db_version(controller) -> str:
    manage = str(Path(controller.cinder_api).with_name("cinder-manage"))
    config = [arg for conf in controller.config_files for arg in ("--config-file", conf)]
    result = controller.run([manage, *config, "db", "version"], user=controller.service_user)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


UNIT = "openstack-cinder-api.service"


def unit_state(controller) -> str:
    return controller.run(["systemctl", "show", UNIT,
                           "--property=ActiveState,Result,NRestarts"]).stdout.strip()


@pytest.fixture
def low_start_limit(controller):
    """systemd gives up on the unit after two failed starts (the default takes five in 10 s,
    which a crash at import, 2 s in, never reaches)."""
    drop_in = controller.host_path(f"/etc/systemd/system/{UNIT}.d/zz-test-start-limit.conf")
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text("[Unit]\nStartLimitIntervalSec=120\nStartLimitBurst=2\n")
    controller.run(["systemctl", "daemon-reload"])
    yield
    drop_in.unlink()
    controller.run(["systemctl", "daemon-reload"])
    controller.run(["systemctl", "reset-failed", UNIT])


class TestRollback:
    def test_a_broken_deploy_is_undone_byte_for_byte_and_the_api_serves_again(
            self, controller, hosts, source, cinder_dir):
        rel = break_cinder(source)
        (source / "devloop_it").mkdir()
        added = f"devloop_it/added_{uuid.uuid4().hex[:6]}.py"
        (source / added).write_text("ADDED = True\n")
        original = sha(cinder_dir / rel)

        deployed = invoke("deploy", "--inventory", str(hosts), "--timeout", "15")
        assert deployed.returncode == 1
        assert "error: sbx:" in deployed.stderr
        assert not api_answers(controller)

        result = invoke("rollback", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "restored 1 file(s), removed 1" in result.stderr
        assert sha(cinder_dir / rel) == original
        assert not (cinder_dir / added).exists()
        assert api_answers(controller)

    # uWSGI's master stays up when Cinder fails to import: systemd never gives up on it
    @pytest.mark.parametrize("controller",
                             kinds(service_manager="systemd", app_server="cinder-api"),
                             indirect=True)
    def test_rollback_restarts_a_unit_that_systemd_gave_up_on(self, controller, hosts, source,
                                                              cinder_dir, low_start_limit):
        rel = break_cinder(source)
        original = sha(cinder_dir / rel)
        assert invoke("deploy", "--inventory", str(hosts), "--timeout", "5").returncode == 1
        deadline = time.monotonic() + 60      # Restart=on-failure: retries, then gives up
        while "ActiveState=failed" not in unit_state(controller):
            assert time.monotonic() < deadline, unit_state(controller)
            time.sleep(0.2)
        refused = controller.run(["systemctl", "start", UNIT])
        assert refused.returncode != 0                    # what a developer meets by hand

        result = invoke("rollback", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "systemd refused to restart openstack-cinder-api.service" in result.stderr
        assert sha(cinder_dir / rel) == original
        assert api_answers(controller)

    def test_rollback_on_failure_undoes_the_deploy_by_itself(self, controller, hosts, source,
                                                             cinder_dir):
        rel = break_cinder(source)
        original = sha(cinder_dir / rel)

        result = invoke("deploy", "--inventory", str(hosts), "--timeout", "15",
                        "--rollback-on-failure")

        assert result.returncode == 1
        assert "was rolled back (1 file(s) restored, 0 removed); the API answers again" \
            in result.stderr
        assert sha(cinder_dir / rel) == original
        assert api_answers(controller)
        if controller.app_server == "uwsgi":
            # its master stays up and answers 500; the journal says why, and is shown
            assert "uWSGI's worker loaded no application (Cinder failed to import)" \
                in result.stderr
            assert "RuntimeError: broken by a test" in result.stderr

    def test_to_id_undoes_every_later_deploy_and_keeps_that_one(self, controller, hosts, source,
                                                                cinder_dir):
        probe = source / "devloop_it" / f"layers_{uuid.uuid4().hex[:6]}.py"
        probe.parent.mkdir()
        ids = []
        records = controller.host_path(controller.state_dir) / "deploys"
        for version in (1, 2, 3):
            probe.write_text(f"V = {version}\n")
            known = {p.name for p in records.iterdir()} if records.exists() else set()
            assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
            # the new record (two deploys in one second do not sort by time)
            (new_id,) = {p.name for p in records.iterdir()} - known
            ids.append(new_id)
        rel = probe.relative_to(source)

        result = invoke("rollback", "--inventory", str(hosts), "--to", ids[0], "--no-restart")

        assert result.returncode == 0, result.stderr
        assert (cinder_dir / rel).read_text() == "V = 1\n"
        record = json.loads((controller.host_path(controller.state_dir) / "deploys" / ids[2]
                             / "record.json").read_text())
        assert record["state"] == "rolled back"

    def test_a_damaged_backup_is_refused_and_nothing_changes(self, controller, hosts, source,
                                                             cinder_dir):
        rel = f"devloop_it/kept_{uuid.uuid4().hex[:6]}.py"
        (source / "devloop_it").mkdir()
        (source / rel).write_text("V = 1\n" + "# old\n" * 2000)
        records = controller.host_path(controller.state_dir) / "deploys"
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
        (source / rel).write_text("V = 2\n")
        known = {p.name for p in records.iterdir()}
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
        (deploy_id,) = {p.name for p in records.iterdir()} - known
        backup = records / deploy_id / "backup" / rel
        intact = backup.read_bytes()
        with backup.open("r+b") as handle:       # as a disk that filled while it was written
            handle.truncate(8192)
        try:
            result = invoke("rollback", "--inventory", str(hosts), "--no-restart")

            assert result.returncode == 1
            assert [line for line in result.stderr.splitlines() if "error" in line] == [
                f"error: sbx: refusing to roll back {deploy_id}: the backup of cinder/{rel} is "
                f"damaged ({controller.state_dir}/deploys/{deploy_id}/backup/{rel}: 8192 bytes "
                f"with sha256 {hashlib.sha256(intact[:8192]).hexdigest()[:12]}, recorded "
                f"{len(intact)} bytes with sha256 {hashlib.sha256(intact).hexdigest()[:12]}); "
                f"nothing was changed"]
            assert "Traceback" not in result.stderr
            assert (cinder_dir / rel).read_text() == "V = 2\n"
            record = json.loads((records / deploy_id / "record.json").read_text())
            assert record["state"] == "applied"
        finally:
            backup.write_bytes(intact)
        result = invoke("rollback", "--inventory", str(hosts), "--no-restart")
        assert result.returncode == 0, result.stderr
        assert (cinder_dir / rel).read_bytes() == intact

    def test_an_unknown_id_is_refused_and_nothing_changes(self, controller, hosts):
        result = invoke("rollback", "--inventory", str(hosts), "--to", "nope")
        assert result.returncode == 1
        assert result.stderr.startswith("error: no applied deploy 'nope'; applied: ")


class TestRollbackAndTheDatabase:
    def migration(self, controller, source: Path, parent: str,
                  downgrade: bool) -> tuple[str, Path]:
        """A migration after ``parent`` that creates a table, in the kind's own system."""
        revision, _, rel = write_migration(controller.migrations, source, parent, name="test",
                                           downgrade=downgrade)
        return revision, source / rel

    @pytest.mark.parametrize("controller", kinds(migrations="alembic"), indirect=True)
    def test_a_migration_with_downgrade_is_taken_back_first(self, controller, hosts, source,
                                                           cinder_dir):
        assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
        parent = controller.newest_migration()
        revision, path = self.migration(controller, source, parent, downgrade=True)
        deployed = cinder_dir / path.relative_to(source)
        try:
            loop = invoke("loop", "--inventory", str(hosts))
            assert loop.returncode == 0, loop.stderr
            assert f"{parent} -> {revision}" in loop.stderr
            assert db_version(controller) == revision

            result = invoke("rollback", "--inventory", str(hosts))

            assert result.returncode == 0, result.stderr
            assert f"database back to {parent} first" in result.stderr
            assert db_version(controller) == parent
            assert not deployed.exists()
        finally:
            if deployed.exists():   # a second head would break every later db-sync
                invoke("rollback", "--inventory", str(hosts))

    def test_a_migration_without_downgrade_is_refused_and_nothing_changes(
            self, controller, hosts, source, cinder_dir):
        assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
        parent = controller.newest_migration()
        revision, path = self.migration(controller, source, parent, downgrade=False)
        deployed = cinder_dir / path.relative_to(source)
        try:
            loop = invoke("loop", "--inventory", str(hosts))   # sees the new migration
            assert loop.returncode == 0, loop.stderr
            assert "--> sbx: db-sync (" in loop.stderr and f"{parent} -> {revision}" in loop.stderr
            assert db_version(controller) == revision
            pid = controller.service_pid()

            result = invoke("rollback", "--inventory", str(hosts))

            assert result.returncode == 1
            assert "refusing to roll back" in result.stderr
            if controller.migrations == "sqlalchemy-migrate":
                assert f"the database has applied migration {revision}" in result.stderr
                assert "cannot downgrade" in result.stderr
            assert "Nothing was changed." in result.stderr
            assert deployed.exists()
            assert db_version(controller) == revision
            assert controller.service_pid() == pid
        finally:
            # leave a controller whose migrations and database agree again
            deployed.unlink(missing_ok=True)
            controller.empty_database()
            assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
