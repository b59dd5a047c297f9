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

"""SQLAlchemy models for the cluster-management (os-cluster-manage) API.

Upstream Cinder already has active-active clusters (``models.Cluster``, table
``clusters``), so these are named ``ManagedCluster`` (``managed_clusters``)
and ``ManagedClusterMetadata`` (``managed_cluster_metadata``).

The models live on Cinder's own declarative base, ``models.BASE``, wherever
the release keeps it (:mod:`cinder.cluster_manage.compat_models`).  Whatever
needs them on ``BASE.metadata`` imports this module: on 29.0.0 the
``cinder.db`` package itself (its alembic migrations and their
models-versus-migrations test read that metadata, see the release tree's
``cinder/db/__init__.py``); on Train, whose sqlalchemy-migrate scripts never
read the models, :mod:`cinder.db.cluster_manage_api`.
"""

# NOTE(cluster_manage): Python 2.7 (Cinder Train) would import Train's
# cinder/db/sqlalchemy package for "sqlalchemy" in a module of cinder.db.
from __future__ import absolute_import

import sqlalchemy as sa
from sqlalchemy import orm

from cinder.cluster_manage.compat_models import models

BASE = models.BASE


class ManagedCluster(BASE, models.CinderBase):
    """Represents a cluster managed through the os-cluster-manage API.

    Besides its columns, the dict view of a cluster (``dict(cluster)``,
    ``cluster['metadata']``) has a ``metadata`` key: a ``{key: value}`` dict
    built from the live rows of ``cluster_metadata``.
    """

    __tablename__ = 'managed_clusters'
    __table_args__ = (
        sa.Index('managed_clusters_deleted_name_idx', 'deleted', 'name'),
        models.CinderBase.__table_args__,
    )

    id = sa.Column(sa.String(36), primary_key=True)
    name = sa.Column(sa.String(255), nullable=True)

    # NOTE(cluster_manage): the relationship cannot be called ``metadata``:
    # the declarative API reserves that attribute for the ``MetaData`` of the
    # base (and CinderBase sets ``metadata = None``).  ``metadata`` is
    # provided through the dict interface of oslo.db's ModelBase instead.
    cluster_metadata = orm.relationship(
        'ManagedClusterMetadata',
        back_populates='cluster',
        primaryjoin='and_('
        'ManagedClusterMetadata.cluster_id == ManagedCluster.id,'
        'ManagedClusterMetadata.deleted == False)',
    )

    @property
    def _extra_keys(self):
        return ['cluster_metadata', 'metadata']

    def metadata_dict(self):
        """Return the live metadata rows as a ``{key: value}`` dict."""
        return {row.key: row.value for row in self.cluster_metadata
                if not row.deleted}

    def __getitem__(self, key):
        if key == 'metadata':
            return self.metadata_dict()
        return super(ManagedCluster, self).__getitem__(key)

    def get(self, key, default=None):
        if key == 'metadata':
            return self.metadata_dict()
        return super(ManagedCluster, self).get(key, default)

    def __iter__(self):
        # NOTE(cluster_manage): ModelBase.__iter__ reads every key with
        # getattr(), which for 'metadata' would return the declarative
        # base's MetaData object.
        return iter([(key, self[key]) for key in self._dict_keys()])

    def _dict_keys(self):
        columns = [prop.key for prop in orm.object_mapper(self).column_attrs]
        return columns + self._extra_keys

    def _as_dict(self):
        local = {key: value for key, value in self}
        joined = {k: v for k, v in self.__dict__.items()
                  if not k.startswith('_') and k not in local}
        local.update(joined)
        return local


class ManagedClusterMetadata(BASE, models.CinderBase):
    """Represents a metadata key/value pair for a managed cluster."""

    __tablename__ = 'managed_cluster_metadata'

    id = sa.Column(sa.Integer, primary_key=True)
    key = sa.Column(sa.String(255), nullable=False)
    value = sa.Column(sa.String(255), nullable=False)
    cluster_id = sa.Column(
        sa.String(36),
        sa.ForeignKey('managed_clusters.id'),
        nullable=False,
        index=True,
    )
    cluster = orm.relationship(
        ManagedCluster,
        back_populates='cluster_metadata',
        foreign_keys=cluster_id,
        primaryjoin='and_('
        'ManagedClusterMetadata.cluster_id == ManagedCluster.id,'
        'ManagedClusterMetadata.deleted == False)',
    )
