"""Print the database's alembic revision(s) and the migration heads on disk, as JSON.

Cheaper than ``cinder-manage db version`` (no Cinder import): reads
[database]/connection from the config files, asks alembic_version, and
lists the heads of <cinder>/db/migrations. argv: cinder_dir config_file...
"""
import json
import sys

import sqlalchemy
from alembic.script import ScriptDirectory
from oslo_config import cfg

cinder_dir, config_files = sys.argv[1], sys.argv[2:]
conf = cfg.ConfigOpts()
conf.register_opt(cfg.StrOpt("connection", secret=True), group="database")
conf(args=[], default_config_files=config_files, project="cinder")
script = ScriptDirectory(cinder_dir + "/db/migrations")
heads = sorted(script.get_heads())
current = []
engine = sqlalchemy.create_engine(conf.database.connection)
try:
    with engine.connect() as connection:
        if sqlalchemy.inspect(connection).has_table("alembic_version"):
            rows = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            current = sorted(row[0] for row in rows)
finally:
    engine.dispose()
applied, unknown = set(), []
for revision in current:
    try:
        applied.update(rev.revision for rev in script.iterate_revisions(revision, "base"))
    except Exception:  # the revision's file is gone: alembic cannot walk it
        unknown.append(revision)
print(json.dumps({"current": current, "heads": heads, "applied": sorted(applied),
                  "unknown": unknown}))
