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

"""What the cluster-management feature spells differently on Cinder 29.0.0.

The feature's common tree (``cinder_patch/cinder``) is the same code on
every Cinder release it supports; the few names Cinder itself spells
differently from one release to the next come from this module, of which
every release tree has its own copy with the same names.  The models module
of the release is in :mod:`cinder.cluster_manage.compat_models`: it is
imported while the ``cinder.db`` package itself is, before Cinder's DB API
can be.
"""

from http import HTTPStatus

from cinder.db import api as db_api  # noqa: F401


#: Success codes the extension answers with.
ACCEPTED = HTTPStatus.ACCEPTED
OK = HTTPStatus.OK


def connect_put(mapper, path, controller, action):
    """Route ``PUT path`` to ``action``, with and without the project id.

    29.0.0's ``APIMapper.create_route`` connects both forms, as the router
    does for every resource.
    """
    mapper.create_route(path, 'PUT', controller, action)
