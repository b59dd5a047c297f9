"""The Train variant on MariaDB: db sync, Train's MySQL walk, models sync, smoke.

Same mariadbd fixture as test_mariadb.py (Debian's, own datadir, socket and
port on 127.0.0.1); the Train venv has PyMySQL, as a Train controller does.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.openstack.smoke import run_smoke
from tests.cinder_patch.cinder_api import PROJECT_ID, TOKEN, db_manage, write_config
from tests.cinder_patch.cinder_env import CinderEnv, make_world_traversable_dir
from tests.cinder_patch.mariadb import MariaDB
from tests.cinder_patch.test_in_cinder import _explain
from tests.cinder_patch.test_train_migrations import (  # noqa: F401 (a fixture)
    VERSION, check_models_sync, pristine_train, run_unittest)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def train_db(mariadb: MariaDB) -> str:
    return mariadb.create_database("cinder_train", "cinder_train", "train-pw")


@pytest.fixture(scope="module")
def admin_url(mariadb: MariaDB) -> str:
    """What oslo.db's opportunistic MySQL tests use to make their databases."""
    return mariadb.create_admin("openstack_citest", "openstack_citest")


@pytest.fixture(scope="module")
def synced(train_env: CinderEnv, train_db: str) -> Iterator[Path]:
    state = make_world_traversable_dir("cinder-train-mdb-")
    conf = write_config(train_env, state, 1, train_db)
    result = db_manage(train_env, conf, "sync")
    assert result.returncode == 0, _explain(result)
    yield conf
    shutil.rmtree(state, ignore_errors=True)


def test_db_sync_applies_133_and_db_version_reports_it(train_env: CinderEnv,
                                                       synced: Path) -> None:
    version = db_manage(train_env, synced, "version")
    assert version.returncode == 0, _explain(version)
    assert version.stdout.strip().splitlines()[-1] == str(VERSION)
    again = db_manage(train_env, synced, "sync")
    assert again.returncode == 0, _explain(again)


def test_tables_are_innodb_utf8_with_index_and_foreign_key(mariadb: MariaDB,
                                                           synced: Path) -> None:
    rows = [line.split("\t") for line in mariadb.sql(
        "SELECT table_name, engine, table_collation FROM information_schema.tables"
        " WHERE table_schema='cinder_train' AND table_name LIKE 'managed_cluster%'"
        " ORDER BY table_name").stdout.splitlines() if line]
    assert sorted((name, engine) for name, engine, _ in rows) == [
        ("managed_cluster_metadata", "InnoDB"), ("managed_clusters", "InnoDB")]
    assert all(collation.startswith("utf8mb3") for _, _, collation in rows)
    fks = mariadb.sql(
        "SELECT column_name, referenced_table_name, referenced_column_name"
        " FROM information_schema.key_column_usage WHERE table_schema='cinder_train'"
        " AND table_name='managed_cluster_metadata'"
        " AND referenced_table_name IS NOT NULL").stdout.split()
    assert fks == ["cluster_id", "managed_clusters", "id"]
    assert "managed_clusters_deleted_name_idx" in mariadb.sql(
        "SHOW INDEX FROM cinder_train.managed_clusters").stdout


def test_trains_own_mysql_migration_tests_pass_with_the_variant(
        train_env: CinderEnv, admin_url: str) -> None:
    """Train's opportunistic MySQL walk (and InnoDB check), plus ours."""
    result = run_unittest(
        train_env,
        "cinder.tests.unit.db.test_migrations.TestMysqlMigrations",
        "cinder.tests.unit.db.test_cluster_manage_migrations."
        "TestManagedClusterMysqlMigrations",
        OS_TEST_DBAPI_ADMIN_CONNECTION=admin_url)
    assert result.returncode == 0, _explain(result)
    assert "skipped" not in result.stderr, _explain(result)
    ran = re.search(r"^Ran (\d+) tests? ", result.stderr, re.MULTILINE)
    assert ran and int(ran.group(1)) == 4, _explain(result)


def test_variant_models_match_migration_133_beyond_trains_baseline_on_mysql(
        train_env: CinderEnv, pristine_train: CinderEnv, admin_url: str,
        tmp_path: Path) -> None:
    check_models_sync(train_env, pristine_train, "MySQL", tmp_path,
                      OS_TEST_DBAPI_ADMIN_CONNECTION=admin_url)


def test_smoke_passes_with_train_cinder_api_on_mariadb(
        start_api_on, train_env: CinderEnv, train_db: str, synced: Path) -> None:
    api = start_api_on(train_env, connection=train_db)
    report = run_smoke(api.base_url, project_id=PROJECT_ID, token=TOKEN)
    assert report.ok, report.format()
    assert report.summary().startswith("smoke PASSED: 10/10 checks")
