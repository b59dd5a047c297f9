"""The patched cinder's DB modules, wherever the running release keeps them.

cinder 29.0.0 has them under ``cinder/db/``; Cinder Train (Python 2.7, the
cinder_patch/train variant) under ``cinder/db/sqlalchemy/``. The tests of
this folder run in both envs (tests/cinder_patch/test_in_cinder.py), so this
module is Python 2.7 and 3 code.
"""

try:  # cinder 29.0.0
    from cinder.db import api as db_api
    from cinder.db import cluster_manage_api as db
    from cinder.db import cluster_manage_models as models
    from cinder.db import models as cinder_models
    TRAIN = False
except ImportError:  # Cinder Train
    from cinder.db.sqlalchemy import api as db_api
    from cinder.db.sqlalchemy import cluster_manage_api as db
    from cinder.db.sqlalchemy import cluster_manage_models as models
    from cinder.db.sqlalchemy import models as cinder_models
    TRAIN = True

__all__ = ["TRAIN", "cinder_models", "db", "db_api", "models"]
