"""Take Cinder's database back to an alembic revision (Cinder has no command for it).

argv: target_revision config_file... Works only when every revision on the
way down implements downgrade(); alembic raises otherwise and nothing changes
for that step.
"""
import sys

from alembic import command
from oslo_config import cfg

from cinder.db import api as db_api
from cinder.db import migration
# db_api.configure imports cinder.service, which registers CLI options: that
# must happen before CONF parses its arguments.
import cinder.service  # noqa: E402,F401

target, config_files = sys.argv[1], sys.argv[2:]
cfg.CONF(args=[], default_config_files=config_files, project="cinder")
db_api.configure(cfg.CONF)
config = migration._find_alembic_conf()
with db_api.get_engine().begin() as connection:
    config.attributes["connection"] = connection
    command.downgrade(config, target)
print(target)
