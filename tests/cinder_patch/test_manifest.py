"""cinder_patch's MANIFEST.txt files: releases, variants, every overlay file.

``cinder_patch/MANIFEST.txt`` describes the 29.0.0 tree (``release 29.0.0``)
and names its ``variant train``, whose ``cinder_patch/train/MANIFEST.txt``
describes the Cinder Train tree (``release 15.6.0``). Each lists every file
of its tree; a file that replaces an upstream one records the sha256 of the
pristine copy of the release it targets, and these tests fail when the
installed (pinned) release's copy no longer matches.
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


def read_manifest(path: Path = MANIFEST) -> Manifest:
    """Parse ``path`` (format: cinder_patch/MANIFEST.txt's header)."""
    releases: list[str] = []
    variants: list[str] = []
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first, _, rest = line.partition(" ")
        rest = rest.strip()
        where = f"{path.name}:{number}"
        assert rest, f"{where}: {line!r} has no value"
        if first == "release":
            releases.append(rest)
        elif first == "variant":
            assert re.fullmatch(r"[a-z0-9_-]+", rest), f"{where}: variant {rest!r}"
            variants.append(rest)
        else:
            assert first not in entries, f"{where}: {first} twice"
            entries[first] = rest
    return Manifest(path.parent, tuple(releases), tuple(variants), entries)


def all_manifests() -> list[Manifest]:
    top = read_manifest()
    return [top] + [read_manifest(top.tree / name / "MANIFEST.txt")
                    for name in top.variants]


def tree_files(manifest: Manifest) -> set[str]:
    """Files of the tree beside ``manifest`` (a variant's tree excluded)."""
    root = manifest.tree
    skip = {root / name for name in manifest.variants}
    return {str(path.relative_to(root)) for path in root.rglob("*")
            if path.is_file() and path.name != "MANIFEST.txt"
            and not any(parent in skip for parent in path.parents)
            and "__pycache__" not in path.parts and path.suffix != ".pyc"}


MANIFESTS = {str(m.tree.relative_to(PATCH_DIR.parent)): m for m in all_manifests()}


def test_top_manifest_targets_29_and_names_the_train_variant() -> None:
    top = read_manifest()
    assert top.releases == ("29.0.0",)
    assert top.variants == ("train",)
    train = read_manifest(PATCH_DIR / "train" / "MANIFEST.txt")
    assert train.releases == (TRAIN_RELEASE,) and train.variants == ()
    assert (PATCH_DIR / "train" / "cinder").is_dir()


def test_each_release_is_targeted_by_exactly_one_tree() -> None:
    for release in ("29.0.0", TRAIN_RELEASE):
        trees = [name for name, m in MANIFESTS.items()
                 if any(fnmatch.fnmatch(release, p) for p in m.releases)]
        assert len(trees) == 1, (release, trees)


def test_parser_reads_directives_and_entries(tmp_path: Path) -> None:
    path = tmp_path / "MANIFEST.txt"
    path.write_text("# comment\nrelease 15.*   # Train\n\nvariant old\n"
                    "cinder/a.py  new\n")
    assert read_manifest(path) == Manifest(
        tmp_path, ("15.*",), ("old",), {"cinder/a.py": "new"})


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_lists_exactly_the_overlay_files(name: str) -> None:
    manifest = MANIFESTS[name]
    assert set(manifest.entries) == tree_files(manifest)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_entries_are_new_or_pinned_replacements(name: str) -> None:
    for path, kind in MANIFESTS[name].entries.items():
        assert KIND.fullmatch(kind), f"{name}: {path}: {kind!r}"


def _cases(kind: str) -> list[tuple[str, str]]:
    return sorted((name, path) for name, m in MANIFESTS.items()
                  for path, k in m.entries.items()
                  if (k == "new") == (kind == "new"))


def _env(request: pytest.FixtureRequest, name: str) -> CinderEnv:
    release = MANIFESTS[name].releases[0]
    return request.getfixturevalue(
        "train_env" if release == TRAIN_RELEASE else "cinder_env")


@pytest.mark.parametrize("name, path", _cases("replaced"))
def test_replaced_upstream_file_still_matches_its_recorded_hash(
        request: pytest.FixtureRequest, name: str, path: str) -> None:
    env = _env(request, name)
    recorded = MANIFESTS[name].entries[path].split("sha256:", 1)[1]
    pristine = env.pristine_cinder.parent / path
    assert pristine.is_file(), f"{path} is gone from the pinned cinder"
    actual = hashlib.sha256(pristine.read_bytes()).hexdigest()
    assert actual == recorded, (
        f"{path}: the pinned cinder's copy changed (sha256 {actual}, "
        f"recorded {recorded}); review the overlay against it")


@pytest.mark.parametrize("name, path", _cases("new"))
def test_new_file_does_not_exist_upstream(request: pytest.FixtureRequest,
                                          name: str, path: str) -> None:
    env = _env(request, name)
    assert not (env.pristine_cinder.parent / path).exists()
