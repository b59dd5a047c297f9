"""The source tree is what gets checked and sent, and nothing else: a hostile or odd tree.

Both ways a deploy goes (README "What a deploy does"): the one-call path for
a small tree, and rsync for a tree too large for it or holding a symlink
(``force``). On every kind of controller: the file names and contents are
checked on the controller itself (``controller.cinder_dir``).

- A symlink out of the tree is refused with one line; nothing of its target
  travels or shows (not in argv, not with ``--verbose``). A link within the
  tree is sent as a link, and the compile check reads what it points to.
- File contents never travel in argv: a ``.py`` file of megabytes deploys.
- Odd names (a newline, non-UTF-8 bytes, a leading dash, rsync's own escape
  sequence, `` -> ``) deploy and roll back byte for byte.
- Only code is sent: dot names, editor droppings and what the checkout's git
  ignores stay here; ``--dry-run`` says what was left out and why; ``watch``
  sends only the real file of a save made the way vim makes it.
- An unreadable directory is one error line.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT, Watcher, invoke

pytestmark = pytest.mark.integration

PATHS = ("one call", "rsync")


@pytest.fixture
def area(controller, source):
    """A fresh directory of the package for this spec, removed from the controller afterwards."""
    name = f"devloop_src_{uuid.uuid4().hex[:6]}"
    (source / name).mkdir()
    yield name
    shutil.rmtree(controller.cinder_dir / name, ignore_errors=True)


def force(path: str, source: Path, area: str) -> None:
    """Make the deploy of ``source`` go ``path``'s way (a link within the tree needs rsync)."""
    if path == "rsync":
        (source / area / "anchor.py").write_text("ANCHOR = 1\n")
        (source / area / "anchor_link.txt").symlink_to("anchor.py")


def deploy(hosts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke("deploy", "--inventory", str(hosts), "--no-restart", *args)


def rollback(hosts: Path) -> subprocess.CompletedProcess[str]:
    result = invoke("rollback", "--inventory", str(hosts), "--no-restart")
    assert result.returncode == 0, result.stderr
    return result


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def packed(data: bytes) -> str:
    """How the compile check once carried a file in argv (zlib, then base64)."""
    return base64.b64encode(zlib.compress(data, 6)).decode()


class TestSymlinks:
    def test_a_symlink_out_of_the_tree_is_refused_with_one_line_and_nothing_of_it_shows(
            self, controller, controller_hosts, source, area, tmp_path):
        marker = f"hunter2-{uuid.uuid4().hex}"
        secret = tmp_path / "secret.py"            # valid Python: it would compile
        secret.write_text(f"SECRET = '{marker}'\n")
        (source / area / "fine.py").write_text("FINE = 1\n")
        (source / area / "s.py").symlink_to(secret)

        result = deploy(controller_hosts, "--verbose")

        assert result.returncode == 1
        assert error_lines(result) == [
            f"error: {source}/{area}/s.py: a symlink to {secret}, outside the source tree; "
            f"nothing was sent (a link is sent only when it points within the tree)"]
        assert "Traceback" not in result.stderr
        for shown in (marker, packed(secret.read_bytes())[:40]):
            assert shown not in result.stderr and shown not in result.stdout
        assert not os.path.lexists(controller.cinder_dir / area)

    @pytest.mark.parametrize("target", ["../../outside.py", "/etc/hostname", "../{area}/../../x"])
    def test_a_relative_link_climbing_out_or_an_absolute_one_is_refused_too(
            self, controller, controller_hosts, source, area, target):
        target = target.format(area=area)
        (source / area / "out.py").symlink_to(target)

        result = deploy(controller_hosts)

        assert result.returncode == 1
        assert error_lines(result) == [
            f"error: {source}/{area}/out.py: a symlink to {target}, outside the source tree; "
            f"nothing was sent (a link is sent only when it points within the tree)"]
        assert not os.path.lexists(controller.cinder_dir / area)

    def test_a_link_within_the_tree_is_sent_as_a_link_and_what_it_points_to_is_compiled(
            self, controller, controller_hosts, source, area):
        (source / area / "real.py").write_text("REAL = 1\n")
        (source / area / "alias.py").symlink_to("real.py")

        sent = deploy(controller_hosts)

        assert sent.returncode == 0, sent.stderr
        there = controller.cinder_dir / area
        assert os.readlink(there / "alias.py") == "real.py"
        assert (there / "real.py").read_text() == "REAL = 1\n"

        (source / area / "notes.txt").write_text("not python (\n")
        (source / area / "bad.py").symlink_to("notes.txt")

        refused = deploy(controller_hosts)

        assert refused.returncode == 1
        assert f"error: cinder/{area}/bad.py:1: " in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not os.path.lexists(there / "bad.py") and not (there / "notes.txt").exists()


class TestContentsNeverInArgv:
    @pytest.mark.parametrize("path", PATHS)
    def test_a_python_file_of_megabytes_deploys_and_its_bytes_never_show(
            self, controller, controller_hosts, source, area, path):
        data = f"DATA = '{os.urandom(1_200_000).hex()}'\n".encode()   # 2.4 MB, incompressible
        (source / area / "big.py").write_bytes(data)
        force(path, source, area)

        result = deploy(controller_hosts, "--verbose")

        assert result.returncode == 0, result.stderr[-3000:]
        assert (controller.cinder_dir / area / "big.py").read_bytes() == data
        assert packed(data)[:40] not in result.stderr
        assert data[8:48].decode() not in result.stderr


# the names rsync's --itemize-changes and a JSON record must carry whole
ODD = [b"new\nline.py", b"latin\xe9.py", b"-dash.py", b"back\\#012slash.py", b"sp ace -> arrow.py",
       "caf\u00e9.py".encode()]


def odd_path(root: Path, name: bytes) -> Path:
    return root / os.fsdecode(name)


class TestOddNames:
    @pytest.mark.parametrize("path", PATHS)
    def test_odd_names_deploy_and_roll_back_byte_for_byte(
            self, controller, controller_hosts, source, area, path):
        force(path, source, area)
        for index, name in enumerate(ODD):
            odd_path(source / area, name).write_bytes(b"VALUE = %d\n" % index)
        there = controller.cinder_dir / area

        first = deploy(controller_hosts)

        assert first.returncode == 0, first.stderr
        assert "Traceback" not in first.stderr
        for index, name in enumerate(ODD):
            assert odd_path(there, name).read_bytes() == b"VALUE = %d\n" % index
        assert sorted(os.fsencode(p.name) for p in there.iterdir()) == sorted(
            os.fsencode(p.name) for p in (source / area).iterdir())

        for index, name in enumerate(ODD):
            odd_path(source / area, name).write_bytes(b"VALUE = %d  # two\n" % index)
        second = deploy(controller_hosts)
        assert second.returncode == 0, second.stderr
        assert odd_path(there, ODD[0]).read_bytes() == b"VALUE = 0  # two\n"

        undone = rollback(controller_hosts)

        assert f"restored {len(ODD)} file(s)" in undone.stderr
        for index, name in enumerate(ODD):
            assert odd_path(there, name).read_bytes() == b"VALUE = %d\n" % index
        rollback(controller_hosts)
        assert not any(os.path.lexists(odd_path(there, name)) for name in ODD)

    def test_odd_names_are_shown_escaped_one_per_line(self, controller, controller_hosts,
                                                      source, area):
        odd_path(source / area, b"new\nline.py").write_text("A = 1\n")
        odd_path(source / area, b"latin\xe9.py").write_text("B = 1\n")

        result = deploy(controller_hosts, "--dry-run")

        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.splitlines()) == [
            f"sbx: new     cinder/{area}/latin\\xe9.py",
            f"sbx: new     cinder/{area}/new\\nline.py"]


