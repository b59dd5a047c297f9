"""Specs for deploy/controller/manifest.py: which tree goes to which Cinder, and the refusal."""
from __future__ import annotations

import hashlib
import os
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


def test_the_projects_patch_is_a_common_tree_with_a_29_and_a_train_release_tree():
    found = manifest.load(REPO / "cinder_patch" / "cinder")
    assert found is not None and found.common and found.releases == ()
    assert [tree.releases for tree in found.variants] == [("29.0.0",), ("15.6.0",)]
    assert [tree.source for tree in found.variants] == [
        REPO / "cinder_patch" / "releases" / name / "cinder" for name in ("29", "train")]
    assert "db/__init__.py" in found.all_replaced()


# --- a common tree and its release trees, laid one over the other -----------------------

@pytest.fixture
def layered(tmp_path: Path, monkeypatch) -> Path:
    """A common tree with a 29.* and a Train release tree; the composed trees go to tmp."""
    monkeypatch.setenv("DEVLOOP_USER_CACHE", str(tmp_path / "cache"))
    feature = tmp_path / "feature"
    files = {
        "cinder/api/contrib/x.py": "# common extension\n",
        "cinder/x/api.py": "# common api\n",
        "cinder/x/compat.py": "# common default\n",
        "releases/29/cinder/x/compat.py": "# 29's spelling\n",
        "releases/29/cinder/db/__init__.py": "# replaced\n",
        "releases/29/cinder/db/migrations/versions/1a_x.py": "# alembic\n",
        "releases/train/cinder/x/compat.py": "# Train's spelling\n",
        "releases/train/cinder/db/sqlalchemy/migrate_repo/versions/133_x.py": "# migrate\n",
    }
    for rel, text in files.items():
        (feature / rel).parent.mkdir(parents=True, exist_ok=True)
        (feature / rel).write_text(text)
    (feature / "MANIFEST.txt").write_text(
        "common\nvariant releases/29\nvariant releases/train\n"
        "cinder/api/contrib/x.py  new\ncinder/x/api.py  new\ncinder/x/compat.py  new\n")
    (feature / "releases" / "29" / "MANIFEST.txt").write_text(
        "release 29.*\ncinder/x/compat.py  new\n"
        f"cinder/db/__init__.py  replaces-upstream sha256:{SHA}\n"
        "cinder/db/migrations/versions/1a_x.py  new\n")
    (feature / "releases" / "train" / "MANIFEST.txt").write_text(
        "release 15.6.0\ncinder/x/compat.py  new\n"
        "cinder/db/sqlalchemy/migrate_repo/versions/133_x.py  new\n")
    return feature / "cinder"


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_release_tree_that_fits_is_laid_over_the_common_tree(layered):
    fitted = manifest.fitting(layered, "ctl", target("29.0.0", db_init=SHA))
    release = layered.parent / "releases" / "29" / "cinder"
    assert fitted.layers == (layered, release)
    assert fitted.path != layered and fitted.path.name == "cinder"
    assert tree(fitted.path) == {
        "api/contrib/x.py": "# common extension\n",
        "x/api.py": "# common api\n",
        "x/compat.py": "# 29's spelling\n",                 # the release tree's wins
        "db/__init__.py": "# replaced\n",
        "db/migrations/versions/1a_x.py": "# alembic\n",
    }
    train = manifest.fitting(layered, "ctl", target("15.6.0"))
    assert train.layers[1] == layered.parent / "releases" / "train" / "cinder"
    assert tree(train.path)["x/compat.py"] == "# Train's spelling\n"
    assert "db/__init__.py" not in tree(train.path) and train.path != fitted.path


def test_a_composed_file_keeps_its_layer_files_mode_size_and_mtime(layered):
    origin = layered.parent / "releases" / "train" / "cinder" / "x" / "compat.py"
    os.utime(origin, ns=(1_000_000_000, 1_234_567_891_011_121_314))
    origin.chmod(0o640)
    copy = manifest.fitting(layered, "ctl", target("15.6.0")).path / "x" / "compat.py"
    assert (copy.stat().st_mtime_ns, copy.stat().st_size, copy.stat().st_mode & 0o777) == \
        (origin.stat().st_mtime_ns, origin.stat().st_size, 0o640)


def test_composing_again_copies_only_what_changed_and_drops_what_is_gone(layered):
    first = manifest.fitting(layered, "ctl", target("15.6.0")).path
    untouched = os.stat(first / "x" / "api.py").st_ino
    (layered / "api" / "contrib" / "x.py").write_text("# edited\n")
    (layered.parent / "releases" / "train" / "cinder" / "x" / "compat.py").unlink()
    second = manifest.fitting(layered, "ctl", target("15.6.0")).path
    assert second == first
    assert os.stat(second / "x" / "api.py").st_ino == untouched    # not copied again
    assert tree(second)["api/contrib/x.py"] == "# edited\n"
    assert tree(second)["x/compat.py"] == "# common default\n"   # the common one again


