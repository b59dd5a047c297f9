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

"""Migration tests of the cluster-management feature.

Cinder's migration walk (``MigrationsWalk`` in ``test_migrations.py``)
demands a ``_check_<revision>`` method for every revision.  The checks of
revision 48d74fa840ed live in :class:`ManagedClusterMigrationChecks`, which
this module both

* mixes into subclasses of Cinder's SQLite/MySQL/PostgreSQL walk classes,
  so running this module walks the migrations with them, and
* adds to Cinder's own ``MigrationsWalk``, so the unmodified upstream walk
  finds them too (``cinder/tests/unit/db/__init__.py`` imports this module,
  so that is also the case when ``test_migrations.py`` runs on its own).
"""

from oslo_db.sqlalchemy import utils as db_utils
import sqlalchemy as sa

from cinder.tests.unit.db import test_migrations

REVISION = '48d74fa840ed'


class ManagedClusterMigrationChecks(object):
    """Checks of the managed clusters migration, for a MigrationsWalk."""

    def _check_48d74fa840ed(self, connection):
        """Test managed_clusters and managed_cluster_metadata were added."""
        clusters = db_utils.get_table(connection, 'managed_clusters')
        self.assertEqual(
            {'id', 'name', 'created_at', 'updated_at', 'deleted_at',
             'deleted'},
            set(clusters.c.keys()))
        self.assertIsInstance(clusters.c.id.type, self.VARCHAR_TYPE)
        self.assertEqual(36, clusters.c.id.type.length)
        self.assertFalse(clusters.c.id.nullable)
        self.assertIsInstance(clusters.c.name.type, self.VARCHAR_TYPE)
        self.assertEqual(255, clusters.c.name.type.length)
        self.assertTrue(clusters.c.name.nullable)
        self.assertTrue(db_utils.index_exists(
            connection, 'managed_clusters',
            'managed_clusters_deleted_name_idx'))

        metadata = db_utils.get_table(connection, 'managed_cluster_metadata')
        self.assertEqual(
            {'id', 'cluster_id', 'key', 'value', 'created_at', 'updated_at',
             'deleted_at', 'deleted'},
            set(metadata.c.keys()))
        for column in ('key', 'value'):
            self.assertIsInstance(metadata.c[column].type, self.VARCHAR_TYPE)
            self.assertEqual(255, metadata.c[column].type.length)
            self.assertFalse(metadata.c[column].nullable)
        self.assertFalse(metadata.c.cluster_id.nullable)
        self.assertTrue(db_utils.index_exists(
            connection, 'managed_cluster_metadata',
            'ix_managed_cluster_metadata_cluster_id'))

        foreign_keys = sa.inspect(connection).get_foreign_keys(
            'managed_cluster_metadata')
        self.assertEqual(
            [(['cluster_id'], 'managed_clusters', ['id'])],
            [(fk['constrained_columns'], fk['referred_table'],
              fk['referred_columns']) for fk in foreign_keys])

        # The tables take a cluster with its metadata.
        cluster_id = 'a3f2b1c4-0000-4000-8000-000000000001'
        connection.execute(clusters.insert().values(
            id=cluster_id, name='walk', deleted=False))
        connection.execute(metadata.insert().values(
            cluster_id=cluster_id, key='attr', value='1', deleted=False))
        rows = connection.execute(
            sa.select(metadata.c.key, metadata.c.value).where(
                metadata.c.cluster_id == cluster_id)).all()
        self.assertEqual([('attr', '1')], [tuple(row) for row in rows])


# NOTE: see the module docstring; Cinder's walk fails for any revision whose
# check it cannot find, and this overlay does not replace its test module.
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
