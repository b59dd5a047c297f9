"""Tests that need cinder itself, run in the patched env as subprocesses.

* the in_cinder/ modules (DB API, cluster_api), with the env's pytest, in
  the env of each release (in_cinder/release.py finds the DB modules);
* Cinder 29.0.0's own DB tests (cinder/tests/unit/db, which now includes
  the patch's migration walk), with unittest as Cinder's stestr would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_env import CinderEnv

IN_CINDER = Path(__file__).resolve().parent / "in_cinder"
REVISION = "48d74fa840ed"
UPSTREAM_HEAD = "9c74c1c6971f"


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return (f"exit {result.returncode}: {' '.join(result.args)}\n"
            f"--- stdout ---\n{result.stdout[-12000:]}\n"
            f"--- stderr ---\n{result.stderr[-12000:]}")


@pytest.mark.parametrize("module", sorted(
    path.name for path in IN_CINDER.glob("test_*.py")))
def test_in_cinder_module_passes(api_env: CinderEnv, module: str) -> None:
    """Each release's patched env (29.0.0, and Train under Python 2.7)."""
    result = api_env.run(
        [api_env.python, "-m", "pytest", "-q", "-c", "pytest.ini",
         "-p", "no:cacheprovider", module], cwd=IN_CINDER)
    assert result.returncode == 0, _explain(result)
    assert " passed" in result.stdout and "skipped" not in result.stdout, \
        _explain(result)


def run_unittest(env: CinderEnv, *args: str,
                 **extra_env: str) -> subprocess.CompletedProcess[str]:
    return env.run([env.python, "-m", "unittest", *args, "-v"],
                   cwd=env.overlay, timeout=600, **extra_env)


def test_cinders_own_test_migrations_passes_alone(cinder_env: CinderEnv
                                                  ) -> None:
    """Models-vs-migrations sync, single head, and upstream's walk."""
    result = run_unittest(cinder_env, "cinder.tests.unit.db.test_migrations")
    assert result.returncode == 0, _explain(result)
    assert "test_models_sync (cinder.tests.unit.db.test_migrations." \
           "TestModelsSyncSQLite" in result.stderr
    assert "test_walk_versions (cinder.tests.unit.db.test_migrations." \
           "TestMigrationsWalkSQLite" in result.stderr


def test_patch_migration_walk_passes(cinder_env: CinderEnv) -> None:
    result = run_unittest(
        cinder_env, "cinder.tests.unit.db.test_cluster_manage_migrations")
    assert result.returncode == 0, _explain(result)
    assert "TestManagedClusterMigrationsWalkSQLite" in result.stderr


def test_all_of_cinders_db_unit_tests_pass(cinder_env: CinderEnv) -> None:
    result = run_unittest(cinder_env, "discover", "-s",
                          "cinder/tests/unit/db", "-t", ".")
    assert result.returncode == 0, _explain(result)


def test_alembic_has_one_head_the_new_revision(cinder_env: CinderEnv
                                               ) -> None:
    script = (
        "from alembic import script\n"
        "from cinder.db import migration\n"
        "d = script.ScriptDirectory.from_config(migration._find_alembic_conf())\n"
        "print(' '.join(d.get_heads()))\n"
        f"print(d.get_revision('{REVISION}').down_revision)\n")
    result = cinder_env.run([cinder_env.python, "-c", script])
    assert result.returncode == 0, _explain(result)
    assert result.stdout.split() == [REVISION, UPSTREAM_HEAD]


def test_cinder_manage_db_sync_applies_the_revision_on_sqlite(
        cinder_env: CinderEnv, tmp_path: Path) -> None:
    from tests.cinder_patch.cinder_api import db_manage, write_config

    conf = write_config(cinder_env, tmp_path, 1,
                        f"sqlite:///{tmp_path / 'cinder.sqlite'}")
    sync = db_manage(cinder_env, conf, "sync")
    assert sync.returncode == 0, _explain(sync)
    version = db_manage(cinder_env, conf, "version")
    assert version.returncode == 0, _explain(version)
    assert version.stdout.strip().splitlines()[-1] == REVISION
