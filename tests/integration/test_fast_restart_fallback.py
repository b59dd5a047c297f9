"""Fast restart falls back to a full restart, and says why: the cases beyond pure ``cinder/``.

Issue 12: a changed dependency, a dead warm parent, a config change or a
migration restarts the service normally. ``test_fast_restart.py`` proves
the library, config and dead-parent cases on the supervisord sandbox.
Here:

- a migration: ``invoke loop`` bringing one migrates, restarts in full,
  serves the new code and is fast again next time (supervisord, rdo); a
  deploy sending one names it (every kind: Train's sqlalchemy-migrate
  scripts on the legacy controller too);
- the library, config and dead-parent cases on the rdo controller, where
  the fallback is a ``systemctl restart`` of the unit whose ExecStart the
  drop-in replaced, and systemd itself restarts a killed warm parent.

Each spec deploys its own overlay (a probe extension whose alias changes
with every deploy, so "serving" means the API lists the new alias) with
fast mode on. Afterwards ``invoke rollback --to`` the newest deploy from
before the spec undoes every deploy it made (taking its migration back
with the migration's ``downgrade()`` first), fast mode is turned off, and
the fixture checks that the shared session controller is as it was.
"""
from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_api import Client
from tests.integration.controllers import kinds
from tests.support import invoke, wait_until, write_inventory, write_migration

pytestmark = pytest.mark.integration

PROBE = Path("api/contrib/devloop_fallback_ext.py")
FAST = "fast restart: cinder-api pid"
FULL = "full restart instead of a fast one: "


# --- the controller's side, read from this machine ------------------------------------

def warm_state(controller) -> dict:
    return json.loads(controller.host_path(
        f"{controller.state_dir}/fast/run/warm.json").read_text())


def newest_applied_deploy(controller) -> str:
    """The id of the newest deploy still applied on the controller ("original": none)."""
    applied = []
    for path in controller.host_path(controller.state_dir).glob("deploys/*/record.json"):
        record = json.loads(path.read_text())
        if record.get("state") in ("applied", "applying"):
            applied.append(path.parent.name)
    return max(applied, default="original")


def database(controller) -> tuple[str | None, set[str]]:
    """The revision the database records (alembic's, or sqlalchemy-migrate's version),
    and its tables; read-only."""
    path = controller.host_path(controller.database_path)
    version = ("SELECT version_num FROM alembic_version" if controller.migrations == "alembic"
               else "SELECT version FROM migrate_version")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = db.execute(version).fetchall()
    return (str(rows[0][0]) if rows else None), tables


def ready_warm_parent(controller) -> dict:
    """The warm parent once it serves, and it is the service manager's process."""
    return wait_until(lambda: (lambda s: s if s["state"] == "ready" and
                               s["pid"] == controller.service_pid() else None)(
        warm_state(controller)), timeout=120)


# --- the overlay -------------------------------------------------------------------

def probe(source: Path) -> str:
    """(Re)write the probe extension with a new alias; return the alias.

    The module is one cinder-api imports at start; no f-strings (any Python).
    """
    alias = f"devloop-fallback-{uuid.uuid4().hex[:8]}"
    path = source / PROBE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("from cinder.api import extensions\n\n\n"
                    "class Devloop_fallback_ext(extensions.ExtensionDescriptor):\n"
                    '    """Fast restart fallback probe."""\n\n'
                    "    name = 'DevloopFallback'\n    alias = '%s'\n"
                    "    updated = '2026-11-27T00:00:00+00:00'\n" % alias)
    return alias


def migration(controller, source: Path, parent: str) -> tuple[str, str, str]:
    """A migration after ``parent`` creating a table, in the kind's own system (alembic's
    with a downgrade dropping it; Train's sqlalchemy-migrate has none).

    Returns (revision, table, the file's path relative to the cinder package).
    """
    return write_migration(controller.migrations, source, parent, name="fallback",
                           downgrade=controller.migrations == "alembic")


def serves(controller, alias: str) -> bool:
    access = controller.api()
    reply = Client(access.base_url, access.project_id, access.token).get(
        f"/extensions/{alias}")
    return reply.status == 200 and reply.json["extension"]["alias"] == alias


def run(hosts: Path, *task: str) -> str:
    """``invoke TASK... --inventory HOSTS``; it must succeed; its stderr."""
    result = invoke(*task, "--inventory", str(hosts))
    assert result.returncode == 0, result.stderr
    return result.stderr


def restart_line(stderr: str) -> str:
    """The line that says how the API was restarted (fast, or full and why)."""
    lines = [line for line in stderr.splitlines() if FAST in line or FULL in line]
    assert len(lines) == 1, stderr
    return lines[0]


# --- fast mode on, and everything taken back afterwards ----------------------------------

@pytest.fixture
def fast_hosts(controller, source, tmp_path):
    """An inventory deploying ``source`` to ``controller`` (database at its newest
    revision, fast mode on); afterwards every deploy the spec made is rolled back
    and fast mode is off again."""
    hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": controller.entry()})
    run(hosts, "db-sync")
    before, revision = newest_applied_deploy(controller), database(controller)[0]
    run(hosts, "fast-restart", "on")
    try:
        yield hosts
    finally:
        undo = invoke("rollback", "--inventory", str(hosts), "--to", before)
        off = invoke("fast-restart", "off", "--inventory", str(hosts))
        # (a spec that failed before its first deploy leaves nothing to undo)
        nothing = "nothing to roll back" in undo.stderr or "already the newest" in undo.stderr
        assert undo.returncode == 0 or nothing, undo.stderr
        assert off.returncode == 0, off.stderr
        # the controller as it was: no probe, no test migration, the same revision
        assert not (controller.cinder_dir / PROBE).exists()
        assert not list(controller.cinder_dir.glob("db/**/versions/*_devloop_fallback.py"))
        assert database(controller)[0] == revision


