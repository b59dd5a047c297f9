"""Specs for deploy/controller/manifest.py: which tree goes to which Cinder, and the refusal."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from deploy.controller import manifest
from deploy.controller.facts import Target
from deploy.controller.manifest import ManifestError, ManifestRefused

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_DB_INIT = "# upstream cinder/db/__init__.py\n"
SHA = hashlib.sha256(UPSTREAM_DB_INIT.encode()).hexdigest()


@pytest.fixture
def patch(tmp_path: Path) -> Path:
    (tmp_path / "cinder" / "db").mkdir(parents=True)
    (tmp_path / "MANIFEST.txt").write_text(
        "# the feature for 2023.1 and later\n"
        "release 29.0.0\n"
        "release 30.*   # a pattern\n"
        "variant train\n"
        "cinder/api/contrib/x.py  new\n"
        f"cinder/db/__init__.py  replaces-upstream sha256:{SHA}\n")
    (tmp_path / "train" / "cinder").mkdir(parents=True)
    (tmp_path / "train" / "MANIFEST.txt").write_text(
        "release 15.6.0\ncinder/db/sqlalchemy/migrate_repo/versions/133_x.py  new\n")
    return tmp_path / "cinder"


def target(version: str | None, db_init: str | None = None) -> Target:
    """What locate reports: the release and the upstream cinder/db/__init__.py's sha256."""
    return Target("/usr/lib/python2.7/site-packages/cinder", "root:root", "/usr/bin/python2",
                  version, "2.7.18", {"db/__init__.py": db_init})


def test_the_tree_whose_release_matches_is_chosen(patch):
    assert manifest.fitting_source(patch, "ctl", target("29.0.0", db_init=SHA)) == patch
    assert manifest.fitting_source(patch, "ctl", target("30.1.0", db_init=SHA)) == patch
    assert manifest.fitting_source(patch, "ctl", target("15.6.0")) == \
        patch.parent / "train" / "cinder"


def test_locate_is_asked_for_every_replaced_file_of_every_variant(patch):
    assert manifest.hash_paths(patch) == ["db/__init__.py"]


def test_a_release_no_tree_targets_is_refused_naming_controller_and_releases(patch):
    with pytest.raises(ManifestRefused) as refused:
        manifest.fitting_source(patch, "legacy", target("14.3.1"))
    message = str(refused.value)
    assert message.startswith(f"legacy: refusing to deploy {patch}: {patch.parent}/MANIFEST.txt "
                              f"targets Cinder 29.0.0 or 30.*, the controller has Cinder 14.3.1")
    assert "train/MANIFEST.txt: Cinder 15.6.0" in message
    assert "Nothing was changed; --ignore-manifest sends it anyway." in message


def test_a_replaced_upstream_file_that_differs_is_refused_naming_the_file(patch):
    with pytest.raises(ManifestRefused) as refused:
        manifest.fitting_source(patch, "ctl", target("29.0.0", db_init="0" * 64))
    assert str(refused.value) == (
        f"ctl: refusing to deploy {patch}: {patch}/db/__init__.py replaces an upstream file "
        f"that differs on the controller (/usr/lib/python2.7/site-packages/cinder/"
        f"db/__init__.py: sha256:{'0' * 64}, expected sha256:{SHA}); the tree targets Cinder "
        f"29.0.0 or 30.*, the controller has Cinder 29.0.0. Nothing was changed; "
        f"--ignore-manifest sends it anyway.")


def test_the_override_sends_the_source_as_named_with_a_loud_warning(patch, capsys):
    assert manifest.fitting_source(patch, "ctl", target("14.3.1"), ignore=True) == patch
    err = capsys.readouterr().err
    assert "ctl: refusing to deploy" in err and "SENDING IT ANYWAY (--ignore-manifest)" in err


def test_a_tree_without_a_manifest_is_sent_unchecked(tmp_path):
    (tmp_path / "cinder").mkdir()
    assert manifest.fitting_source(tmp_path / "cinder", "ctl", target(None)) == \
        tmp_path / "cinder"
    assert manifest.hash_paths(tmp_path / "cinder") == []


@pytest.mark.parametrize("text, problem", [
    ("cinder/x.py  new\n", "no 'release <version>' line"),
    ("release 29.0.0\ncinder/x.py  replaces-upstream md5:abc\n",
     "MANIFEST.txt:2: expected '<path> new' or '<path> replaces-upstream sha256:"),
    ("release 29.0.0\nother/x.py  new\n", "MANIFEST.txt:2: 'other/x.py' is not under cinder/"),
    ("release\n", "MANIFEST.txt:1: expected 'release <value>'"),
])
def test_a_malformed_manifest_is_one_clear_error(tmp_path, text, problem):
    (tmp_path / "cinder").mkdir()
    (tmp_path / "MANIFEST.txt").write_text(text)
    with pytest.raises(ManifestError) as error:
        manifest.hash_paths(tmp_path / "cinder")
    assert problem in str(error.value)


def test_the_projects_patch_has_a_29_tree_and_a_train_variant():
    found = manifest.load(REPO / "cinder_patch" / "cinder")
    assert found is not None
    assert [tree.releases for tree in found.trees()] == [("29.0.0",), ("15.6.0",)]
    assert found.trees()[1].source == REPO / "cinder_patch" / "train" / "cinder"
    assert "db/__init__.py" in found.all_replaced()
