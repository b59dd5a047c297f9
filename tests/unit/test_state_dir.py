"""Specs for the state directory's rules (deploy/remote/parts/state_dir.py), on the
controller's Pythons (2.7, 3.6 and the project's): root keeps its files where no
other user can write, writes them without following a link another user planted,
reads what another user wrote only as bounded data, and signals a PID another user
named only with that user's rights.

The specs run as root (as the suite does) and play the other user as ``nobody``.
"""
from __future__ import annotations

import json
import os
import pwd
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from deploy.remote import HERE

PART = (HERE / "parts" / "state_dir.py").read_text()
NOBODY = pwd.getpwnam("nobody")


def with_part(python: str, code: str, *args: str) -> object:
    """Run ``code`` after the part on ``python``; the JSON its last line prints."""
    source = PART + "\nimport json\n" + textwrap.dedent(code)
    proc = subprocess.run([python, "-E", "-s", "-S", "-c", source, *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


ENSURE = """
try:
    ensure_dir(sys.argv[1], 0o755)
    print(json.dumps("ok"))
except Untrusted as exc:
    print(json.dumps(str(exc)))
"""


@pytest.fixture
def base(tmp_path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


def test_a_missing_state_dir_is_made_roots_and_open_to_read(python, base):
    state = base / "var" / "lib" / "cinder-devloop"
    assert with_part(python, ENSURE, str(state)) == "ok"
    for path in (state, state.parent):
        info = path.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (0, 0o755)


@pytest.mark.parametrize("make, why", [
    (lambda d: d.chmod(0o777), "is writable by its group and others (mode 0777)"),
    (lambda d: d.chmod(0o757), "is writable by others (mode 0757)"),
    (lambda d: os.chown(d, NOBODY.pw_uid, 0), f"is owned by nobody (uid {NOBODY.pw_uid}), "
                                              f"not root"),
], ids=["writable by all", "writable by others", "owned by another user"])
def test_a_state_dir_another_user_can_change_is_refused(python, base, make, why):
    state = base / "state"
    state.mkdir(mode=0o755)
    make(state)
    assert with_part(python, ENSURE, str(state)) == f"{state} {why}"


def test_a_state_dir_below_a_directory_another_user_can_write_is_refused(python, base):
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o777)                    # not sticky: anyone may rename what is in it
    answer = with_part(python, ENSURE, str(shared / "state"))
    assert answer == f"{shared} is writable by its group and others (mode 0777)"
    assert not (shared / "state").exists()


def test_a_state_dir_in_a_sticky_directory_such_as_tmp_is_made(python, base):
    sticky = base / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert with_part(python, ENSURE, str(sticky / "state")) == "ok"


def test_a_state_dir_someone_else_made_in_a_sticky_directory_is_refused(python, base):
    sticky = base / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "state").mkdir()
    os.chown(sticky / "state", NOBODY.pw_uid, NOBODY.pw_gid)
    assert "is owned by nobody" in with_part(python, ENSURE, str(sticky / "state"))


def test_a_written_file_replaces_a_planted_link_and_never_writes_through_it(python, base):
    victim = base / "root-only"
    victim.write_text("secret")
    victim.chmod(0o600)
    target = base / "warm_api.py"
    target.symlink_to(victim)
    answer = with_part(python, """
        write_new(sys.argv[1], b"new content", 0o644)
        print(json.dumps(sorted(os.listdir(os.path.dirname(sys.argv[1])))))
    """, str(target))
    assert victim.read_text() == "secret" and victim.stat().st_mode & 0o777 == 0o600
    assert not target.is_symlink() and target.read_text() == "new content"
    assert answer == ["root-only", "warm_api.py"]       # no temporary file left


READ_FOREIGN = """
print(json.dumps([None if data is None else data.decode("utf-8")
                  for data in [read_foreign(path, 64) for path in sys.argv[1:]]]))
"""


def test_what_another_user_wrote_is_read_only_as_a_bounded_regular_file(python, base):
    (base / "warm.json").write_text('{"pid": 42}')
    (base / "link.json").symlink_to(base / "warm.json")
    os.mkfifo(base / "fifo.json")
    (base / "big.json").write_text("x" * 65)
    started = time.monotonic()
    answer = with_part(python, READ_FOREIGN, *(str(base / name) for name in (
        "warm.json", "link.json", "fifo.json", "big.json", "missing.json")))
    assert answer == ['{"pid": 42}', None, None, None, None]
    assert time.monotonic() - started < 30          # the FIFO was not waited on


READ_OWN = """
answers = []
for path in sys.argv[1:]:
    try:
        answers.append(read_own(path).decode("utf-8"))
    except Untrusted as exc:
        answers.append(str(exc))
print(json.dumps(answers))
"""


def test_a_kept_file_is_used_only_if_it_is_roots_alone(python, base):
    for name in ("kept", "theirs", "writable"):
        (base / name).write_text(name)
        (base / name).chmod(0o600)
    os.chown(base / "theirs", NOBODY.pw_uid, NOBODY.pw_gid)
    (base / "writable").chmod(0o666)
    (base / "link").symlink_to(base / "kept")
    answer = with_part(python, READ_OWN, *(str(base / n) for n in
                                           ("kept", "theirs", "writable", "link")))
    assert answer == ["kept",
                      f"{base / 'theirs'} is not root's alone (owner nobody (uid "
                      f"{NOBODY.pw_uid}), mode 0600)",
                      f"{base / 'writable'} is not root's alone (owner root (uid 0), mode 0666)",
                      f"{base / 'link'} is a symbolic link"]


SIGNAL_AS = """
import signal
uid, gid = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([signal_as(uid, gid, pid, 0) for pid in
                  [int(sys.argv[3]), -1, 0, 1, True]]))
"""


def test_a_pid_another_user_names_is_signalled_only_with_that_users_rights(python):
    roots = subprocess.Popen(["sleep", "60"])
    theirs = subprocess.Popen(["sleep", "60"], user=NOBODY.pw_uid, group=NOBODY.pw_gid)
    try:
        ids = (str(NOBODY.pw_uid), str(NOBODY.pw_gid))
        assert with_part(python, SIGNAL_AS, *ids, str(theirs.pid)) == \
            [True, False, False, False, False]
        assert with_part(python, SIGNAL_AS, *ids, str(roots.pid)) == \
            [False, False, False, False, False]
        assert roots.poll() is None
    finally:
        for proc in (roots, theirs):
            proc.kill()
            proc.wait()


def test_a_process_is_known_by_its_start_time_and_user(python):
    proc = subprocess.Popen(["sleep", "60"], user=NOBODY.pw_uid, group=NOBODY.pw_gid)
    try:
        answer = with_part(python, "print(json.dumps(process(int(sys.argv[1]))))",
                           str(proc.pid))
        stat = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert answer == [stat[0], os.getpid(), int(stat[19]), NOBODY.pw_uid]
    finally:
        proc.kill()
        proc.wait()
    assert with_part(python, "print(json.dumps(process(int(sys.argv[1]))))",
                     str(proc.pid)) is None
