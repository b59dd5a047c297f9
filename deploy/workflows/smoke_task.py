"""``invoke smoke`` (and ``loop --smoke``): the smoke test against controllers.

The checks themselves are in :mod:`deploy.openstack.smoke` (standard library only);
this module authenticates (:mod:`deploy.openstack.api_access`), sends the requests
through each controller's SSH connection, prints the report and, on demand,
writes it as JUnit XML.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from deploy.base import output
from deploy.base.errors import DevloopError
from deploy.base.inventory import Controller
from deploy.openstack.smoke import SmokeReport, junit_xml, run_smoke
from deploy.transport.commands import Remote
from deploy.transport.fleet import on_each


class SmokeFailed(DevloopError):
    """A smoke check failed."""


def smoke_on(remote: Remote, *, project_id: str | None = None,
             token: str | None = None) -> SmokeReport:
    """Run the smoke checks against ``remote``'s API and return the report.

    Raises:
        AuthError: Keystone authentication failed.
    """
    from deploy.openstack.api_access import api_client

    client = api_client(remote, project_id=project_id, token=token)
    output.step(remote.name, f"smoke test of os-cluster-manage at {client.access.describe}")
    return run_smoke(client.access.base_url, project_id=client.access.project_id,
                     token=client.access.token, opener=client.opener)


def smoke_controllers(controllers: Sequence[Controller], *, project_id: str | None = None,
                      token: str | None = None, junit_path: str | None = None) -> None:
    """Smoke-test each controller, print every check; write JUnit XML if asked.

    Raises:
        ControllersFailed / SmokeFailed: a check failed or a test could not run
            (the JUnit file is written all the same).
    """
    results: dict[str, SmokeReport | str] = {}

    def work(ctl: Controller) -> SmokeReport:
        results[ctl.name] = "the smoke test did not run"
        try:
            remote = Remote.open(ctl)
            try:
                report = smoke_on(remote, project_id=project_id, token=token)
            finally:
                remote.close()
        except DevloopError as exc:
            results[ctl.name] = str(exc)
            raise
        results[ctl.name] = report
        for check in report.checks:
            output.result(f"{ctl.name}: {check.format()}")
        output.result(f"{ctl.name}: {report.summary()}")
        if not report.ok:
            raise SmokeFailed(f"{ctl.name}: smoke test failed at "
                              f"{report.failed[0].name}: {report.failed[0].detail}")
        return report

    try:
        on_each(controllers, work)
    finally:
        if junit_path:
            _write_junit(Path(junit_path), {ctl.name: results[ctl.name] for ctl in controllers
                                            if ctl.name in results})


def _write_junit(path: Path, results: dict[str, SmokeReport | str]) -> None:
    try:
        path.write_text(output.redacted(junit_xml(results)))   # (a CI server shows it)
    except OSError as exc:
        raise DevloopError(f"cannot write the JUnit report {path}: {exc.strerror}") from None
    output.step("smoke", f"JUnit XML report written to {path}")
