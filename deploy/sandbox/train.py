"""Cinder Train (15.6.0) for Python 2.7, built once on this machine.

The legacy controller kind and the Train variant's tests both need the same
thing: Cinder 15.6.0 and what it depends on, resolved by the Train release's
own upper-constraints (``train-upper-constraints.txt``, shipped here) and
installed for a Python 2.7 interpreter. Neither Debian 12 nor PyPI offers a
Python 2.7, so it comes from the machine: ``$DEVLOOP_PYTHON27``, else root's
pyenv build, else ``python2.7`` on PATH.

Building is slow (about 3 minutes: gcc compiles SQLAlchemy, PyYAML and a few
more), so it happens once: :func:`wheelhouse` keeps every wheel in a cache
directory keyed by the interpreter and the constraints, and later installs
(:func:`make_virtualenv`, :func:`install_train`) read only that directory.
A lock file keeps two runs from building it at once.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from deploy.base.errors import SandboxError
from deploy.sandbox.common import locked

CINDER_RELEASE = "15.6.0"
CONSTRAINTS = Path(__file__).with_name("train-upper-constraints.txt")
#: what a Train controller gets: Cinder, plus PyMySQL for a MariaDB database
PACKAGES = (f"cinder=={CINDER_RELEASE}", "PyMySQL")
CACHE_ROOT = Path(os.environ.get("DEVLOOP_CACHE", "/var/cache/cinder-devloop"))
#: the last virtualenv release that still makes Python 2.7 environments
VIRTUALENV = "virtualenv<20.22"


def find_python27() -> str:
    """Return the path of a Python 2.7 interpreter on this machine.

    Raises:
        SandboxError: none was found (the message says where it looked).
    """
    named = os.environ.get("DEVLOOP_PYTHON27")
    candidates = [named] if named else [
        os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7"),
        shutil.which("python2.7") or "",
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK) and _is_python27(path):
            return path
    where = f"DEVLOOP_PYTHON27={named}" if named else \
        "~/.pyenv/versions/2.7.18/bin/python2.7 or python2.7 on PATH"
    raise SandboxError(f"no Python 2.7 interpreter found ({where}); the legacy controller and "
                       "the Train tests need one: install it (e.g. pyenv install 2.7.18) or "
                       "set DEVLOOP_PYTHON27 to its path")


def _is_python27(path: str) -> bool:
    proc = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return proc.returncode == 0 and proc.stdout.strip() == "2.7"


def _cache_key(python: str) -> str:
    digest = hashlib.sha256()
    digest.update(os.path.realpath(python).encode())
    digest.update(CONSTRAINTS.read_bytes())
    digest.update("\n".join(PACKAGES).encode())
    return digest.hexdigest()[:16]


def _pip_environ() -> dict[str, str]:
    # --isolated ignores this machine's pip config (local indexes, a torch cap);
    # the environment's PIP_* settings would still apply, so drop them too.
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}


def _run(argv: Sequence[str], hint: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env if env is not None else _pip_environ())
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr + proc.stdout).strip().splitlines()[-15:])
        raise SandboxError(f"{hint}: {' '.join(argv)} exited {proc.returncode}\n{tail}")


def wheelhouse(python: str | None = None) -> Path:
    """Return the directory of Train's wheels for ``python``, building it once.

    The wheels are built by the pip of a fresh virtualenv: it brings the
    ``wheel`` package that a bare interpreter's pip may lack.

    Raises:
        SandboxError: no Python 2.7, or pip could not build the wheels.
    """
    python = python or find_python27()
    base = CACHE_ROOT / "train-py27"
    wheels = base / f"wheels-{_cache_key(python)}"
    done = wheels / ".complete"
    if done.exists():
        return wheels
    with locked(base / ".lock"):
        if done.exists():
            return wheels
        shutil.rmtree(wheels, ignore_errors=True)
        builder = base / "build-venv"
        shutil.rmtree(builder, ignore_errors=True)
        _new_virtualenv(python, builder)
        try:
            _run([str(builder / "bin" / "python"), "-m", "pip", "wheel", "--isolated",
                  "--disable-pip-version-check", "--no-input", "--wheel-dir", str(wheels),
                  "-c", str(CONSTRAINTS), *PACKAGES],
                 "pip could not build Cinder Train's wheels for Python 2.7")
        finally:
            shutil.rmtree(builder, ignore_errors=True)
        done.write_text("")
    return wheels


def _new_virtualenv(python: str, dest: Path) -> None:
    env = {**_pip_environ(), "PYTHONPATH": str(_virtualenv_tool(python)),
           # virtualenv otherwise keeps its seed data under ~/.local/share
           "VIRTUALENV_OVERRIDE_APP_DATA": str(CACHE_ROOT / "train-py27" / "virtualenv-data")}
    _run([python, "-m", "virtualenv", "--no-download", "--quiet", str(dest)],
         "virtualenv could not create a Python 2.7 environment", env=env)


def _virtualenv_tool(python: str) -> Path:
    """A directory holding virtualenv for ``python`` (``PYTHONPATH=<dir>``)."""
    tool = CACHE_ROOT / "train-py27" / f"virtualenv-{_cache_key(python)}"
    if not (tool / ".complete").exists():
        shutil.rmtree(tool, ignore_errors=True)
        _run([python, "-m", "pip", "install", "--isolated", "--disable-pip-version-check",
              "--no-input", "--target", str(tool), VIRTUALENV],
             "pip could not install virtualenv for Python 2.7")
        (tool / ".complete").write_text("")
    return tool


def install_train(pip_argv: Sequence[str], python: str | None = None) -> None:
    """Install Train's packages with ``pip_argv`` (a Python 2.7 pip) from the wheelhouse only.

    ``pip_argv`` is the pip to use plus where to install, e.g.
    ``[venv/bin/python, -m, pip, install, --prefix, X]``; nothing is downloaded.

    Raises:
        SandboxError: pip failed.
    """
    wheels = wheelhouse(python)
    _run([*pip_argv, "--isolated", "--disable-pip-version-check", "--no-input", "--no-index",
          "--find-links", str(wheels), "-c", str(CONSTRAINTS), *PACKAGES],
         "pip could not install Cinder Train from the wheelhouse")


def make_virtualenv(dest: Path, python: str | None = None) -> Path:
    """Create a Python 2.7 virtualenv at ``dest`` with Cinder Train in it; return ``dest``.

    Raises:
        SandboxError: no Python 2.7, or virtualenv/pip failed.
    """
    python = python or find_python27()
    wheelhouse(python)
    _new_virtualenv(python, dest)
    install_train([str(dest / "bin" / "python"), "-m", "pip", "install"], python)
    return dest

