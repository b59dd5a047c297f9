"""Killed at any point, nothing is lost: a short seeded chaos run on each kind.

The full run is ``bench/chaos.py`` (100 operations per kind, figures in
bench/RESULTS.md); this spec runs a handful on the session's controllers so
CI exercises every check: each operation (a one-call deploy, an rsync
deploy with a symlink, a loop, a rollback) is cut off at a seeded random
moment, by SIGKILL, by dropping its SSH connection or by filling the disk
(small tmpfs mounts over the trees' directories and the deploys'), then
every file must be old or new bytes, every changed file in an applied record, an
``applying`` record named by ``invoke status``, and recovery must give the
state before or after byte for byte. At the end the package is as it was.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location("chaos", PROJECT_ROOT / "bench" / "chaos.py")
chaos = importlib.util.module_from_spec(_spec)
sys.modules["chaos"] = chaos       # dataclasses look their module up there
_spec.loader.exec_module(chaos)

# the first of each operation is timed, not cut; the rest are cut after one
# of the lines it printed then, or during its start-up
OPERATIONS = ["deploy-small", "deploy-rsync", "rollback", "loop", "deploy-rsync", "rollback",
              "deploy-small", "rollback", "deploy-rsync", "deploy-small"]


def test_operations_cut_off_at_random_moments_lose_no_file(controller, tmp_path):
    # the time cap only keeps a hung run from holding the suite: every run must happen
    summary = chaos.Chaos(controller, tmp_path, seed=17, log=print).run(
        len(OPERATIONS), max_seconds=1200, ops=OPERATIONS)
    assert summary.problems == [] and summary.lost == 0
    assert summary.runs == len(OPERATIONS)
    assert sum(count for how, count in summary.cuts.items() if not how.startswith("none")) >= 1
