"""The feature on Cinder Train's own terms: Python 2.7, migrate, tests.

* every file deploy sends Train (the common tree cinder_patch/cinder and
  the release tree cinder_patch/releases/train/cinder) compiles with Python
  2.7 and is ASCII (Python 2 refuses non-ASCII source without a coding
  line), and passes Train's pep8 job: flake8 with hacking and Cinder's local
  checks, configured as Train's tox.ini does (in_train/tox.ini);
* the sqlalchemy-migrate repository ends at 133, after Train's 132, and
  ``cinder-manage db sync`` applies it;
* Train's own ``cinder/tests/unit/db/test_migrations.py`` passes with the
  variant laid over a pristine Train install (SQLite here, MariaDB in
  test_train_mariadb.py), and so does the variant's walk with ``_check_133``;
* oslo.db's ModelsMigrationsSync (in_train/test_models_sync.py) finds no
  difference between the variant's models and migration beyond the ones
  pristine Train already has with its own migrations (about 50).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_api import db_manage, write_config
from tests.cinder_patch.cinder_env import CinderEnv, make_world_traversable_dir
from tests.cinder_patch.test_in_cinder import _explain
from deploy.controller.layers import winning_files
from tests.cinder_patch.train_env import TRAIN_LAYERS

pytestmark = pytest.mark.integration

IN_TRAIN = Path(__file__).resolve().parent / "in_train"
TRAIN_HEAD = 132
VERSION = 133
#: what deploy sends Train, by path inside the package
TRAIN_FILES = {rel: path for rel, path in winning_files(TRAIN_LAYERS).items()
               if rel.endswith(".py")}
VARIANT_FILES = [TRAIN_FILES[rel] for rel in sorted(TRAIN_FILES)]


def run_unittest(env: CinderEnv, *args: str, cwd: Path | None = None,
                 **extra_env: str) -> subprocess.CompletedProcess[str]:
    return env.run([env.python, "-m", "unittest", "-v", *args],
                   cwd=cwd or env.overlay, timeout=900, **extra_env)


@pytest.fixture(scope="session")
def pristine_train(train_env: CinderEnv) -> Iterator[CinderEnv]:
    """The same Train venv with nothing laid over its cinder."""
    empty = make_world_traversable_dir("cinder-train-pristine-")
    yield CinderEnv(venv=train_env.venv, overlay=empty, release=train_env.release)
    shutil.rmtree(empty, ignore_errors=True)


@pytest.mark.parametrize("path", VARIANT_FILES,
                         ids=sorted(TRAIN_FILES))
def test_variant_file_is_python27_source(train_env: CinderEnv, path: Path) -> None:
    assert path.read_bytes().isascii(), f"{path}: non-ASCII, Python 2 refuses it"
    # (compile(), not py_compile: that would write a .pyc beside the source)
    result = train_env.run([train_env.python, "-c",
                            "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
                            str(path)], PYTHONDONTWRITEBYTECODE="1")
    assert result.returncode == 0, _explain(result)


def flake8(env: CinderEnv, *paths: Path) -> subprocess.CompletedProcess[str]:
    # cwd: in_train/tox.ini holds Train's [flake8] and [hacking] settings
    return env.run([env.python, "-m", "flake8", *map(str, paths)], cwd=IN_TRAIN,
                   PYTHONDONTWRITEBYTECODE="1")


def test_variant_passes_trains_flake8_with_cinders_hacking_checks(
        train_env: CinderEnv) -> None:
    result = flake8(train_env, *VARIANT_FILES, IN_TRAIN / "test_models_sync.py")
    assert result.returncode == 0, _explain(result)


def test_trains_flake8_applies_cinders_local_checks(train_env: CinderEnv,
                                                    tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("x = dict([(1, 2)])\n")
    result = flake8(train_env, sample)
    assert result.returncode != 0
    assert "N336" in result.stdout, _explain(result)


REPOSITORY_LATEST = (
    "import os, cinder.db.sqlalchemy.migrate_repo as r\n"
    "from migrate.versioning import repository\n"
    "print(repository.Repository(os.path.dirname(r.__file__)).latest)\n")


def test_migrate_repository_ends_at_133_after_trains_132(
        train_env: CinderEnv, pristine_train: CinderEnv) -> None:
    for env, latest in ((pristine_train, TRAIN_HEAD), (train_env, VERSION)):
        result = env.run([env.python, "-c", REPOSITORY_LATEST])
        assert result.returncode == 0, _explain(result)
        assert result.stdout.split() == [str(latest)]


def test_cinder_manage_db_sync_applies_133_on_sqlite(train_env: CinderEnv,
                                                      tmp_path: Path) -> None:
    conf = write_config(train_env, tmp_path, 1,
                        f"sqlite:///{tmp_path / 'cinder.sqlite'}")
    sync = db_manage(train_env, conf, "sync")
    assert sync.returncode == 0, _explain(sync)
    assert f"{TRAIN_HEAD} -> {VERSION}" in sync.stderr + sync.stdout
    version = db_manage(train_env, conf, "version")
    assert version.returncode == 0, _explain(version)
    assert version.stdout.strip().splitlines()[-1] == str(VERSION)


def test_trains_own_test_migrations_passes_with_the_variant(
        train_env: CinderEnv) -> None:
    result = run_unittest(train_env, "cinder.tests.unit.db.test_migrations")
    assert result.returncode == 0, _explain(result)
    assert re.search(r"TestSqliteMigrations\.test_walk_versions \.\.\. ok$",
                     result.stderr, re.MULTILINE), _explain(result)


def test_variant_walk_checks_133_on_sqlite(train_env: CinderEnv) -> None:
    result = run_unittest(
        train_env, "cinder.tests.unit.db.test_cluster_manage_migrations."
        "TestManagedClusterSqliteMigrations")
    assert result.returncode == 0, _explain(result)
    assert "Ran 1 test" in result.stderr and "skipped" not in result.stderr


# --- models <-> migrations ---------------------------------------------------

def models_sync(env: CinderEnv, backend: str, **extra_env: str
                ) -> subprocess.CompletedProcess[str]:
    return run_unittest(env, f"test_models_sync.TestModelsSync{backend}",
                        cwd=IN_TRAIN, **extra_env)


def record_differences(env: CinderEnv, backend: str, path: Path,
                       **extra_env: str) -> list[str]:
    result = models_sync(env, backend, MODELS_SYNC_RECORD=str(path), **extra_env)
    assert result.returncode == 0, _explain(result)
    assert "skipped" not in result.stderr, _explain(result)
    return path.read_text().splitlines()


def check_models_sync(train_env: CinderEnv, pristine_train: CinderEnv,
                      backend: str, workdir: Path, **extra_env: str) -> None:
    baseline = record_differences(pristine_train, backend,
                                  workdir / "baseline.txt", **extra_env)
    # Pristine Train's models and migrations already disagree (about 50
    # places on SQLite); none of it concerns the variant's tables.
    assert 30 <= len(baseline) <= 80, baseline
    assert not [line for line in baseline if "managed_cluster" in line]

    variant = record_differences(train_env, backend, workdir / "variant.txt",
                                 **extra_env)
    assert variant == baseline

    result = models_sync(train_env, backend,
                         MODELS_SYNC_BASELINE=str(workdir / "baseline.txt"),
                         **extra_env)
    assert result.returncode == 0, _explain(result)
    assert "Ran 1 test" in result.stderr and "skipped" not in result.stderr

    # The spec can fail: a model column that no migration creates.
    broken = models_sync(train_env, backend, MODELS_SYNC_EXTRA_COLUMN="1",
                         MODELS_SYNC_BASELINE=str(workdir / "baseline.txt"),
                         **extra_env)
    assert broken.returncode != 0, _explain(broken)
    assert "'managed_clusters'" in broken.stderr and "not_migrated" in broken.stderr


def test_variant_models_match_migration_133_beyond_trains_baseline_on_sqlite(
        train_env: CinderEnv, pristine_train: CinderEnv, tmp_path: Path) -> None:
    check_models_sync(train_env, pristine_train, "SQLite", tmp_path)
