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

"""The checks of the managed clusters migration, for every release's walk.

Each release creates the tables with its own migration tool (alembic
revision 48d74fa840ed on 29.0.0, sqlalchemy-migrate script 133 on Train),
and each walk calls its ``_check_<revision>`` with what it has: a connection
(29.0.0) or an engine (Train).  The release trees'
``test_cluster_manage_migrations.py`` name the check after their revision
and call :func:`check_managed_clusters` with it.
"""

from oslo_db.sqlalchemy import utils as db_utils
import sqlalchemy as sa


def check_managed_clusters(test, bind):
    """Test managed_clusters and managed_cluster_metadata were added.

    :param test: the migration walk (a TestCase with ``VARCHAR_TYPE``).
    :param bind: the walk's connection or engine.
    """
    clusters = db_utils.get_table(bind, 'managed_clusters')
    test.assertEqual(
        set(['id', 'name', 'created_at', 'updated_at', 'deleted_at',
             'deleted']),
        set(clusters.c.keys()))
    test.assertIsInstance(clusters.c.id.type, test.VARCHAR_TYPE)
    test.assertEqual(36, clusters.c.id.type.length)
    test.assertFalse(clusters.c.id.nullable)
    test.assertIsInstance(clusters.c.name.type, test.VARCHAR_TYPE)
    test.assertEqual(255, clusters.c.name.type.length)
    test.assertTrue(clusters.c.name.nullable)
    test.assertTrue(db_utils.index_exists(
        bind, 'managed_clusters', 'managed_clusters_deleted_name_idx'))

    metadata = db_utils.get_table(bind, 'managed_cluster_metadata')
    test.assertEqual(
        set(['id', 'cluster_id', 'key', 'value', 'created_at', 'updated_at',
             'deleted_at', 'deleted']),
        set(metadata.c.keys()))
    for column in ('key', 'value'):
        test.assertIsInstance(metadata.c[column].type, test.VARCHAR_TYPE)
        test.assertEqual(255, metadata.c[column].type.length)
        test.assertFalse(metadata.c[column].nullable)
    test.assertFalse(metadata.c.cluster_id.nullable)
    test.assertTrue(db_utils.index_exists(
        bind, 'managed_cluster_metadata',
        'ix_managed_cluster_metadata_cluster_id'))

    foreign_keys = sa.inspect(bind).get_foreign_keys(
        'managed_cluster_metadata')
    test.assertEqual(
        [(['cluster_id'], 'managed_clusters', ['id'])],
        [(fk['constrained_columns'], fk['referred_table'],
          fk['referred_columns']) for fk in foreign_keys])

    # The tables take a cluster with its metadata.
    cluster_id = 'a3f2b1c4-0000-4000-8000-000000000001'
    bind.execute(clusters.insert().values(
        id=cluster_id, name='walk', deleted=False))
    bind.execute(metadata.insert().values(
        cluster_id=cluster_id, key='attr', value='1', deleted=False))
    # NOTE(cluster_manage): select() takes a list of columns up to
    # SQLAlchemy 1.3 (Train) and only positional ones from 2.0 (29.0.0); a
    # whole-table select read by the result's keys reads the same on both.
    result = bind.execute(
        metadata.select().where(metadata.c.cluster_id == cluster_id))
    keys = list(result.keys())
    rows = [dict(zip(keys, row)) for row in result.fetchall()]
    test.assertEqual([('attr', '1')],
                     [(row['key'], row['value']) for row in rows])
