"""Specs for the controller-side helpers (deploy/remote/): each one runs, as
it does on a controller, under Python 2.7, 3.6 and the project's own python.

A missing interpreter fails these specs with one message naming what to
install; they are never skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from deploy.controller.facts import _FROM_SHEBANG
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY


def run(python: str, name: str, *args: str, flags: tuple[str, ...] = STDLIB_ONLY,
        cwd: str | Path | None = None, check: bool = True,
        env: dict[str, str] | None = None, stdin: object = None
        ) -> subprocess.CompletedProcess[str]:
    """Run helper ``name``; ``stdin``, if given, goes to it as JSON."""
    feed = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": json.dumps(stdin)}
    proc = subprocess.run([python, *flags, "-c", script(name), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60, **feed)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> object:
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- records ------------------------------------------------------------------------

def test_write_file_creates_the_directory_and_replaces_the_file(python, tmp_path):
    path = tmp_path / "deploys" / "x" / "record.json"
    run(python, "write_file", str(path), '{"a": 1}\n')
    run(python, "write_file", str(path), '{"a": 2}\n')
    assert path.read_text() == '{"a": 2}\n'
    assert sorted(os.listdir(path.parent)) == ["record.json"]


def test_list_records_reads_every_record_oldest_first_and_names_unreadable_ones(python,
                                                                               tmp_path):
    for name, text in (("2", '{"id": "2"}'), ("1", '{"id": "1"}'), ("3", "{broken")):
        (tmp_path / "deploys" / name).mkdir(parents=True)
        (tmp_path / "deploys" / name / "record.json").write_text(text)
    records = last_json(run(python, "list_records", str(tmp_path)))
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert records[2]["state"] == "unreadable"


def test_restore_puts_back_replaced_files_and_skips_what_an_interrupted_deploy_never_did(
        python, tmp_path):
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "api").mkdir(parents=True)
    (backup / "api").mkdir(parents=True)
    (target / "api" / "a.py").write_text("new a\n")
    (backup / "api" / "a.py").write_text("old a\n")
    (target / "api" / "added.py").write_text("added\n")
    record = {"id": "d1", "state": "applying", "target": str(target), "backup": str(backup),
              "replaced": ["api/a.py", "api/not_yet.py"], "added": ["api/added.py",
                                                                    "api/never_sent.py"]}
    summary = last_json(run(python, "restore", stdin={"records": [record]}))
    assert summary == {"restored": ["api/a.py"], "removed": ["api/added.py"], "compiled": []}
    assert (target / "api" / "a.py").read_text() == "old a\n"
    assert not (target / "api" / "added.py").exists()
    written = json.loads((tmp_path / "deploys" / "d1" / "record.json").read_text())
    assert written["state"] == "rolled back"


def test_restore_puts_back_a_replaced_symlink_as_the_symlink_it_was(python, tmp_path):
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "api").mkdir(parents=True)
    (backup / "api").mkdir(parents=True)
    (target / "api" / "alias.py").symlink_to("new.py")     # as rsync left it
    (backup / "api" / "alias.py").symlink_to("old.py")     # rsync's --backup-dir copy
    (target / "api" / "added_link.py").symlink_to("new.py")
    record = {"id": "d1", "state": "applied", "target": str(target), "backup": str(backup),
              "replaced": ["api/alias.py"], "added": ["api/added_link.py"]}
    summary = last_json(run(python, "restore", stdin={"records": [record]}))
    assert summary == {"restored": ["api/alias.py"], "removed": ["api/added_link.py"],
                       "compiled": []}
    assert os.readlink(target / "api" / "alias.py") == "old.py"
    assert sorted(os.listdir(target / "api")) == ["alias.py"]


def test_restore_first_removes_what_writers_killed_mid_file_left_beside_the_deploys_files(
        python, tmp_path):
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "api").mkdir(parents=True)
    (backup / "api").mkdir(parents=True)
    (target / "api" / "a.py").write_text("new a\n")
    (backup / "api" / "a.py").write_text("old a\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftovers = [f".a.py.devloop-{dead.pid}",          # receive_tree.py's copy
                 f".devloop-restore-{dead.pid}-a.py",  # this helper's own
                 ".b.py.Xy12Zq"]                       # rsync's
    kept = [f".a.py.devloop-{os.getpid()}",            # its writer still runs
            ".other.py.Xy12Zq", "other.py"]            # not a file of this deploy
    for name in leftovers + kept:
        (target / "api" / name).write_text("partial")
    record = {"id": "d1", "state": "applying", "target": str(target), "backup": str(backup),
              "replaced": ["api/a.py"], "added": ["api/b.py"]}

    run(python, "restore", stdin={"records": [record]})

    assert sorted(os.listdir(target / "api")) == sorted(kept + ["a.py"])
    assert (target / "api" / "a.py").read_text() == "old a\n"


def test_begin_deploy_backs_up_records_then_removes_what_killed_writers_left(python,
                                                                             tmp_path):
    target = tmp_path / "cinder"
    (target / "api").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (".a.py.Q1w2E3", f".b.py.devloop-{dead.pid}", ".other.py.Q1w2E3", "a.py"):
        (target / "api" / name).write_text("partial")
    backup = tmp_path / "deploys" / "d1" / "backup"
    record = {"id": "d1", "state": "applying", "target": str(target), "backup": str(backup),
              "replaced": ["api/a.py"], "added": ["api/b.py"]}

    answer = last_json(run(python, "begin_deploy", stdin={"record": record, "sizes": None}))

    written = json.loads((tmp_path / "deploys" / "d1" / "record.json").read_text())
    assert answer == {"record": written}
    assert written == {**record, "backups": {"api/a.py": {
        "size": 7, "sha256": hashlib.sha256(b"partial").hexdigest()}}}
    assert (backup / "api" / "a.py").read_text() == "partial"
    assert sorted(os.listdir(target / "api")) == [".other.py.Q1w2E3", "a.py"]


def proven(data: bytes) -> dict[str, object]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_begin_deploy_keeps_a_backup_on_another_filesystem_as_a_copy_it_read_back(python,
                                                                                  tmp_path):
    target = tmp_path / "cinder"
    (target / "api").mkdir(parents=True)
    (target / "api" / "a.py").write_bytes(b"old a\n" * 1000)
    os.utime(target / "api" / "a.py", ns=(1_500_000_000_123_456_789,) * 2)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:    # a tmpfs: no hard link
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev
        backup = Path(other) / "deploys" / "d1" / "backup"
        record = {"id": "d1", "target": str(target), "backup": str(backup),
                  "replaced": ["api/a.py"], "added": []}

        written = last_json(run(python, "begin_deploy",
                                stdin={"record": record, "sizes": None}))["record"]

        copy = backup / "api" / "a.py"
        assert written["backups"] == {"api/a.py": proven(b"old a\n" * 1000)}
        assert copy.read_bytes() == b"old a\n" * 1000
        assert os.stat(copy).st_ino != os.stat(target / "api" / "a.py").st_ino
        # (Python 2 sets times to the microsecond)
        assert abs(os.stat(copy).st_mtime_ns - 1_500_000_000_123_456_789) < 1000


def test_begin_deploy_refuses_a_symlink_below_the_package_and_changes_nothing(python,
                                                                               tmp_path):
    target, elsewhere = tmp_path / "cinder", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    (elsewhere / "a.py").write_text("precious\n")
    (target / "zz").symlink_to(elsewhere)
    record = {"id": "d1", "target": str(target), "backup": str(tmp_path / "d1" / "backup"),
              "replaced": ["zz/a.py"], "added": ["zz/b.py"]}

    answer = last_json(run(python, "begin_deploy", stdin={"record": record, "sizes": None}))

    assert answer == {"refused": f"refusing to write through {target}/zz: a symlink (to "
                                 f"{elsewhere}), not a directory of the package"}
    assert not (tmp_path / "d1").exists()
    assert os.listdir(elsewhere) == ["a.py"]


def test_begin_deploy_says_when_the_new_files_do_not_fit_and_changes_nothing(python,
                                                                              tmp_path):
    target = tmp_path / "cinder"
    target.mkdir()
    free = shutil.disk_usage(target).free
    record = {"id": "d1", "target": str(target), "backup": str(tmp_path / "d1" / "backup"),
              "replaced": [], "added": ["a.bin"]}

    answer = last_json(run(python, "begin_deploy",
                           stdin={"record": record, "sizes": {"a.bin": free * 2}}))

    room = answer["no_space"]
    assert room["what"] == "files" and room["where"] == str(target)
    assert room["needed"] >= free * 2 > room["free"]
    assert not (tmp_path / "d1").exists()


@pytest.mark.parametrize("mode, follows", [(0o755, True), (0o777, False)],
                         ids=["root's own directory", "anyone's directory"])
def test_a_symlink_above_the_package_is_followed_only_where_no_one_but_root_put_it(
        python, tmp_path, mode, follows):
    real, parent = tmp_path / "real", tmp_path / "parent"
    (real / "cinder" / "api").mkdir(parents=True)
    (real / "cinder" / "api" / "a.py").write_text("old\n")
    parent.mkdir()
    (parent / "checkout").symlink_to(real)      # DevStack: /opt/stack/cinder, owned by stack
    parent.chmod(mode)
    target = parent / "checkout" / "cinder"
    record = {"id": "d1", "target": str(target), "backup": str(tmp_path / "d1" / "backup"),
              "replaced": ["api/a.py"], "added": []}

    answer = last_json(run(python, "begin_deploy", stdin={"record": record, "sizes": None}))

    if follows:
        assert answer["record"]["replaced"] == ["api/a.py"]
    else:
        assert answer == {"refused": f"refusing to write through {parent}/checkout: a symlink "
                                     f"(to {real}), in a directory another user can write"}
        assert not (tmp_path / "d1").exists()


def proven_record(tmp_path: Path, new: bytes, old: bytes) -> dict[str, object]:
    """A deploy that replaced cinder/api/a.py (``old``, kept proven) with ``new``."""
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "api").mkdir(parents=True)
    (backup / "api").mkdir(parents=True)
    (target / "api" / "a.py").write_bytes(new)
    (backup / "api" / "a.py").write_bytes(old)
    return {"id": "d1", "state": "applied", "target": str(target), "backup": str(backup),
            "replaced": ["api/a.py"], "added": [], "backups": {"api/a.py": proven(old)}}


def test_restore_refuses_a_damaged_backup_and_changes_nothing(python, tmp_path):
    record = proven_record(tmp_path, b"new\n", b"old " * 4096)
    backup = tmp_path / "deploys" / "d1" / "backup" / "api" / "a.py"
    backup.write_bytes(b"old " * 2048)                  # cut short, as a full disk does

    answer = last_json(run(python, "restore", stdin={"records": [record]}))

    assert answer == {"damaged": {"id": "d1", "rel": "api/a.py", "why": (
        f"{backup}: 8192 bytes with sha256 {hashlib.sha256(b'old ' * 2048).hexdigest()[:12]}, "
        f"recorded 16384 bytes with sha256 {hashlib.sha256(b'old ' * 4096).hexdigest()[:12]}")}}
    assert (tmp_path / "cinder" / "api" / "a.py").read_bytes() == b"new\n"
    assert not (tmp_path / "deploys" / "d1" / "record.json").exists()   # not marked


def test_restore_puts_back_a_proven_backup_and_skips_a_replaced_file_never_backed_up(
        python, tmp_path):
    record = proven_record(tmp_path, b"new\n", b"old\n")
    record["replaced"] = ["api/a.py", "api/never.py"]      # cut before its backup was proven
    (tmp_path / "cinder" / "api" / "never.py").write_text("untouched\n")
    (tmp_path / "deploys" / "d1" / "backup" / "api" / "never.py").write_text("half")

    answer = last_json(run(python, "restore", stdin={"records": [record]}))

    assert answer["restored"] == ["api/a.py"]
    assert (tmp_path / "cinder" / "api" / "a.py").read_bytes() == b"old\n"
    assert (tmp_path / "cinder" / "api" / "never.py").read_text() == "untouched\n"


def test_restore_never_removes_or_restores_through_a_directory_symlink(python, tmp_path):
    record = proven_record(tmp_path, b"new\n", b"old\n")
    record["added"] = ["zz/added.py"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "added.py").write_text("precious\n")
    (tmp_path / "cinder" / "zz").symlink_to(elsewhere)

    answer = last_json(run(python, "restore", stdin={"records": [record]}))

    assert answer == {"refused": f"refusing to write through {tmp_path}/cinder/zz: a symlink "
                                 f"(to {elsewhere}), not a directory of the package"}
    assert (elsewhere / "added.py").read_text() == "precious\n"
    assert (tmp_path / "cinder" / "api" / "a.py").read_bytes() == b"new\n"


def test_restore_with_forget_removes_the_deploys_directory(python, tmp_path):
    record = proven_record(tmp_path, b"new\n", b"old\n")

    run(python, "restore", stdin={"records": [record], "forget": True})

    assert (tmp_path / "cinder" / "api" / "a.py").read_bytes() == b"old\n"
    assert not (tmp_path / "deploys" / "d1").exists()


# --- compiled files -------------------------------------------------------------------

def compile_with(python: str, *sources: Path, optimize: bool = False) -> list[Path]:
    """Compile ``sources`` as an import by ``python`` would; the compiled files it wrote."""
    before = {p for src in sources for p in src.parent.rglob("*") if p.is_file()}
    flags = ["-O"] if optimize else []
    subprocess.run([python, *flags, "-m", "py_compile", *map(str, sources)], check=True,
                   capture_output=True)
    after = {p for src in sources for p in src.parent.rglob("*") if p.is_file()}
    return sorted(after - before)


def importable(python: str, path: Path, module: str) -> bool:
    proc = subprocess.run([python, "-c", f"import {module}"], cwd=path, capture_output=True)
    return proc.returncode == 0


def test_restore_removes_an_added_module_with_what_python_compiled_from_it(python, tmp_path):
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "newpkg").mkdir(parents=True)
    backup.mkdir(parents=True)
    (target / "newpkg" / "__init__.py").write_text("")
    (target / "newpkg" / "x.py").write_text("VALUE = 1\n")
    written = compile_with(python, target / "newpkg" / "__init__.py", target / "newpkg" / "x.py")
    written += compile_with(python, target / "newpkg" / "x.py", optimize=True)
    assert written and importable(python, target, "newpkg.x")
    record = {"id": "d1", "state": "applied", "target": str(target), "backup": str(backup),
              "replaced": [], "added": ["newpkg/__init__.py", "newpkg/x.py"]}
    summary = last_json(run(python, "restore", stdin={"records": [record]}))
    assert sorted(summary["compiled"]) == sorted(map(str, written))
    assert not (target / "newpkg").exists()        # emptied: the package directory went too
    assert not importable(python, target, "newpkg.x")


def test_restore_removes_the_compiled_files_of_a_file_it_puts_back(python, tmp_path):
    # same size, same mtime: the compiled new version would be taken for the old one's
    target, backup = tmp_path / "cinder", tmp_path / "deploys" / "d1" / "backup"
    (target / "api").mkdir(parents=True)
    (backup / "api").mkdir(parents=True)
    (target / "api" / "__init__.py").write_text("")
    (target / "api" / "a.py").write_text("VALUE = 'new'\n")
    (backup / "api" / "a.py").write_text("VALUE = 'old'\n")
    stamp = (target / "api" / "a.py").stat().st_mtime_ns
    os.utime(backup / "api" / "a.py", ns=(stamp, stamp))
    written = compile_with(python, target / "api" / "a.py")
    record = {"id": "d1", "state": "applied", "target": str(target), "backup": str(backup),
              "replaced": ["api/a.py"], "added": []}
    summary = last_json(run(python, "restore", stdin={"records": [record]}))
    assert summary["compiled"] == list(map(str, written))
    proc = subprocess.run([python, "-c", "import api.a; print(api.a.VALUE)"], cwd=target,
                          capture_output=True, text=True)
    assert proc.stdout.strip() == "old", proc.stderr


def test_end_deploy_removes_only_the_compiled_files_of_the_recorded_sources_then_records(
        python, tmp_path):
    target = tmp_path / "cinder"
    cache = target / "api" / "__pycache__"
    cache.mkdir(parents=True)
    mine = ["api/x.pyc", "api/x.pyo", "api/__pycache__/x.cpython-36.pyc",
            "api/__pycache__/x.cpython-311.opt-1.pyc", "api/__pycache__/x.cpython-34.pyo"]
    others = ["api/y.pyc", "api/x_y.pyc", "api/__pycache__/x.y.cpython-36.pyc",
              "api/__pycache__/xx.cpython-36.pyc", "api/__pycache__/y.x.cpython-36.pyc",
              "api/x.py.orig"]
    for rel in mine + others + ["api/x.py"]:
        (target / rel).write_text("")
    record = {"id": "d1", "state": "applied", "target": str(target),
              "backup": str(tmp_path / "deploys" / "d1" / "backup"),
              "added": ["api/x.py", "api/z.txt"], "replaced": ["api/gone.py"], "backups": {}}
    summary = last_json(run(python, "end_deploy", stdin={"record": record}))
    assert sorted(summary["removed"]) == sorted(str(target / rel) for rel in mine)
    assert all((target / rel).exists() for rel in others + ["api/x.py"])
    assert json.loads((tmp_path / "deploys" / "d1" / "record.json").read_text()) == record


# file names a record carries as text (JSON): not UTF-8, a newline, a leading dash
ODD_NAMES = [b"latin\xe9.py", "caf\u00e9.py".encode(), b"new\nline.py", b"-dash.py"]


def test_odd_names_are_backed_up_recorded_cleared_and_restored_byte_for_byte(python,
                                                                              tmp_path):
    """rsync's deploy (begin_deploy, end_deploy) and the rollback reach each file by its
    bytes, whatever the controller's python and locale, and answer its name as sent."""
    api = tmp_path / "cinder" / "api"
    api.mkdir(parents=True)
    paths = [api / os.fsdecode(name) for name in ODD_NAMES]
    for index, path in enumerate(paths):
        path.write_bytes(b"OLD = %d\n" % index)
    added = api / os.fsdecode(b"new\xff.py")
    rels = ["api/" + os.fsdecode(name) for name in ODD_NAMES]
    record = {"id": "d1", "state": "applying", "target": str(tmp_path / "cinder"),
              "backup": str(tmp_path / "deploys" / "d1" / "backup"), "replaced": rels,
              "added": ["api/" + added.name]}
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C"}     # a controller's bare locale

    begun = last_json(run(python, "begin_deploy", env=env,
                          stdin={"record": record, "sizes": None}))["record"]
    assert sorted(begun["backups"]) == sorted(rels)
    for index, path in enumerate(paths):                  # what rsync then writes
        (api / "new").write_bytes(b"NEW = %d\n" % index)
        os.replace(api / "new", path)                     # the backup is a hard link
    (api / "__pycache__").mkdir()
    compiled = api / "__pycache__" / (os.fsdecode(b"latin\xe9") + ".cpython-36.pyc")
    compiled.write_bytes(b"")
    added.write_bytes(b"ADDED = 1\n")
    ended = last_json(run(python, "end_deploy", env=env,
                          stdin={"record": {**begun, "state": "applied"}}))
    undone = last_json(run(python, "restore", env=env, stdin={"records": [begun]}))

    assert ended == {"removed": [str(compiled)]}
    assert sorted(undone["restored"]) == sorted(rels)
    assert undone["removed"] == ["api/" + added.name]
    for index, path in enumerate(paths):
        assert path.read_bytes() == b"OLD = %d\n" % index
    assert not os.path.lexists(added)


