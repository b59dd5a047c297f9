"""The patched cinder's DB modules, and Cinder's own wherever the release keeps them.

The feature's DB modules are ``cinder.db.cluster_manage_api`` and
``cinder.db.cluster_manage_models`` on every release (cinder_patch/cinder,
the common tree); Cinder's DB API and models are under ``cinder/db/`` in
cinder 29.0.0 and under ``cinder/db/sqlalchemy/`` in Cinder Train. The tests
of this folder run in both envs (tests/cinder_patch/test_in_cinder.py), so
this module is Python 2.7 and 3 code.
"""

from cinder.db import cluster_manage_api as db
from cinder.db import cluster_manage_models as models

try:  # Cinder Train
    from cinder.db.sqlalchemy import api as db_api
    from cinder.db.sqlalchemy import models as cinder_models
except ImportError:  # cinder 29.0.0 (no cinder.db.sqlalchemy)
    from cinder.db import api as db_api
    from cinder.db import models as cinder_models

__all__ = ["cinder_models", "db", "db_api", "models"]
