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

"""Add the managed_clusters and managed_cluster_metadata tables.

The cluster-management feature (os-cluster-manage) on Cinder Train: the
first migration after Train's last, 132.  On 29.0.0 alembic revision
48d74fa840ed creates the same tables; the models that describe them are
``cinder.db.cluster_manage_models``, common to both.
"""

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index
from sqlalchemy import Integer, MetaData, String, Table


def upgrade(migrate_engine):
    meta = MetaData()
    meta.bind = migrate_engine

    managed_clusters = Table(
        'managed_clusters', meta,
        Column('created_at', DateTime),
        Column('updated_at', DateTime),
        Column('deleted_at', DateTime),
        Column('deleted', Boolean),
        Column('id', String(36), primary_key=True, nullable=False),
        Column('name', String(255), nullable=True),
        Index('managed_clusters_deleted_name_idx', 'deleted', 'name'),
        mysql_engine='InnoDB',
        mysql_charset='utf8',
    )
    managed_clusters.create()

    managed_cluster_metadata = Table(
        'managed_cluster_metadata', meta,
        Column('created_at', DateTime),
        Column('updated_at', DateTime),
        Column('deleted_at', DateTime),
        Column('deleted', Boolean),
        Column('id', Integer, primary_key=True, nullable=False),
        Column('cluster_id', String(36), ForeignKey('managed_clusters.id'),
               nullable=False, index=True),
        Column('key', String(255), nullable=False),
        Column('value', String(255), nullable=False),
        mysql_engine='InnoDB',
        mysql_charset='utf8',
    )
    managed_cluster_metadata.create()