def not_code(source: Path, area: str) -> None:
    """What a developer's tree holds beside its code."""
    (source / ".env").write_text("OS_PASSWORD=secret\n")
    (source / area / "cluster_manage").mkdir()
    (source / area / "cluster_manage" / "api.py").write_text("API = 1\n")
    (source / area / "cluster_manage" / "api.py~").write_text("API = 0\n")       # a backup
    (source / area / "cluster_manage" / ".api.py.swp").write_bytes(b"b0VIM 9.0\0")
    (source / area / "cluster_manage" / "4913").write_text("")                  # vim's probe
    (source / area / "cluster_manage" / "#api.py#").write_text("API = 2\n")     # emacs
    (source / area / "cluster_manage" / ".#api.py").symlink_to("dev@box.4242:1700000000")
    (source / area / ".idea").mkdir()
    (source / area / ".idea" / "workspace.xml").write_text("<project/>\n")


class TestOnlyCode:
    @pytest.mark.parametrize("path", PATHS)
    def test_dot_names_and_editor_droppings_are_never_sent(
            self, controller, controller_hosts, source, area, path):
        not_code(source, area)
        force(path, source, area)

        result = deploy(controller_hosts)

        assert result.returncode == 0, result.stderr
        there = controller.cinder_dir / area
        assert (there / "cluster_manage" / "api.py").read_text() == "API = 1\n"
        assert sorted(p.name for p in (there / "cluster_manage").iterdir()) == ["api.py"]
        assert not (there / ".idea").exists()
        assert not os.path.lexists(controller.cinder_dir / ".env")
        assert "cinder/.env" not in result.stdout
        assert "not code" in result.stderr and "--dry-run lists them" in result.stderr

    @pytest.mark.parametrize("path", PATHS)
    def test_dry_run_lists_what_was_left_out_and_why(
            self, controller, controller_hosts, source, area, path):
        not_code(source, area)
        force(path, source, area)
        (source / area / "__pycache__").mkdir()
        (source / area / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")

        result = deploy(controller_hosts, "--dry-run")

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for line in [
                "sbx: left out cinder/.env (.*: a dot name, not code)",
                f"sbx: left out cinder/{area}/.idea/ (.*: a dot name, not code)",
                f"sbx: left out cinder/{area}/cluster_manage/api.py~ (*~: an editor's backup)",
                f"sbx: left out cinder/{area}/cluster_manage/.api.py.swp "
                f"(*.swp: an editor's swap file)",
                f"sbx: left out cinder/{area}/cluster_manage/4913 (4913: vim's write probe)",
                f"sbx: left out cinder/{area}/cluster_manage/#api.py# (#*#: an editor's autosave)",
                f"sbx: left out cinder/{area}/cluster_manage/.#api.py "
                f"(.#*: an editor's lock)",
                "sbx: left out 1 path(s) by the inventory's excludes (__pycache__/)"]:
            assert line in lines, result.stdout
        assert f"sbx: new     cinder/{area}/cluster_manage/api.py" in lines
        assert not os.path.lexists(controller.cinder_dir / area)

    @pytest.mark.parametrize("path", PATHS)
    def test_the_checkouts_own_ignore_rules_apply_through_git(
            self, controller, controller_hosts, source, area, path):
        checkout = source.parent
        git = ["git", "-C", str(checkout), "-c", "user.name=dev", "-c", "user.email=d@example.com"]
        subprocess.run([*git, "init", "-q"], check=True)
        (checkout / ".gitignore").write_text("build/\n*.log\nlocal_settings.py\n")
        (checkout / ".git" / "info" / "exclude").write_text("scratch_*.py\n")
        mine = source / area
        (mine / "real.py").write_text("REAL = 1\n")
        (mine / "build").mkdir()
        (mine / "build" / "gen.py").write_text("GEN = 1\n")
        (mine / "run.log").write_text("log\n")
        (mine / "local_settings.py").write_text("PASSWORD = 'x'\n")
        (mine / "scratch_1.py").write_text("TRY = 1\n")
        (mine / "kept.log").write_text("tracked, so code\n")
        subprocess.run([*git, "add", "-f", f"cinder/{area}/kept.log"], check=True)
        force(path, source, area)

        preview = deploy(controller_hosts, "--dry-run")
        result = deploy(controller_hosts)

        assert result.returncode == 0, result.stderr
        there = controller.cinder_dir / area
        sent = sorted(p.name for p in there.iterdir())
        expected = ["kept.log", "real.py"] + (["anchor.py", "anchor_link.txt"]
                                              if path == "rsync" else [])
        assert sent == sorted(expected)
        for rel in ("build/", "run.log", "local_settings.py", "scratch_1.py"):
            assert f"sbx: left out cinder/{area}/{rel} (ignored by git)" in \
                preview.stdout.splitlines(), preview.stdout


class TestWatch:
    def test_a_save_the_way_vim_saves_sends_only_the_real_file(
            self, controller, controller_hosts, source, area):
        module = source / area / "mod.py"
        swap = source / area / ".mod.py.swp"
        with Watcher("--inventory", str(controller_hosts), "--debounce", "300",
                     "--timeout", "30") as watch:
            watch.read_until("watching")
            module.write_text("VALUE = 1\n")          # vim opens it: a swap file beside it
            swap.write_bytes(b"b0VIM 9.0\0one")
            first = watch.read_until(f"sbx: {area}/")
            assert f"sbx: {area}/mod.py -> OK" in first, first

            probe = source / area / "4913"                  # vim checks it may write here
            probe.write_text("")
            probe.unlink()
            module.rename(source / area / "mod.py~")       # keeps the old file as the backup
            module.write_text("VALUE = 2\n")                # and writes the new one in place
            swap.write_bytes(b"b0VIM 9.0\0two")
            second = watch.read_until(f"sbx: {area}/")
            assert f"sbx: {area}/mod.py -> OK" in second, second
            assert watch.interrupt() == 0

        there = controller.cinder_dir / area
        assert (there / "mod.py").read_text() == "VALUE = 2\n"
        assert sorted(p.name for p in there.iterdir()) == ["mod.py"]


class TestUnreadable:
    @pytest.mark.parametrize("what", ["directory", "file"])
    def test_an_unreadable_directory_or_file_is_one_error_line_and_nothing_is_sent(
            self, controller, controller_hosts, source, area, what):
        (source / area / "fine.py").write_text("FINE = 1\n")
        locked = source / area / "locked"
        if what == "directory":
            locked.mkdir()
            (locked / "x.py").write_text("X = 1\n")
        else:
            locked.write_text("X = 1\n")
        locked.chmod(0)
        try:
            # as root without the capabilities that read past file modes, as a developer
            result = subprocess.run(
                ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                 "--inh-caps=-dac_override,-dac_read_search",
                 sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT),
                 "deploy", "--inventory", str(controller_hosts), "--no-restart"],
                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        finally:
            locked.chmod(0o755)

        assert result.returncode == 1
        assert error_lines(result) == [
            f"error: {source}/{area}/locked/: cannot read this directory "
            f"(Permission denied); nothing was sent" if what == "directory" else
            f"error: {source}/{area}/locked: cannot read this file "
            f"(Permission denied); nothing was sent"]
        assert "Traceback" not in result.stderr
        assert not os.path.lexists(controller.cinder_dir / area)
