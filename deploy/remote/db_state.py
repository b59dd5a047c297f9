"""Print the database's alembic revision(s) and the migration heads on disk, as JSON.

Much cheaper than ``cinder-manage db version`` (which imports Cinder,
SQLAlchemy and alembic): the config files are read with configparser (the
last [database]/connection wins, as in oslo.config), alembic_version is
read with sqlite3 or PyMySQL, and the heads come from the ``revision`` and
``down_revision`` assignments of the migration files.
argv: cinder_dir config_file...
"""
import configparser
import glob
import json
import os
import re
import sys
from urllib.parse import unquote, urlsplit

cinder_dir, config_files = sys.argv[1], sys.argv[2:]

connection = None
for path in config_files:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(path)
    if parser.has_option("database", "connection"):
        connection = parser.get("database", "connection")
if not connection:
    sys.exit("no [database]/connection in " + ", ".join(config_files))


def read_versions(cursor):
    try:
        cursor.execute("SELECT version_num FROM alembic_version")
        return sorted(row[0] for row in cursor.fetchall())
    except Exception:  # no alembic_version table: an empty database
        return []


url = urlsplit(connection)
db = None
if url.scheme.startswith("sqlite"):
    import sqlite3
    if os.path.exists(url.path[1:]):  # a missing file is an empty database
        db = sqlite3.connect("file:%s?mode=ro" % url.path[1:], uri=True)
elif url.scheme.startswith("mysql"):
    import pymysql
    db = pymysql.connect(host=url.hostname or "localhost", port=url.port or 3306,
                         user=unquote(url.username or ""), password=unquote(url.password or ""),
                         database=url.path.lstrip("/"))
else:
    sys.exit("unsupported database URL scheme: " + url.scheme)
current = []
if db is not None:
    current = read_versions(db.cursor())
    db.close()

down = {}
assignment = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*['\"]?([0-9a-zA-Z_]+)",
                        re.M)
for path in glob.glob(os.path.join(cinder_dir, "db", "migrations", "versions", "*.py")):
    with open(path) as handle:
        values = dict(assignment.findall(handle.read()))
    if "revision" in values:
        down[values["revision"]] = values.get("down_revision")
referenced = {parent for parent in down.values() if parent and parent != "None"}
heads = sorted(set(down) - referenced)

applied, unknown = set(), []
for revision in current:
    while revision and revision != "None":
        if revision not in down:
            unknown.append(revision)
            break
        applied.add(revision)
        revision = down[revision]
print(json.dumps({"current": current, "heads": heads, "applied": sorted(applied),
                  "unknown": unknown}))
