"""What ``invoke status`` says about deploys: an interrupted one is named, with what to do."""
from __future__ import annotations

from deploy.controller.health import ApiState
from deploy.controller.records import Record
from deploy.controller.services import ServiceStatus
from deploy.workflows.status import ControllerStatus


def status(**changes: object) -> ControllerStatus:
    base = dict(name="ctl1", service=ServiceStatus("RUNNING", True, 42, "uptime 0:00:04"),
                api=ApiState(True, "HTTP 300 after 0.10 s"), db_revision="abc",
                migration_heads=("abc",),
                deployed=Record("20261202T230000.000Z-aaaaaa", "applying", "/t", "/b"))
    return ControllerStatus(**{**base, **changes})


def test_status_names_each_interrupted_deploy_and_how_to_undo_it():
    lines = status(interrupted=("20261202T225900.000Z-bbbbbb",
                                "20261202T230000.000Z-aaaaaa")).lines()
    (line,) = [line for line in lines if line.strip().startswith("interrupted")]
    assert "20261202T225900.000Z-bbbbbb, 20261202T230000.000Z-aaaaaa" in line
    assert "state applying" in line and "invoke rollback" in line


def test_status_has_no_interrupted_line_when_every_deploy_ended():
    assert not [line for line in status().lines() if "interrupted" in line]
