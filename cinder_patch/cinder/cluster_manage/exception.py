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

"""Exceptions of the cluster-management feature.

They live here rather than in :mod:`cinder.exception`, which this overlay
does not replace; they derive from Cinder's own exception families, so the
API's fault handling maps them to the usual HTTP codes (NotFound -> 404).
"""

from cinder import exception
from cinder.i18n import _


class ManagedClusterNotFound(exception.NotFound):
    message = _("Managed cluster %(cluster_id)s could not be found.")


class ManagedClusterMetadataNotFound(exception.NotFound):
    message = _("Managed cluster %(cluster_id)s has no metadata with "
                "key %(metadata_key)s.")
