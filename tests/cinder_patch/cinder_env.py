"""Build the cinder venv and lay cinder_patch/ over a copy of its cinder.

(This module builds the 29.0.0 env; train_env.py builds the Cinder Train one
the same way and both give a :class:`CinderEnv`.)

The venv is built once from Debian's /usr/bin/python3 (what a controller
has) with the pinned controller packages plus the test packages, and cached
in the machine's cache (``$DEVLOOP_CACHE_DIR/test-envs``, beside the
container trees) keyed by a hash of the requirement files, so a fresh clone
does not build it again. It is never modified:
each test session copies its pristine ``cinder`` package to a temporary
directory, rsyncs the feature over the copy (the common tree
``cinder_patch/cinder`` with the release's tree laid over it, composed as
``invoke deploy`` composes it) and puts that directory first on PYTHONPATH,
so the copy shadows the installed package.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.base.inventory import DEFAULT_EXCLUDES
from deploy.sandbox.common import CACHE_DIR as MACHINE_CACHE

ROOT = Path(__file__).resolve().parents[2]
PATCH_DIR = ROOT / "cinder_patch"
CACHE_DIR = MACHINE_CACHE / "test-envs"
SYSTEM_PYTHON = "/usr/bin/python3"
REQUIREMENT_FILES = (
    ROOT / "deploy" / "sandbox" / "controller-requirements.txt",
    Path(__file__).resolve().parent / "requirements.txt",
)


class EnvError(RuntimeError):
    """The cinder test environment could not be built."""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def venv_key() -> str:
    """Return the cache key: a hash of the interpreter and requirements."""
    digest = hashlib.sha256(SYSTEM_PYTHON.encode())
    for path in REQUIREMENT_FILES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_venv() -> Path:
    """Return the cached venv, building it first if needed.

    Raises:
        EnvError: venv creation or ``pip install`` failed; the message has
            the command and the end of its output.
    """
    venv = CACHE_DIR / f"cinder-venv-{venv_key()}"
    marker = venv / ".complete"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{venv.name}.lock", "w") as lock:
        # Another test run (e.g. pytest-xdist or a second shell) may be
        # building the same venv: build it once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        # A venv is not relocatable (its scripts name their interpreter by
        # absolute path), so it is built in place and marked complete last.
        steps = [
            [SYSTEM_PYTHON, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install",
             "--disable-pip-version-check", "--no-input"]
            + [arg for path in REQUIREMENT_FILES for arg in ("-r", str(path))],
        ]
        for argv in steps:
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise EnvError(
                    f"building the cinder test venv failed (exit "
                    f"{result.returncode}): {' '.join(argv)}\n"
                    f"{_tail(result.stdout + result.stderr)}")
        marker.write_text(venv_key() + "\n")
    return venv


def site_packages(venv: Path) -> Path:
    """Return the venv's site-packages directory."""
    found = sorted((venv / "lib").glob("python*/site-packages"))
    if not found:
        raise EnvError(f"no site-packages under {venv}/lib")
    return found[0]


@dataclasses.dataclass(frozen=True)
class CinderEnv:
    """A pristine venv plus a patched copy of its cinder package."""

    venv: Path
    overlay: Path  # the directory put first on PYTHONPATH
    release: str = "29.0.0"  # the Cinder release installed in the venv

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    @property
    def pristine_cinder(self) -> Path:
        return site_packages(self.venv) / "cinder"

    @property
    def etc(self) -> Path:
        """The venv's etc/cinder (api-paste.ini and friends)."""
        return self.venv / "etc" / "cinder"

    def environ(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONPATH=str(self.overlay), PYTHONDONTWRITEBYTECODE="1",
                   PATH=f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
        env.update(extra)
        return env

    def run(self, argv: list[str], *, timeout: float = 300,
            cwd: Path | None = None, **extra_env: str
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` with the patched cinder first on the path."""
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd,
                              env=self.environ(**extra_env))


def make_world_traversable_dir(prefix: str) -> Path:
    """Return a new temp dir that other users can enter (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def feature_layers(release: str) -> tuple[Path, ...]:
    """The common tree and ``release``'s tree, as cinder_patch/MANIFEST.txt names them."""
    from deploy.controller import manifest

    found = manifest.load(PATCH_DIR / "cinder")
    assert found is not None and found.common, "cinder_patch/MANIFEST.txt: not a common tree"
    trees = [tree for tree in found.variants if tree.targets(release)]
    if len(trees) != 1:
        raise EnvError(f"cinder_patch/MANIFEST.txt: {len(trees)} release trees for {release}")
    return (found.source, trees[0].source)


def feature_tree(release: str) -> Path:
    """The feature for ``release``: its layers composed as ``invoke deploy`` composes them."""
    from deploy.controller import layers

    return layers.compose(feature_layers(release), DEFAULT_EXCLUDES)


def make_overlay(venv: Path, dest: Path, release: str = "29.0.0") -> Path:
    """Copy the venv's cinder into ``dest`` and lay the feature for ``release`` over it.

    Raises:
        EnvError: rsync failed or the patched copy does not import first.
    """
    patch = feature_tree(release)
    shutil.copytree(site_packages(venv) / "cinder", dest / "cinder",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    argv = ["rsync", "--archive", "--exclude", "__pycache__/",
            "--exclude", "*.pyc", f"{patch}/", f"{dest / 'cinder'}/"]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise EnvError(f"{' '.join(argv)} failed: {_tail(result.stderr)}")
    env = CinderEnv(venv=venv, overlay=dest, release=release)
    probe = env.run([env.python, "-c", "import cinder; print(cinder.__file__)"])
    expected = str(dest / "cinder" / "__init__.py")
    if probe.stdout.strip() != expected:
        raise EnvError(f"the patched cinder does not shadow the installed one:"
                       f" cinder.__file__ = {probe.stdout.strip()!r}, "
                       f"expected {expected!r}\n{_tail(probe.stderr)}")
    return dest


if __name__ == "__main__":  # pragma: no cover - manual helper
    print(build_venv(), file=sys.stderr)
