"""Fixtures for tests that import the patched cinder (run inside its venv).

A file-backed sqlite database, migrated once with Cinder's own db_sync; the
managed cluster tables are emptied before each test.
"""

import os
import shutil
import tempfile

import pytest
from oslo_config import cfg

from cinder.common import config  # noqa: F401  (registers CLI options)
from cinder import context as cinder_context
from cinder.db import migration
from cinder import policy
from release import db_api, models

CONF = cfg.CONF


@pytest.fixture(scope="session", autouse=True)
def database():
    workdir = tempfile.mkdtemp(prefix="cinder-db-tests-")
    CONF([], project="cinder", default_config_files=[])
    CONF.set_override("connection",
                      "sqlite:///%s" % os.path.join(workdir, "cinder.sqlite"),
                      group="database")
    CONF.set_override("lock_path", workdir, group="oslo_concurrency")
    db_api.configure(CONF)
    migration.db_sync()
    yield
    db_api.dispose_engine()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_tables():
    with db_api.get_engine().begin() as connection:
        connection.execute(models.ManagedClusterMetadata.__table__.delete())
        connection.execute(models.ManagedCluster.__table__.delete())
    policy.reset()
    yield
    policy.reset()


@pytest.fixture
def admin():
    return cinder_context.get_admin_context()


@pytest.fixture
def user():
    return cinder_context.RequestContext(
        user_id="u1", project_id="c1a55e7", is_admin=False, roles=["member"])