# (alembic's only: the spec's migration is applied, and only alembic can take it back)
@pytest.mark.parametrize("controller", kinds(migrations="alembic", fast_restart=True),
                         indirect=True)
class TestAMigration:
    def test_a_loop_that_brings_one_restarts_in_full_migrates_and_serves_the_new_code(
            self, controller, fast_hosts, source):
        parent = controller.newest_migration()
        first = probe(source)
        assert FAST in restart_line(run(fast_hosts, "loop"))      # pure cinder/: fast
        assert serves(controller, first)
        warm = warm_state(controller)["pid"]
        assert controller.service_pid() == warm

        revision, table, _ = migration(controller, source, parent)
        alias = probe(source)
        stderr = run(fast_hosts, "loop")

        assert "db-sync (" in stderr and f"{parent} -> {revision}" in stderr, stderr
        assert restart_line(stderr).endswith(FULL + "the database was migrated"), stderr
        version, tables = database(controller)
        assert version == revision and table in tables
        assert serves(controller, alias) and not serves(controller, first)
        # a new warm parent, started by the service manager: fast mode is still on
        state = ready_warm_parent(controller)
        assert state["pid"] != warm
        status = invoke("status", "--inventory", str(fast_hosts)).stdout
        assert f"restart   fast: warm parent pid {state['pid']}" in status, status
        assert f"database  {revision} (newest migration)" in status, status

        # and the next pure cinder/ deploy is fast again, from that parent
        again = probe(source)
        assert FAST in restart_line(run(fast_hosts, "loop"))
        assert serves(controller, again)
        assert controller.service_pid() == state["pid"]
        assert warm_state(controller)["generation"] == state["generation"] + 1


@pytest.mark.parametrize("controller", kinds(fast_restart=True), indirect=True)
class TestAMigrationFile:
    """Every kind (``controller``): Train's sqlalchemy-migrate scripts too."""

    def test_a_deploy_that_sends_one_restarts_in_full_and_names_it(
            self, controller, fast_hosts, source):
        parent = controller.newest_migration()
        warm = warm_state(controller)["pid"]
        _, table, rel = migration(controller, source, parent)
        alias = probe(source)

        stderr = run(fast_hosts, "deploy")              # no db-sync: only the file changed

        assert restart_line(stderr).endswith(FULL + f"a migration changed (cinder/{rel})"), \
            stderr
        assert serves(controller, alias)
        assert table not in database(controller)[1]
        assert ready_warm_parent(controller)["pid"] != warm


@pytest.mark.parametrize("controller", ["rdo"], indirect=True)
class TestOnSystemd:
    """What ``test_fast_restart.py`` proves on supervisord, on a systemd unit:
    the fallback restarts the unit, and the drop-in's new warm parent is its MainPID."""

    def test_a_changed_config_file_falls_back_to_a_restart_of_the_unit(
            self, controller, fast_hosts, source):
        name = controller.config_files[-1]          # /etc/cinder/cinder.conf
        conf = controller.host_path(name)
        content = conf.read_bytes()
        warm = warm_state(controller)["pid"]
        conf.write_bytes(content + b"# a comment: the file changed\n")
        try:
            alias = probe(source)
            stderr = run(fast_hosts, "deploy")
        finally:
            conf.write_bytes(content)                # (same inode, owner and mode)
        assert restart_line(stderr).endswith(
            FULL + f"{name} changed since the warm parent started"), stderr
        assert serves(controller, alias)
        assert ready_warm_parent(controller)["pid"] != warm

    def test_a_changed_library_falls_back_to_a_restart_of_the_unit(
            self, controller, fast_hosts, source):
        modules = json.loads(controller.host_path(
            f"{controller.state_dir}/fast/run/modules.json").read_text())
        name = next(path for path in sorted(modules)
                    if "/routes/" in path and path.endswith(".py"))
        library = controller.host_path(name)
        content, times = library.read_bytes(), library.stat()
        warm = warm_state(controller)["pid"]
        # a new file in its place, as a package upgrade does; then the old bytes and mtime back
        replacement = library.with_name(library.name + ".devloop-tmp")
        replacement.write_bytes(content + b"\n# changed outside cinder/\n")
        os.replace(replacement, library)
        try:
            alias = probe(source)
            stderr = run(fast_hosts, "deploy")
        finally:
            replacement.write_bytes(content)
            os.utime(replacement, ns=(times.st_atime_ns, times.st_mtime_ns))
            os.replace(replacement, library)
        assert restart_line(stderr).endswith(
            FULL + f"{name}, loaded by the warm parent, changed on disk"), stderr
        assert serves(controller, alias)
        assert ready_warm_parent(controller)["pid"] != warm

    def test_a_killed_warm_parent_falls_back_to_a_restart_of_the_unit_that_heals_it(
            self, controller, fast_hosts, source):
        alias = probe(source)
        warm = warm_state(controller)["pid"]
        assert controller.run(["kill", "-KILL", str(warm)]).returncode == 0
        # (systemd restarts the unit at once, Restart=on-failure; its new warm
        # parent takes seconds to warm, and until it is ready warm.json names the dead one)
        stderr = run(fast_hosts, "deploy")
        assert restart_line(stderr).endswith(
            FULL + f"the warm parent (pid {warm}) is dead"), stderr
        assert serves(controller, alias)
        state = ready_warm_parent(controller)
        assert state["pid"] != warm
        again = probe(source)
        assert FAST in restart_line(run(fast_hosts, "deploy"))
        assert serves(controller, again)
        assert controller.service_pid() == state["pid"]
