"""Specs for sending a small tree in one call: the controller-side helper
(``deploy/remote/receive_tree.py``) under Python 2.7, 3.6 and the project's
python, fed exactly what :func:`deploy.controller.send.payload` builds.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from deploy.controller.send import ONE_CALL_BYTES, one_call_files, payload
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY

EXCLUDES = (".git/", "__pycache__/", "*.pyc")


def receive(python: str, source: Path, target: Path, state: Path, *, dry_run: bool = False,
            checksum: bool = False, deploy_id: str = "d1", only: list[str] | None = None,
            expect: list[list[object]] | None = None) -> dict:
    files = one_call_files(source, EXCLUDES)
    assert files is not None
    if only is not None:
        files = [f for f in files if f.rel in only]
    job = {"target": str(target), "owner": "", "log_file": str(state / "api.log"),
           "dry_run": dry_run, "checksum": checksum,
           "deploy_dir": str(state / "deploys" / deploy_id),
           "record": {"id": deploy_id, "source": str(source)}, "fast_dir": str(state / "fast")}
    if expect is not None:
        job["expect"] = expect
    proc = subprocess.run([python, *STDLIB_ONLY, "-c", script("receive_tree"), python],
                          input=b"{}\n" + payload(files, job), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    source, target, state = tmp_path / "src", tmp_path / "site" / "cinder", tmp_path / "state"
    (source / "api" / "contrib").mkdir(parents=True)
    (source / "api" / "contrib" / "ext.py").write_text("EXT = 1\n")
    (source / "api" / "__pycache__").mkdir()
    (source / "api" / "__pycache__" / "x.pyc").write_bytes(b"\0junk")
    (target / "api").mkdir(parents=True)
    (target / "api" / "__init__.py").write_text("UPSTREAM = True\n")
    (source / "api" / "__init__.py").write_text("UPSTREAM = False\n")
    state.mkdir()
    (state / "api.log").write_text("x" * 123)
    return source, target, state


def records(state: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(state.glob("deploys/*/record.json"))]


class TestReceiveTree:
    def test_new_and_replaced_files_are_written_recorded_and_backed_up(self, python, tree):
        source, target, state = tree

        answer = receive(python, source, target, state)

        assert sorted(map(tuple, answer["changes"])) == [("changed", "api/__init__.py"),
                                                         ("new", "api/contrib/ext.py")]
        assert answer["log_size"] == 123 and answer["compiled"] == 2
        assert (target / "api" / "contrib" / "ext.py").read_text() == "EXT = 1\n"
        assert (target / "api" / "__init__.py").read_text() == "UPSTREAM = False\n"
        assert not (target / "api" / "__pycache__").exists()      # excluded
        backup = state / "deploys" / "d1" / "backup"
        assert (backup / "api" / "__init__.py").read_text() == "UPSTREAM = True\n"
        [record] = records(state)
        assert record["state"] == "applied" and record["id"] == "d1"
        assert record["added"] == ["api/contrib/ext.py"]
        assert record["replaced"] == ["api/__init__.py"]
        assert record["backup"] == str(backup) and record["target"] == str(target)
        # rsync's --times --chmod=D755,F644: the source's mtime, package modes
        sent = target / "api" / "contrib" / "ext.py"
        assert abs(sent.stat().st_mtime_ns
                   - (source / "api/contrib/ext.py").stat().st_mtime_ns) <= 2000
        assert sent.stat().st_mode & 0o777 == 0o644
        assert (target / "api" / "contrib").stat().st_mode & 0o777 == 0o755
        assert not [p for p in target.rglob(".*devloop*")]          # no temporary left

    def test_the_copy_a_killed_call_was_writing_is_removed_by_the_next_call(self, python, tree):
        source, target, state = tree
        dead = subprocess.Popen(["true"])
        dead.wait()
        (target / "api" / f".__init__.py.devloop-{dead.pid}").write_text("half a fi")
        live = target / "api" / f".__init__.py.devloop-{os.getpid()}"   # a call still running
        live.write_text("being written")

        receive(python, source, target, state)

        assert sorted(p.name for p in (target / "api").iterdir()) == [
            live.name, "__init__.py", "contrib"]

    def test_an_unchanged_tree_changes_nothing_and_records_nothing(self, python, tree):
        source, target, state = tree
        receive(python, source, target, state, deploy_id="d1")

        answer = receive(python, source, target, state, deploy_id="d2")

        assert answer["changes"] == [] and answer["compiled"] == 0
        assert [r["id"] for r in records(state)] == ["d1"]

    def test_a_touched_file_is_sent_unless_checksum_compares_the_bytes(self, python, tree):
        source, target, state = tree
        receive(python, source, target, state, deploy_id="d1")
        later = time.time() + 100
        os.utime(source / "api" / "__init__.py", (later, later))

        by_content = receive(python, source, target, state, checksum=True, dry_run=True)
        by_time = receive(python, source, target, state, dry_run=True)

        assert by_content["changes"] == []
        assert by_time["changes"] == [["changed", "api/__init__.py"]]

    def test_a_file_that_does_not_compile_stops_everything(self, python, tree):
        source, target, state = tree
        (source / "api" / "contrib" / "bad.py").write_text("def broken(:\n")

        answer = receive(python, source, target, state)

        [problem] = answer["problems"]
        assert problem["path"] == "cinder/api/contrib/bad.py" and problem["line"] == 1
        assert (target / "api" / "__init__.py").read_text() == "UPSTREAM = True\n"
        assert not (target / "api" / "contrib").exists()
        assert records(state) == []

    def test_a_replaced_file_loses_its_compiled_version_so_a_stale_one_cannot_win(
            self, python, tree):
        # the same size and mtime as the installed file: only --checksum sends it, and
        # Python would take the installed file's bytecode for the new one's
        source, target, state = tree
        (target / "api" / "x.py").write_text("VALUE = 'up'\n")
        (source / "api" / "x.py").write_text("VALUE = 'us'\n")
        stamp = (target / "api" / "x.py").stat().st_mtime_ns
        os.utime(source / "api" / "x.py", ns=(stamp, stamp))
        (target / "__init__.py").write_text("")
        writes_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([python, "-c", "import api.x"], cwd=target, check=True,
                       env=writes_bytecode)                 # compiles api/x.py, as root would
        compiled = [p for p in target.rglob("x*.py[co]")]
        assert compiled

        answer = receive(python, source, target, state, checksum=True)

        assert ["changed", "api/x.py"] in answer["changes"]
        assert not any(p.exists() for p in compiled)
        proc = subprocess.run([python, "-c", "import api.x; print(api.x.VALUE)"], cwd=target,
                              capture_output=True, text=True)
        assert proc.stdout.strip() == "us", proc.stderr

    def test_it_says_whether_fast_restart_is_on_so_the_restart_need_not_ask(self, python,
                                                                              tree):
        source, target, state = tree
        assert receive(python, source, target, state, dry_run=True)["fast_mode"] is False
        (state / "fast").mkdir()
        (state / "fast" / "original").write_text("[program:cinder-api]\n")
        assert receive(python, source, target, state, dry_run=True)["fast_mode"] is True

    def test_a_dry_run_lists_the_changes_and_writes_nothing(self, python, tree):
        source, target, state = tree

        answer = receive(python, source, target, state, dry_run=True)

        assert len(answer["changes"]) == 2
        assert (target / "api" / "__init__.py").read_text() == "UPSTREAM = True\n"
        assert records(state) == []


def as_sent(source: Path, rel: str) -> list[object]:
    info = (source / rel).stat()
    return [rel, info.st_size, info.st_mtime_ns]


class TestOnlyTheChangedFiles:
    def test_unsent_files_as_expected_let_the_changed_ones_through(self, python, tree):
        source, target, state = tree
        receive(python, source, target, state, deploy_id="d1")
        (source / "api" / "contrib" / "ext.py").write_text("EXT = 2\n")

        answer = receive(python, source, target, state, deploy_id="d2",
                         only=["api/contrib/ext.py"],
                         expect=[as_sent(source, "api/__init__.py")])

        assert "stale" not in answer
        assert answer["changes"] == [["changed", "api/contrib/ext.py"]]
        assert (target / "api" / "contrib" / "ext.py").read_text() == "EXT = 2\n"
        assert [r["id"] for r in records(state)] == ["d1", "d2"]

    @pytest.mark.parametrize("how", ["edited", "touched", "removed"])
    def test_an_expected_file_changed_on_the_controller_stops_it_and_is_named(
            self, python, tree, how):
        source, target, state = tree
        receive(python, source, target, state, deploy_id="d1")
        there = target / "api" / "__init__.py"
        if how == "edited":
            there.write_text("HAND = 'edit'\n")
        elif how == "touched":
            os.utime(there, (time.time() + 100, time.time() + 100))
        else:
            there.unlink()
        (source / "api" / "contrib" / "ext.py").write_text("EXT = 2\n")

        answer = receive(python, source, target, state, deploy_id="d2",
                         only=["api/contrib/ext.py"],
                         expect=[as_sent(source, "api/__init__.py")])

        assert answer["stale"] == ["api/__init__.py"] and answer["changes"] == []
        assert (target / "api" / "contrib" / "ext.py").read_text() == "EXT = 1\n"   # untouched
        assert [r["id"] for r in records(state)] == ["d1"]                        # no record


class TestQuestionsFirst:
    def test_it_locates_cinder_answers_at_once_then_takes_the_tree(self, python, tree):
        source, target, state = tree
        files = one_call_files(source, EXCLUDES)
        questions = {"locate": [script("locate"), list(STDLIB_ONLY), str(target), str(state),
                                json.dumps(["api/__init__.py"])]}
        proc = subprocess.Popen([python, *STDLIB_ONLY, "-c", script("receive_tree"), python],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc.stdin.write(json.dumps(questions).encode() + b"\n")
        proc.stdin.flush()

        facts = json.loads(proc.stdout.readline())           # before the tree is sent

        assert facts["cinder_dir"] == str(target) and facts["python"] == python
        assert facts["hashes"]["api/__init__.py"] is not None
        job = {"target": facts["cinder_dir"], "owner": "", "log_file": "", "dry_run": False,
               "checksum": False, "deploy_dir": str(state / "deploys" / "q1"), "record": {}}
        out, _ = proc.communicate(payload(files, job), timeout=60)
        assert proc.returncode == 0
        answer = json.loads(out.decode().strip().splitlines()[-1])
        assert len(answer["changes"]) == 2
        assert (target / "api" / "contrib" / "ext.py").is_file()

    def test_a_caller_that_sends_no_tree_changes_nothing(self, python, tree):
        source, target, state = tree
        questions = {"locate": [script("locate"), list(STDLIB_ONLY), str(target), str(state),
                                "[]"]}
        proc = subprocess.run([python, *STDLIB_ONLY, "-c", script("receive_tree"), python],
                              input=json.dumps(questions).encode() + b"\n",
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.decode().strip().splitlines()) == 1   # only the facts
        assert not (target / "api" / "contrib").exists() and records(state) == []


class TestWhichTreesGoInOneCall:
    def test_a_tree_with_a_symlink_goes_through_rsync(self, tmp_path):
        (tmp_path / "a.py").write_text("A = 1\n")
        (tmp_path / "link.py").symlink_to(tmp_path / "a.py")
        assert one_call_files(tmp_path, ()) is None

    def test_a_large_tree_goes_through_rsync(self, tmp_path):
        (tmp_path / "big.bin").write_bytes(b"\0" * (ONE_CALL_BYTES + 1))
        assert one_call_files(tmp_path, ()) is None

    def test_excluded_files_do_not_count(self, tmp_path):
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "pack").write_bytes(b"\0" * (ONE_CALL_BYTES + 1))
        (tmp_path / "a.py").write_text("A = 1\n")
        files = one_call_files(tmp_path, (".git/",))
        assert files is not None and [f.rel for f in files] == ["a.py"]
