"""Specs for the controller lock: its messages, its command, and its helper.

The helper (deploy/remote/hold_lock.py) runs here as it does on a
controller, under Python 2.7, 3.6 and the project's own python, on a state
directory of the test's own.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from deploy.base.inventory import Controller
from deploy.controller.lock import (
    Holder,
    busy_message,
    hold_argv,
    show_argv,
    status_line,
    takeover_message,
)
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY

ALICE = Holder("alice", "laptop", "debug", 4242, "2026-12-02T23:10:04Z")


def controller(**fields: object) -> Controller:
    return Controller(name="ctl1", address="192.0.2.10", **fields)  # type: ignore[arg-type]


# --- messages -------------------------------------------------------------------

def test_a_refused_run_names_the_holder_its_task_pid_and_since_when_in_one_line():
    message = busy_message("ctl1", ALICE, 30)
    assert message == ("ctl1: locked by alice@laptop (invoke debug, pid 4242) since "
                       "2026-12-02T23:10:04Z; waited 30 s. Try again when that run ends, or "
                       "wait longer with --lock-wait SECONDS")
    assert "\n" not in message


def test_a_refused_run_whose_holder_has_not_written_its_name_yet_still_says_so():
    assert busy_message("ctl1", None, 0.5).startswith(
        "ctl1: locked by another run (it has not said who yet); waited 0.5 s.")


def test_a_takeover_warning_names_the_old_holder_and_when_it_ended():
    ended = Holder("alice", "laptop", "deploy", 7, "2026-12-02T23:10:04Z",
                   ended="2026-12-02T23:11:00Z")
    assert takeover_message("ctl1", ended) == (
        "ctl1: took over the lock from alice@laptop (invoke deploy, pid 7) since "
        "2026-12-02T23:10:04Z: that run ended without releasing it (killed or disconnected "
        "at 2026-12-02T23:11:00Z); check its work with invoke status")


@pytest.mark.parametrize("held, holder, expected", [
    (False, None, "free"),
    (True, ALICE, "held by alice@laptop (invoke debug, pid 4242) since 2026-12-02T23:10:04Z"),
    (True, None, "held (holder not written yet)"),
    (False, ALICE, "free; stale: alice@laptop (invoke debug, pid 4242) since "
                   "2026-12-02T23:10:04Z ended without releasing it (the next run takes it "
                   "over)"),
])
def test_status_says_whether_the_lock_is_free_held_or_stale(held, holder, expected):
    assert status_line(held, holder) == expected


def test_a_holder_reads_back_from_the_helpers_json():
    data = {"user": "bob", "host": "h", "task": "loop", "pid": 3, "since": "T", "ended": "E"}
    assert Holder.from_json(data) == Holder("bob", "h", "loop", 3, "T", "E")
    assert Holder.from_json(None) is None


# --- the command ----------------------------------------------------------------

def test_the_lock_runs_with_the_inventorys_python_under_the_state_dir():
    argv = hold_argv(controller(python="/usr/bin/python2", state_dir="/srv/state"), "deploy",
                     30, {"user": "u", "host": "h", "task": "deploy", "pid": 1})
    assert argv == ["/usr/bin/python2", *STDLIB_ONLY, "-c", script("hold_lock"),
                    "/usr/bin/python2", "/srv/state", "hold", "30",
                    '{"host": "h", "pid": 1, "task": "deploy", "user": "u"}']


def test_without_a_python_in_the_inventory_the_lock_runs_with_cinder_apis():
    argv = show_argv(controller(cinder_api="/usr/bin/cinder-api"))
    assert argv[:2] == ["sh", "-c"] and argv[4] == "/usr/bin/cinder-api"
    assert argv[-2:] == ["/var/lib/cinder-devloop", "show"]


def test_the_lock_names_this_run_by_default():
    info = json.loads(hold_argv(controller(python="/p"), "rollback", 5)[-1])
    assert info["task"] == "rollback" and info["pid"] == os.getpid()
    assert info["user"] and info["host"]


# --- the helper -----------------------------------------------------------------

def holder(python: str, state: Path, name: str, wait: float = 5) -> subprocess.Popen[str]:
    info = json.dumps({"user": name, "host": "laptop", "task": "deploy", "pid": 1})
    return subprocess.Popen([python, *STDLIB_ONLY, "-c", script("hold_lock"), python,
                             str(state), "hold", str(wait), info],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def answer(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    return json.loads(process.stdout.readline())


def show(python: str, state: Path) -> dict:
    proc = subprocess.run([python, *STDLIB_ONLY, "-c", script("hold_lock"), python, str(state),
                           "show"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def release(process: subprocess.Popen[str]) -> int:
    assert process.stdin is not None
    process.stdin.write("release\n")
    process.stdin.close()
    return process.wait(timeout=30)


def test_the_helper_holds_the_lock_until_released_and_a_second_waits_then_is_refused(
        python, tmp_path):
    first = holder(python, tmp_path, "alice")
    held = answer(first)["held"]
    assert held["user"] == "alice" and held["since"].endswith("Z")
    assert show(python, tmp_path) == {"held": True, "holder": held}

    second = holder(python, tmp_path, "bob", wait=0.3)
    assert answer(second) == {"waiting": held}
    assert answer(second) == {"busy": held}
    assert second.wait(timeout=30) == 3

    assert release(first) == 0
    assert not (tmp_path / "lock.json").exists()
    assert show(python, tmp_path) == {"held": False, "holder": None}


def test_a_waiting_run_gets_the_lock_as_soon_as_it_is_released(python, tmp_path):
    first = holder(python, tmp_path, "alice")
    answer(first)
    second = holder(python, tmp_path, "bob", wait=30)
    assert "waiting" in answer(second)
    release(first)
    got = answer(second)
    assert got["held"]["user"] == "bob" and got["taken_over"] is None
    assert release(second) == 0


def test_a_holder_whose_input_ends_without_release_leaves_a_stale_lock_that_is_taken_over(
        python, tmp_path):
    first = holder(python, tmp_path, "alice")
    held = answer(first)["held"]
    assert first.stdin is not None
    first.stdin.close()                     # the tool died or its connection dropped
    assert first.wait(timeout=30) == 0
    stale = show(python, tmp_path)
    assert stale["held"] is False and stale["holder"]["user"] == "alice"
    assert stale["holder"]["ended"].endswith("Z")

    second = holder(python, tmp_path, "bob")
    got = answer(second)
    assert got["taken_over"] == stale["holder"] and got["taken_over"]["since"] == held["since"]
    release(second)


def test_a_killed_holder_frees_the_lock_at_once_for_the_next_run(python, tmp_path):
    first = holder(python, tmp_path, "alice")
    answer(first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    second = holder(python, tmp_path, "bob", wait=5)
    got = answer(second)
    assert got["held"]["user"] == "bob" and got["taken_over"]["user"] == "alice"
    assert "ended" not in got["taken_over"]     # it never got to say when
    release(second)
