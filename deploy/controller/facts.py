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


# The same for a DevStack controller, where no cinder-api script starts the
# API: the interpreter is read from the unit's ExecStart (the #! line of the
# program it runs: the venv's uwsgi), else from its uWSGI ini (``home``,
# ``virtualenv`` or ``venv``; else the #! line of ``wsgi-file``), else the
# inventory's python; DEVLOOP_PYTHON_FROM tells locate.py which it was.
# argv: unit inventory_python flags source args...
_FROM_UNIT = r'''
unit=$1 fallback=$2 flags=$3 src=$4; shift 4
shebang() {
    line=
    [ -r "$1" ] && IFS= read -r line < "$1"
    case $line in '#!'*) ;; *) return 1 ;; esac
    found=$(printf '%s\n' "${line#??}" |
            awk '{ i = 1; if ($1 ~ /(^|\/)env$/) { i = 2; while ($i ~ /^-/) i++ }; print $i }')
    case $found in /*) ;; *) found=$(command -v "$found") || return 1 ;; esac
    case ${found##*/} in python*) printf '%s\n' "$found" ;; *) return 1 ;; esac
}
start=$(systemctl show --property=ExecStart --value -- "$unit" 2>/dev/null)
prog=$(printf '%s\n' "$start" | sed -n 's/.*argv\[\]=\([^ ;]*\).*/\1/p' | head -n 1)
ini=$(printf '%s\n' "$start" | sed -n 's/.*--ini \([^ ;]*\).*/\1/p' | head -n 1)
ini_value() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p" "$ini" | head -n 1
}
interp=
if [ -n "$prog" ] && interp=$(shebang "$prog"); then
    from="the unit $unit (ExecStart: $prog)"
elif [ -n "$ini" ] && [ -r "$ini" ]; then
    for key in home virtualenv venv; do
        home=$(ini_value $key)
        if [ -n "$home" ] && [ -x "$home/bin/python" ]; then
            interp=$home/bin/python from="the uWSGI ini $ini ($key = $home)"; break
        fi
    done
    file=$(ini_value wsgi-file)
    if [ -z "$interp" ] && [ -n "$file" ] && interp=$(shebang "$file"); then
        from="the uWSGI ini $ini (wsgi-file = $file)"
    fi
fi
if [ -z "$interp" ] && [ -n "$fallback" ]; then
    interp=$fallback from="the inventory (python)"
fi
if [ -z "$interp" ]; then
    echo "no python found in $unit's ExecStart (${prog:-none})" \
         "nor in its uWSGI ini (${ini:-none})" >&2
    exit 3
fi
DEVLOOP_PYTHON_FROM=$from; export DEVLOOP_PYTHON_FROM
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
    #: where the python was found ("" : the inventory or cinder-api's #! line)
    python_from: str = ""


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
    ``#!`` line; on a DevStack controller (``layout: devstack``) the one
    its unit runs, else its uWSGI ini's, else the inventory's. The script
    gets the interpreter's path as its first argument.
    """
    if ctl.layout == "devstack":
        return ["sh", "-c", _FROM_UNIT, "devloop-locate", ctl.service, ctl.python or "",
                " ".join(flags), source, *args]
    if ctl.python:
        return [ctl.python, *flags, "-c", source, ctl.python, *args]
    return ["sh", "-c", _FROM_SHEBANG, "devloop-locate", ctl.cinder_api, " ".join(flags),
            source, *args]


def not_located(remote: Remote, why: str) -> DevloopError:
    """The error for a controller whose Cinder cannot be found."""
    ctl = remote.controller
    what = (f"the python of {ctl.service} (unit, uWSGI ini or inventory)"
            if ctl.layout == "devstack" else
            ctl.python or f"the python in {ctl.cinder_api}'s #! line")
    return DevloopError(
        f"{remote.name}: cannot find the cinder package with {what} "
        f"({why or 'no output'}); "
        f"set cinder_dir, python or cinder_api for this controller in the inventory")


def accept(remote: Remote, data: Mapping[str, Any]) -> Target:
    """Keep what locate.py printed on ``remote``, for the rest of the run; the Target."""
    target = Target(data["cinder_dir"], data["owner"], data["python"], data.get("version"),
                    data.get("python_version", ""), dict(data.get("hashes") or {}),
                    data.get("python_from") or "")
    remote.located = target
    if not remote.controller.python:
        # everything later in this run (health probe included) uses this python
        remote.controller = dataclasses.replace(remote.controller, python=target.python)
    return target
