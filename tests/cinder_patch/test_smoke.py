"""deploy/openstack/smoke.py against a real cinder-api, and against nothing at all."""

from __future__ import annotations

import pytest

from deploy.openstack.smoke import SmokeReport, run_smoke
from tests.cinder_patch.cinder_api import PROJECT_ID, TOKEN, CinderApi, Client
from deploy.sandbox.common import free_port

pytestmark = pytest.mark.integration

CHECKS = ["api answers", "create", "show", "list", "update", "metadata merge",
          "metadata set key", "metadata delete key", "delete", "gone"]


def smoke(base_url: str) -> SmokeReport:
    return run_smoke(base_url, project_id=PROJECT_ID, token=TOKEN, timeout=10)


def test_smoke_passes_against_the_patched_api(cinder_api: CinderApi) -> None:
    report = smoke(cinder_api.base_url)
    assert report.ok, report.format()
    assert [check.name for check in report.checks] == CHECKS
    assert all(check.duration >= 0 and check.detail for check in report.checks)
    assert report.summary().startswith("smoke PASSED: 10/10 checks")
    assert report.format().count("PASS ") == 10


def test_smoke_accepts_a_v3_base_url(cinder_api: CinderApi) -> None:
    report = smoke(cinder_api.base_url + "/v3/")
    assert report.ok, report.format()


def test_smoke_leaves_no_cluster_behind(cinder_api: CinderApi) -> None:
    smoke(cinder_api.base_url)
    names = [c["name"] or "" for c in
             Client(cinder_api.base_url).get("/os-cluster-manage").json["clusters"]]
    assert not [name for name in names if name.startswith("smoke-")]


def test_unreachable_api_is_a_failed_check_not_a_traceback() -> None:
    report = smoke(f"http://127.0.0.1:{free_port()}")
    assert not report.ok
    assert [check.name for check in report.checks] == ["api answers"]
    assert "refused" in report.checks[0].detail.lower()
    assert report.summary().startswith("smoke FAILED: 0/1 checks passed")
    assert "FAIL  api answers" in report.format()


def test_failure_midway_still_deletes_the_cluster(start_api) -> None:
    api = start_api(policy={"cluster_manage:update": "role:not-a-role"})
    report = smoke(api.base_url)
    assert not report.ok
    names = [check.name for check in report.checks]
    assert names == ["api answers", "create", "show", "list", "update", "cleanup"]
    update, cleanup = report.checks[-2:]
    assert not update.ok and "HTTP 403" in update.detail
    assert cleanup.ok, cleanup.detail
    assert Client(api.base_url).get("/os-cluster-manage").json == {"clusters": []}
    assert "first failure: update" in report.summary()


def test_http_errors_are_reported_with_their_status(cinder_api: CinderApi) -> None:
    # A project id that is not the token's: Cinder answers 400.
    report = run_smoke(cinder_api.base_url, project_id="abc", token=TOKEN)
    assert not report.ok
    assert "HTTP 400" in report.checks[0].detail
