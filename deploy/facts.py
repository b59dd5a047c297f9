"""What is there on a controller: where cinder lives, who owns it, its migrations.

Each fact is one remote command; callers ask once per task run.
"""
from __future__ import annotations

import shlex

from deploy.commands import Remote
from deploy.errors import DevloopError

# Finds the package without importing it (cinder/__init__ is not free).
_FIND_CINDER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.find_spec('cinder')\n"
    "sys.exit('cinder is not importable by this python') if spec is None else "
    "print(list(spec.submodule_search_locations)[0])\n"
)

# The newest revision(s) among the migration files on disk.
_HEADS = (
    "import sys\n"
    "from alembic.script import ScriptDirectory\n"
    "print(' '.join(sorted(ScriptDirectory(sys.argv[1]).get_heads())))\n"
)


def cinder_dir(remote: Remote) -> str:
    """The controller's cinder package directory (inventory value, or detected).

    Raises:
        DevloopError: the controller's python cannot find cinder.
    """
    if remote.controller.cinder_dir:
        return remote.controller.cinder_dir
    result = remote.run([remote.controller.python, "-c", _FIND_CINDER], check=False)
    path = result.stdout.strip()
    if result.exited != 0 or not path.startswith("/"):
        raise DevloopError(
            f"{remote.name}: cannot find the cinder package with {remote.controller.python} "
            f"({(result.stderr or result.stdout).strip() or 'no output'}); "
            f"set cinder_dir (or python) for this controller in the inventory")
    return path


def owner_of(remote: Remote, path: str) -> str:
    """``user:group`` owning ``path`` on the controller."""
    return remote.run(["stat", "-c", "%U:%G", path]).stdout.strip()


def migration_heads(remote: Remote, cinder_path: str) -> list[str]:
    """The head revision(s) of the migration files in the deployed tree."""
    script_dir = f"{cinder_path}/db/migrations"
    result = remote.run([remote.controller.python, "-c", _HEADS, script_dir], check=False)
    if result.exited != 0:
        raise DevloopError(f"{remote.name}: cannot read the migrations in "
                           f"{shlex.quote(script_dir)}: {result.stderr.strip()[-300:]}")
    return result.stdout.split()
