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

"""
DB abstraction for Cinder

This file replaces the upstream ``cinder/db/__init__.py`` of cinder 29.0.0,
which holds nothing but a license header and a docstring (its sha256 is
recorded in ``cinder_patch/releases/29/MANIFEST.txt``).

The cluster-management models (:mod:`cinder.db.cluster_manage_models`) are
declared on Cinder's own declarative base, ``cinder.db.models.BASE``, so that
``BASE.metadata`` describes every table the migrations create: alembic's
``env.py`` and the models-versus-migrations sync test in
``cinder/tests/unit/db/test_migrations.py`` both compare against it.  A class
is only added to ``BASE.metadata`` when its module is imported, and nothing in
upstream Cinder imports a new module.  Every user of the DB layer imports the
``cinder.db`` package first, though (``from cinder.db import models``, ``from
cinder.db import api``, alembic's ``env.py``...), so importing the models
module here is the one place that registers them in every process: the API
and the other services, ``cinder-manage``, and a test run of
``test_migrations.py`` on its own.

There is no import cycle: ``cinder.db.cluster_manage_models`` only imports
``cinder.cluster_manage.compat_models`` and through it ``cinder.db.models``,
which imports no other part of Cinder (not ``cinder.db.api``: that one
imports ``cinder.objects``, whose modules need a complete ``cinder.db``).
"""

from cinder.db import cluster_manage_models  # noqa: F401
