"""Which Cinder a source tree is for, and the check that it is not laid over another.

A source tree ``<dir>/cinder/`` may have ``<dir>/MANIFEST.txt`` beside it::

    release 29.0.0                         # a release it targets (fnmatch: 15.*)
    variant train                          # the same feature for other releases,
                                           # in <dir>/train/{MANIFEST.txt,cinder/}
    cinder/api/contrib/cluster_manage.py  new
    cinder/db/__init__.py  replaces-upstream sha256:<pristine upstream file's sha256>

Before anything is sent, :func:`choose` picks the tree (the source itself or
one of its variants) whose ``release`` matches the controller's installed
Cinder, and :func:`check` compares the sha256 of each file it replaces with
the controller's upstream copy (both read by :func:`deploy.controller.facts.locate` in
one round trip). A mismatch is one :class:`ManifestRefused` naming the
controller, the file, the release targeted and the release found; nothing
is changed. A tree without a MANIFEST.txt is sent as it is.

A manifest that says ``common`` (and no ``release``) describes a common
tree: what a feature shares across releases. Its variants are then release
trees, each laid over it at deploy time (:mod:`deploy.controller.layers`):
the tree sent is the common tree with the chosen release tree's files over
it. The common tree is never sent alone; a release tree must have a
``cinder/`` of its own and replaces the upstream files (their hashes differ
per release).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploy.base.errors import DevloopError
from deploy.controller import layers as layering
from deploy.controller.facts import Target

NAME = "MANIFEST.txt"
OVERRIDE = "--ignore-manifest"
_SHA = re.compile(r"^sha256:([0-9a-f]{64})$")
_PACKAGE = "cinder/"


class ManifestError(DevloopError):
    """A MANIFEST.txt that cannot be read or parsed."""


class ManifestRefused(DevloopError):
    """The source tree does not fit the controller's Cinder; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """One tree's MANIFEST.txt: its releases, replaced upstream files, variants."""

    path: Path
    releases: tuple[str, ...]
    #: path inside the cinder package -> sha256 of the upstream file it replaces
    replaces: tuple[tuple[str, str], ...] = ()
    new: tuple[str, ...] = ()
    variants: tuple["Manifest", ...] = ()
    #: a common tree: never sent alone, its variants are laid over it
    common: bool = False

    @property
    def source(self) -> Path:
        """The tree to send: ``<dir>/cinder``."""
        return self.path.parent / "cinder"

    def targets(self, version: str | None) -> bool:
        return version is not None and any(fnmatch.fnmatchcase(version, pattern)
                                           for pattern in self.releases)

    def trees(self) -> list["Manifest"]:
        """This tree, then its variants (depth first)."""
        return [self] + [tree for variant in self.variants for tree in variant.trees()]

    def all_replaced(self) -> list[str]:
        """Every replaced path of every tree: what locate hashes."""
        return sorted({path for tree in self.trees() for path, _ in tree.replaces})

    def describe_releases(self) -> str:
        return " or ".join(self.releases) or "no release"


@dataclass(frozen=True, slots=True)
class Fitted:
    """The tree to send a controller, and the local trees it is made of."""

    path: Path
    #: the common tree then the release tree, when ``path`` lays one over the other
    layers: tuple[Path, ...] = ()


def load(source: Path) -> Manifest | None:
    """Read the MANIFEST.txt beside the source tree ``source`` (``<dir>/cinder``).

    Returns None when there is none (the tree is sent unchecked).

    Raises:
        ManifestError: the file or a variant's is malformed (every problem listed).
    """
    path = Path(source).parent / NAME
    if Path(source).name != "cinder" or not path.is_file():
        return None
    return _parse(path, seen=())


def _parse(path: Path, seen: tuple[Path, ...]) -> Manifest:
    if path.resolve() in seen:
        raise ManifestError(f"{path}: variant loop through {', '.join(map(str, seen))}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from None
    releases: list[str] = []
    replaces: list[tuple[str, str]] = []
    new: list[str] = []
    variant_names: list[str] = []
    problems: list[str] = []
    common = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        where = f"{path}:{number}"
        if words == ["common"]:
            common = True
            continue
        if words[0] in ("release", "variant"):
            if len(words) != 2:
                problems.append(f"{where}: expected '{words[0]} <value>', got {raw.strip()!r}")
            elif words[0] == "release":
                releases.append(words[1])
            else:
                variant_names.append(words[1])
            continue
        if not words[0].startswith(_PACKAGE):
            problems.append(f"{where}: {words[0]!r} is not under cinder/")
            continue
        inside = words[0][len(_PACKAGE):]
        if words[1:] == ["new"]:
            new.append(inside)
        elif len(words) == 3 and words[1] == "replaces-upstream" and _SHA.match(words[2]):
            replaces.append((inside, _SHA.match(words[2]).group(1)))  # type: ignore[union-attr]
        else:
            problems.append(f"{where}: expected '<path> new' or "
                            f"'<path> replaces-upstream sha256:<64 hex digits>', "
                            f"got {raw.strip()!r}")
    if common:
        problems += _common_problems(path, releases, replaces, variant_names)
    elif not releases:
        problems.append(f"{path}: no 'release <version>' line: which Cinder is this tree for?")
    if problems:
        raise ManifestError("\n".join(problems))
    variants = tuple(_parse(path.parent / name / NAME, seen + (path.resolve(),))
                     for name in variant_names)
    if common:
        _check_release_trees(path, variants)
    return Manifest(path, tuple(releases), tuple(replaces), tuple(new), variants, common)


def _common_problems(path: Path, releases: list[str], replaces: list[tuple[str, str]],
                     variants: list[str]) -> list[str]:
    """What a common tree's manifest may not say."""
    problems = []
    if releases:
        problems.append(f"{path}: 'release {releases[0]}' in a common tree: a release needs a "
                        f"tree of its own ('variant <dir>' with <dir>/MANIFEST.txt and "
                        f"<dir>/cinder/, see cinder_patch/README.md)")
    if replaces:
        problems.append(f"{path}: cinder/{replaces[0][0]} replaces an upstream file in a "
                        f"common tree: the upstream file differs per release, so only a "
                        f"release tree replaces one")
    if not variants:
        problems.append(f"{path}: a common tree without a 'variant <dir>' line: "
                        f"which release tree goes over it?")
    return problems


