"""The bench runs its rows on every controller kind, so its figures can be reproduced.

One run per side of two rows (``deploy --no-restart`` against rsync, and
``loop`` against the typed sequence) on each kind, in controllers this spec
builds under its own root and the bench stops at the end. Nothing here
judges a time: a row passes when both sides did their work and the report
has its medians.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.integration

ROWS = ("one changed file, no restart", "edit to serving (new code answers over HTTP)")
KINDS = ("supervisord", "rdo", "legacy", "devstack")


@pytest.fixture
def root():
    """The bench's root for one spec: readable by the controllers' service users, removed after."""
    base = Path(tempfile.mkdtemp(prefix="devloop-bench-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("kind", KINDS)
def test_the_rows_run_on_the_kind_and_leave_no_controller_running(tmp_path, root, kind):
    results = tmp_path / "RESULTS.md"
    # the feature's tree alone (--tree patch): the rows' work, not a 1,500-file copy
    run = run_bench([sys.executable, "bench/bench.py", "--runs", "1", "--kind", kind,
                     "--root", str(root), "--tree", "patch", "--only", "no-restart",
                     "--only", "loop", "--write", str(results)])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr

    table = [line for line in results.read_text().splitlines() if line.startswith(f"| {kind} |")]
    for row in ROWS:
        (line,) = [line for line in table if f"| {row} |" in line]
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        ours, baseline, ratio = cells[3], cells[5], cells[6]
        assert re.fullmatch(r"\d+\.\d{3} s", ours), line
        assert re.fullmatch(r"\d+\.\d{3} s", baseline), line
        assert float(ratio) == pytest.approx(float(ours[:-2]) / float(baseline[:-2]), abs=0.01)

    # the bench brought its controllers down: no process runs from its root
    assert _running_from(root) == []


def run_bench(argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the bench (``argv``) to its end; past ``timeout`` stop it, and fail.

    The bench leads a process group of its own, and a timeout sends the group
    TERM, on which the bench stops its controllers: none outlives the spec
    (killing only the first process would leave the bench running on).
    """
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
        pytest.fail(f"the bench did not end within {timeout:g} s:\n"
                    f"{stdout[-3000:]}{stderr[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _running_from(root) -> list[str]:
    """The command lines of the processes that name ``root`` (containers, sshd, supervisord)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:          # ended meanwhile
            continue
        if any(str(root).encode() in word for word in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found


def test_the_bench_runs_unattended_from_a_background_shell(tmp_path, root):
    """Started as `nohup … &` starts it (SIGINT ignored), its watch rows still stop
    `invoke watch`."""
    results = tmp_path / "RESULTS.md"
    bench = shlex.join([sys.executable, "bench/bench.py", "--runs", "1", "--kind", "supervisord",
                        "--root", str(root), "--tree", "patch", "--only", "watch",
                        "--write", str(results)])
    # a non-interactive shell starts a background job with SIGINT ignored
    run = run_bench(["bash", "-c", f"{bench} & wait $!"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert any(line.startswith("| supervisord |") and "watch" in line
               for line in results.read_text().splitlines())
    assert _running_from(root) == []
