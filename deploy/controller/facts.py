"""What is there on a controller: its Cinder, who owns it, which python runs it.

One remote command answers it all (:func:`locate`); callers ask once per
task run and the answer is kept on the :class:`~deploy.transport.commands.Remote`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from deploy.base.errors import DevloopError
from deploy.base.inventory import Controller
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail

# Run by sh on the controller: find the interpreter in cinder-api's "#!" line
# ("#!/usr/bin/python2", "#!/usr/bin/python3 -s", "#!/usr/bin/env python3")
# and run the locate helper with it, so that one round trip does it all.
# argv: cinder_api flags source args...; the helper gets the interpreter first.
_FROM_SHEBANG = r'''
api=$1 flags=$2 src=$3; shift 3
line=
[ -r "$api" ] && IFS= read -r line < "$api"
case $line in
    '#!'*) ;;
    *) echo "no #! line naming a python in $api" >&2; exit 3 ;;
esac
interp=$(printf '%s\n' "${line#??}" |
         awk '{ i = 1; if ($1 ~ /(^|\/)env$/) { i = 2; while ($i ~ /^-/) i++ }; print $i }')
case $interp in
    /*) ;;
    *) interp=$(command -v "$interp") || { echo "$api names $interp, not on PATH" >&2; exit 3; } ;;
esac
set -f
exec "$interp" $flags -c "$src" "$interp" "$@"
'''


@dataclass(frozen=True, slots=True)
class Target:
    """The controller's cinder package, its owner, and the Cinder and python that run it."""

    cinder_dir: str
    owner: str
    python: str = ""
    #: the installed Cinder release (None: no package metadata beside it)
    version: str | None = None
    python_version: str = ""
    #: sha256 of the upstream file at each asked path (None: no such file)
    hashes: Mapping[str, str | None] = field(default_factory=dict)


def locate(remote: Remote, hash_paths: Sequence[str] = ()) -> Target:
    """Find Cinder, its owner, release and python, and hash ``hash_paths``, in one round trip.

    ``hash_paths`` are paths inside the cinder package; each is hashed as
    upstream shipped it (a file an applied deploy replaced is hashed from
    that deploy's backup). The interpreter is the inventory's ``python``,
    else the one in ``cinder_api``'s ``#!`` line.

    Raises:
        DevloopError: no python found, or it cannot find cinder.
    """
    known: Target | None = remote.located
    if known is not None and set(hash_paths) <= set(known.hashes):
        return known
    ctl = remote.controller
    flags, args = locate_arguments(remote, hash_paths)
    result = remote.run(with_cinder_python(ctl, flags, script("locate"), args), check=False)
    if result.exited != 0:
        raise not_located(remote, tail(result.stderr + result.stdout, 1))
    return accept(remote, json.loads(result.stdout.strip().splitlines()[-1]))


def cinder_python(remote: Remote) -> str:
    """The interpreter that runs Cinder on the controller.

    The inventory's ``python`` if set, else the one in cinder-api's ``#!``
    line, found by the run's first :func:`locate` (which keeps it on
    ``remote.controller``).
    """
    return remote.controller.python or locate(remote).python


def locate_arguments(remote: Remote, hash_paths: Sequence[str] = ()) -> tuple[tuple[str, ...],
                                                                               list[str]]:
    """The interpreter flags and the arguments of ``deploy/remote/locate.py``."""
    ctl = remote.controller
    flags = STDLIB_ONLY if ctl.cinder_dir else ("-E", "-s")  # site finds the package
    return flags, [ctl.cinder_dir or "", ctl.state_dir, json.dumps(sorted(set(hash_paths)))]


def with_cinder_python(ctl: Controller, flags: Sequence[str], source: str,
                       args: Sequence[str]) -> list[str]:
    """The argv running ``source`` with the python that runs Cinder.

    That is the inventory's ``python``, else the one named in cinder-api's
    ``#!`` line. The script gets the interpreter's path as its first argument.
    """
    if ctl.python:
        return [ctl.python, *flags, "-c", source, ctl.python, *args]
    return ["sh", "-c", _FROM_SHEBANG, "devloop-locate", ctl.cinder_api, " ".join(flags),
            source, *args]


def not_located(remote: Remote, why: str) -> DevloopError:
    """The error for a controller whose Cinder cannot be found."""
    ctl = remote.controller
    what = ctl.python or f"the python in {ctl.cinder_api}'s #! line"
    return DevloopError(
        f"{remote.name}: cannot find the cinder package with {what} "
        f"({why or 'no output'}); "
        f"set cinder_dir, python or cinder_api for this controller in the inventory")


def accept(remote: Remote, data: Mapping[str, Any]) -> Target:
    """Keep what locate.py printed on ``remote``, for the rest of the run; the Target."""
    target = Target(data["cinder_dir"], data["owner"], data["python"], data.get("version"),
                    data.get("python_version", ""), dict(data.get("hashes") or {}))
    remote.located = target
    if not remote.controller.python:
        # everything later in this run (health probe included) uses this python
        remote.controller = dataclasses.replace(remote.controller, python=target.python)
    return target