# --- locate -------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site-packages holding a cinder 15.6.0 package, as pip installs it."""
    site = tmp_path / "site-packages"
    (site / "cinder" / "db").mkdir(parents=True)
    (site / "cinder" / "__init__.py").write_text("")
    (site / "cinder" / "db" / "__init__.py").write_text("from cinder.db.api import *\n")
    meta = site / "cinder-15.6.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: cinder\nVersion: 15.6.0\n")
    return site


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_locate_finds_cinder_its_release_and_the_upstream_hashes(python, site, tmp_path):
    state = tmp_path / "state"
    found = last_json(run(python, "locate", "/usr/bin/pythonX", "", str(state),
                          json.dumps(["db/__init__.py", "db/missing.py"]),
                          flags=("-E", "-s"), cwd=site))
    assert found["cinder_dir"] == str(site / "cinder")
    assert found["version"] == "15.6.0"
    assert found["python"] == "/usr/bin/pythonX"
    assert found["hashes"] == {"db/__init__.py": sha(site / "cinder" / "db" / "__init__.py"),
                               "db/missing.py": None}


def test_locate_hashes_a_file_a_deploy_replaced_from_that_deploys_backup(python, site,
                                                                        tmp_path):
    state, upstream = tmp_path / "state", site / "cinder" / "db" / "__init__.py"
    original = sha(upstream)
    for deploy_id in ("20260101T000000Z-a", "20260102T000000Z-b"):
        backup = state / "deploys" / deploy_id / "backup"
        (backup / "db").mkdir(parents=True)
        shutil.copy(upstream, backup / "db" / "__init__.py")
        (state / "deploys" / deploy_id / "record.json").write_text(json.dumps(
            {"id": deploy_id, "state": "applied", "target": str(site / "cinder"),
             "backup": str(backup), "replaced": ["db/__init__.py"], "added": []}))
        upstream.write_text(f"# deployed by {deploy_id}\n")
    (state / "deploys" / "20260102T000000Z-b" / "backup" / "db" / "__init__.py").write_text(
        "# deployed by 20260101T000000Z-a\n")
    found = last_json(run(python, "locate", python, str(site / "cinder"), str(state),
                          json.dumps(["db/__init__.py"])))
    assert found["hashes"]["db/__init__.py"] == original


