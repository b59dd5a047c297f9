"""A deploy is healthy only when the code it sent is serving: on a real sandbox."""
from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET

import pytest

from deploy.controller.send import ONE_CALL_BYTES
from tests.integration.conftest import supervised_pid
from tests.integration.controllers import SupervisordController
from tests.integration.test_iterate import extension_source, extension_status, write_extension
from tests.support import Watcher, invoke

pytestmark = pytest.mark.integration

RAISES = "\nraise RuntimeError('devloop: broken at import')\n"


def listed(sandbox, alias: str) -> int:
    """The sandbox API's answer for the extension ``alias`` (200: listed)."""
    return extension_status(SupervisordController(sandbox), alias)


@pytest.fixture
def cleanup_extensions(sandbox, cinder_dir):
    """Remove the test extensions from the controller afterwards."""
    yield
    for path in (cinder_dir / "api" / "contrib").glob("devloop_*.py"):
        path.unlink()


def records(sandbox) -> set[str]:
    deploys = sandbox.root / "var/lib/cinder-devloop/deploys"
    return {p.name for p in deploys.iterdir()} if deploys.is_dir() else set()


class TestBeforeSending:
    def test_a_syntax_error_is_refused_with_file_and_line_and_nothing_is_sent(
            self, sandbox, hosts, source, cinder_dir):
        tag = uuid.uuid4().hex[:6]
        (source / "devloop_it").mkdir()
        (source / "devloop_it" / f"fine_{tag}.py").write_text("FINE = 1\n")
        (source / "devloop_it" / f"bad_{tag}.py").write_text("A = 1\n\ndef broken(:\n    pass\n")
        before, deploys = supervised_pid(sandbox), records(sandbox)

        result = invoke("deploy", "--inventory", str(hosts))

        assert result.returncode == 1
        assert f"error: cinder/devloop_it/bad_{tag}.py:3: " in result.stderr
        assert "do not compile with" in result.stderr and "nothing was sent" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (cinder_dir / "devloop_it" / f"fine_{tag}.py").exists()
        assert not (cinder_dir / "devloop_it" / f"bad_{tag}.py").exists()
        assert supervised_pid(sandbox) == before
        assert records(sandbox) == deploys

    def test_a_tree_too_large_for_one_call_goes_through_rsync_and_is_checked_in_batches(
            self, sandbox, hosts, source, cinder_dir):
        (source / "devloop_it").mkdir()
        (source / "devloop_it" / "blob.bin").write_bytes(os.urandom(ONE_CALL_BYTES + 1))
        for index in range(2):          # incompressible: more than one call can carry
            (source / "devloop_it" / f"big_{index}.py").write_text(
                f"DATA = '{os.urandom(60_000).hex()}'\n")
        (source / "devloop_it" / "bad_big.py").write_text("x = )\n")
        before = supervised_pid(sandbox)

        result = invoke("deploy", "--inventory", str(hosts), "--verbose")

        assert result.returncode == 1
        assert "--dry-run" in result.stderr           # rsync listed the changes first
        assert "error: cinder/devloop_it/bad_big.py:1: " in result.stderr
        assert not (cinder_dir / "devloop_it" / "big_0.py").exists()
        assert not (cinder_dir / "devloop_it" / "blob.bin").exists()
        assert supervised_pid(sandbox) == before

    def test_loop_refuses_it_too(self, sandbox, hosts, source, cinder_dir):
        (source / "devloop_it").mkdir()
        (source / "devloop_it" / "bad_loop.py").write_text("x = (\n")
        before = supervised_pid(sandbox)

        result = invoke("loop", "--inventory", str(hosts))

        assert result.returncode == 1
        assert "error: cinder/devloop_it/bad_loop.py:1: " in result.stderr
        assert supervised_pid(sandbox) == before
        assert not (cinder_dir / "devloop_it" / "bad_loop.py").exists()


