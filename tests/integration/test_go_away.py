"""A controller that goes away mid-run: one ``error:`` line, exit 1, within the task's
``--timeout``; never a traceback, never a hang.

On every kind of controller, the tool reaches it through a relay
(:mod:`tests.relay`) that a spec breaks when the tool's own output says a
step has begun: the connection refused, reset (RST both ways, new ones
too), or blackholed (kept open, nothing forwarded: a link dropping every
packet, which only SSH-level keepalives can tell). The steps: connect,
the one-call deploy, rsync, the restart, the health check, db-sync. After
a deploy was cut, the controller is reached directly again and the
deploy's record rolls it back.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.relay import Relay, relayed_entry
from tests.support import PROJECT_ROOT, invoke, write_inventory

pytestmark = pytest.mark.integration

TIMEOUT = 30              # the task's --timeout: nothing may take longer
CONNECT_TIMEOUT = 5       # the inventory's: a silent controller is given up after ~1.5x


@pytest.fixture
def relay(controller):
    with Relay(controller.ssh_address) as relay:
        yield relay


@pytest.fixture
def relayed_hosts(tmp_path, controller, relay, source) -> Path:
    entry = relayed_entry(controller.entry(), relay, tmp_path / "relay_known_hosts",
                          controller.ssh_address)
    entry["connect_timeout"] = CONNECT_TIMEOUT
    return write_inventory(tmp_path / "relayed.yaml", source, {"sbx": entry})


def run_breaking(hosts: Path, task: list[str], relay: Relay, mode: str,
                 at: str | None) -> tuple[int, str, float]:
    """Run ``invoke <task>``; break the relay (``mode``) when a stderr line matches ``at``
    (None: before it starts). Exit code, stderr and seconds taken; fails past TIMEOUT."""
    if at is None:
        getattr(relay, mode)()
    argv = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), *task,
            "--inventory", str(hosts), "--verbose"]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            stdin=subprocess.DEVNULL)
    lines, broken = [], at is None
    try:
        assert proc.stderr is not None
        for line in proc.stderr:       # ends when the tool does
            lines.append(line)
            if not broken and re.search(at, line):
                getattr(relay, mode)()
                broken = True
        code = proc.wait(timeout=max(1.0, TIMEOUT - (time.monotonic() - start)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert broken, f"the step {at!r} never began:\n{''.join(lines)}"
    return code, "".join(lines), time.monotonic() - start


def assert_one_error(code: int, stderr: str, seconds: float, *fragments: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    assert seconds < TIMEOUT
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def ours(controller, tag: str) -> str | None:
    """The id of the newest deploy in place, if it is the one that sent ``tag``'s files."""
    paths = sorted(controller.host_path(controller.state_dir).glob("deploys/*/record.json"))
    records = [json.loads(path.read_text()) for path in paths]
    in_place = [r for r in records if r.get("state") in ("applied", "applying")]
    if not in_place:
        return None
    newest = in_place[-1]
    return newest["id"] if any(tag in path for path in newest.get("added", [])) else None


@pytest.fixture
def tag(controller, controller_hosts) -> str:
    """A name for this spec's files; a deploy of them that was cut is rolled back after."""
    tag = uuid.uuid4().hex[:8]
    yield tag
    if ours(controller, tag):
        result = invoke("rollback", "--inventory", str(controller_hosts))
        assert result.returncode == 0, result.stderr
        assert ours(controller, tag) is None


CONNECT = [("refuse", "connection refused"),
           ("reset", "reset"),
           ("blackhole", f"no SSH answer within {CONNECT_TIMEOUT} s")]


@pytest.mark.parametrize("mode,says", CONNECT, ids=[mode for mode, _ in CONNECT])
def test_a_controller_unreachable_at_connect_is_one_error(relay, relayed_hosts, mode, says):
    code, stderr, seconds = run_breaking(relayed_hosts, ["status"], relay, mode, None)
    assert_one_error(code, stderr, seconds, "error: sbx (", says)


# (step, the line of the tool's output that begins it, how the controller goes away)
DEPLOY_STEPS = [
    ("one call", r"compared on the controller, in one call", "reset"),
    ("rsync", r"\$ rsync ", "blackhole"),
    ("restart", r"^--> sbx: restart ", "blackhole"),
    ("health check", r"\$ .* -c '\"\"\"Ask the API until it answers", "reset"),
]


@pytest.mark.parametrize("step,at,mode", DEPLOY_STEPS, ids=[s for s, _, _ in DEPLOY_STEPS])
def test_a_controller_that_goes_away_during_a_deploy_is_one_error_and_can_be_rolled_back(
        controller, relay, relayed_hosts, source, tag, step, at, mode):
    (source / f"devloop_away_{tag}.py").write_text("AWAY = 1\n")
    if step == "rsync":
        (source / f"devloop_away_{tag}.txt").symlink_to(f"devloop_away_{tag}.py")

    code, stderr, seconds = run_breaking(relayed_hosts,
                                         ["deploy", "--timeout", str(TIMEOUT)], relay, mode, at)

    line = assert_one_error(code, stderr, seconds, "error: sbx (")
    if mode == "blackhole":
        assert f"no answer within {CONNECT_TIMEOUT} s" in line
    else:
        assert "reset" in line or "closed" in line or "lost" in line, line
    # (the fixture rolls back what the deploy recorded, through a direct connection)


def test_a_controller_that_goes_away_during_db_sync_is_one_error(relay, relayed_hosts,
                                                                  controller_hosts):
    code, stderr, seconds = run_breaking(relayed_hosts, ["db-sync"], relay, "blackhole",
                                         r"^--> sbx: .*db sync")
    assert_one_error(code, stderr, seconds, "connection lost while running",
                     f"no answer within {CONNECT_TIMEOUT} s")
    # the cut run could not release the controller's lock: once its connection is
    # gone, the next run takes it over (and releases it: the controller as found)
    relay.close()
    again = invoke("db-sync", "--inventory", str(controller_hosts))
    assert again.returncode == 0, again.stderr
    assert "took over the lock from" in again.stderr and "invoke db-sync" in again.stderr
