"""Service managers only format commands and read their answers."""
from __future__ import annotations

import pytest

from deploy.base.inventory import Controller
from deploy.controller.services import ServiceStatus, manager_for
from deploy.controller.services.supervisord import Supervisord, parse_status
from deploy.controller.services.systemd import Systemd, parse_show


def test_systemd_is_the_production_default():
    manager = manager_for(Controller(name="c", address="h"))
    assert isinstance(manager, Systemd)
    assert manager.control_argv("restart") == [
        "systemctl", "restart", "--", "openstack-cinder-api.service"]


def test_supervisord_is_chosen_by_the_inventory():
    manager = manager_for(Controller(name="c", address="h", service_manager="supervisord",
                                     supervisor_config="/etc/sup d/s.conf", service="cinder-api"))
    assert isinstance(manager, Supervisord)
    assert manager.ctl_argv("restart", "cinder-api") == [
        "supervisorctl", "-c", "/etc/sup d/s.conf", "restart", "cinder-api"]


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_systemd_control_commands(action):
    assert Systemd("openstack-cinder-api.service").control_argv(action) == [
        "systemctl", action, "--", "openstack-cinder-api.service"]


def test_the_devstack_layouts_unit_is_driven_as_uwsgi():
    devstack = manager_for(Controller(name="d", address="h", layout="devstack",
                                      service="devstack@c-api.service"))
    assert isinstance(devstack, Systemd) and devstack.uwsgi
    assert not manager_for(Controller(name="r", address="h")).uwsgi


@pytest.mark.parametrize("action", ["stop", "restart"])
def test_a_uwsgi_stop_first_waits_for_loading_workers_a_bounded_time(action):
    argv = Systemd("devstack@c-api.service", uwsgi=True).control_argv(action)
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:] == ["devloop-settle", "devstack@c-api.service", action, "30"]
    script = argv[2]
    assert script.rstrip().endswith('exec systemctl "$action" -- "$unit"')
    assert "systemctl kill --signal=SIGKILL" in script     # a worker hung in its import


def test_a_uwsgi_start_is_a_plain_start():
    assert Systemd("devstack@c-api.service", uwsgi=True).control_argv("start") == [
        "systemctl", "start", "--", "devstack@c-api.service"]


def test_systemd_status_reads_systemctl_show():
    text = ("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\n"
            "ActiveEnterTimestamp=Wed 2026-11-25 10:00:00 UTC\n")
    assert parse_show(text) == ServiceStatus(
        "active (running)", True, 4242, "since Wed 2026-11-25 10:00:00 UTC")


def test_systemd_stopped_unit_has_no_pid():
    status = parse_show("LoadState=loaded\nActiveState=inactive\nSubState=dead\nMainPID=0\n")
    assert (status.running, status.pid) == (False, None)


def test_systemd_unknown_unit():
    assert parse_show("LoadState=not-found\nActiveState=inactive\n").state == "not-found"


@pytest.mark.parametrize("text, expected", [
    ("cinder-api                       RUNNING   pid 5417, uptime 0:00:04",
     ServiceStatus("RUNNING", True, 5417, "uptime 0:00:04")),
    ("cinder-api                       RUNNING   pid 17, uptime 2 days, 3:04:05",
     ServiceStatus("RUNNING", True, 17, "uptime 2 days, 3:04:05")),
    ("cinder-api                       STOPPED   Nov 25 07:40 PM",
     ServiceStatus("STOPPED", False, None, "Nov 25 07:40 PM")),
    ("cinder-api                       FATAL     Exited too quickly (process log may have details)",
     ServiceStatus("FATAL", False, None, "Exited too quickly (process log may have details)")),
])
def test_supervisorctl_status_lines(text, expected):
    assert parse_status(text) == expected
