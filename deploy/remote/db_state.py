"""Print the database's migration version(s) and the newest on disk, as JSON.

Much cheaper than ``cinder-manage db version`` (which imports Cinder and
SQLAlchemy): the config files are read with the standard config parser (the
last [database]/connection wins, as in oslo.config), the version table is
read with sqlite3 or PyMySQL, and the newest migration comes from the files.

Two migration systems: alembic (Cinder 2023.1 and later: table
``alembic_version``, ``cinder/db/migrations/versions/<rev>_*.py`` with
``revision``/``down_revision``) and sqlalchemy-migrate (Train and earlier:
table ``migrate_version``, ``cinder/db/sqlalchemy/migrate_repo/versions/
<NNN>_*.py``, numbered). Prints ``{"kind", "current", "heads", "applied",
"unknown"}``; a migrate version is its number as a string.

argv: cinder_dir config_file...   Python 2.7 and 3.6+.
"""
import glob
import json
import os
import re
import sys

try:
    import configparser
    from urllib.parse import unquote, urlsplit
except ImportError:  # Python 2
    import ConfigParser as configparser
    from urllib import unquote
    from urlparse import urlsplit

cinder_dir, config_files = sys.argv[1], sys.argv[2:]
MIGRATE_DIR = os.path.join(cinder_dir, "db", "sqlalchemy", "migrate_repo", "versions")
ALEMBIC_DIR = os.path.join(cinder_dir, "db", "migrations", "versions")


def read_connection():
    connection = None
    for path in config_files:
        try:
            parser = configparser.RawConfigParser(strict=False)
        except TypeError:  # Python 2: no strict mode (duplicates are allowed anyway)
            parser = configparser.RawConfigParser()
        parser.read(path)
        if parser.has_option("database", "connection"):
            connection = parser.get("database", "connection")
    if not connection:
        sys.exit("no [database]/connection in " + ", ".join(config_files))
    return connection


def open_database(connection):
    """A DB-API connection, or None for an SQLite file that does not exist yet."""
    url = urlsplit(connection)
    if url.scheme.startswith("sqlite"):
        import sqlite3
        if not os.path.exists(url.path[1:]):  # a missing file is an empty database
            return None
        # only SELECTs follow; they wait for a writer (the services heartbeat) to finish
        return sqlite3.connect(url.path[1:], timeout=60)
    if url.scheme.startswith("mysql"):
        import pymysql
        return pymysql.connect(host=url.hostname or "localhost", port=url.port or 3306,
                               user=unquote(url.username or ""),
                               password=unquote(url.password or ""),
                               database=url.path.lstrip("/"))
    sys.exit("unsupported database URL scheme: " + url.scheme)


def select(db, query):
    cursor = db.cursor()
    try:
        cursor.execute(query)
        return [row[0] for row in cursor.fetchall()]
    except Exception:  # no such table
        return None


def alembic_state(current):
    down = {}
    assignment = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*['\"]?([0-9a-zA-Z_]+)",
                            re.M)
    for path in glob.glob(os.path.join(ALEMBIC_DIR, "*.py")):
        with open(path) as handle:
            values = dict(assignment.findall(handle.read()))
        if "revision" in values:
            down[values["revision"]] = values.get("down_revision")
    referenced = set(parent for parent in down.values() if parent and parent != "None")
    heads = sorted(set(down) - referenced)
    applied, unknown = set(), []
    for revision in current:
        while revision and revision != "None":
            if revision not in down:
                unknown.append(revision)
                break
            applied.add(revision)
            revision = down[revision]
    return {"kind": "alembic", "current": sorted(current), "heads": heads,
            "applied": sorted(applied), "unknown": unknown}


def migrate_state(current):
    numbers = set()
    for path in glob.glob(os.path.join(MIGRATE_DIR, "*.py")):
        found = re.match(r"^(\d+)_", os.path.basename(path))
        if found:
            numbers.add(int(found.group(1)))
    newest = max(numbers) if numbers else None
    version = max(current) if current else None
    applied = sorted(str(n) for n in numbers if version is not None and n <= version)
    unknown = [str(version)] if version is not None and newest is not None and \
        version > newest else []
    return {"kind": "migrate", "current": [str(v) for v in current],
            "heads": [str(newest)] if newest is not None else [],
            "applied": applied, "unknown": unknown}


def main():
    db = open_database(read_connection())
    alembic, migrate = None, None
    if db is not None:
        alembic = select(db, "SELECT version_num FROM alembic_version")
        migrate = select(db, "SELECT version FROM migrate_version WHERE repository_id = 'cinder'")
        db.close()
    if alembic is None and (migrate is not None or
                            (os.path.isdir(MIGRATE_DIR) and not os.path.isdir(ALEMBIC_DIR))):
        state = migrate_state([int(v) for v in migrate or []])
    else:
        state = alembic_state(alembic or [])
    sys.stdout.write(json.dumps(state) + "\n")


main()
