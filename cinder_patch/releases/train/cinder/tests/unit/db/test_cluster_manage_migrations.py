# Copyright 2026 The cinder-devloop authors.
# All Rights Reserved.
#
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""Migration tests of the cluster-management feature, Cinder Train.

Train's migration walk (``MigrationsMixin.test_walk_versions`` in
``test_migrations.py``) applies every sqlalchemy-migrate script, ours (133)
included, and calls a ``_check_<version>`` method when the test case has
one.  :class:`ManagedClusterMigrationChecks` holds the check of 133
(:func:`cluster_manage_checks.check_managed_clusters`, shared with the
other releases); it is mixed into subclasses of Train's SQLite, MySQL and
PostgreSQL walk classes, so running this module walks the migrations with
the check (MySQL and PostgreSQL opportunistically, like upstream's).
"""

from cinder.tests.unit.db import cluster_manage_checks
from cinder.tests.unit.db import test_migrations

VERSION = 133


class ManagedClusterMigrationChecks(object):
    """Checks of the managed clusters migration, for a MigrationsMixin."""

    def _check_133(self, engine, data):
        """Test managed_clusters and managed_cluster_metadata were added."""
        cluster_manage_checks.check_managed_clusters(self, engine)


class TestManagedClusterSqliteMigrations(
        ManagedClusterMigrationChecks,
        test_migrations.TestSqliteMigrations):
    pass


class TestManagedClusterMysqlMigrations(
        ManagedClusterMigrationChecks,
        test_migrations.TestMysqlMigrations):
    pass


class TestManagedClusterPostgresqlMigrations(
        ManagedClusterMigrationChecks,
        test_migrations.TestPostgresqlMigrations):
    pass