def test_excluded_files_are_not_composed(layered):
    (layered / "__pycache__").mkdir()
    (layered / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (layered / "x" / "api.pyc").write_bytes(b"\0")
    fitted = manifest.fitting(layered, "ctl", target("15.6.0"),
                              excludes=("__pycache__/", "*.pyc"))
    assert not [rel for rel in tree(fitted.path) if "pyc" in rel]


def test_a_common_tree_is_never_sent_alone_to_a_release_no_release_tree_targets(layered):
    with pytest.raises(ManifestRefused) as refused:
        manifest.fitting(layered, "legacy", target("14.3.1"))
    assert str(refused.value) == (
        f"legacy: refusing to deploy {layered}: no release tree of {layered.parent}/MANIFEST.txt "
        f"targets the controller's Cinder 14.3.1 ({layered.parent}/releases/29/MANIFEST.txt: "
        f"Cinder 29.*; {layered.parent}/releases/train/MANIFEST.txt: Cinder 15.6.0); the common "
        f"tree is never sent alone: add a release tree for it (see cinder_patch/README.md). "
        f"Nothing was changed; --ignore-manifest sends the common tree anyway.")


def test_the_override_sends_the_common_tree_alone_with_a_loud_warning(layered, capsys):
    assert manifest.fitting(layered, "ctl", target("14.3.1"), ignore=True) == \
        manifest.Fitted(layered)
    assert "SENDING IT ANYWAY (--ignore-manifest)" in capsys.readouterr().err


def test_a_replaced_file_that_differs_refuses_the_release_tree_it_belongs_to(layered):
    release = layered.parent / "releases" / "29" / "cinder"
    with pytest.raises(ManifestRefused) as refused:
        manifest.fitting(layered, "ctl", target("29.0.0", db_init="0" * 64))
    assert str(refused.value).startswith(
        f"ctl: refusing to deploy {release}: {release}/db/__init__.py replaces an upstream file")


def test_locate_hashes_the_files_every_release_tree_replaces(layered):
    assert manifest.hash_paths(layered) == ["db/__init__.py"]


@pytest.mark.parametrize("change, problem", [
    (("MANIFEST.txt", "common\nrelease 16.0.0\nvariant releases/29\n"),
     "MANIFEST.txt: 'release 16.0.0' in a common tree: a release needs a tree of its own "
     "('variant <dir>' with <dir>/MANIFEST.txt and <dir>/cinder/, see cinder_patch/README.md)"),
    (("MANIFEST.txt", f"common\nvariant releases/29\n"
                      f"cinder/db/__init__.py  replaces-upstream sha256:{SHA}\n"),
     "MANIFEST.txt: cinder/db/__init__.py replaces an upstream file in a common tree: the "
     "upstream file differs per release, so only a release tree replaces one"),
    (("MANIFEST.txt", "common\n"),
     "MANIFEST.txt: a common tree without a 'variant <dir>' line: which release tree goes "
     "over it?"),
    (("releases/16/MANIFEST.txt", "release 16.0.0\n"),
     "releases/16/MANIFEST.txt: Cinder 16.0.0 has no tree of its own: "),
    (("releases/16/MANIFEST.txt", "release 16.0.0\nvariant deeper\n"),
     "can be neither a common tree nor name variants (one layer over the common tree only)"),
])
def test_a_release_without_a_tree_of_its_own_is_refused_clearly(layered, change, problem):
    name, text = change
    if name != "MANIFEST.txt":
        (layered.parent / name).parent.mkdir(parents=True)
        (layered.parent / "MANIFEST.txt").write_text(
            "common\nvariant releases/29\nvariant releases/16\n")
        if "deeper" in text:
            (layered.parent / "releases" / "16" / "cinder").mkdir()
            (layered.parent / "releases" / "16" / "deeper" / "cinder").mkdir(parents=True)
            (layered.parent / "releases" / "16" / "deeper" / "MANIFEST.txt").write_text(
                "release 16.1.0\n")
    (layered.parent / name).write_text(text)
    with pytest.raises(ManifestError) as error:
        manifest.fitting(layered, "ctl", target("29.0.0", db_init=SHA))
    assert problem in str(error.value)


def test_a_file_in_one_layer_where_the_other_has_a_directory_is_one_clear_error(layered):
    from deploy.controller.layers import LayerError

    (layered.parent / "releases" / "train" / "cinder" / "api" / "contrib" / "x.py").mkdir(
        parents=True)
    with pytest.raises(LayerError, match=r"/feature/cinder/api/contrib/x.py is a file where "
                                         r".*/releases/train/cinder/api/contrib/x.py is a "
                                         r"directory"):
        manifest.fitting(layered, "ctl", target("15.6.0"))
