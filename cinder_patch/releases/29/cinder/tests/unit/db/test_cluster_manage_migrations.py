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

"""Migration tests of the cluster-management feature, cinder 29.0.0.

Cinder's migration walk (``MigrationsWalk`` in ``test_migrations.py``)
demands a ``_check_<revision>`` method for every revision.  The check of
revision 48d74fa840ed (:func:`cluster_manage_checks.check_managed_clusters`,
shared with the other releases) is the method of
:class:`ManagedClusterMigrationChecks`, which this module both

* mixes into subclasses of Cinder's SQLite/MySQL/PostgreSQL walk classes,
  so running this module walks the migrations with them, and
* adds to Cinder's own ``MigrationsWalk``, so the unmodified upstream walk
  finds it too (``cinder/tests/unit/db/__init__.py`` imports this module,
  so that is also the case when ``test_migrations.py`` runs on its own).
"""

from cinder.tests.unit.db import cluster_manage_checks
from cinder.tests.unit.db import test_migrations

REVISION = '48d74fa840ed'


class ManagedClusterMigrationChecks(object):
    """Checks of the managed clusters migration, for a MigrationsWalk."""

    def _check_48d74fa840ed(self, connection):
        """Test managed_clusters and managed_cluster_metadata were added."""
        cluster_manage_checks.check_managed_clusters(self, connection)


# NOTE(cluster_manage): see the module docstring; Cinder's walk fails for
# any revision whose check it cannot find, and this overlay does not replace
# its test module.
setattr(test_migrations.MigrationsWalk, f'_check_{REVISION}',
        ManagedClusterMigrationChecks._check_48d74fa840ed)


class TestManagedClusterMigrationsWalkSQLite(
    ManagedClusterMigrationChecks,
    test_migrations.TestMigrationsWalkSQLite,
):
    pass


class TestManagedClusterMigrationsWalkMySQL(
    ManagedClusterMigrationChecks,
    test_migrations.TestMigrationsWalkMySQL,
):
    pass


class TestManagedClusterMigrationsWalkPostgreSQL(
    ManagedClusterMigrationChecks,
    test_migrations.TestMigrationsWalkPostgreSQL,
):
    pass
