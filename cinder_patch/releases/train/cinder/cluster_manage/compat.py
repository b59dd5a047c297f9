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

"""What the cluster-management feature spells differently on Cinder Train.

The feature's common tree (``cinder_patch/cinder``) is the same code on
every Cinder release it supports; the few names Cinder itself spells
differently from one release to the next come from this module, of which
every release tree has its own copy with the same names.  The models module
of the release is in :mod:`cinder.cluster_manage.compat_models`.
"""

from six.moves import http_client

from cinder.db.sqlalchemy import api as db_api  # noqa: F401


#: Success codes the extension answers with.
ACCEPTED = http_client.ACCEPTED
OK = http_client.OK


def connect_put(mapper, path, controller, action):
    """Route ``PUT /{project_id}path`` to ``action``.

    Train's ``ProjectMapper`` has no ``create_route``, and its router routes
    no URL without a project id, so the route is connected as Train's own
    router connects the volume metadata's.
    """
    mapper.connect('/{project_id}%s' % path, controller=controller,
                   action=action, conditions={'method': ['PUT']})
