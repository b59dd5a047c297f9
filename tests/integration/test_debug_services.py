"""invoke debug --service: a service beside the API in the foreground under pdb, on every kind.

``debug --service volume --break cinder.volume.manager.VolumeManager.create_volume``
stops the volume service's unit or program (cinder-api keeps running, same
PID), runs what that unit or program runs as its user in the foreground
of a real terminal (pexpect), and a volume created through the API stops at
``(Pdb)`` in cinder-volume; after ``c`` the volume becomes ``available``,
Ctrl-C ends the session and the unit or program runs the volume service
again with a new PID. The scheduler the same way on the supervisord
sandbox. A name that is no service, or a service the controller does not
run, is one ``error:`` line, and nothing is stopped.
"""
from __future__ import annotations

import uuid

import pytest

from tests.integration.test_debug import spawn_debug, text_of
from tests.support import invoke, wait_until, write_inventory

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.integration

CREATE = "cinder.volume.manager.VolumeManager.create_volume"
SCHEDULE = "cinder.scheduler.manager.SchedulerManager.create_volume"


@pytest.fixture
def services_back(controller):
    """Whatever a test does, leave every service of the controller running."""
    yield
    for binary in ("cinder-api", *controller.services):
        if not controller.pid_of(binary):
            if binary == "cinder-api":
                controller.restart_service()
            else:
                controller.restart_services()
    wait_until(lambda: all(controller.pid_of(b) for b in controller.services), timeout=60)


def volume_status(client, volume: str) -> str:
    reply = client.get(f"/volumes/{volume}")
    return reply.json["volume"]["status"] if reply.status == 200 else f"HTTP {reply.status}"


def debug_one_volume_create(controller, hosts, service: str, where: str, binary: str) -> str:
    """Run ``debug --service SERVICE --break WHERE``, create a volume, stop at pdb, continue,
    see it available, end with Ctrl-C; return the session's transcript."""
    api_before = controller.service_pid()
    before = controller.pid_of(binary)
    assert api_before and before
    child = spawn_debug(hosts, "--service", service, "--break", where)
    try:
        child.expect(f"{binary} runs", timeout=180)
        assert controller.pid_of(binary) is None, "the unit or program still runs"
        client = controller.client()
        created = client.post("/volumes", {"volume": {"size": 1,
                                                      "name": f"dbg-{uuid.uuid4().hex[:8]}"}})
        assert created.status == 202, created
        volume = created.json["volume"]["id"]

        child.expect(r"\(Pdb\) ", timeout=120)
        assert "breakpoint 1, " in text_of(child) and "create_volume()" in text_of(child)
        child.sendline("p volume.id" if service == "volume" else "p request_spec")
        child.expect(r"\(Pdb\) ")
        if service == "volume":
            assert volume in child.before
        if controller.kind == "rdo":       # RDO's unit sets Environment= MALLOC_ARENA_MAX=1
            child.sendline("p __import__('os').environ.get('MALLOC_ARENA_MAX')")
            child.expect(r"\(Pdb\) ")
            assert "'1'" in child.before
        assert volume_status(client, volume) == "creating"
        child.sendline("c")
        wait_until(lambda: volume_status(client, volume) == "available", timeout=120)
        assert controller.service_pid() == api_before, "cinder-api was stopped"

        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=180)
    finally:
        child.close(force=True)
    transcript = text_of(child)
    assert child.exitstatus == 130, transcript
    unit = controller.services[binary]
    assert f"{unit} back in service" in transcript
    assert "up in the service list" in transcript
    after = controller.pid_of(binary)
    assert after and after != before, (before, after)
    assert controller.service_pid() == api_before, "cinder-api was restarted"
    # the unit's environment was handed over in a root-only file, gone once read
    assert controller.run(["ls", "-A", f"{controller.state_dir}/debug"]).stdout.split().count(
        "service-env.json") == 0
    client.delete(f"/volumes/{volume}")
    return transcript


def test_debug_service_volume_stops_a_volume_create_at_pdb_and_restores_the_volume_service(
        controller, controller_hosts, services_back):
    transcript = debug_one_volume_create(controller, controller_hosts, "volume", CREATE,
                                         "cinder-volume")
    user = controller.service_user_of("cinder-volume")
    assert f"cinder-volume in the foreground as {user}, pid" in transcript
    assert f"stop {controller.services['cinder-volume']}" in transcript
    assert f"stop {controller.service}" not in transcript


@pytest.mark.parametrize("controller", ["supervisord"], indirect=True)
def test_debug_service_scheduler_stops_the_scheduling_at_pdb_and_restores_it(
        controller, controller_hosts, services_back):
    debug_one_volume_create(controller, controller_hosts, "scheduler", SCHEDULE,
                            "cinder-scheduler")


@pytest.mark.parametrize("controller", ["supervisord"], indirect=True)
def test_debug_service_with_a_name_that_is_no_service_is_one_error_line(
        controller, controller_hosts):
    before = controller.service_pid()
    result = invoke("debug", "--inventory", str(controller_hosts), "--service", "volumes")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --service volumes: no such service; expected one "
                                     "or more of api, scheduler, volume, backup, "
                                     "comma-separated, or all")
    result = invoke("debug", "--inventory", str(controller_hosts), "--service", "volume,backup")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --service volume,backup: debug runs one "
                                            "service in the foreground")
    assert controller.service_pid() == before


@pytest.mark.parametrize("controller", ["supervisord"], indirect=True)
def test_debug_service_the_controller_does_not_run_stops_nothing(controller, tmp_path, source):
    entry = {**controller.entry(), "services": ["api", "scheduler", "volume"]}
    hosts = write_inventory(tmp_path / "hosts.yaml", source, {"sbx": entry})
    pids = {binary: controller.pid_of(binary) for binary in ("cinder-api", *controller.services)}
    result = invoke("debug", "--inventory", str(hosts), "--service", "backup")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in result.stderr.splitlines() if line.strip()][-1:]
    assert errors[0].startswith("error: sbx: --service backup: this controller runs no backup "
                                "service (it runs: api, scheduler, volume;")
    assert errors[0].endswith("nothing was stopped")
    assert {binary: controller.pid_of(binary) for binary in pids} == pids
