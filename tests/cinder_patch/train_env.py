"""Build the Cinder Train (15.6.0, Python 2.7) test env, like cinder_env.py.

The venv comes from ``deploy/sandbox/train.py`` (Train's wheelhouse, built
once per machine) plus the test packages of ``train-requirements.txt``
(Train's upper-constraints). It is cached in the machine's cache (test-envs) keyed by the
wheelhouse's key and that file, and never modified: each test session copies
its pristine ``cinder`` package and lays the feature over the copy (the
common tree with ``cinder_patch/releases/train/cinder`` laid over it),
exactly as for 29.0.0.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

from deploy.base.errors import SandboxError
from deploy.sandbox import train
from tests.cinder_patch.cinder_env import (CACHE_DIR, CinderEnv, EnvError, _tail,
                                           feature_layers, make_overlay)

RELEASE = train.CINDER_RELEASE
#: the common tree, then Train's release tree
TRAIN_LAYERS = feature_layers(RELEASE)
TEST_REQUIREMENTS = Path(__file__).resolve().parent / "train-requirements.txt"


def venv_key(python: str) -> str:
    """Return the cache key: the wheelhouse's key plus the test packages."""
    digest = hashlib.sha256(train._cache_key(python).encode())
    digest.update(TEST_REQUIREMENTS.read_bytes())
    return digest.hexdigest()[:16]


def build_venv() -> Path:
    """Return the cached Train venv, building it first if needed.

    Raises:
        EnvError: no Python 2.7, the wheelhouse or pip failed; the message
            says which command and ends with its output.
    """
    try:
        python = train.find_python27()
        venv = CACHE_DIR / f"cinder-train-venv-{venv_key(python)}"
        marker = venv / ".complete"
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with open(CACHE_DIR / f"{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.exists():
                return venv
            shutil.rmtree(venv, ignore_errors=True)
            train.make_virtualenv(venv, python)
            argv = [str(venv / "bin" / "python"), "-m", "pip", "install",
                    "--isolated", "--disable-pip-version-check", "--no-input",
                    "--find-links", str(train.wheelhouse(python)),
                    "-c", str(train.CONSTRAINTS), "-r", str(TEST_REQUIREMENTS)]
            result = subprocess.run(argv, capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL,
                                    env=train._pip_environ())
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise EnvError(
                    f"installing Train's test packages failed (exit "
                    f"{result.returncode}): {' '.join(argv)}\n"
                    f"{_tail(result.stdout + result.stderr)}")
            marker.write_text(venv.name + "\n")
        return venv
    except SandboxError as error:
        raise EnvError(f"building the Cinder Train test venv failed: {error}"
                       ) from None


def make_train_overlay(venv: Path, dest: Path) -> CinderEnv:
    """Copy the Train venv's cinder into ``dest``, lay the feature for Train over it."""
    make_overlay(venv, dest, release=RELEASE)
    return CinderEnv(venv=venv, overlay=dest, release=RELEASE)
