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

"""The cluster management extension (os-cluster-manage).

Routes, under ``/v3/{project_id}/os-cluster-manage`` (29.0.0 also routes
``/v3/os-cluster-manage``, Train does not), and their success codes:

=======  ==============================  ====  ===============================
Method   Path                            Code  Body
=======  ==============================  ====  ===============================
GET      /os-cluster-manage              200   ``{"clusters": [cluster...]}``
POST     /os-cluster-manage              200   ``{"cluster": cluster}``
GET      /os-cluster-manage/{id}         200   ``{"cluster": cluster}``
PUT      /os-cluster-manage/{id}         200   ``{"cluster": cluster}``
DELETE   /os-cluster-manage/{id}         202   (none)
GET      .../{id}/metadata               200   ``{"metadata": {...}}``
POST     .../{id}/metadata (merge)       200   ``{"metadata": {...}}``
PUT      .../{id}/metadata (replace)     200   ``{"metadata": {...}}``
GET      .../{id}/metadata/{key}         200   ``{"meta": {key: value}}``
PUT      .../{id}/metadata/{key}         200   ``{"meta": {key: value}}``
DELETE   .../{id}/metadata/{key}         200   (none)
=======  ==============================  ====  ===============================

Creating a cluster is a synchronous database write, so like volume types and
QoS specs it answers 200 (202 is for the asynchronous volume operations);
deleting answers 202 like them.  The metadata sub-resource answers like
Cinder's volume metadata API.  A cluster is ``{"id", "name", "metadata",
"created_at", "updated_at"}``.

The listing takes ``name`` (exact match), ``limit``, ``offset``, ``marker``
and either ``sort=key[:dir][,key[:dir]...]`` or ``sort_key``/``sort_dir``;
sort keys are ``id``, ``name``, ``created_at`` and ``updated_at``.

Every call is checked against a ``cluster_manage:*`` policy, admin only by
default.
"""

import functools

from oslo_log import log as logging
import webob
from webob import exc

from cinder.api import common
from cinder.api import extensions
from cinder.api.openstack import wsgi
from cinder.api.schemas import cluster_manage as schema
from cinder.api import validation
from cinder.cluster_manage import api as cluster_api
from cinder.cluster_manage import compat
from cinder.cluster_manage import exception as cm_exception
from cinder import exception
from cinder.i18n import _

LOG = logging.getLogger(__name__)

ALIAS = 'os-cluster-manage'
LIST_PARAMETERS = ('name', 'limit', 'offset', 'marker', 'sort', 'sort_key',
                   'sort_dir')


def _not_found(error):
    return exc.HTTPNotFound(explanation=error.msg)


