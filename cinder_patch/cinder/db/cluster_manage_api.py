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

"""Database API of the cluster-management feature (managed clusters).

Module-level functions in the style of Cinder's DB API (``cinder.db.api``
on 29.0.0, ``cinder.db.sqlalchemy.api`` on Train: ``compat.db_api``), on the
same enginefacade transaction context (``main_context_manager``) and
helpers, so a caller mixes them freely with Cinder's own DB API.  They are
named ``managed_cluster_*``: the ``cluster_*`` names belong to upstream's
active-active clusters.

Soft-deleted rows are never returned, whatever the context's
``read_deleted`` says.
"""

# NOTE(cluster_manage): Python 2.7 (Cinder Train) would import Train's
# cinder/db/sqlalchemy package for "sqlalchemy" in a module of cinder.db.
from __future__ import absolute_import

from oslo_db import api as oslo_db_api
from oslo_log import log as logging
from oslo_utils import timeutils
from oslo_utils import uuidutils
import sqlalchemy as sa
from sqlalchemy import orm

from cinder.cluster_manage.compat import db_api
from cinder.cluster_manage import exception as cm_exception
from cinder.common import sqlalchemyutils
from cinder.db import cluster_manage_models as models
from cinder import exception
from cinder.i18n import _

LOG = logging.getLogger(__name__)

# Sort keys and filters the listing accepts; anything else is InvalidInput.
SORT_KEYS = ('id', 'name', 'created_at', 'updated_at')
FILTER_KEYS = ('name',)
UPDATABLE_KEYS = ('name', 'metadata')


def _is_sqlite_locked(exc):
    """Whether ``exc`` is SQLite refusing a write with "database is locked".

    NOTE(cluster_manage): SQLite answers so at once, whatever its busy
    timeout, when waiting could deadlock: this transaction has read and now
    writes while another connection waits to commit (a service's
    heartbeat, on a controller whose services share one SQLite file). The
    transaction is rolled back whole, so running it again is as safe as
    after a deadlock on MySQL.
    """
    return 'database is locked' in str(exc)


_retry_on_deadlock = oslo_db_api.wrap_db_retry(
    max_retries=5, retry_on_deadlock=True, exception_checker=_is_sqlite_locked)


def _cluster_query(context):
    # NOTE(cluster_manage): read_deleted is forced to 'no': deleted clusters
    # are never shown, not even to an admin context that reads deleted rows.
    # NOTE(cluster_manage): Train's model_query opens a session of its own
    # unless it is given one, so every query here passes the transaction's;
    # 29.0.0's always uses the context's and ignores the argument.
    return db_api.model_query(
        context, models.ManagedCluster, session=context.session,
        read_deleted='no',
    ).options(orm.selectinload(models.ManagedCluster.cluster_metadata))


def _metadata_query(context, cluster_id):
    return db_api.model_query(
        context, models.ManagedClusterMetadata, session=context.session,
        read_deleted='no',
    ).filter_by(cluster_id=cluster_id)


def _managed_cluster_get(context, cluster_id):
    result = _cluster_query(context).filter_by(id=cluster_id).first()
    if not result:
        raise cm_exception.ManagedClusterNotFound(cluster_id=cluster_id)
    return result


def _reload(context, cluster):
    """Make ``cluster`` what the DB holds, metadata rows included.

    NOTE(cluster_manage): MySQL's DATETIME keeps no microseconds, so the
    timestamps are read back too: a create or update answers with what a
    later show returns. The metadata is loaded while the session is open,
    callers get a detached object.
    """
    context.session.flush()
    context.session.refresh(cluster)
    cluster.cluster_metadata
    return cluster


def _soft_delete_values():
    # NOTE(cluster_manage): like volume_destroy, keep updated_at as it was.
    values = models.ManagedCluster.delete_values()
    values['updated_at'] = sa.literal_column('updated_at')
    return values


def _metadata_update(context, cluster, metadata, delete):
    """Merge ``metadata`` into the cluster's (replace it if ``delete``)."""
    rows = {row.key: row for row in
            _metadata_query(context, cluster.id).all()}
    changed = False

    if delete:
        for key, row in rows.items():
            if key not in metadata:
                row.delete(context.session)
                changed = True

    for key, value in metadata.items():
        row = rows.get(key)
        if row is None:
            context.session.add(models.ManagedClusterMetadata(
                cluster_id=cluster.id, key=key, value=value))
            changed = True
        elif row.value != value:
            row.value = value
            changed = True

    if changed:
        # NOTE(cluster_manage): a metadata change is a change of the cluster.
        cluster.updated_at = timeutils.utcnow()
    return _reload(context, cluster)


@db_api.handle_db_data_error
@db_api.require_context
@db_api.main_context_manager.writer
def managed_cluster_create(context, values):
    """Create a managed cluster from ``values``.

    :param values: ``name`` and ``metadata`` (a dict), both optional, and
        optionally the ``id`` to use (a new UUID by default).
    :returns: the new ManagedCluster, with its metadata loaded.
    """
    values = dict(values)
    metadata = values.pop('metadata', None) or {}
    if not values.get('id'):
        values['id'] = uuidutils.generate_uuid()

    cluster = models.ManagedCluster()
    cluster.update(values)
    cluster.cluster_metadata = [
        models.ManagedClusterMetadata(key=key, value=value)
        for key, value in metadata.items()
    ]
    cluster.save(context.session)
    return _reload(context, cluster)