def _check_release_trees(path: Path, trees: tuple[Manifest, ...]) -> None:
    """Each variant of a common tree is a release tree with a tree of its own."""
    problems = []
    for tree in trees:
        if tree.common or tree.variants:
            problems.append(f"{tree.path}: a release tree of {path} can be neither a "
                            f"common tree nor name variants (one layer over the common "
                            f"tree only)")
        if not tree.source.is_dir():
            problems.append(f"{tree.path}: Cinder {tree.describe_releases()} has no tree of "
                            f"its own: {tree.source} is not a directory")
    if problems:
        raise ManifestError("\n".join(problems))


def choose(manifest: Manifest, controller: str, target: Target) -> Manifest:
    """The tree whose release matches ``target.version``.

    Raises:
        ManifestRefused: no tree targets that release.
    """
    for tree in manifest.trees():
        if tree.targets(target.version):
            return tree
    offered = "; ".join(f"{tree.path}: Cinder {tree.describe_releases()}"
                        for tree in manifest.trees() if tree.releases)
    found = target.version or "unknown (no cinder dist-info/egg-info beside " \
                              f"{target.cinder_dir})"
    if manifest.common:
        raise ManifestRefused(
            f"{controller}: refusing to deploy {manifest.source}: no release tree of "
            f"{manifest.path} targets the controller's Cinder {found} ({offered}); the "
            f"common tree is never sent alone: add a release tree for it (see "
            f"cinder_patch/README.md). Nothing was changed; {OVERRIDE} sends the common "
            f"tree anyway.")
    raise ManifestRefused(
        f"{controller}: refusing to deploy {manifest.source}: {manifest.path} targets Cinder "
        f"{manifest.describe_releases()}, the controller has Cinder {found} ({offered}). "
        f"Nothing was changed; {OVERRIDE} sends it anyway.")


def check(tree: Manifest, controller: str, target: Target) -> None:
    """Each file the tree replaces must be, on the controller, the upstream file it expects.

    Raises:
        ManifestRefused: a replaced file differs or is missing (the first is named).
    """
    for inside, expected in tree.replaces:
        found = target.hashes.get(inside)
        if found == expected:
            continue
        state = "missing" if found is None else f"sha256:{found}"
        raise ManifestRefused(
            f"{controller}: refusing to deploy {tree.source}: {tree.source / inside} replaces "
            f"an upstream file that differs on the controller ({target.cinder_dir}/{inside}: "
            f"{state}, expected sha256:{expected}); the tree targets Cinder "
            f"{tree.describe_releases()}, the controller has Cinder "
            f"{target.version or 'unknown'}. Nothing was changed; {OVERRIDE} sends it anyway.")


def hash_paths(source: Path) -> list[str]:
    """The paths :func:`deploy.controller.facts.locate` must hash for ``source``
    (none without a manifest).

    Raises:
        ManifestError: the manifest is malformed.
    """
    found = load(source)
    return found.all_replaced() if found else []


def fitting_source(source: Path, controller: str, target: Target, *,
                   ignore: bool = False, excludes: Sequence[str] = ()) -> Path:
    """The tree to send to a controller whose Cinder ``target`` describes (see :func:`fitting`).

    Raises:
        ManifestRefused: no tree fits (and not ``ignore``).
        ManifestError: the manifest is malformed.
        LayerError: the common and release trees cannot be laid one over the other.
    """
    return fitting(source, controller, target, ignore=ignore, excludes=excludes).path


def fitting(source: Path, controller: str, target: Target, *,
            ignore: bool = False, excludes: Sequence[str] = ()) -> Fitted:
    """The tree to send to a controller whose Cinder ``target`` describes.

    ``target`` must hold the hashes of :func:`hash_paths`. For a common
    tree, the chosen release tree is laid over it (:func:`deploy.controller.layers.compose`,
    leaving out ``excludes``) and the composed tree is returned with its
    layers. With ``ignore`` a mismatch is a loud warning and ``source`` is
    sent as it is (a common tree with the release tree that fits it, if one
    does).

    Raises:
        ManifestRefused: no tree fits (and not ``ignore``).
        ManifestError: the manifest is malformed.
        LayerError: the common and release trees cannot be laid one over the other.
    """
    found = load(source)
    if found is None:
        return Fitted(source)
    try:
        tree = choose(found, controller, target)
    except ManifestRefused as refused:
        if not ignore:
            raise
        _warn_sending_anyway(refused, controller)
        return Fitted(source)
    try:
        check(tree, controller, target)
    except ManifestRefused as refused:
        if not ignore:
            raise
        _warn_sending_anyway(refused, controller)
        if not found.common:
            return Fitted(source)
    if not found.common:
        return Fitted(tree.source)
    trees = (found.source, tree.source)
    return Fitted(layering.compose(trees, excludes), trees)


def _warn_sending_anyway(refused: ManifestRefused, controller: str) -> None:
    from deploy.base import output

    output.warn(f"{str(refused).split('. Nothing was changed')[0]}.\n"
                f"{controller}: SENDING IT ANYWAY ({OVERRIDE}): this Cinder may break; "
                f"invoke rollback undoes it")
