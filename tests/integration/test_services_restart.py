"""A deploy restarts exactly the services that load what changed, and says why.

On every kind (``controller``): an edit under ``cinder/volume/`` restarts
``cinder-volume`` and leaves ``cinder-api`` (and the scheduler, and backup)
running, the PIDs prove it; an edit under ``cinder/api/`` restarts only the
API; an edit to ``cinder/objects/`` restarts all four; a driver package the
configured backend does not load restarts nothing; ``--service`` overrides
the choice; a volume service that fails to start is reported with its own
log lines and the deploy rolled back. A restarted service counts once the
API's service list shows its new heartbeat.
"""
from __future__ import annotations

import textwrap
import uuid

import pytest

from deploy.sandbox import services
from tests.support import invoke, wait_until

pytestmark = pytest.mark.integration

BINARIES = ("cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup")


def pids(controller) -> dict[str, int | None]:
    return {binary: controller.pid_of(binary) for binary in BINARIES}


def probe(source, package: str, text: str = "PROBE = 1\n") -> str:
    """A new module under ``package`` of the source tree; its path in the package."""
    rel = f"{package}/devloop_probe_{uuid.uuid4().hex[:8]}.py"
    path = source / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return rel


def restarted(before: dict[str, int | None], after: dict[str, int | None]) -> set[str]:
    assert all(after.values()), f"a service is down: {after}"
    return {binary for binary in BINARIES if before[binary] != after[binary]}


@pytest.fixture(autouse=True)
def serving(controller):
    """Every service up before a spec (a spec before may have emptied the database)."""
    if controller.services_stale:
        controller.restart_services()

    def all_up() -> bool:
        reply = controller.client().get("/os-services")
        found = services.states(reply.json["services"]) if reply.status == 200 else {}
        return all(found.get(binary) == "up" for binary in services.BINARIES)

    wait_until(all_up, timeout=180, interval=1)


def test_an_edit_under_volume_restarts_the_volume_service_and_not_the_api(
        controller, controller_hosts, source):
    rel = probe(source, "volume")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts))

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == {"cinder-volume"}
    assert f"sbx: volume: cinder/{rel} changed" in result.stdout
    assert "sbx: api:" not in result.stdout
    assert "cinder-volume: " in result.stderr and "up in the service list" in result.stderr


def test_an_edit_under_api_restarts_only_the_api(controller, controller_hosts, source):
    rel = probe(source, "api")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts))

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == {"cinder-api"}
    assert f"sbx: api: cinder/{rel} changed" in result.stdout
    assert "sbx: volume:" not in result.stdout


def test_an_edit_to_objects_restarts_every_service(controller, controller_hosts, source):
    rel = probe(source, "objects")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts))

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == set(BINARIES)
    for name in ("api", "scheduler", "volume", "backup"):
        assert f"sbx: {name}: cinder/{rel} changed" in result.stdout


def test_a_driver_the_configured_backend_does_not_load_restarts_nothing_and_says_so(
        controller, controller_hosts, source):
    rel = probe(source, f"volume/drivers/devloop_other_{uuid.uuid4().hex[:6]}")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts))

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == set()
    assert f"no running service loads cinder/{rel}" in result.stdout
    assert "FakeLoggingVolumeDriver" in result.stdout
    assert "nothing restarted" in result.stdout


def test_service_overrides_the_choice(controller, controller_hosts, source):
    probe(source, "api")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts), "--service",
                    "scheduler,volume")

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == {"cinder-scheduler", "cinder-volume"}
    assert "sbx: volume: asked for with --service" in result.stdout


def test_restart_with_service_restarts_that_service(controller, controller_hosts):
    before = pids(controller)

    result = invoke("restart", "--inventory", str(controller_hosts), "--service", "backup")

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == {"cinder-backup"}


def test_an_unknown_service_is_one_error_line(controller_hosts):
    result = invoke("deploy", "--inventory", str(controller_hosts), "--service", "volumes")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --service volumes: no such service; expected one or more of api, scheduler, "
        "volume, backup, comma-separated, or all"]


