"""The debugpy wheels ``invoke debug --attach`` brings to a controller.

A controller rarely has a route to a package index, so debugpy comes from
the workstation: a wheel in a local cache, fetched with ``pip download``
(by ``.ci/bootstrap`` or on first use) for the controller's Python and
machine, never installed here. Python 2.7 gets debugpy 1.5.1, its last
release for 2.7; Python 3 gets 1.8.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from deploy.base import output
from deploy.base.errors import CommandFailed, DebugError
from deploy.transport.commands import run_local

PY2_VERSION = "1.5.1"     # debugpy 1.6.0 dropped Python 2.7
PY3_VERSION = "1.8.17"


def debugpy_version(python: tuple[int, int]) -> str:
    """The debugpy release for a controller's ``(major, minor)`` Python."""
    return PY2_VERSION if python[0] == 2 else PY3_VERSION


def cache_dir() -> Path:
    """``$DEVLOOP_CACHE`` or ``$XDG_CACHE_HOME/cinder-devloop`` (``~/.cache``), then ``debugpy``."""
    base = os.environ.get("DEVLOOP_CACHE") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cinder-devloop"
    return Path(base) / "debugpy"


def download_argv(python: tuple[int, int], machine: str, dest: Path) -> list[str]:
    """``python -m pip download debugpy==V --no-deps --only-binary=:all:
    --python-version X.Y --platform manylinux2014_<machine> --platform any -d DEST``.

    Only wheels, for the controller's Python and machine (pip takes a pure
    ``py2.py3-none-any`` wheel when that is what the release offers).
    """
    version = debugpy_version(python)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", f"debugpy=={version}",
            "--python-version", f"{python[0]}.{python[1]}"]
    if python[0] == 2:
        argv += ["--implementation", "cp", "--abi", "cp27mu", "--abi", "none"]
    for platform in (f"manylinux2014_{machine}", f"manylinux2010_{machine}",
                     f"manylinux1_{machine}", "any"):
        argv += ["--platform", platform]
    return argv + ["-d", str(dest)]


def _fits(wheel: Path, python: tuple[int, int], machine: str) -> bool:
    tags = wheel.name[:-len(".whl")].split("-")[-3:]
    pythons, abi, platform = tags[0].split("."), tags[1], tags[2]
    wanted = {f"py{python[0]}", f"cp{python[0]}{python[1]}"}
    return bool(wanted & set(pythons)) and \
        (platform == "any" or platform.endswith(machine)) and \
        (abi == "none" or abi.startswith(f"cp{python[0]}{python[1]}"))


def wheel_for(python: tuple[int, int], machine: str) -> Path:
    """A cached debugpy wheel that fits, fetched with pip on first use.

    Raises:
        DebugError: none is cached and pip cannot fetch one (says how to put one there).
    """
    version = debugpy_version(python)
    dest = cache_dir() / version
    found = sorted(w for w in dest.glob(f"debugpy-{version}-*.whl") if _fits(w, python, machine))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    argv = download_argv(python, machine, dest)
    output.detail(f"fetching debugpy {version} for Python {python[0]}.{python[1]} "
                  f"({machine}) into {dest}")
    try:
        run_local(argv)
    except CommandFailed as exc:
        raise DebugError(f"cannot fetch debugpy {version} for the controller's Python "
                         f"{python[0]}.{python[1]} ({machine}): {exc}\nthe controller needs no "
                         f"package index, this machine does once; or put a fitting wheel "
                         f"in {dest}") from None
    found = sorted(w for w in dest.glob(f"debugpy-{version}-*.whl") if _fits(w, python, machine))
    if not found:
        raise DebugError(f"pip fetched no debugpy {version} wheel for Python "
                         f"{python[0]}.{python[1]} ({machine}) into {dest}")
    return found[0]


def prefetch() -> None:
    """Fetch the wheels for this machine's controllers (x86_64; Python 2.7 and 3.11)."""
    for python in ((2, 7), (3, 11)):
        output.detail(f"debugpy for Python {python[0]}.{python[1]}: {wheel_for(python, 'x86_64')}")


if __name__ == "__main__":
    prefetch()