def _body_required(func):
    """Refuse a request without a body before the schema validation.

    NOTE(cluster_manage): wsgi.Resource passes no ``body`` argument at all
    for an empty request body, and validation.schema reads
    ``kwargs['body']``: without this check the KeyError would become a 500.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if 'body' not in kwargs:
            raise exc.HTTPBadRequest(explanation=_("Missing request body."))
        return func(*args, **kwargs)
    return wrapper


class ClusterManageController(wsgi.Controller):
    """The managed clusters API controller for the OpenStack API."""

    def __init__(self):
        super(ClusterManageController, self).__init__()
        self.cluster_api = cluster_api.API()

    def index(self, req):
        """Return a list of managed clusters."""
        context = req.environ['cinder.context']
        params = req.params.copy()

        unknown = sorted(set(params) - set(LIST_PARAMETERS))
        if unknown:
            msg = (_("Invalid query parameters: %s.") % ', '.join(unknown))
            raise exc.HTTPBadRequest(explanation=msg)

        marker, limit, offset = common.get_pagination_params(params)
        sort_keys, sort_dirs = common.get_sort_params(params)
        filters = {}
        if 'name' in params:
            filters['name'] = params['name']

        try:
            clusters = self.cluster_api.get_all(
                context, filters=filters, marker=marker, limit=limit,
                offset=offset, sort_keys=sort_keys, sort_dirs=sort_dirs)
        except exception.InvalidInput as error:
            raise exc.HTTPBadRequest(explanation=error.msg)
        return {'clusters': clusters}

    def show(self, req, id):
        """Return one managed cluster."""
        context = req.environ['cinder.context']
        try:
            cluster = self.cluster_api.get(context, id)
        except cm_exception.ManagedClusterNotFound as error:
            raise _not_found(error)
        return {'cluster': cluster}

    @_body_required
    @validation.schema(schema.create)
    def create(self, req, body):
        """Create a managed cluster."""
        context = req.environ['cinder.context']
        cluster = body['cluster']
        cluster = self.cluster_api.create(
            context, name=cluster.get('name'),
            metadata=cluster.get('metadata'))
        return {'cluster': cluster}

    @_body_required
    @validation.schema(schema.update)
    def update(self, req, id, body):
        """Update the name and/or replace the metadata of a cluster."""
        context = req.environ['cinder.context']
        try:
            cluster = self.cluster_api.update(context, id, body['cluster'])
        except cm_exception.ManagedClusterNotFound as error:
            raise _not_found(error)
        return {'cluster': cluster}

    def delete(self, req, id):
        """Delete a managed cluster and its metadata."""
        context = req.environ['cinder.context']
        try:
            self.cluster_api.delete(context, id)
        except cm_exception.ManagedClusterNotFound as error:
            raise _not_found(error)
        return webob.Response(status_int=compat.ACCEPTED)


class ClusterMetadataController(wsgi.Controller):
    """The managed cluster metadata API controller."""

    def __init__(self):
        super(ClusterMetadataController, self).__init__()
        self.cluster_api = cluster_api.API()

    def _update(self, context, cluster_id, metadata, delete):
        try:
            return self.cluster_api.update_metadata(
                context, cluster_id, metadata, delete=delete)
        except cm_exception.ManagedClusterNotFound as error:
            raise _not_found(error)

    def index(self, req, cluster_id):
        """Return the metadata of a cluster."""
        context = req.environ['cinder.context']
        try:
            metadata = self.cluster_api.get_metadata(context, cluster_id)
        except cm_exception.ManagedClusterNotFound as error:
            raise _not_found(error)
        return {'metadata': metadata}

    @_body_required
    @validation.schema(schema.set_metadata)
    def create(self, req, cluster_id, body):
        """Merge the given keys into the metadata of a cluster."""
        context = req.environ['cinder.context']
        metadata = self._update(context, cluster_id, body['metadata'],
                                delete=False)
        return {'metadata': metadata}

    @_body_required
    @validation.schema(schema.set_metadata)
    def update_all(self, req, cluster_id, body):
        """Replace the whole metadata of a cluster."""
        context = req.environ['cinder.context']
        metadata = self._update(context, cluster_id, body['metadata'],
                                delete=True)
        return {'metadata': metadata}

    def show(self, req, cluster_id, id):
        """Return one metadata key of a cluster."""
        context = req.environ['cinder.context']
        try:
            meta = self.cluster_api.get_metadata_item(context, cluster_id, id)
        except (cm_exception.ManagedClusterNotFound,
                cm_exception.ManagedClusterMetadataNotFound) as error:
            raise _not_found(error)
        return {'meta': meta}

    @_body_required
    @validation.schema(schema.set_metadata_item)
    def update(self, req, cluster_id, id, body):
        """Set one metadata key of a cluster."""
        context = req.environ['cinder.context']
        meta = body['meta']
        if id not in meta:
            msg = _('Request body and URI mismatch')
            raise exc.HTTPBadRequest(explanation=msg)
        self._update(context, cluster_id, meta, delete=False)
        return {'meta': meta}

    def delete(self, req, cluster_id, id):
        """Delete one metadata key of a cluster."""
        context = req.environ['cinder.context']
        try:
            self.cluster_api.delete_metadata_item(context, cluster_id, id)
        except (cm_exception.ManagedClusterNotFound,
                cm_exception.ManagedClusterMetadataNotFound) as error:
            raise _not_found(error)
        return webob.Response(status_int=compat.OK)


class Cluster_manage(extensions.ExtensionDescriptor):
    """Create, list, update and delete managed clusters and their metadata."""

    name = 'ClusterManage'
    alias = ALIAS
    updated = '2026-11-25T00:00:00+00:00'

    def __init__(self, ext_mgr):
        super(Cluster_manage, self).__init__(ext_mgr)
        # NOTE(cluster_manage): cinder/policies/__init__.py does not list our
        # rules; register them now so they exist before the first request
        # (and in the workers, which fork after this).
        cluster_api.register_policies()

    def get_resources(self):
        clusters = extensions.ResourceExtension(
            ALIAS, ClusterManageController())

        def metadata_routes(mapper, wsgi_resource):
            # NOTE(cluster_manage): PUT on the metadata collection replaces
            # it; mapper.resource only routes PUT to members, so connect it
            # here, the way the release's router connects such routes.
            compat.connect_put(
                mapper, '/%s/{cluster_id}/metadata' % ALIAS, wsgi_resource,
                'update_all')

        metadata = extensions.ResourceExtension(
            'metadata', ClusterMetadataController(),
            parent={'member_name': 'cluster', 'collection_name': ALIAS},
            custom_routes_fn=metadata_routes)
        return [clusters, metadata]