def test_a_volume_service_that_fails_to_start_is_reported_with_its_log_and_rolled_back(
        controller, controller_hosts, source):
    # the real volume manager, raising at import: cinder-volume cannot start
    original = (controller.cinder_dir / "volume/manager.py").read_text()
    marker = f"devloop probe {uuid.uuid4().hex[:8]}"
    (source / "volume").mkdir(parents=True, exist_ok=True)
    (source / "volume/manager.py").write_text(original + f"\nraise RuntimeError({marker!r})\n")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts), "--rollback-on-failure")

    assert result.returncode != 0
    assert "sbx: volume: cinder/volume/manager.py changed" in result.stdout
    assert "cinder-volume" in result.stderr and marker in result.stderr
    assert "error: sbx: cinder-volume" in result.stderr
    assert "is not running after its restart" in result.stderr or \
        "was started again" in result.stderr
    assert "was rolled back" in result.stderr and "volume restarted and up" in result.stderr
    assert "sbx: volume: cinder/volume/manager.py restored" in result.stdout
    assert (controller.cinder_dir / "volume/manager.py").read_text() == original
    after = pids(controller)
    assert after["cinder-api"] == before["cinder-api"]
    assert after["cinder-volume"] and after["cinder-volume"] != before["cinder-volume"]


def test_status_has_one_line_per_service_and_names_the_stand_in(controller, controller_hosts):
    result = invoke("status", "--inventory", str(controller_hosts))

    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()
             if line.startswith("  ") and line.split()}
    for name in ("scheduler", "volume", "backup"):
        assert "up in the service list" in lines[name], result.stdout
        assert controller.services[f"cinder-{name}"] in lines[name]
    assert "FakeLoggingVolumeDriver (a stand-in: it stores no data)" in lines["volume"]


def test_logs_service_shows_that_service_log(controller, controller_hosts):
    result = invoke("logs", "--inventory", str(controller_hosts), "--service", "volume",
                    "-n", "300")

    assert result.returncode == 0, result.stderr
    where = controller.services["cinder-volume"] if controller.kind == "devstack" else "volume.log"
    assert where in result.stderr
    assert "cinder.volume" in result.stdout or "cinder-volume" in result.stdout


def test_logs_takes_one_service(controller_hosts):
    result = invoke("logs", "--inventory", str(controller_hosts), "--service", "api,volume")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --service api,volume: logs shows one service's log at a time"]


def test_the_inventory_services_limit_what_is_restarted(tmp_path, controller, source):
    from tests.support import write_inventory

    hosts = write_inventory(tmp_path / "limited.yaml", source,
                            {"sbx": {**controller.entry(), "services": ["api", "volume"]}})
    rel = probe(source, "objects")
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(hosts))

    assert result.returncode == 0, result.stderr
    assert restarted(before, pids(controller)) == {"cinder-api", "cinder-volume"}
    assert f"sbx: volume: cinder/{rel} changed" in result.stdout
    assert "sbx: scheduler:" not in result.stdout


def test_a_volume_driver_that_fails_to_initialise_is_reported_and_rolled_back(
        controller, controller_hosts, source):
    # the stand-in's own module (the configured driver loads it), its set-up raising:
    # cinder-volume runs but sends no heartbeat
    original = (controller.cinder_dir / "tests/fake_driver.py").read_text()
    marker = f"devloop probe {uuid.uuid4().hex[:8]}"
    (source / "tests").mkdir(parents=True, exist_ok=True)
    (source / "tests/fake_driver.py").write_text(original + textwrap.dedent(f"""

        def _devloop_broken_setup(self, *args, **kwargs):
            raise RuntimeError({marker!r})


        FakeLoggingVolumeDriver.do_setup = _devloop_broken_setup
        """))
    before = pids(controller)

    result = invoke("deploy", "--inventory", str(controller_hosts), "--rollback-on-failure",
                    "--timeout", "40")

    assert result.returncode != 0
    assert "sbx: volume: cinder/tests/fake_driver.py changed" in result.stdout
    assert "did not report up in the API's service list within 40 s" in result.stderr
    assert marker in result.stderr
    assert "was rolled back" in result.stderr and "volume restarted and up" in result.stderr
    assert (controller.cinder_dir / "tests/fake_driver.py").read_text() == original
    assert pids(controller)["cinder-api"] == before["cinder-api"]
