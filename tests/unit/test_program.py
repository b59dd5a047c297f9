"""The venv's ``invoke``: Invoke plus a core ``--inventory`` for every task of a run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_ROOT

HOSTS = PROJECT_ROOT / "tests" / "fixtures" / "hosts"
INVOKE = Path(sys.executable).parent / "invoke"


def run_invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INVOKE), "--search-root", str(PROJECT_ROOT), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                          env={**os.environ, **(env or {})})


def test_the_venv_s_invoke_is_the_project_s_program():
    assert "deploy.base.program" in INVOKE.read_text()


def test_a_core_inventory_option_applies_to_every_task_of_the_run(tmp_path):
    missing = tmp_path / "nowhere.yaml"

    result = run_invoke("--inventory", str(missing), "db-sync", "status")

    assert result.returncode == 2
    assert "nowhere.yaml: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_core_option_wins_over_the_environment_and_a_task_s_own_wins_over_it(tmp_path):
    core = HOSTS / "duplicate_controller.yaml"
    env = {"DEVLOOP_INVENTORY": str(tmp_path / "from-env.yaml")}

    by_core = run_invoke("--inventory", str(core), "status", env=env)
    by_task = run_invoke("--inventory", str(core), "status", "--inventory",
                         str(HOSTS / "bad_port.yaml"), env=env)

    assert by_core.returncode == 2 and "duplicate key 'c1'" in by_core.stderr
    assert by_task.returncode == 2 and "port" in by_task.stderr
    assert "duplicate key" not in by_task.stderr


def test_invoke_s_own_options_still_work():
    result = run_invoke("--list")

    assert result.returncode == 0
    assert "deploy" in result.stdout and "sandbox.up" in result.stdout
    assert "--inventory" in run_invoke("--help").stdout