@pytest.mark.parametrize("shebang", ["{python}", "{python} -s", "/usr/bin/env {name}"])
def test_locate_runs_with_the_python_named_in_cinder_apis_shebang(python, site, tmp_path,
                                                                 shebang):
    api = tmp_path / "cinder-api"
    api.write_text("#!" + shebang.format(python=python, name=os.path.basename(python)) +
                   "\nimport sys\n")
    env = {**os.environ, "PATH": f"{os.path.dirname(python)}:{os.environ['PATH']}"}
    proc = subprocess.run(["sh", "-c", _FROM_SHEBANG, "devloop-locate", str(api),
                           " ".join(STDLIB_ONLY), script("locate"), str(site / "cinder"),
                           str(tmp_path / "state"), "[]"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = last_json(proc)
    assert os.path.basename(found["python"]) == os.path.basename(python)
    version = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True).stdout.strip()
    assert found["python_version"] == version


def test_locate_without_a_shebang_says_which_file_lacks_it(tmp_path):
    api = tmp_path / "cinder-api"
    api.write_text("not a script\n")
    proc = subprocess.run(["sh", "-c", _FROM_SHEBANG, "devloop-locate", str(api), "",
                           script("locate"), "", str(tmp_path), "[]"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"no #! line naming a python in {api}"


# --- the database probe ---------------------------------------------------------------

def _config(tmp_path: Path, db: Path) -> Path:
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[DEFAULT]\ndebug = true\n[database]\nconnection = sqlite:///{db}\n")
    return conf


def test_db_state_reads_a_sqlalchemy_migrate_database(python, site, tmp_path):
    versions = site / "cinder" / "db" / "sqlalchemy" / "migrate_repo" / "versions"
    versions.mkdir(parents=True)
    for name in ("__init__.py", "123_cinder_init.py", "131_x.py", "132_y.py"):
        (versions / name).write_text("")
    db = tmp_path / "cinder.sqlite"
    conf = _config(tmp_path, db)
    empty = last_json(run(python, "db_state", str(site / "cinder"), str(conf)))
    assert empty == {"kind": "migrate", "current": [], "heads": ["132"], "applied": [],
                     "unknown": []}
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE migrate_version (repository_id TEXT, repository_path TEXT,"
                      " version INTEGER)")
        conn.execute("INSERT INTO migrate_version VALUES ('cinder', 'x', 131)")
    state = last_json(run(python, "db_state", str(site / "cinder"), str(conf)))
    assert state == {"kind": "migrate", "current": ["131"], "heads": ["132"],
                     "applied": ["123", "131"], "unknown": []}


def test_db_state_reads_an_alembic_database(python, site, tmp_path):
    versions = site / "cinder" / "db" / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "921e1a36b076_initial.py").write_text("revision = '921e1a36b076'\n"
                                                      "down_revision = None\n")
    (versions / "9c74c1c6971f_x.py").write_text("revision = '9c74c1c6971f'\n"
                                                "down_revision = '921e1a36b076'\n")
    db = tmp_path / "cinder.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('921e1a36b076')")
    state = last_json(run(python, "db_state", str(site / "cinder"), str(_config(tmp_path, db))))
    assert state == {"kind": "alembic", "current": ["921e1a36b076"], "heads": ["9c74c1c6971f"],
                     "applied": ["921e1a36b076"], "unknown": []}


# --- debug: locations, leftovers, the hook, the guard -----------------------------------

MODULE = '''\
import functools


def logged(func):
    @functools.wraps(func)
    def logged(*args, **kwargs):
        return func(*args, **kwargs)
    return logged


class Things(object):
    @logged
    def show(self, value):
        """Show it."""
        doubled = value * 2
        return doubled
'''


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text(MODULE)
    return tmp_path


def test_break_locations_resolve_by_line_and_by_name_through_decorators(python, package):
    locations = [{"text": "mod.py:13", "path": "mod.py", "line": 13},
                 {"text": "pkg.mod.Things.show", "name": "pkg.mod.Things.show"},
                 {"text": "mod.py:3", "path": "mod.py", "line": 3}]
    found = last_json(run(python, "debug_breaks", str(package / "pkg"), json.dumps(locations),
                          flags=("-B",), cwd=package))
    assert [f.get("line") for f in found[:2]] == [15, 15]
    assert found[0]["module"] == "pkg.mod" and found[0]["label"] == "pkg/mod.py:15 (Things.show)"
    assert "holds no statement" in found[2]["error"]


def test_the_hook_stops_before_the_statement_and_pdb_reads_the_commands(python, package):
    hook_dir = package / "hook"
    hook_dir.mkdir()
    (hook_dir / "devloop_debug.py").write_text(script("debug_hook"))
    (hook_dir / "sitecustomize.py").write_text(
        "import devloop_debug\ndevloop_debug.install()\n"
        "devloop_debug.chain_sitecustomize(__file__)\n")
    breaks = [{"module": "pkg.mod", "file": str(package / "pkg" / "mod.py"), "line": 15,
               "label": "pkg/mod.py:15"}]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{hook_dir}:{package}",
           "DEVLOOP_DEBUG_BREAKS": json.dumps(breaks),
           "DEVLOOP_DEBUG_ENDED": str(package / "ended")}
    proc = subprocess.run([python, "-c", "import pkg.mod; print('result %s' % "
                           "pkg.mod.Things().show(21))"], input="p value\nc\n",
                          capture_output=True, text=True, env=env, timeout=60,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    assert "devloop: breakpoint 1 armed at pkg/mod.py:15" in proc.stderr
    assert "devloop: breakpoint 1, pkg/mod.py:15" in proc.stdout
    assert "\n21\n" in proc.stdout.replace("(Pdb) ", "\n")
    assert proc.stdout.rstrip().endswith("result 42")


def test_leftover_scan_ends_a_cinder_api_run_by_python(python, tmp_path):
    api = tmp_path / "cinder-api"
    api.write_text("import time\ntime.sleep(60)\n")
    child = subprocess.Popen([python, str(api)], start_new_session=True)
    try:
        time.sleep(0.3)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        answer = last_json(run(python, "debug_processes", str(api), user, "5"))
        assert [p["pid"] for p in answer["found"]] == [child.pid]
        assert answer["left"] == []
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_guard_runs_cinder_api_until_it_ends_then_starts_the_service(python):
    work = Path(tempfile.mkdtemp(prefix="devloop-guard-spec-"))
    try:
        port = _free_port()
        api = work / "cinder-api"
        api.write_text(textwrap.dedent(f"""\
            import socket, sys, time
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", {port}))
            sock.listen(5)
            sys.stdout.write("serving with %s\\n" % " ".join(sys.argv[1:]))
            sys.stdout.flush()
            time.sleep(1.5)
            """))
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        session = {"name": "ctl", "python": python, "cinder_api": str(api), "args": ["--x"],
                   "user": user, "breaks": [], "hook": script("debug_hook"),
                   "api_url": f"http://127.0.0.1:{port}/", "start": ["true"],
                   "status": ["echo", "service running"], "log": str(work / "log" / "guard.log"),
                   "grace": 2}
        proc = subprocess.run([python, "-c", script("debug_guard"), json.dumps(session)],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, start_new_session=True)
        text = proc.stdout.replace("\r\n", "\n")
        assert proc.returncode == 0, text + proc.stderr
        assert f"--> ctl: cinder-api answers at http://127.0.0.1:{port}/" in text
        assert "serving with --x --config-file" in text
        assert "--> ctl: $ true (exit 0)" in text
        assert "--> ctl: $ echo service running (exit 0)\n    service running" in text
        assert "starting the service again" in (work / "log" / "guard.log").read_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- debug --attach -----------------------------------------------------------------

def _wheel() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("debugpy/__init__.py", "__version__ = '0'\n")
        archive.writestr("debugpy-0.dist-info/RECORD", "")
    return buffer.getvalue()


def _unpack(python: str, parent: Path, wheel: bytes) -> list[dict]:
    proc = subprocess.run([python, *STDLIB_ONLY, "-c", script("debugpy_unpack"), str(parent)],
                          input=wheel, capture_output=True, timeout=60)
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def test_debugpy_unpack_says_its_python_then_unpacks_the_wheel_beside_and_lists_it(
        python, tmp_path):
    parent = tmp_path / "debug"
    first, done = _unpack(python, parent, _wheel())
    assert len(first["python"]) == 2 and first["machine"]
    target = Path(done["dir"])
    assert target.parent == parent and target.name.startswith("attach-")
    assert (target / "debugpy" / "__init__.py").exists()
    assert (target / "files.txt").read_text().split() == [
        "debugpy/__init__.py", "debugpy-0.dist-info/RECORD"]
    assert 0 < done["port"] < 65536
    # a killed session's directory goes before the next one is unpacked
    _, again = _unpack(python, parent, _wheel())
    assert not target.exists() and Path(again["dir"]).exists()


def test_debugpy_unpack_refuses_while_a_live_session_holds_the_controller(python, tmp_path):
    parent = tmp_path / "debug"
    parent.mkdir()
    (parent / "session.json").write_text(json.dumps({"guard": os.getpid()}))
    _, answer = _unpack(python, parent, _wheel())
    assert answer == {"error": f"a debug session (guard pid {os.getpid()}) already holds "
                               f"this controller"}
    assert not [p for p in parent.iterdir() if p.name.startswith("attach-")]


def test_debugpy_unpack_refuses_what_is_not_a_debugpy_wheel(python, tmp_path):
    _, answer = _unpack(python, tmp_path / "debug", b"not a zip")
    assert answer["error"].startswith("cannot unpack the debugpy wheel")


def test_debug_session_names_a_live_guard_and_ignores_a_dead_one(python, tmp_path):
    marker = tmp_path / "session.json"
    marker.write_text(json.dumps({"guard": os.getpid(), "since": time.time() - 5,
                                  "mode": "attach", "port": 41234}))
    live = last_json(run(python, "debug_session", str(marker)))
    assert live["guard"] == os.getpid() and live["port"] == 41234 and live["age"] >= 5
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker.write_text(json.dumps({"guard": dead.pid, "since": time.time()}))
    assert last_json(run(python, "debug_session", str(marker))) == {}
