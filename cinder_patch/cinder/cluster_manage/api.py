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

"""Service layer of the os-cluster-manage API (``cluster_api``).

The REST extension calls :class:`API`: every method checks its
``cluster_manage:*`` policy, calls :mod:`cinder.db.cluster_manage_api` and
returns JSON-ready data (dicts of strings, ISO 8601 timestamps).
"""

from oslo_log import log as logging

from cinder.cluster_manage import exception as cm_exception
from cinder.db import cluster_manage_api as db
from cinder.policies import cluster_manage as policies
from cinder import policy

LOG = logging.getLogger(__name__)

# NOTE(cluster_manage): the format Cinder's views use for timestamps, e.g.
# "2026-11-25T19:37:00.000000" (UTC, like every timestamp Cinder stores).
_TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%f'


def register_policies():
    """Register the cluster_manage rules on Cinder's running enforcer.

    NOTE(cluster_manage): cinder.policy.get_enforcer() is not used, it
    parses sys.argv into CONF and exists for the oslopolicy command line
    tools.
    """
    policy.init()
    policies.register_rules(policy._ENFORCER)


def _authorize(context, action):
    # NOTE(cluster_manage): policy.reset() (tests do it) drops the enforcer
    # and the rules registered on it, so make sure they are there before
    # every check.
    register_policies()
    context.authorize(action)


def _isotime(value):
    return value.strftime(_TIME_FORMAT) if value else None


def format_cluster(cluster):
    """Return the API view of a ManagedCluster model."""
    return {
        'id': cluster['id'],
        'name': cluster['name'],
        'metadata': cluster['metadata'],
        'created_at': _isotime(cluster['created_at']),
        'updated_at': _isotime(cluster['updated_at']),
    }


class API(object):
    """API for managed clusters (os-cluster-manage)."""

    def create(self, context, name=None, metadata=None):
        """Create a cluster; return its view."""
        _authorize(context, policies.CREATE_POLICY)
        cluster = db.managed_cluster_create(
            context, {'name': name, 'metadata': metadata or {}})
        LOG.info("Created managed cluster %s.", cluster.id)
        return format_cluster(cluster)

    def get(self, context, cluster_id):
        """Return the view of a cluster; raise ManagedClusterNotFound."""
        _authorize(context, policies.GET_POLICY)
        return format_cluster(db.managed_cluster_get(context, cluster_id))

    def get_all(self, context, filters=None, marker=None, limit=None,
                offset=None, sort_keys=None, sort_dirs=None):
        """Return a list of cluster views; raise InvalidInput."""
        _authorize(context, policies.GET_ALL_POLICY)
        clusters = db.managed_cluster_get_all(
            context, filters=filters, marker=marker, limit=limit,
            offset=offset, sort_keys=sort_keys, sort_dirs=sort_dirs)
        return [format_cluster(cluster) for cluster in clusters]

    def update(self, context, cluster_id, values):
        """Update ``name`` and/or replace ``metadata``; return the view."""
        _authorize(context, policies.UPDATE_POLICY)
        cluster = db.managed_cluster_update(context, cluster_id, values)
        return format_cluster(cluster)

    def delete(self, context, cluster_id):
        """Soft delete a cluster and its metadata."""
        _authorize(context, policies.DELETE_POLICY)
        db.managed_cluster_destroy(context, cluster_id)
        LOG.info("Deleted managed cluster %s.", cluster_id)

    def get_metadata(self, context, cluster_id):
        """Return the metadata dict of a cluster."""
        _authorize(context, policies.GET_METADATA_POLICY)
        return db.managed_cluster_metadata_get(context, cluster_id)

    def get_metadata_item(self, context, cluster_id, key):
        """Return ``{key: value}``; raise ManagedClusterMetadataNotFound."""
        _authorize(context, policies.GET_METADATA_POLICY)
        metadata = db.managed_cluster_metadata_get(context, cluster_id)
        if key not in metadata:
            raise cm_exception.ManagedClusterMetadataNotFound(
                cluster_id=cluster_id, metadata_key=key)
        return {key: metadata[key]}

    def update_metadata(self, context, cluster_id, metadata, delete=False):
        """Merge ``metadata`` (replace the set if ``delete``); return it."""
        _authorize(context, policies.UPDATE_METADATA_POLICY)
        return db.managed_cluster_metadata_update(
            context, cluster_id, metadata, delete)

    def delete_metadata_item(self, context, cluster_id, key):
        """Delete one key; raise ManagedClusterMetadataNotFound."""
        _authorize(context, policies.DELETE_METADATA_POLICY)
        db.managed_cluster_metadata_delete(context, cluster_id, key)