@db_api.require_context
@db_api.main_context_manager.reader
def managed_cluster_get(context, cluster_id):
    """Return the managed cluster, or raise ManagedClusterNotFound."""
    return _managed_cluster_get(context, cluster_id)


@db_api.require_context
@db_api.main_context_manager.reader
def managed_cluster_get_all(context, filters=None, marker=None, limit=None,
                            offset=None, sort_keys=None, sort_dirs=None):
    """Return a page of managed clusters.

    :param filters: ``{'name': <exact name>}``; other keys are invalid.
    :param marker: id of the last cluster of the previous page.
    :param limit: maximum number of clusters to return.
    :param offset: number of clusters to skip.
    :param sort_keys: keys among ``SORT_KEYS``; ``created_at`` and ``id``
        are appended as tie-breakers.
    :param sort_dirs: ``asc`` or ``desc`` for each sort key.
    :raises InvalidInput: for an unknown filter, sort key or direction, or a
        marker that names no (live) cluster.
    """
    filters = dict(filters or {})
    invalid = sorted(set(filters) - set(FILTER_KEYS))
    if invalid:
        msg = _("Invalid filters: %s.") % ', '.join(invalid)
        raise exception.InvalidInput(reason=msg)

    sort_keys, sort_dirs = db_api.process_sort_params(
        sort_keys, sort_dirs, default_keys=['created_at', 'id'],
        default_dir='desc')
    for key in sort_keys:
        if key not in SORT_KEYS:
            msg = (_("Invalid sort key %(key)s, must be one of %(keys)s.") %
                   {'key': key, 'keys': ', '.join(SORT_KEYS)})
            raise exception.InvalidInput(reason=msg)

    query = _cluster_query(context)
    if 'name' in filters:
        query = query.filter_by(name=filters['name'])

    marker_cluster = None
    if marker is not None:
        marker_cluster = _cluster_query(context).filter_by(id=marker).first()
        if marker_cluster is None:
            msg = _("Marker %s could not be found.") % marker
            raise exception.InvalidInput(reason=msg)

    query = sqlalchemyutils.paginate_query(
        query, models.ManagedCluster, limit, sort_keys,
        marker=marker_cluster, sort_dirs=sort_dirs, offset=offset)
    return query.all()


@db_api.handle_db_data_error
@db_api.require_context
@_retry_on_deadlock
@db_api.main_context_manager.writer
def managed_cluster_update(context, cluster_id, values):
    """Update the name and/or metadata of a managed cluster.

    A ``metadata`` dict in ``values`` replaces the whole set.

    :returns: the updated ManagedCluster.
    """
    values = dict(values)
    invalid = sorted(set(values) - set(UPDATABLE_KEYS))
    if invalid:
        msg = _("Cannot update fields: %s.") % ', '.join(invalid)
        raise exception.InvalidInput(reason=msg)

    metadata = values.pop('metadata', None)
    cluster = _managed_cluster_get(context, cluster_id)
    cluster.update(values)
    if metadata is not None:
        _metadata_update(context, cluster, metadata, delete=True)
    cluster.save(context.session)
    return _reload(context, cluster)


@db_api.require_context
@_retry_on_deadlock
@db_api.main_context_manager.writer
def managed_cluster_destroy(context, cluster_id):
    """Soft delete a managed cluster and its metadata.

    :returns: the values written (``deleted``, ``deleted_at``).
    """
    _managed_cluster_get(context, cluster_id)
    values = _soft_delete_values()
    _metadata_query(context, cluster_id).update(
        values, synchronize_session=False)
    count = db_api.model_query(
        context, models.ManagedCluster, session=context.session,
        read_deleted='no',
    ).filter_by(id=cluster_id).update(values, synchronize_session=False)
    if not count:
        raise cm_exception.ManagedClusterNotFound(cluster_id=cluster_id)
    del values['updated_at']
    return values


@db_api.require_context
@db_api.main_context_manager.reader
def managed_cluster_metadata_get(context, cluster_id):
    """Return the metadata of a managed cluster as a dict."""
    return _managed_cluster_get(context, cluster_id).metadata_dict()


@db_api.handle_db_data_error
@db_api.require_context
@_retry_on_deadlock
@db_api.main_context_manager.writer
def managed_cluster_metadata_update(context, cluster_id, metadata, delete):
    """Merge ``metadata`` into a cluster's, or replace it if ``delete``.

    :returns: the cluster's whole metadata afterwards, as a dict.
    """
    cluster = _managed_cluster_get(context, cluster_id)
    _metadata_update(context, cluster, metadata, delete)
    return cluster.metadata_dict()


@db_api.require_context
@_retry_on_deadlock
@db_api.main_context_manager.writer
def managed_cluster_metadata_delete(context, cluster_id, key):
    """Soft delete one metadata key of a managed cluster.

    :raises ManagedClusterMetadataNotFound: if the cluster has no such key.
    """
    cluster = _managed_cluster_get(context, cluster_id)
    count = _metadata_query(context, cluster_id).filter_by(key=key).update(
        _soft_delete_values(), synchronize_session=False)
    if not count:
        raise cm_exception.ManagedClusterMetadataNotFound(
            cluster_id=cluster_id, metadata_key=key)
    cluster.updated_at = timeutils.utcnow()
    cluster.save(context.session)
