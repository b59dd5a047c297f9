"""Every sandbox kind runs Cinder's whole service set over a real broker.

Beside cinder-api, each kind (``controller``: supervisord, rdo, legacy,
devstack) runs ``cinder-scheduler``, ``cinder-volume`` and ``cinder-backup``
the way its distribution does, as its service user, on RabbitMQ: the API's
own service list shows them ``up``, a volume created through the API
travels API -> scheduler -> volume over the broker and becomes
``available`` on the stand-in backend, and is deleted; RabbitMQ holds the
services' queues; ``sandbox.status`` shows the units or programs, the
broker and the service list.
"""
from __future__ import annotations

import configparser
import time
import uuid

import pytest

from deploy.sandbox import broker, services
from tests.support import invoke, wait_until

pytestmark = pytest.mark.integration

BINARIES = ("cinder-scheduler", "cinder-volume", "cinder-backup")


def service_list(controller) -> list[dict]:
    reply = controller.client().get("/os-services")
    assert reply.status == 200, reply
    return reply.json["services"]


def cinder_conf(controller) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(controller.host_path(controller.config_files[-1]).read_text())
    return parser


def part_of(status_line: str) -> str:
    """The part a ``sandbox.status`` line is about: ``UNIT  active`` or ``program  NAME  …``."""
    words = status_line.split() or [""]
    return words[1] if words[0] == "program" and len(words) > 1 else words[0]


@pytest.fixture(autouse=True)
def serving(controller):
    """The service set of a controller whose database a spec before emptied is restarted
    first, as an operator restarts it after recreating the database (its rows are gone)."""
    if controller.services_stale:
        controller.restart_services()

        def all_up() -> bool:
            found = services.states(service_list(controller))
            return all(found.get(binary) == "up" for binary in BINARIES)

        wait_until(all_up, timeout=180, interval=1)


def test_the_service_list_shows_scheduler_volume_and_backup_up(controller):
    listed = {service["binary"]: service for service in service_list(controller)}
    for binary in BINARIES:
        assert listed[binary]["state"] == "up", listed
        assert listed[binary]["status"] == "enabled", listed
    # the volume service's host names its backend: the stand-in
    assert listed["cinder-volume"]["host"].endswith(f"@{services.BACKEND}")


def test_each_service_runs_as_the_kinds_service_user_under_its_unit_or_program(controller):
    for binary in BINARIES:
        assert controller.service_user_of(binary) == controller.service_user, binary


def test_a_volume_created_through_the_api_becomes_available_and_is_deleted(controller):
    client = controller.client()
    name = f"spec-{uuid.uuid4().hex[:8]}"
    created = client.post("/volumes", {"volume": {"size": 1, "name": name}})
    assert created.status == 202, created
    volume = created.json["volume"]["id"]
    try:
        def status() -> str:
            reply = client.get(f"/volumes/{volume}")
            assert reply.status == 200, reply
            found = reply.json["volume"]["status"]
            assert found not in ("error", "error_deleting"), reply.json
            return found if found == "available" else ""

        wait_until(status, timeout=120, interval=0.5)
        shown = client.get(f"/volumes/{volume}").json["volume"]
        assert shown["name"] == name
        # the scheduler placed it on the volume service's stand-in backend
        assert f"@{services.BACKEND}#" in shown["os-vol-host-attr:host"]
    finally:
        deleted = client.delete(f"/volumes/{volume}")
    assert deleted.status == 202, deleted
    wait_until(lambda: client.get(f"/volumes/{volume}").status == 404, timeout=120,
               interval=0.5)


def test_the_broker_is_rabbitmq_with_a_user_of_the_sandboxs_own(controller):
    url = cinder_conf(controller)["DEFAULT"]["transport_url"]
    assert url.startswith("rabbit://"), url
    user = url.split("//", 1)[1].split(":", 1)[0]
    assert user not in ("", "guest"), url
    address, port = controller.broker
    assert (broker.amqp_server(address, port) or "").startswith("RabbitMQ 3."), (address, port)
    users = controller.rabbitmqctl("--quiet", "list_users")
    assert users.returncode == 0, users.stderr
    assert user in users.stdout.split()
    assert "guest" not in users.stdout.split()


def test_rabbitmq_holds_the_queues_of_the_scheduler_volume_and_backup(controller):
    def queues() -> set[str]:
        result = controller.rabbitmqctl("--quiet", "list_queues", "--no-table-headers", "name")
        assert result.returncode == 0, result.stderr
        return set(result.stdout.split())

    found = queues()
    for topic in ("cinder-scheduler", "cinder-volume", "cinder-backup"):
        assert topic in found, found
    assert any(name.startswith("cinder-volume.") and name.endswith(f"@{services.BACKEND}")
               for name in found), found


def test_sandbox_status_shows_the_services_the_broker_and_the_stand_in(controller):
    started = time.monotonic()
    result = invoke("sandbox.status", *controller.sandbox_args())
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for unit in (*controller.services.values(), broker.UNIT):
        names = {unit, unit.removesuffix(".service")}     # a unit, or a program
        (line,) = [line for line in lines if part_of(line) in names]
        assert line.split()[-1] == "active" or " RUNNING pid " in line, line
    (line,) = [line for line in lines if line.startswith("broker ")]
    assert " RabbitMQ 3." in line, line
    (line,) = [line for line in lines if line.startswith("services ")]
    assert ("cinder-scheduler up, cinder-volume up (" in line
            and f"@{services.BACKEND}: a stand-in backend, {services.VOLUME_DRIVER}), "
                "cinder-backup up" in line), line
    assert took < 30, f"sandbox.status took {took:.0f} s"
