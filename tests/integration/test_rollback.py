"""Rollback restores byte-identical files, guards the database, and can fire by itself.

On both kinds of controller: the supervisord sandbox and the rdo controller.
"""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import invoke

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


def heads(controller) -> list[str]:
    return controller.run(
        [controller.python, "-c", "import sys; from alembic.script import ScriptDirectory;"
         "print(*ScriptDirectory(sys.argv[1]).get_heads())",
         f"{controller.cinder_path}/db/migrations"]).stdout.split()


def db_version(controller) -> str:
    manage = str(Path(controller.cinder_api).with_name("cinder-manage"))
    config = [arg for conf in controller.config_files for arg in ("--config-file", conf)]
    result = controller.run([manage, *config, "db", "version"], user="cinder")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


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

    def test_an_unknown_id_is_refused_and_nothing_changes(self, controller, hosts):
        result = invoke("rollback", "--inventory", str(hosts), "--to", "nope")
        assert result.returncode == 1
        assert result.stderr.startswith("error: no applied deploy 'nope'; applied: ")


class TestRollbackAndTheDatabase:
    def migration(self, source: Path, parent: str, downgrade: bool) -> tuple[str, Path]:
        revision = uuid.uuid4().hex[:12]
        table = f"devloop_{revision}"
        body = [
            f'"""devloop test table\n\nRevision ID: {revision}\nRevises: {parent}\n"""',
            "from alembic import op", "import sqlalchemy as sa", "",
            f"revision = '{revision}'", f"down_revision = '{parent}'",
            "branch_labels = None", "depends_on = None", "", "",
            "def upgrade():",
            f"    op.create_table('{table}', sa.Column('id', sa.Integer, primary_key=True))",
        ]
        if downgrade:
            body += ["", "", "def downgrade():", f"    op.drop_table('{table}')"]
        path = source / "db" / "migrations" / "versions" / f"{revision}_devloop_test.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(body) + "\n")
        return revision, path

    def test_a_migration_with_downgrade_is_taken_back_first(self, controller, hosts, source,
                                                           cinder_dir):
        assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
        (parent,) = heads(controller)
        revision, path = self.migration(source, parent, downgrade=True)
        loop = invoke("loop", "--inventory", str(hosts))
        assert loop.returncode == 0, loop.stderr
        assert f"{parent} -> {revision}" in loop.stderr
        assert db_version(controller) == revision

        result = invoke("rollback", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert f"database back to {parent} first" in result.stderr
        assert db_version(controller) == parent
        assert not (cinder_dir / path.relative_to(source)).exists()

    def test_a_migration_without_downgrade_is_refused_and_nothing_changes(
            self, controller, hosts, source, cinder_dir):
        assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
        (parent,) = heads(controller)
        revision, path = self.migration(source, parent, downgrade=False)
        assert invoke("loop", "--inventory", str(hosts)).returncode == 0
        deployed = cinder_dir / path.relative_to(source)
        pid = controller.service_pid()
        try:
            result = invoke("rollback", "--inventory", str(hosts))

            assert result.returncode == 1
            assert "refusing to roll back" in result.stderr
            assert "Nothing was changed." in result.stderr
            assert deployed.exists()
            assert db_version(controller) == revision
            assert controller.service_pid() == pid
        finally:
            # leave a sandbox whose migrations and database agree again
            deployed.unlink()
            controller.host_path(controller.database_path).unlink()
            assert invoke("db-sync", "--inventory", str(hosts)).returncode == 0
