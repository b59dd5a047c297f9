"""Specs for which entries of the source tree are code and sent (deploy/transport/tree.py).

The rules (the inventory's excludes, what is never code, what git ignores),
where a symlink leads, how a file is read and staged, and how an odd name
is shown. The same rules serve the one-call path, rsync, watch and --dry-run;
the integration specs (tests/integration/test_source_tree.py) prove them
on the controllers.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.base.errors import SourceTreeError
from deploy.base.inventory import DEFAULT_EXCLUDES
from deploy.transport.tree import (
    Rules,
    read_file,
    read_tree,
    resolve_link,
    rsync_excludes,
    scan,
    shown,
    stage,
)


def make(root: Path, rels: list[str]) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


class TestNotCode:
    @pytest.mark.parametrize("rel, reason", [
        (".env", ".*: a dot name, not code"),
        ("api/.idea/workspace.xml", ".*: a dot name, not code"),
        ("api/x.py~", "*~: an editor's backup"),
        ("api/.x.py.swp", "*.swp: an editor's swap file"),
        ("api/.x.py.swo", "*.swo: an editor's swap file"),
        ("api/4913", "4913: vim's write probe"),
        ("api/#x.py#", "#*#: an editor's autosave"),
        ("api/.#x.py", ".#*: an editor's lock"),
        ("api/x.py___jb_tmp___", "*___jb_tmp___: an editor's temporary file"),
        ("api/__pycache__/x.cpython-311.pyc", "the inventory's excludes: __pycache__/"),
        (".git/HEAD", "the inventory's excludes: .git/"),
    ])
    def test_what_is_not_code_is_left_out_with_its_reason(self, rel, reason):
        assert str(Rules(DEFAULT_EXCLUDES).left_out(rel)) == reason

    @pytest.mark.parametrize("rel", ["api/x.py", "db/migrations/versions/0001_x.py",
                                     "locale/de/LC_MESSAGES/cinder.po", "api/x~y.py",
                                     "api/49130", "api/v3/views/__init__.py"])
    def test_code_is_kept(self, rel):
        assert Rules(DEFAULT_EXCLUDES).left_out(rel) is None

    def test_they_apply_whatever_the_inventorys_excludes(self):
        assert Rules(()).left_out(".env") is not None
        assert Rules(()).left_out("a/b.py~") is not None

    def test_a_tree_rsync_lists_itself_gets_them_as_its_own_patterns(self):
        patterns = rsync_excludes(DEFAULT_EXCLUDES)
        assert patterns[:len(DEFAULT_EXCLUDES)] == list(DEFAULT_EXCLUDES)
        assert {"*~", "*.swp", "4913", ".*"} <= set(patterns)


class TestScan:
    def test_it_lists_files_and_links_and_what_it_left_out(self, tmp_path):
        make(tmp_path, ["a.py", "api/b.py", "api/b.py~", ".env", "api/__pycache__/b.pyc"])
        (tmp_path / "api" / "alias.py").symlink_to("b.py")
        os.mkfifo(tmp_path / "api" / "pipe")

        tree = scan(tmp_path, Rules(DEFAULT_EXCLUDES))

        assert sorted(tree.files) == ["a.py", "api/b.py"]
        assert tree.links == {"api/alias.py": "b.py"}
        assert [(e.rel, str(e.reason)) for e in tree.left_out] == [
            (".env", ".*: a dot name, not code"),
            ("api/__pycache__/", "the inventory's excludes: __pycache__/"),
            ("api/b.py~", "*~: an editor's backup"),
            ("api/pipe", "not a regular file")]
        assert [e.rel for e in tree.not_code()] == [".env", "api/b.py~", "api/pipe"]
        assert tree.entries() == ["a.py", "api/alias.py", "api/b.py"]

    def test_a_left_out_link_is_never_looked_at(self, tmp_path):
        (tmp_path / ".#x.py").symlink_to("dev@box.4242:1700000000")    # emacs' lock
        tree = scan(tmp_path, Rules(()))
        assert tree.links == {}
        tree.refuse_links_out()

    def test_an_unreadable_directory_is_one_clear_error(self, tmp_path):
        (tmp_path / "locked").mkdir()
        script = ("import sys; from pathlib import Path; from deploy.transport.tree import "
                  "Rules, scan\ntry:\n    scan(Path(sys.argv[1]), Rules(()))\n"
                  "except Exception as exc:\n    print(type(exc).__name__, exc)")
        (tmp_path / "locked").chmod(0)
        try:
            # root reads past modes: without those capabilities, as a developer
            out = subprocess.run(
                ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                 "--inh-caps=-dac_override,-dac_read_search", sys.executable, "-c", script,
                 str(tmp_path)], capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}).stdout
        finally:
            (tmp_path / "locked").chmod(0o755)
        assert out == (f"SourceTreeError {tmp_path}/locked/: cannot read this directory "
                       f"(Permission denied); nothing was sent\n")


def git_checkout(root: Path) -> Path:
    git = ["git", "-C", str(root), "-c", "user.name=dev", "-c", "user.email=d@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / ".git" / "info" / "exclude").write_text("scratch.py\n")
    source = root / "cinder"
    make(source, ["a.py", "build/gen.py", "run.log", "kept.log", "scratch.py", "new.py"])
    subprocess.run([*git, "add", "-f", "cinder/a.py", "cinder/kept.log"], check=True)
    return source


class TestGit:
    def test_what_git_ignores_is_left_out_and_what_it_tracks_is_sent(self, tmp_path):
        source = git_checkout(tmp_path)

        tree = read_tree(source, DEFAULT_EXCLUDES)

        assert sorted(tree.files) == ["a.py", "kept.log", "new.py"]
        assert [(e.rel, str(e.reason)) for e in tree.left_out] == [
            ("build/", "ignored by git"), ("run.log", "ignored by git"),
            ("scratch.py", "ignored by git")]

    def test_outside_a_checkout_git_is_not_asked_for_anything(self, tmp_path):
        make(tmp_path, ["a.py", "b.log"])
        (tmp_path / ".gitignore").write_text("*.log\n")
        env = {"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
        os.environ.update(env)
        try:
            assert Rules.of(tmp_path, ()).ignored == frozenset()
        finally:
            for key in env:
                os.environ.pop(key)


class TestLinks:
    @pytest.mark.parametrize("rel, links, leads_to", [
        ("a/alias.py", {"a/alias.py": "real.py"}, "a/real.py"),
        ("a/up.py", {"a/up.py": "../b/x.py"}, "b/x.py"),
        ("top", {"top": "."}, ""),
        ("a/abs.py", {"a/abs.py": "/etc/shadow"}, None),
        ("a/out.py", {"a/out.py": "../../x.py"}, None),
        # lexically within, but "here" is the top itself: .. leaves the tree
        ("y.py", {"here": ".", "y.py": "here/../x.py"}, None),
        ("y.py", {"down": "a/b", "y.py": "down/../x.py"}, "a/x.py"),
        ("y.py", {"loop": "loop2", "loop2": "loop", "y.py": "loop/x.py"}, None),
        ("y.py", {"abs": "/tmp", "y.py": "abs/x.py"}, None),
    ])
    def test_a_link_is_followed_through_the_trees_links_and_never_out(self, rel, links,
                                                                        leads_to):
        assert resolve_link(rel, links) == leads_to

    @pytest.mark.parametrize("target", ["/etc/hostname", "../../outside.py"])
    def test_a_link_out_of_the_tree_is_refused_before_its_target_is_read(self, tmp_path,
                                                                           target):
        (tmp_path / "src" / "zz").mkdir(parents=True)
        (tmp_path / "src" / "zz" / "s.py").symlink_to(target)
        tree = scan(tmp_path / "src", Rules(()))
        with pytest.raises(SourceTreeError) as raised:
            tree.refuse_links_out()
        assert str(raised.value) == (
            f"{tmp_path}/src/zz/s.py: a symlink to {target}, outside the source tree; "
            f"nothing was sent (a link is sent only when it points within the tree)")

    def test_a_link_to_what_is_left_out_is_refused_too(self, tmp_path):
        make(tmp_path, [".env"])
        (tmp_path / "settings.py").symlink_to(".env")
        with pytest.raises(SourceTreeError, match=r"settings.py: a symlink to \.env, which is "
                                                  r"left out of the deploy \(\.\*: a dot name"):
            scan(tmp_path, Rules(())).refuse_links_out()

    def test_a_link_to_a_file_only_the_controller_has_is_sent(self, tmp_path):
        (tmp_path / "alias.txt").symlink_to("__init__.py")     # cinder/__init__.py, there
        scan(tmp_path, Rules(())).refuse_links_out()


class TestReading:
    def test_a_file_is_read_never_through_a_symlink(self, tmp_path):
        (tmp_path / "secret").write_text("s3cret")
        (tmp_path / "x.py").symlink_to(tmp_path / "secret")
        with pytest.raises(SourceTreeError, match="x.py: cannot read this file "
                                                  r"\(it became a symlink\); nothing was sent"):
            read_file(tmp_path / "x.py")

    def test_the_bytes_come_with_the_size_and_mtime_they_had(self, tmp_path):
        (tmp_path / "x.py").write_bytes(b"X = 1\n")
        info = (tmp_path / "x.py").stat()
        assert read_file(tmp_path / "x.py") == (b"X = 1\n", (6, info.st_mtime_ns))

    def test_staging_copies_files_and_links_with_their_times(self, tmp_path):
        source, staged = tmp_path / "src", tmp_path / "staged"
        make(source, ["api/a.py", "api/b.py", "c.py"])
        (source / "api" / "alias.py").symlink_to("a.py")
        os.utime(source / "api" / "a.py", ns=(1, 1_600_000_000_123_456_789))
        os.utime(source / "api", ns=(1, 1_500_000_000_000_000_000))
        staged.mkdir(mode=0o700)

        copied = stage(scan(source, Rules(())), ["api/a.py", "api/alias.py"], staged)

        assert (staged / "api" / "a.py").read_text() == "api/a.py"
        assert (staged / "api" / "a.py").stat().st_mtime_ns == 1_600_000_000_123_456_789
        assert os.readlink(staged / "api" / "alias.py") == "a.py"
        assert (staged / "api").stat().st_mtime_ns == 1_500_000_000_000_000_000
        assert sorted(p.name for p in (staged / "api").iterdir()) == ["a.py", "alias.py"]
        assert not (staged / "c.py").exists()
        assert copied == {"api/a.py": (8, 1_600_000_000_123_456_789)}


@pytest.mark.parametrize("rel, seen", [
    ("api/x.py", "api/x.py"),
    ("caf\u00e9.py", "caf\u00e9.py"),
    ("new\nline.py", "new\\nline.py"),
    ("latin\udce9.py", "latin\\xe9.py"),
    ("tab\there\\x.py", "tab\\there\\\\x.py"),
    ("back\\slash.py", "back\\slash.py"),       # printable: as it is
])
def test_a_name_is_shown_on_one_line_its_odd_bytes_escaped(rel, seen):
    assert shown(rel) == seen


def test_a_staging_directory_a_killed_run_left_is_removed_by_the_next(tmp_path, monkeypatch):
    import tempfile

    from deploy.transport.tree import staging

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"devloop-send-{dead.pid}-abcd"
    (left / "api").mkdir(parents=True)
    mine = tmp_path / f"devloop-send-{os.getpid()}-live"      # a run still going
    mine.mkdir()

    with staging() as private:
        assert private.parent == tmp_path and (private.stat().st_mode & 0o777) == 0o700
        assert not left.exists() and mine.exists()
    assert not private.exists()
