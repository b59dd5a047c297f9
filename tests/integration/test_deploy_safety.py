"""Preview, content comparison, interrupted transfers and several controllers at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import supervised_pid
from tests.support import PROJECT_ROOT, free_port, invoke, write_inventory

pytestmark = pytest.mark.integration


@pytest.fixture
def source(source: Path) -> Path:
    (source / "devloop_it").mkdir()
    return source


class TestPreview:
    def test_diff_with_dry_run_shows_the_unified_diff_and_sends_nothing(
            self, sandbox, hosts, source, cinder_dir):
        rel = f"devloop_it/diffed_{uuid.uuid4().hex[:6]}.py"
        (source / rel).write_text("A = 1\nB = 2\n")
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
        (source / rel).write_text("A = 1\nB = 3\n")

        result = invoke("deploy", "--inventory", str(hosts), "--diff", "--dry-run")

        assert result.returncode == 0, result.stderr
        assert f"--- a/cinder/{rel}\n+++ b/cinder/{rel}\n" in result.stdout
        assert "-B = 2\n+B = 3\n" in result.stdout
        assert (cinder_dir / rel).read_text() == "A = 1\nB = 2\n"

    def test_a_new_file_diffs_against_dev_null(self, sandbox, hosts, source):
        rel = f"devloop_it/fresh_{uuid.uuid4().hex[:6]}.py"
        (source / rel).write_text("NEW = True\n")
        result = invoke("deploy", "--inventory", str(hosts), "--diff", "--dry-run")
        assert f"--- /dev/null\n+++ b/cinder/{rel}\n" in result.stdout
        assert "+NEW = True" in result.stdout

    def test_checksum_ignores_a_touched_but_identical_file(self, sandbox, hosts, source):
        rel = f"devloop_it/touched_{uuid.uuid4().hex[:6]}.py"
        (source / rel).write_text("SAME = 1\n")
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
        later = time.time() + 100
        os.utime(source / rel, (later, later))     # an editor saved it without changes
        before = supervised_pid(sandbox)

        by_time = invoke("deploy", "--inventory", str(hosts), "--dry-run")
        by_content = invoke("loop", "--inventory", str(hosts), "--checksum")

        assert by_content.returncode == 0, by_content.stderr
        assert "restart skipped: nothing changed" in by_content.stderr
        assert supervised_pid(sandbox) == before
        assert f"cinder/{rel}" in by_time.stdout    # without --checksum it would be sent


class TestInterruptedDeploy:
    def test_a_killed_deploy_leaves_whole_files_and_the_next_one_completes(
            self, sandbox, hosts, source, cinder_dir):
        rel = f"devloop_it/big_{uuid.uuid4().hex[:6]}.bin"
        old = os.urandom(1024) * 1024 * 8           # 8 MiB
        (source / rel).write_bytes(old)
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0
        new = os.urandom(1024) * 1024 * 256         # 256 MiB: slow enough to interrupt
        (source / rel).write_bytes(new)
        target_dir = cinder_dir / "devloop_it"
        name = Path(rel).name

        deploy = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "deploy",
             "--inventory", str(hosts), "--no-restart"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not any(p.name.startswith(f".{name}.") for p in target_dir.iterdir()):
                assert deploy.poll() is None, "the deploy finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            os.killpg(deploy.pid, signal.SIGKILL)   # invoke, rsync and ssh at once
        finally:
            deploy.wait()

        content = (cinder_dir / rel).read_bytes()
        assert content == old                       # wholly old, never a mix

        result = invoke("deploy", "--inventory", str(hosts), "--no-restart")

        assert result.returncode == 0, result.stderr
        assert (cinder_dir / rel).read_bytes() == new
        (source / rel).unlink()
        (cinder_dir / rel).unlink()


class TestSeveralControllers:
    def test_controllers_run_in_parallel_and_one_failure_does_not_stop_the_other(
            self, tmp_path, sandbox, source, cinder_dir):
        rel = f"devloop_it/fleet_{uuid.uuid4().hex[:6]}.py"
        (source / rel).write_text("FLEET = 1\n")
        hosts = write_inventory(tmp_path / "two.yaml", source, {
            "good": sandbox.controller_entry(),
            "down": {**sandbox.controller_entry(), "port": free_port()},
        })

        result = invoke("deploy", "--inventory", str(hosts), "--no-restart")

        assert result.returncode == 1
        assert (cinder_dir / rel).read_text() == "FLEET = 1\n"
        table = [line.split() for line in result.stdout.splitlines()
                 if line.split()[0] in ("controller", "good", "down")]
        assert table[0] == ["controller", "changed", "restarted", "healthy", "time"]
        assert table[1][:4] == ["good", "1", "no", "-"]
        assert table[2][:4] == ["down", "-", "-", "FAILED"]
        assert "error: failed on 1 controller(s): down" in result.stderr
        assert "error: down (root@127.0.0.1:" in result.stderr
        assert "connection refused" in result.stderr


class TestConnectionReuse:
    def test_a_deploy_with_restart_makes_one_ssh_connection(self, sandbox, hosts, source):
        (source / "devloop_it" / f"once_{uuid.uuid4().hex[:6]}.py").write_text("ONCE = 1\n")
        log = sandbox.sshd_dir / "sshd.log"
        before = log.read_text().count("Accepted publickey")

        result = invoke("deploy", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        # locate, rsync, record, restart, health check, status: one login
        assert log.read_text().count("Accepted publickey") - before == 1

    def test_chained_tasks_share_the_connection_too(self, sandbox, hosts, source):
        log = sandbox.sshd_dir / "sshd.log"
        before = log.read_text().count("Accepted publickey")
        result = invoke("deploy", "--inventory", str(hosts), "--no-restart",
                        "status", "--inventory", str(hosts))
        assert result.returncode == 0, result.stderr
        assert log.read_text().count("Accepted publickey") - before == 1


class TestDrift:
    def test_status_shows_the_deployed_commit_and_whether_the_local_tree_differs(
            self, sandbox, hosts, source):
        rel = f"devloop_it/drift_{uuid.uuid4().hex[:6]}.py"
        (source / rel).write_text("DRIFT = 1\n")
        git = ["git", "-C", str(source), "-c", "user.name=dev", "-c", "user.email=dev@example.com"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "work"], check=True)
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        assert invoke("deploy", "--inventory", str(hosts), "--no-restart").returncode == 0

        same = invoke("status", "--inventory", str(hosts))
        (source / rel).write_text("DRIFT = 2\n")
        differs = invoke("status", "--inventory", str(hosts))

        assert same.returncode == 0, same.stderr
        assert f"from commit {commit[:12]}\n" in same.stdout
        assert "drift     local tree: same as deployed" in same.stdout
        assert ("drift     local tree: DIFFERS, 1 file(s) not on the controller "
                f"(local {commit[:12]} with local changes)") in differs.stdout
