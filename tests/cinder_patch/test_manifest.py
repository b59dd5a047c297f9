"""cinder_patch's MANIFEST.txt files: the common tree, its release trees, every file.

``cinder_patch/MANIFEST.txt`` describes the common tree (``common``) and
names its release trees (``variant releases/29``, ``variant releases/train``),
whose MANIFEST.txt files say which release each targets (``release 29.0.0``,
``release 15.6.0``). Each lists every file of its own tree; a file that
replaces an upstream one (release trees only) records the sha256 of the
pristine copy of the release it targets, and these tests fail when the
installed (pinned) release's copy no longer matches. No file is in two trees
as the same bytes: what does not differ belongs to the common tree once.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_env import PATCH_DIR, CinderEnv
from tests.cinder_patch.train_env import RELEASE as TRAIN_RELEASE

MANIFEST = PATCH_DIR / "MANIFEST.txt"
KIND = re.compile(r"new|replaces-upstream sha256:[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One MANIFEST.txt: its releases, variants and ``path -> kind``."""

    tree: Path
    releases: tuple[str, ...]
    variants: tuple[str, ...]
    entries: dict[str, str]
    common: bool = False


def read_manifest(path: Path = MANIFEST) -> Manifest:
    """Parse ``path`` (format: cinder_patch/MANIFEST.txt's header)."""
    releases: list[str] = []
    variants: list[str] = []
    entries: dict[str, str] = {}
    common = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "common":
            common = True
            continue
        first, _, rest = line.partition(" ")
        rest = rest.strip()
        where = f"{path.name}:{number}"
        assert rest, f"{where}: {line!r} has no value"
        if first == "release":
            releases.append(rest)
        elif first == "variant":
            assert re.fullmatch(r"[a-z0-9_-]+(/[a-z0-9_-]+)*", rest), f"{where}: variant {rest!r}"
            variants.append(rest)
        else:
            assert first not in entries, f"{where}: {first} twice"
            entries[first] = rest
    return Manifest(path.parent, tuple(releases), tuple(variants), entries, common)


def all_manifests() -> list[Manifest]:
    top = read_manifest()
    return [top] + [read_manifest(top.tree / name / "MANIFEST.txt")
                    for name in top.variants]


def tree_files(manifest: Manifest) -> set[str]:
    """Files of the tree beside ``manifest``: ``cinder/...``."""
    root = manifest.tree
    return {str(path.relative_to(root)) for path in (root / "cinder").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


MANIFESTS = {str(m.tree.relative_to(PATCH_DIR.parent)): m for m in all_manifests()}


RELEASES = ("29.0.0", TRAIN_RELEASE)


def test_top_manifest_is_the_common_tree_of_a_29_and_a_train_release_tree() -> None:
    top = read_manifest()
    assert top.common and top.releases == ()
    assert top.variants == ("releases/29", "releases/train")
    for name, release in zip(top.variants, RELEASES):
        tree = read_manifest(PATCH_DIR / name / "MANIFEST.txt")
        assert tree.releases == (release,) and tree.variants == () and not tree.common
        assert (PATCH_DIR / name / "cinder").is_dir()


def test_each_release_is_targeted_by_exactly_one_tree() -> None:
    for release in RELEASES:
        trees = [name for name, m in MANIFESTS.items()
                 if any(fnmatch.fnmatch(release, p) for p in m.releases)]
        assert len(trees) == 1, (release, trees)


def test_parser_reads_directives_and_entries(tmp_path: Path) -> None:
    path = tmp_path / "MANIFEST.txt"
    path.write_text("# comment\nrelease 15.*   # Train\n\nvariant releases/old\n"
                    "cinder/a.py  new\n")
    assert read_manifest(path) == Manifest(
        tmp_path, ("15.*",), ("releases/old",), {"cinder/a.py": "new"})
    path.write_text("common\nvariant x\ncinder/a.py  new\n")
    assert read_manifest(path).common


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_lists_exactly_the_overlay_files(name: str) -> None:
    manifest = MANIFESTS[name]
    assert set(manifest.entries) == tree_files(manifest)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_entries_are_new_or_pinned_replacements(name: str) -> None:
    for path, kind in MANIFESTS[name].entries.items():
        assert KIND.fullmatch(kind), f"{name}: {path}: {kind!r}"


def _cases(kind: str) -> list[tuple[str, str, str]]:
    """(tree, path, release) for every entry of that kind, a common tree's for every release."""
    return sorted((name, path, release) for name, m in MANIFESTS.items()
                  for path, k in m.entries.items()
                  if (k == "new") == (kind == "new")
                  for release in (RELEASES if m.common else m.releases[:1]))


def _env(request: pytest.FixtureRequest, release: str) -> CinderEnv:
    return request.getfixturevalue(
        "train_env" if release == TRAIN_RELEASE else "cinder_env")


def test_only_release_trees_replace_upstream_files() -> None:
    assert _cases("replaced") and all(not MANIFESTS[name].common
                                      for name, _, _ in _cases("replaced"))


@pytest.mark.parametrize("name, path, release", _cases("replaced"))
def test_replaced_upstream_file_still_matches_its_recorded_hash(
        request: pytest.FixtureRequest, name: str, path: str, release: str) -> None:
    env = _env(request, release)
    recorded = MANIFESTS[name].entries[path].split("sha256:", 1)[1]
    pristine = env.pristine_cinder.parent / path
    assert pristine.is_file(), f"{path} is gone from the pinned cinder"
    actual = hashlib.sha256(pristine.read_bytes()).hexdigest()
    assert actual == recorded, (
        f"{path}: the pinned cinder's copy changed (sha256 {actual}, "
        f"recorded {recorded}); review the overlay against it")


@pytest.mark.parametrize("name, path, release", _cases("new"))
def test_new_file_does_not_exist_upstream(request: pytest.FixtureRequest,
                                          name: str, path: str, release: str) -> None:
    env = _env(request, release)
    assert not (env.pristine_cinder.parent / path).exists()


def test_no_two_files_of_the_feature_hold_the_same_bytes() -> None:
    """What does not differ between releases is written once, in the common tree."""
    by_content: dict[bytes, list[str]] = {}
    for path in sorted(PATCH_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            by_content.setdefault(path.read_bytes(), []).append(
                str(path.relative_to(PATCH_DIR)))
    assert [paths for paths in by_content.values() if len(paths) > 1] == []


def test_a_release_tree_holds_only_what_differs_from_the_common_tree() -> None:
    """Every file of a release tree is one the common tree has not, or differs from it."""
    common = MANIFESTS["cinder_patch"]
    for name, tree in MANIFESTS.items():
        for path in tree.entries if not tree.common else ():
            other = common.tree / path
            assert not other.is_file() or other.read_bytes() != (tree.tree / path).read_bytes(), \
                f"{name}/{path} is the common tree's file again"
