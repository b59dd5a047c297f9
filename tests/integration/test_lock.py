"""Two people, one controller: the lock, on every kind of controller.

A debug session holds the controller's lock for its whole length: a second
run waits ``--lock-wait`` seconds and is refused with one ``error:`` line
naming the session (user, host, task, pid, since when), and ``status``
shows the holder. Killing the session's tool (SIGKILL) frees the lock on
the controller; the next run takes it over and says so in one warning.
``watch`` holds the lock only while a burst deploys: idle, another run
gets it at once; a burst that meets another holder waits, then fails that
burst only, and the next burst deploys.
"""
from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess

import pytest

from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY
from tests.integration.test_debug import spawn_debug, text_of
from tests.integration.test_debug_kinds import assert_service_restored, service_back  # noqa: F401
from tests.support import Watcher, invoke, wait_until

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration

ME = f"{getpass.getuser()}@{socket.gethostname()}"


def lock_line(inventory) -> str:
    result = invoke("status", "--inventory", str(inventory))
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("  lock ")]
    return line


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def lock_info(controller) -> dict | None:
    path = controller.host_path(f"{controller.state_dir}/lock.json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:  # never taken, or released (even between a look and a read)
        return None


class Holder:
    """A lock holder of the test's own on the controller: the helper, run there."""

    def __init__(self, controller, name: str) -> None:
        info = json.dumps({"user": name, "host": "elsewhere", "task": "deploy", "pid": 1})
        argv = [controller.python, *STDLIB_ONLY, "-c", script("hold_lock"), controller.python,
                controller.state_dir, "hold", "30", info]
        if hasattr(controller, "instance"):          # a container: run it inside
            argv = controller.instance.nsenter(argv)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        self.answer = json.loads(self.process.stdout.readline())
        if "waiting" in self.answer:     # a run that just released may still be ending
            self.answer = json.loads(self.process.stdout.readline())

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("release\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0


def test_a_debug_session_holds_the_lock_a_second_run_is_refused_and_a_killed_one_is_taken_over(
        controller, controller_hosts, service_back):  # noqa: F811
    before = controller.service_pid()
    child = spawn_debug(controller_hosts)
    try:
        child.expect("answers at")
        info = lock_info(controller)
        assert info is not None and info["pid"] == child.pid and info["task"] == "debug"
        holder = f"{ME} (invoke debug, pid {child.pid}) since {info['since']}"
        assert lock_line(controller_hosts) == f"  lock      held by {holder}"

        refused = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart",
                         "--lock-wait", "1")
        assert refused.returncode == 75, refused.stderr
        assert error_lines(refused) == [
            f"error: sbx: locked by {holder}; waited 1 s. Try again when that run ends, or "
            f"wait longer with --lock-wait SECONDS"]
        assert f"--> sbx: waiting up to 1 s for the lock: held by {holder}" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        os.kill(child.pid, signal.SIGKILL)      # the holder's workstation goes away
        child.close(force=True)
    assert_service_restored(controller, before)
    assert "took over" not in text_of(child)

    taken = invoke("deploy", "--inventory", str(controller_hosts), "--no-restart")
    assert taken.returncode == 0, taken.stderr
    warnings = [line for line in taken.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, taken.stderr
    assert re.fullmatch(
        re.escape(f"warning: sbx: took over the lock from {holder}: that run ended without "
                  f"releasing it (killed or disconnected at ") + r"\d{4}-\d\d-\d\dT[\d:]{8}Z"
        + re.escape("); check its work with invoke status"), warnings[0]), warnings[0]
    # released well: nothing stale left
    wait_until(lambda: lock_info(controller) is None, timeout=10)
    assert lock_line(controller_hosts) == "  lock      free"


def test_watch_holds_the_lock_only_while_a_burst_deploys(controller, controller_hosts, source):
    probe = source / "devloop_lock_probe.py"
    with Watcher("--inventory", str(controller_hosts), "--lock-wait", "1") as watcher:
        watcher.read_until("watching")
        # idle: the lock is free, another run takes it at once
        other = Holder(controller, "bob")
        assert "held" in other.answer, other.answer

        probe.write_text("X = 1\n")              # a burst while bob holds the lock
        failed = watcher.read_until("devloop_lock_probe.py -> ")
        assert "-> FAILED: sbx: locked by bob@elsewhere (invoke deploy, pid 1) since" in failed
        other.release()

        probe.write_text("X = 2\n")
        assert "-> OK: 1 file(s)" in watcher.read_until("devloop_lock_probe.py -> ")
        # after the burst, idle again: free, and nothing stale
        wait_until(lambda: lock_info(controller) is None, timeout=10)
        again = Holder(controller, "carol")
        assert again.answer["held"]["user"] == "carol" and again.answer["taken_over"] is None
        again.release()
        assert watcher.interrupt() == 0

    undone = invoke("rollback", "--inventory", str(controller_hosts), "--no-restart")
    assert undone.returncode == 0, undone.stderr
    wait_until(controller.service_pid, timeout=60)
