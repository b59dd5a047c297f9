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
one.  :class:`ManagedClusterMigrationChecks` holds the check of 133; it is
mixed into subclasses of Train's SQLite, MySQL and PostgreSQL walk classes,
so running this module walks the migrations with the check (MySQL and
PostgreSQL opportunistically, like upstream's).
"""

from oslo_db.sqlalchemy import utils as db_utils
import sqlalchemy as sa

from cinder.tests.unit.db import test_migrations

VERSION = 133


class ManagedClusterMigrationChecks(object):
    """Checks of the managed clusters migration, for a MigrationsMixin."""

    def _check_133(self, engine, data):
        """Test managed_clusters and managed_cluster_metadata were added."""
        clusters = db_utils.get_table(engine, 'managed_clusters')
        self.assertEqual(
            set(['id', 'name', 'created_at', 'updated_at', 'deleted_at',
                 'deleted']),
            set(clusters.c.keys()))
        self.assertIsInstance(clusters.c.id.type, self.VARCHAR_TYPE)
        self.assertEqual(36, clusters.c.id.type.length)
        self.assertFalse(clusters.c.id.nullable)
        self.assertIsInstance(clusters.c.name.type, self.VARCHAR_TYPE)
        self.assertEqual(255, clusters.c.name.type.length)
        self.assertTrue(clusters.c.name.nullable)
        self.assertTrue(db_utils.index_exists(
            engine, 'managed_clusters', 'managed_clusters_deleted_name_idx'))

        metadata = db_utils.get_table(engine, 'managed_cluster_metadata')
        self.assertEqual(
            set(['id', 'cluster_id', 'key', 'value', 'created_at',
                 'updated_at', 'deleted_at', 'deleted']),
            set(metadata.c.keys()))
        for column in ('key', 'value'):
            self.assertIsInstance(metadata.c[column].type, self.VARCHAR_TYPE)
            self.assertEqual(255, metadata.c[column].type.length)
            self.assertFalse(metadata.c[column].nullable)
        self.assertFalse(metadata.c.cluster_id.nullable)
        self.assertTrue(db_utils.index_exists(
            engine, 'managed_cluster_metadata',
            'ix_managed_cluster_metadata_cluster_id'))

        foreign_keys = sa.inspect(engine).get_foreign_keys(
            'managed_cluster_metadata')
        self.assertEqual(
            [(['cluster_id'], 'managed_clusters', ['id'])],
            [(fk['constrained_columns'], fk['referred_table'],
              fk['referred_columns']) for fk in foreign_keys])

        # The tables take a cluster with its metadata.
        cluster_id = 'a3f2b1c4-0000-4000-8000-000000000001'
        engine.execute(clusters.insert().values(
            id=cluster_id, name='walk', deleted=False))
        engine.execute(metadata.insert().values(
            cluster_id=cluster_id, key='attr', value='1', deleted=False))
        rows = engine.execute(
            sa.select([metadata.c.key, metadata.c.value]).where(
                metadata.c.cluster_id == cluster_id)).fetchall()
        self.assertEqual([('attr', '1')], [tuple(row) for row in rows])


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
