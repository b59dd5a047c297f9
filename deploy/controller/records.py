"""Deploy records kept on the controller, and the database facts they depend on.

A record (``<state_dir>/deploys/<id>/record.json``) says what one deploy
added and replaced, from which commit, and whether it is still applied.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from deploy.base.errors import DevloopError
from deploy.controller.applying import ask, raise_for
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, as_user

# alembic (2023.1 on) and sqlalchemy-migrate (Train and before) migration files
_MIGRATION = re.compile(r"^db/migrations/versions/(?P<rev>[0-9a-f]{12})_[^/]+\.py$"
                        r"|^db/sqlalchemy/migrate_repo/versions/0*(?P<num>[0-9]+)_[^/]+\.py$")
MIGRATION_DIRS = ("db/migrations/", "db/sqlalchemy/migrate_repo/versions/")


@dataclass(frozen=True, slots=True)
class Record:
    """One deploy as recorded on the controller."""

    id: str
    state: str
    target: str
    backup: str
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    commit: str | None = None
    dirty: bool | None = None
    time: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def applied(self) -> bool:
        """In place: done, or interrupted after its record was written (``applying``)."""
        return self.state in ("applied", "applying")

    @property
    def added_revisions(self) -> list[str]:
        """Migrations (alembic revisions, migrate numbers) whose files this deploy added."""
        return [m["rev"] or m["num"] for m in map(_MIGRATION.match, self.added) if m]

    def describe_source(self) -> str:
        if not self.commit:
            return "a tree outside git"
        return "commit " + self.commit[:12] + (" with local changes" if self.dirty else "")


def list_records(remote: Remote) -> list[Record]:
    """Every deploy record on the controller, oldest first."""
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c", script("list_records"),
                         remote.controller.state_dir])
    records = []
    for raw in json.loads(result.stdout or "[]"):
        records.append(Record(
            id=raw.get("id", "?"), state=raw.get("state", "applied"),
            target=raw.get("target", ""), backup=raw.get("backup", ""),
            added=tuple(raw.get("added", [])), replaced=tuple(raw.get("replaced", [])),
            commit=raw.get("commit"), dirty=raw.get("dirty"), time=raw.get("time", ""), raw=raw))
    return records


def applied_records(remote: Remote) -> list[Record]:
    return [r for r in list_records(remote) if r.applied]


@dataclass(frozen=True, slots=True)
class DbState:
    """The database's revision(s), every revision they include, and the heads on disk."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    applied: frozenset[str]
    unknown: tuple[str, ...] = ()
    #: "alembic" or "migrate" (sqlalchemy-migrate: Train and before, no downgrade)
    kind: str = "alembic"

    @property
    def behind(self) -> bool:
        return set(self.current) != set(self.heads)


def db_state(remote: Remote, cinder_path: str) -> DbState:
    """Read the database revision and migration heads in one round trip.

    Raises:
        DevloopError: the database or the migration files cannot be read.
    """
    argv = [cinder_python(remote), "-c", script("db_state"), cinder_path,
            *remote.controller.config_files]
    result = remote.run(as_user(remote.controller.service_user, argv), check=False)
    if result.exited != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return parse_db_state(remote, {"error": lines[-1] if lines else "no output"})
    return parse_db_state(remote, json.loads(result.stdout.strip().splitlines()[-1]))


def parse_db_state(remote: Remote, data: Mapping[str, Any]) -> DbState:
    """Read deploy/remote/db_state.py's answer (``{"error": ...}`` if it failed).

    Raises:
        DevloopError: the database or the migration files cannot be read.
    """
    if "error" in data:
        raise DevloopError(f"{remote.name}: cannot read the database revision: {data['error']}")
    return DbState(tuple(data["current"]), tuple(data["heads"]), frozenset(data["applied"]),
                   tuple(data.get("unknown", ())), data.get("kind", "alembic"))


def begin_record(remote: Remote, record: Mapping[str, Any],
                 sizes: Mapping[str, int] | None, undo: str) -> dict[str, Any]:
    """Back up what a deploy through rsync will replace, proven, and write its ``applying`` record.

    One call (``deploy/remote/begin_deploy.py``): the way to every file is
    checked (no symlink below the package), the package's filesystem for
    room for the new files (``sizes``, when known), what a killed rsync or
    restore left beside those files is removed, every file to replace is
    kept in the deploy's backup (size and sha256, read back), and the
    record says so. Returns the record as written.

    Raises:
        UnsafePath / NoSpace: see :func:`deploy.controller.applying.raise_for`;
            nothing was changed.
    """
    answer = ask(remote, "begin_deploy", {"record": dict(record), "sizes": sizes})
    raise_for(remote, answer, undo)
    return answer["record"]


def end_record(remote: Remote, record: Mapping[str, Any], undo: str) -> list[str]:
    """Drop the stale bytecode of a deploy's files and write its final record; what was dropped.

    When the record cannot be written (a full disk), the deploy is undone at
    once (``deploy/remote/end_deploy.py``).

    Raises:
        UnsafePath / DeployCut: see :func:`deploy.controller.applying.raise_for`.
    """
    answer = ask(remote, "end_deploy", {"record": dict(record)})
    raise_for(remote, answer, undo)
    return list(answer.get("removed", []))