class TestAfterRestart:
    def test_a_healthy_deploy_confirms_the_extensions_it_sent(
            self, sandbox, hosts, source, cleanup_extensions):
        alias = f"dls-{uuid.uuid4().hex[:6]}"
        write_extension(source, alias)

        result = invoke("deploy", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "1 extension(s) sent are listed" in result.stderr
        assert listed(sandbox, alias) == 200

    def test_a_module_that_raises_at_import_is_detected_reported_and_rolled_back(
            self, sandbox, hosts, source, cinder_dir, cleanup_extensions):
        alias = f"dls-{uuid.uuid4().hex[:6]}"
        path = write_extension(source, alias)
        assert invoke("deploy", "--inventory", str(hosts)).returncode == 0
        good = path.read_bytes()
        module = f"cinder.api.contrib.{path.stem}"
        path.write_text(extension_source(alias) + RAISES)

        result = invoke("deploy", "--inventory", str(hosts), "--rollback-on-failure")

        assert result.returncode == 1
        assert "the API answers but does not serve what was sent: failed to load extension " \
               f"{module}." in result.stderr
        # the log lines that show it
        assert f"Failed to load extension {module}." in result.stderr
        assert "devloop: broken at import" in result.stderr
        assert "was rolled back (1 file(s) restored, 0 removed); the API answers again" \
            in result.stderr
        assert (cinder_dir / "api" / "contrib" / path.name).read_bytes() == good
        assert listed(sandbox, alias) == 200      # listed again

    def test_loop_with_rollback_on_failure_serves_the_previous_code(
            self, sandbox, hosts, source, cinder_dir, cleanup_extensions):
        alias = f"dls-{uuid.uuid4().hex[:6]}"
        path = write_extension(source, alias)
        assert invoke("loop", "--inventory", str(hosts)).returncode == 0
        good = path.read_bytes()
        path.write_text(extension_source(alias) + RAISES)

        result = invoke("loop", "--inventory", str(hosts), "--rollback-on-failure")

        assert result.returncode == 1
        assert "devloop: broken at import" in result.stderr
        assert "was rolled back (1 file(s) restored, 0 removed)" in result.stderr
        assert (cinder_dir / "api" / "contrib" / path.name).read_bytes() == good
        assert listed(sandbox, alias) == 200

    def test_without_rollback_the_failure_stays_and_status_names_it(
            self, sandbox, hosts, source, cleanup_extensions):
        alias = f"dls-{uuid.uuid4().hex[:6]}"
        path = write_extension(source, alias)
        assert invoke("deploy", "--inventory", str(hosts)).returncode == 0
        path.write_text(extension_source(alias) + RAISES)

        failed = invoke("deploy", "--inventory", str(hosts))
        status = invoke("status", "--inventory", str(hosts))
        rolled = invoke("rollback", "--inventory", str(hosts))
        after = invoke("status", "--inventory", str(hosts))

        assert failed.returncode == 1
        assert "devloop: broken at import" in failed.stderr
        assert listed(sandbox, alias) == 200      # rolled back by hand
        assert rolled.returncode == 0, rolled.stderr
        assert status.returncode == 0, status.stderr
        line = next(text for text in status.stdout.splitlines()
                    if text.strip().startswith("extensions"))
        assert "1 FAILED to load since the service started" in line
        assert f"cinder.api.contrib.{path.stem}." in line and "broken at import" in line
        assert "extensions none failed to load since the service started" in after.stdout

    def test_a_sent_extension_missing_from_the_list_fails_the_deploy(
            self, sandbox, hosts, source, cleanup_extensions):
        # the class is not named after the module, so Cinder never loads it
        alias = f"dls-{uuid.uuid4().hex[:6]}"
        path = source / "api" / "contrib" / f"devloop_misnamed_{alias[4:]}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(extension_source(alias).replace("class Devloop_", "class Other_"))

        result = invoke("deploy", "--inventory", str(hosts), "--rollback-on-failure")

        assert result.returncode == 1
        assert "failed to load extension" in result.stderr \
            or f"does not list the extension(s) sent: {alias}" in result.stderr
        assert "was rolled back" in result.stderr


class TestWatch:
    def test_a_save_that_breaks_an_extension_is_reported_failed_and_the_old_code_serves(
            self, sandbox, hosts, source, cinder_dir, cleanup_extensions):
        alias = f"dlw-{uuid.uuid4().hex[:6]}"
        path = write_extension(source, alias)
        assert invoke("deploy", "--inventory", str(hosts)).returncode == 0
        good = path.read_bytes()
        with Watcher("--inventory", str(hosts), "--debounce", "200", "--timeout", "20") as watch:
            watch.read_until("watching")
            path.write_text(extension_source(alias) + RAISES)
            failed = watch.read_until(f"sbx: api/contrib/{path.name} -> ")
            assert "-> FAILED: sbx: the API answers but does not serve what was sent" in failed
            assert (cinder_dir / "api" / "contrib" / path.name).read_bytes() == good
            assert listed(sandbox, alias) == 200

            assert watch.interrupt() == 0


class TestSmokeJunit:
    def test_smoke_writes_one_testcase_per_check_for_ci(self, deployed_feature, tmp_path):
        report = tmp_path / "smoke.xml"

        result = invoke("smoke", "--inventory", str(deployed_feature), "--junit-xml", str(report))

        assert result.returncode == 0, result.stderr
        root = ET.parse(report).getroot()
        suite = root.find("testsuite")
        assert suite.get("name") == "smoke.sandbox"
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == [
            "api answers", "create", "show", "list", "update", "metadata merge",
            "metadata set key", "metadata delete key", "delete", "gone"]
        assert all(float(c.get("time")) > 0 for c in cases)
        assert not list(root.iter("failure"))
        assert (root.get("tests"), root.get("failures")) == ("10", "0")

    def test_a_failed_check_carries_its_failure_text(self, deployed_feature, tmp_path):
        report = tmp_path / "smoke.xml"

        # a project id that is not the token's: Cinder answers 400
        result = invoke("smoke", "--inventory", str(deployed_feature), "--project", "abc",
                        "--token", "admin:5e1f7e57", "--junit-xml", str(report))

        assert result.returncode == 1
        root = ET.parse(report).getroot()
        failure = root.find("testsuite/testcase/failure")
        assert failure is not None and failure.text and "HTTP 400" in failure.text
        assert root.get("failures") == "1"
