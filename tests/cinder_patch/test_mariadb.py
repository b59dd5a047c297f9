"""The patch on MariaDB: db sync, db version, Cinder's MySQL DB tests, smoke.

mariadbd is Debian's, started by the ``mariadb`` fixture on its own datadir,
socket and port on 127.0.0.1 (see mariadb.py).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from deploy.openstack.smoke import run_smoke
from tests.cinder_patch.cinder_api import PROJECT_ID, TOKEN, db_manage, write_config
from tests.cinder_patch.cinder_env import CinderEnv, make_world_traversable_dir
from tests.cinder_patch.mariadb import MariaDB
from tests.cinder_patch.test_in_cinder import REVISION, _explain, run_unittest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cinder_db(mariadb: MariaDB) -> str:
    return mariadb.create_database("cinder", "cinder", "cinder-pw")


@pytest.fixture(scope="module")
def synced(cinder_env: CinderEnv, cinder_db: str) -> Iterator[str]:
    state = make_world_traversable_dir("cinder-mdb-")
    conf = write_config(cinder_env, state, 1, cinder_db)
    result = db_manage(cinder_env, conf, "sync")
    assert result.returncode == 0, _explain(result)
    yield str(conf)
    shutil.rmtree(state, ignore_errors=True)


def test_db_sync_applies_the_revision_and_db_version_reports_it(
        cinder_env: CinderEnv, synced: str) -> None:
    from pathlib import Path

    version = db_manage(cinder_env, Path(synced), "version")
    assert version.returncode == 0, _explain(version)
    assert version.stdout.strip().splitlines()[-1] == REVISION


def test_tables_are_innodb_utf8_with_index_and_foreign_key(
        mariadb: MariaDB, synced: str) -> None:
    tables = mariadb.sql(
        "SELECT table_name, engine, table_collation FROM information_schema.tables"
        " WHERE table_schema='cinder' AND table_name LIKE 'managed_cluster%'"
        " ORDER BY table_name").stdout.split("\n")
    rows = [line.split("\t") for line in tables if line]
    assert sorted((name, engine) for name, engine, _ in rows) == [
        ("managed_cluster_metadata", "InnoDB"), ("managed_clusters", "InnoDB")]
    assert all(collation.startswith("utf8mb3") for _, _, collation in rows)
    fks = mariadb.sql(
        "SELECT column_name, referenced_table_name, referenced_column_name"
        " FROM information_schema.key_column_usage WHERE table_schema='cinder'"
        " AND table_name='managed_cluster_metadata'"
        " AND referenced_table_name IS NOT NULL").stdout.split()
    assert fks == ["cluster_id", "managed_clusters", "id"]
    indexes = mariadb.sql("SHOW INDEX FROM cinder.managed_clusters").stdout
    assert "managed_clusters_deleted_name_idx" in indexes


def test_db_sync_again_is_a_no_op(cinder_env: CinderEnv, synced: str) -> None:
    from pathlib import Path

    result = db_manage(cinder_env, Path(synced), "sync")
    assert result.returncode == 0, _explain(result)


def test_cinders_mysql_model_sync_and_walk_pass(cinder_env: CinderEnv,
                                                mariadb: MariaDB) -> None:
    """Cinder's opportunistic MySQL tests, pointed at this MariaDB."""
    admin_url = mariadb.create_admin("openstack_citest", "openstack_citest")
    result = run_unittest(
        cinder_env,
        "cinder.tests.unit.db.test_migrations.TestModelsSyncMySQL",
        "cinder.tests.unit.db.test_migrations.TestMigrationsWalkMySQL",
        "cinder.tests.unit.db.test_cluster_manage_migrations."
        "TestManagedClusterMigrationsWalkMySQL",
        OS_TEST_DBAPI_ADMIN_CONNECTION=admin_url)
    assert result.returncode == 0, _explain(result)
    assert "skipped" not in result.stderr, _explain(result)
    ran = re.search(r"^Ran (\d+) tests? ", result.stderr, re.MULTILINE)
    assert ran and int(ran.group(1)) >= 7, _explain(result)
    assert result.stderr.rstrip().endswith("OK"), _explain(result)


def test_smoke_passes_with_cinder_api_on_mariadb(start_api_on, cinder_env: CinderEnv,
                                                 cinder_db: str, synced: str) -> None:
    api = start_api_on(cinder_env, connection=cinder_db)
    report = run_smoke(api.base_url, project_id=PROJECT_ID, token=TOKEN)
    assert report.ok, report.format()


def test_create_and_update_answer_what_show_reads_back_from_mariadb(
        start_api_on, cinder_env: CinderEnv, cinder_db: str, synced: str) -> None:
    # MariaDB's DATETIME keeps no microseconds: the answers must not have any either
    from tests.cinder_patch.test_rest_api import BASE, create, unique

    client = start_api_on(cinder_env, connection=cinder_db).client()
    created = create(client, name=unique(), metadata={"k": "v"})
    assert client.get(f"{BASE}/{created['id']}").json == {"cluster": created}
    updated = client.put(f"{BASE}/{created['id']}", {"cluster": {"name": unique()}})
    assert updated.status == 200, updated
    assert client.get(f"{BASE}/{created['id']}").json == updated.json
