"""Specs for the developer-side record of what a checkout last sent to a controller."""
from __future__ import annotations

import os

import pytest

from deploy.base.inventory import DEFAULT_EXCLUDES
from deploy.controller import sent_state
from deploy.controller.send import excluded


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVLOOP_USER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make(root, rels):
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


class TestRecordFile:
    def test_it_lives_in_the_cache_dir_and_one_per_source_controller_and_target(self, cache,
                                                                                 tmp_path):
        one = sent_state.state_file("root@127.0.0.1:22", "/site/cinder", tmp_path / "a", ())
        assert one.parent == cache / "sent"
        assert one == sent_state.state_file("root@127.0.0.1:22", "/site/cinder/",
                                            tmp_path / "a", ())
        others = {sent_state.state_file("root@127.0.0.1:2222", "/site/cinder", tmp_path / "a", ()),
                  sent_state.state_file("root@127.0.0.1:22", "/other/cinder", tmp_path / "a", ()),
                  sent_state.state_file("root@127.0.0.1:22", "/site/cinder", tmp_path / "b", ()),
                  sent_state.state_file("root@127.0.0.1:22", "/site/cinder", tmp_path / "a",
                                        ("*.txt",))}
        assert one not in others and len(others) == 4

    def test_the_user_cache_dir_is_the_default(self, monkeypatch, tmp_path):
        monkeypatch.delenv("DEVLOOP_USER_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert sent_state.cache_dir() == tmp_path / "xdg" / "cinder-devloop"

    def test_saved_is_loaded_back(self, tmp_path):
        path = tmp_path / "cache" / "sent" / "x.json"
        sent_state.save(path, {"a.py": (3, 10**18 + 7), "b/c.py": (0, 5)})
        assert sent_state.load(path) == {"a.py": (3, 10**18 + 7), "b/c.py": (0, 5)}

    @pytest.mark.parametrize("content", [None, "", "{not json", '{"files": [["a"]]}', "[]"])
    def test_a_missing_or_unreadable_record_means_the_full_comparison(self, tmp_path, content):
        path = tmp_path / "x.json"
        if content is not None:
            path.write_text(content)
        assert sent_state.load(path) is None


class TestScan:
    def test_it_lists_every_file_with_size_and_mtime_after_the_excludes(self, tmp_path):
        make(tmp_path, ["a.py", "api/b.py", "api/__pycache__/b.cpython-311.pyc", "c.pyc",
                        ".git/HEAD", ".tox/py/x.py", "deep/er/d.txt"])
        found = sent_state.scan(tmp_path, DEFAULT_EXCLUDES)
        assert sorted(found) == ["a.py", "api/b.py", "deep/er/d.txt"]
        info = (tmp_path / "api" / "b.py").stat()
        assert found["api/b.py"] == (info.st_size, info.st_mtime_ns)

    @pytest.mark.parametrize("rel", [
        "api/__pycache__/x.cpython-311.pyc", "api/x.pyc", ".vscode/settings.json",
        "api/contrib/x.py", "a/.git/b", "x.git/y", "volume/drivers/tox.py",
        "api/x.pyc.orig", "top.txt", "sub/top.txt", "sub/dir/x.py"])
    @pytest.mark.parametrize("patterns", [DEFAULT_EXCLUDES, ("*.txt", "/sub/dir/", "sub/top.txt")])
    def test_its_excludes_agree_with_rsyncs_as_send_reads_them(self, tmp_path, rel, patterns):
        make(tmp_path, [rel])
        scanned = sent_state.scan(tmp_path, patterns)
        assert scanned is not None
        assert (rel not in scanned) is excluded(rel, patterns)

    def test_a_symlink_means_rsync(self, tmp_path):
        make(tmp_path, ["a.py"])
        (tmp_path / "link.py").symlink_to(tmp_path / "a.py")
        assert sent_state.scan(tmp_path, ()) is None


class TestDelta:
    def test_new_and_changed_files_are_sent_the_rest_expected_as_last_sent(self):
        record = {"same.py": (1, 10), "edited.py": (1, 10), "touched.py": (1, 10),
                  "gone.py": (1, 10)}
        local = {"same.py": (1, 10), "edited.py": (2, 11), "touched.py": (1, 12),
                 "new.py": (1, 10)}
        delta = sent_state.delta(local, record)
        assert delta.changed == ["edited.py", "new.py", "touched.py"]
        assert delta.expect == {"same.py": (1, 10)}

    def test_watch_reads_only_the_files_it_saw(self, tmp_path):
        make(tmp_path, ["seen.py", "unseen.py"])
        record = {"seen.py": (0, 1), "unseen.py": (0, 1), "deleted.py": (0, 1)}
        files = sent_state.rescan(tmp_path, record, ["seen.py", "deleted.py"])
        info = (tmp_path / "seen.py").stat()
        assert files == {"seen.py": (info.st_size, info.st_mtime_ns), "unseen.py": (0, 1)}

    def test_a_seen_symlink_means_rsync(self, tmp_path):
        make(tmp_path, ["a.py"])
        os.symlink(tmp_path / "a.py", tmp_path / "l.py")
        assert sent_state.rescan(tmp_path, {}, ["l.py"]) is None
