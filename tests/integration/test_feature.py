"""The cluster feature as a developer ships it: invoke deploy + db-sync, then real HTTP.

Every os-cluster-manage specification of tests/cinder_patch/test_rest_api.py
runs again here, this time against the sandbox controller that
``invoke deploy`` and ``invoke db-sync`` prepared (fixture
``deployed_feature``), and ``invoke smoke`` passes against it.
"""
from __future__ import annotations

import subprocess

import pytest

from tests.cinder_patch import test_rest_api as rest_specs
from tests.cinder_patch.cinder_api import Client
from tests.integration.test_feature_policy import restart_api
from tests.support import invoke

pytestmark = pytest.mark.integration

# Re-collect every REST specification (and its module fixtures) in this module;
# the policy ones run in test_feature_policy.py, with a policy file in place.
POLICY_SPECS = ("test_request_refused_by_policy_is_403", "test_policy_file_leaves_other_apis_alone")
globals().update({name: value for name, value in vars(rest_specs).items()
                  if (name.startswith("test_") and name not in POLICY_SPECS)
                  or name == "cluster"})


@pytest.fixture
def client(sandbox, deployed_feature) -> Client:
    return Client(sandbox.api_url.rstrip("/"))


def test_the_deployed_migration_is_the_database_revision(sandbox, deployed_feature):
    result = invoke("status", "--inventory", str(deployed_feature))
    assert "48d74fa840ed (newest migration)" in result.stdout


def test_invoke_smoke_passes_against_the_deployed_feature(deployed_feature):
    result = invoke("smoke", "--inventory", str(deployed_feature))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke PASSED: 10/10 checks" in result.stdout
    assert "FAIL" not in result.stdout


def test_invoke_smoke_fails_with_exit_1_when_the_api_is_down(sandbox, deployed_feature):
    subprocess.run(["supervisorctl", "-c", str(sandbox.supervisor_conf), "stop", "cinder-api"],
                   check=True, capture_output=True)
    try:
        result = invoke("smoke", "--inventory", str(deployed_feature))
    finally:
        restart_api(sandbox)
    assert result.returncode == 1
    assert "smoke FAILED" in result.stdout
    assert "error: sandbox: smoke test failed at api answers" in result.stderr
