"""The cluster feature as a developer ships it: invoke deploy + db-sync, then real HTTP.

Every os-cluster-manage specification of tests/cinder_patch/test_rest_api.py
runs again here, this time against each kind of controller that ``invoke
deploy`` and ``invoke db-sync`` prepared (fixture ``feature_controller``):
the noauth sandbox, the rdo controller with the admin's Keystone token, and
the legacy controller (Cinder Train, noauth), to which deploy sent the common
tree with the Train release tree laid over it (cinder_patch/releases/train);
``invoke smoke`` passes
against all three (through Keystone on the rdo one).
"""
from __future__ import annotations

import pytest

from tests.cinder_patch import test_rest_api as rest_specs
from tests.cinder_patch.cinder_api import Client
from tests.integration.test_feature_policy import client_of, restart_api
from tests.support import invoke

pytestmark = pytest.mark.integration

# Re-collect every REST specification (and its module fixtures) in this module;
# the policy ones run in test_feature_policy.py, with a policy file in place.
POLICY_SPECS = ("test_request_refused_by_policy_is_403", "test_policy_file_leaves_other_apis_alone")
globals().update({name: value for name, value in vars(rest_specs).items()
                  if (name.startswith("test_") and name not in POLICY_SPECS)
                  or name == "cluster"})


@pytest.fixture
def client(controller, feature_controller) -> Client:
    return client_of(controller)


# The feature's migration in each variant: alembic's revision (29.0.0), the
# migrate script's number after Train's 132.
FEATURE_MIGRATION = {"alembic": "48d74fa840ed", "sqlalchemy-migrate": "133"}


def test_the_deployed_migration_is_the_database_revision(controller, feature_controller):
    result = invoke("status", "--inventory", str(feature_controller))
    assert f"{FEATURE_MIGRATION[controller.migrations]} (newest migration)" in result.stdout


def test_invoke_smoke_passes_against_the_deployed_feature(controller, feature_controller):
    result = invoke("smoke", "--inventory", str(feature_controller))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke PASSED: 10/10 checks" in result.stdout
    assert "FAIL" not in result.stdout
    how = "noauth" if controller.noauth else f"Keystone (cloud {controller.entry()['cloud']})"
    assert f"via {how}" in result.stderr


def test_invoke_smoke_fails_with_exit_1_when_the_api_is_down(controller, feature_controller):
    controller.stop_service()
    try:
        result = invoke("smoke", "--inventory", str(feature_controller))
    finally:
        restart_api(controller)
    assert result.returncode == 1
    assert "smoke FAILED" in result.stdout
    assert "error: sandbox: smoke test failed at api answers" in result.stderr


def test_loop_smoke_runs_the_smoke_test_with_the_controllers_own_auth(feature_controller):
    result = invoke("loop", "--inventory", str(feature_controller), "--smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--> sandbox: smoke (" in result.stderr
    assert "smoke PASSED: 10/10 checks" in result.stderr + result.stdout
