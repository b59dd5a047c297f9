"""cinder_patch/MANIFEST.txt lists every overlay file and pins replacements.

A file that replaces an upstream one records the sha256 of the pristine
cinder 29.0.0 copy it was written against; these tests fail when the
installed (pinned) cinder's copy no longer matches.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.cinder_patch.cinder_env import PATCH_DIR, CinderEnv

MANIFEST = PATCH_DIR / "MANIFEST.txt"


def read_manifest() -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(MANIFEST.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        path, kind = line.split(None, 1)
        assert path not in entries, f"MANIFEST.txt:{number}: {path} twice"
        entries[path] = kind.strip()
    return entries


def overlay_files() -> set[str]:
    return {str(path.relative_to(PATCH_DIR))
            for path in PATCH_DIR.rglob("*")
            if path.is_file() and path != MANIFEST
            and "__pycache__" not in path.parts and path.suffix != ".pyc"}


def test_manifest_lists_exactly_the_overlay_files() -> None:
    assert set(read_manifest()) == overlay_files()


def test_manifest_entries_are_new_or_pinned_replacements() -> None:
    pattern = re.compile(r"new|replaces-upstream sha256:[0-9a-f]{64}")
    for path, kind in read_manifest().items():
        assert pattern.fullmatch(kind), f"{path}: {kind!r}"


REPLACED = sorted(p for p, k in read_manifest().items() if k != "new")
NEW = sorted(p for p, k in read_manifest().items() if k == "new")


def _upstream(env: CinderEnv, path: str) -> Path:
    return env.pristine_cinder.parent / path


@pytest.mark.parametrize("path", REPLACED)
def test_replaced_upstream_file_still_matches_its_recorded_hash(
        cinder_env: CinderEnv, path: str) -> None:
    recorded = read_manifest()[path].split("sha256:", 1)[1]
    pristine = _upstream(cinder_env, path)
    assert pristine.is_file(), f"{path} is gone from the pinned cinder"
    actual = hashlib.sha256(pristine.read_bytes()).hexdigest()
    assert actual == recorded, (
        f"{path}: the pinned cinder's copy changed (sha256 {actual}, "
        f"recorded {recorded}); review the overlay against it")


@pytest.mark.parametrize("path", NEW)
def test_new_file_does_not_exist_upstream(cinder_env: CinderEnv,
                                          path: str) -> None:
    assert not _upstream(cinder_env, path).exists()
