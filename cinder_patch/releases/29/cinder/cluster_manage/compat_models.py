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

"""Cinder 29.0.0's models module, for the cluster-management models.

:mod:`cinder.db.cluster_manage_models` declares its models on the
declarative base of this module.  It is imported by the ``cinder.db``
package itself (see ``cinder/db/__init__.py``), so it imports nothing but
the models; every release tree has its own copy.
"""

from cinder.db import models  # noqa: F401
