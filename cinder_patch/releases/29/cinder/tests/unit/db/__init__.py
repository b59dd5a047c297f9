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

# NOTE(cluster_manage): this file replaces the upstream
# cinder/tests/unit/db/__init__.py of cinder 29.0.0, which is empty (its
# sha256 is in cinder_patch/releases/29/MANIFEST.txt).
# Importing the managed clusters migration tests here hands the check of
# their revision to Cinder's own migration walk before any test of this
# package runs, whichever runner (stestr, unittest, pytest) and whichever
# selection of test modules is used.
from cinder.tests.unit.db import test_cluster_manage_migrations  # noqa: F401
