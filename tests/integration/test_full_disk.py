"""A full disk loses nothing: at the backups, at the new files and at the record.

The spec mounts a small tmpfs (in the controller's own mount namespace) over
the deploys' directory (``<state_dir>/deploys``: backups and records) or over
a directory of the package, fills it to the byte, and deploys through both
paths (the one call, and rsync for a tree holding a symlink), on every kind
of controller. Each time: one ``error:`` line saying what had no room (and,
for the backups and the new files, how much was needed), a non-zero exit,
every file of the package wholly old or wholly new (sha256), no temporary
file left, and a rollback that works afterwards. The tmpfs is unmounted at
the end.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import invoke

pytestmark = pytest.mark.integration

PATHS = ("one call", "rsync")
KIB = 1024

# what a tree holds on the controller: rel -> sha256 (or "-> target"), Python 2 and 3
_LISTING = """\
import hashlib, json, os, sys
top = sys.argv[1]
found = {}
for directory, dirs, names in os.walk(top):
    for name in names + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
        path = os.path.join(directory, name)
        rel = os.path.relpath(path, top)
        if os.path.islink(path):
            found[rel] = "-> " + os.readlink(path)
        else:
            with open(path, "rb") as handle:
                found[rel] = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps(found))
"""
_FREE = ("import os, sys; s = os.statvfs(sys.argv[1]); "
         "print(s.f_bavail * s.f_frsize)")


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def on(controller, *argv: str) -> str:
    result = controller.run(list(argv))
    assert result.returncode == 0, f"{shlex.join(argv)}: {result.stderr}"
    return result.stdout


def listing(controller, path: str) -> dict[str, str]:
    """Every file under ``path`` on the controller (read there: a tmpfs mounted in the
    controller's own namespace is not seen from this machine)."""
    return json.loads(on(controller, controller.python, "-c", _LISTING, path))


def free(controller, path: str) -> int:
    return int(on(controller, controller.python, "-c", _FREE, path))


@contextlib.contextmanager
def small_fs(controller, path: str, size: int) -> Iterator[str]:
    """A tmpfs of ``size`` bytes mounted at ``path`` on the controller; unmounted after."""
    on(controller, "mkdir", "-p", "--", path)
    on(controller, "mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "devloop-full", path)
    try:
        yield path
    finally:
        controller.run(["umount", "--lazy", "--", path])


def fill(controller, path: str, leave: int) -> None:
    """Take all but ``leave`` bytes of ``path``'s filesystem (a file ``.filler`` in it)."""
    on(controller, "fallocate", "-l", str(free(controller, path) - leave), f"{path}/.filler")
    assert free(controller, path) == leave


def unfill(controller, path: str) -> None:
    on(controller, "rm", "-f", "--", f"{path}/.filler")


def write_version(directory: Path, version: str, size: int) -> None:
    """Three files of ``size`` bytes, their bytes ``version``'s own."""
    directory.mkdir(exist_ok=True)
    for index in range(3):
        seed = f"{version}-{index}-".encode()
        (directory / f"f{index}.bin").write_bytes((seed * (size // len(seed) + 1))[:size])


def force(path: str, source: Path, tag: str) -> None:
    """Make the deploy of ``source`` go ``path``'s way (a tree with a symlink needs rsync)."""
    if path == "rsync":
        link = source / f"devloop_disk_link_{tag}.txt"
        if not link.is_symlink():
            link.symlink_to("__init__.py")


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def deploy(hosts: Path) -> subprocess.CompletedProcess[str]:
    return invoke("deploy", "--inventory", str(hosts), "--no-restart")


def deployed_ok(hosts: Path) -> None:
    result = deploy(hosts)
    assert result.returncode == 0, result.stderr


def rolled_back(hosts: Path) -> None:
    result = invoke("rollback", "--inventory", str(hosts), "--no-restart")
    assert result.returncode == 0, result.stderr


class Setup:
    """One spec's tree and the controller paths it checks."""

    def __init__(self, controller, source: Path, tag: str, path: str) -> None:
        self.controller, self.source, self.tag = controller, source, tag
        self.name = f"devloop_disk_{tag}"
        self.local = source / self.name
        self.remote = f"{controller.cinder_path}/{self.name}"
        self.deploys = f"{controller.state_dir}/deploys"
        force(path, source, tag)

    def version(self, version: str, size: int) -> None:
        write_version(self.local, version, size)

    def files(self) -> dict[str, str]:
        return listing(self.controller, self.remote)

    def gone(self) -> bool:
        return self.controller.run(["test", "-e", self.remote]).returncode != 0


@pytest.mark.parametrize("path", PATHS)
def test_no_room_for_the_backups_replaces_nothing_and_says_how_much_was_needed(
        controller, controller_hosts, source, tag, path):
    setup = Setup(controller, source, tag, path)
    with small_fs(controller, setup.deploys, 2048 * KIB):
        setup.version("v1", 100 * KIB)
        deployed_ok(controller_hosts)
        v1 = setup.files()
        fill(controller, setup.deploys, 32 * KIB)
        setup.version("v2", 100 * KIB)

        result = deploy(controller_hosts)

        assert result.returncode == 1
        assert one_error_line(result.stderr) == (
            f"error: sbx: no room for the backups of the 3 file(s) this deploy replaces in "
            f"{setup.deploys}: 300.0 KiB needed, 32.0 KiB free; nothing was changed")
        assert setup.files() == v1                           # no temporary file either
        assert free(controller, setup.deploys) == 32 * KIB   # nor a half-written backup
        unfill(controller, setup.deploys)
        rolled_back(controller_hosts)                        # undoes v1, the last deploy
        assert setup.gone()


@pytest.mark.parametrize("path", PATHS)
def test_no_room_for_the_new_files_replaces_nothing_and_says_how_much_was_needed(
        controller, controller_hosts, source, tag, path):
    setup = Setup(controller, source, tag, path)
    on(controller, "mkdir", "-m", "755", "--", setup.remote)
    with small_fs(controller, setup.remote, 1024 * KIB):
        setup.version("v1", 10 * KIB)
        deployed_ok(controller_hosts)
        v1 = setup.files()
        fill(controller, setup.remote, 248 * KIB)
        setup.version("v2", 100 * KIB)

        result = deploy(controller_hosts)

        assert result.returncode == 1
        assert one_error_line(result.stderr) == (
            f"error: sbx: no room for the new files in {setup.remote}: 300.0 KiB needed, "
            f"248.0 KiB free; nothing was changed")
        assert {rel: sha for rel, sha in setup.files().items() if rel != ".filler"} == \
            {rel: sha for rel, sha in v1.items() if rel != ".filler"}
        assert free(controller, setup.remote) == 248 * KIB
        rolled_back(controller_hosts)
        assert sorted(setup.files()) == [".filler"]
    on(controller, "rmdir", "--", setup.remote)


@pytest.mark.parametrize("last", [False, True], ids=["applying record", "applied record"])
@pytest.mark.parametrize("path", PATHS)
def test_no_room_for_the_record_leaves_every_file_as_it_was(
        controller, controller_hosts, source, tag, path, last):
    setup = Setup(controller, source, tag, path)
    with small_fs(controller, setup.deploys, 2048 * KIB):
        setup.version("v1", 100 * KIB)
        deployed_ok(controller_hosts)
        v1 = setup.files()
        # room for the three backups, and for the first record (or not)
        fill(controller, setup.deploys, 300 * KIB + (4 * KIB if last else 0))
        setup.version("v2", 100 * KIB)

        result = deploy(controller_hosts)

        assert result.returncode == 1
        line = one_error_line(result.stderr)
        deploy_dir = re.escape(setup.deploys) + r"/[0-9T.]+Z-[0-9a-f]+"
        if last:
            assert re.fullmatch(rf"error: sbx: no room to mark deploy \S+ applied in "
                                rf"{deploy_dir} \(No space left on device\); undone: every "
                                rf"file as it was", line), line
        else:
            assert re.fullmatch(rf"error: sbx: no room for the record of deploy \S+ in "
                                rf"{deploy_dir} \(No space left on device\); nothing was "
                                rf"changed", line), line
        assert setup.files() == v1
        unfill(controller, setup.deploys)
        rolled_back(controller_hosts)
        assert setup.gone()


def test_the_disk_filling_while_rsync_writes_loses_nothing_and_names_the_rollback(
        controller, controller_hosts, source, tag):
    setup = Setup(controller, source, tag, "rsync")
    on(controller, "mkdir", "-m", "755", "--", setup.remote)
    with small_fs(controller, setup.remote, 64 * 1024 * KIB):
        setup.version("v1", 8 * 1024 * KIB)
        deployed_ok(controller_hosts)
        v1 = setup.files()
        setup.version("v2", 8 * 1024 * KIB)
        v2 = {rel: hashlib.sha256((setup.local / rel).read_bytes()).hexdigest() for rel in v1}
        # another process takes the rest of the disk once rsync has replaced the first file
        filler = subprocess.Popen(controller_argv(controller, [
            "sh", "-c", 'f="$1/f0.bin"; i=$(stat -c %i "$f"); '
            'while [ "$(stat -c %i "$f")" = "$i" ]; do :; done; '
            'cat /dev/zero > "$1/.filler" 2>/dev/null; true', "sh", setup.remote]))
        try:
            result = deploy(controller_hosts)
        finally:
            filler.wait(timeout=60)

        assert result.returncode == 1
        line = one_error_line(result.stderr)
        # undone at once when the space rsync freed (its temporary copy) lets the old
        # bytes back; else the rollback to run is named
        found = re.fullmatch(
            r"error: sbx: the disk filled up while rsync wrote the files \(No space left on "
            r"device\); deploy \S+ (undone: every file as it was|could not be undone here "
            r"\(No space left on device\): free some space, then run: "
            r"(invoke rollback --inventory \S+ --host sbx))", line)
        assert found, line
        now = {rel: sha for rel, sha in setup.files().items() if rel != ".filler"}
        assert sorted(now) == sorted(v1)                      # no temporary file left
        assert all(now[rel] in (v1[rel], v2[rel]) for rel in now)
        unfill(controller, setup.remote)
        if found.group(2) is None:
            assert now == v1
        else:
            undo = invoke(*found.group(2).split()[1:], "--no-restart")   # as named, from here
            assert undo.returncode == 0, undo.stderr
            assert setup.files() == v1
        rolled_back(controller_hosts)                                    # v1
    on(controller, "rmdir", "--", setup.remote)


def controller_argv(controller, argv: list[str]) -> list[str]:
    """``argv`` as it runs on the controller from this machine."""
    instance = getattr(controller, "instance", None)
    return instance.nsenter(argv) if instance is not None else argv
