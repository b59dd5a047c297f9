"""How the cinder test env is built: cache key, failures, the overlay."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cinder_patch import cinder_env as envlib


def test_venv_key_changes_with_the_requirement_files(tmp_path: Path,
                                                     monkeypatch) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("pytest==9.0.3\n")
    monkeypatch.setattr(envlib, "REQUIREMENT_FILES", (req,))
    before = envlib.venv_key()
    req.write_text("pytest==9.0.2\n")
    assert envlib.venv_key() != before


@pytest.mark.integration
def test_pip_failure_is_reported_with_command_and_output(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(envlib, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(envlib, "REQUIREMENT_FILES",
                        (tmp_path / "missing-requirements.txt",))
    (tmp_path / "missing-requirements.txt").write_text("-r does-not-exist.txt\n")
    with pytest.raises(envlib.EnvError) as caught:
        envlib.build_venv()
    message = str(caught.value)
    assert message.startswith("building the cinder test venv failed (exit ")
    assert "pip install" in message
    assert "does-not-exist.txt" in message
    assert not list(tmp_path.glob("cinder-venv-*/.complete"))


def test_patched_cinder_shadows_the_installed_one(cinder_env) -> None:
    result = cinder_env.run([cinder_env.python, "-c",
                             "import cinder.db.cluster_manage_models as m;"
                             "print(m.__file__)"])
    assert result.stdout.strip().startswith(str(cinder_env.overlay)), result
    assert not (cinder_env.pristine_cinder / "db" /
                "cluster_manage_models.py").exists()


def test_overlay_is_world_traversable(cinder_env) -> None:
    assert cinder_env.overlay.stat().st_mode & 0o005 == 0o005


# --- the Cinder Train env -------------------------------------------------

def test_train_venv_key_changes_with_its_test_requirements(
        tmp_path: Path, monkeypatch) -> None:
    from tests.cinder_patch import train_env

    req = tmp_path / "train-requirements.txt"
    req.write_text("mock==3.0.5\n")
    monkeypatch.setattr(train_env, "TEST_REQUIREMENTS", req)
    python = train_env.train.find_python27()
    before = train_env.venv_key(python)
    req.write_text("mock==3.0.4\n")
    assert train_env.venv_key(python) != before


def test_the_feature_for_train_shadows_the_installed_train_cinder(train_env) -> None:
    result = train_env.run([train_env.python, "-c",
                            "import sys, cinder.db.cluster_manage_models as m;"
                            "print(m.__file__); print(m.models.__name__);"
                            "print('%d.%d' % sys.version_info[:2])"])
    assert result.returncode == 0, result.stderr
    module, base, version = result.stdout.split()
    assert module.startswith(str(train_env.overlay)), result
    assert base == "cinder.db.sqlalchemy.models"     # Train's models, from its release tree
    assert version == "2.7"
    assert train_env.release == "15.6.0"
    assert not (train_env.pristine_cinder / "db" / "cluster_manage_models.py").exists()
