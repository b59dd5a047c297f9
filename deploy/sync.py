"""Lay the source tree over the controller's cinder package with rsync.

The tree is an overlay on an installed package, so the sync never deletes
(a delete would remove Cinder itself). Every file it replaces is moved
into a per-deploy backup directory on the controller first, so nothing is
lost. rsync writes each file to a temporary name and renames it into
place, so an interrupted transfer leaves every file wholly old or new.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploy import output
from deploy.connection import ssh_argv
from deploy.errors import SyncError
from deploy.inventory import Controller, Inventory

# rsync --out-format: a marker keeps file lines apart from ssh/rsync chatter.
_MARK = "devloop:"


@dataclass(frozen=True, slots=True)
class Change:
    """One file rsync created or replaced (``kind`` is "new" or "changed")."""

    kind: str
    path: str


def build_rsync_argv(source: Path, controller: Controller, dest_dir: str, *,
                     excludes: Sequence[str], owner: str | None = None,
                     backup_dir: str | None = None, dry_run: bool = False,
                     checksum: bool = False, ssh: Sequence[str] | None = None) -> list[str]:
    """Build the rsync command line for one controller.

    Roughly::

        rsync --recursive --links --times --perms --chmod=D755,F644
              --chown=root:root --itemize-changes --out-format='devloop:%i %n%L'
              --exclude=.git/ ... [--backup --backup-dir=DIR] [--dry-run] [--checksum]
              -e 'ssh -F /dev/null -o BatchMode=yes ...' SOURCE/ user@host:DEST/

    The modes are normalised to a package's (755 directories, 644 files)
    and ``owner`` (``user:group`` of the installed cinder) replaces the
    workstation's uid. No ``--delete``, ever.
    """
    argv = ["rsync", "--recursive", "--links", "--times", "--perms",
            "--chmod=D755,F644", "--itemize-changes", f"--out-format={_MARK}%i %n%L"]
    if owner:
        argv.append(f"--chown={owner}")
    argv += [f"--exclude={pattern}" for pattern in excludes]
    if backup_dir:
        argv += ["--backup", f"--backup-dir={backup_dir}"]
    if dry_run:
        argv.append("--dry-run")
    if checksum:
        argv.append("--checksum")
    argv += ["-e", shlex.join(ssh if ssh is not None else ssh_argv(controller))]
    argv += [f"{source}/", f"{controller.user}@{controller.address}:{dest_dir.rstrip('/')}/"]
    return argv


def parse_changes(stdout: str) -> list[Change]:
    """Read rsync's itemized output into the files created or replaced.

    ``>f+++++++++ x.py`` is a new file, ``>f.st...... x.py`` a changed one;
    directories and attribute-only lines (``.d..t......``) are not changes.
    """
    changes = []
    for line in stdout.splitlines():
        if not line.startswith(_MARK):
            continue
        item, _, name = line[len(_MARK):].partition(" ")
        if len(item) < 2 or item[1] != "f" or item[0] not in "<>ch":
            continue
        kind = "new" if "+++++++" in item else "changed"
        changes.append(Change(kind, name.split(" -> ")[0]))
    return changes


def sync_tree(inventory: Inventory, controller: Controller, dest_dir: str, *,
              owner: str | None = None, backup_dir: str | None = None,
              dry_run: bool = False, checksum: bool = False) -> list[Change]:
    """Run rsync from the inventory's source to ``dest_dir`` on ``controller``.

    Returns the files it created or replaced.

    Raises:
        SyncError: rsync failed; the message has its exit code and output.
    """
    argv = build_rsync_argv(inventory.source, controller, dest_dir, excludes=inventory.excludes,
                            owner=owner, backup_dir=backup_dir, dry_run=dry_run,
                            checksum=checksum)
    output.command("local", shlex.join(argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SyncError("rsync is not installed on this machine (apt-get install rsync)") from None
    if proc.returncode != 0:
        detail = "\n  ".join(line for line in proc.stderr.strip().splitlines()[-6:])
        raise SyncError(f"{controller.name}: rsync to {controller.label}:{dest_dir} failed "
                        f"with exit code {proc.returncode}:\n  {detail}")
    return parse_changes(proc.stdout)
