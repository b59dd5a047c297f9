"""A request the policy refuses gets 403, on the sandbox with the feature deployed.

With ``auth_strategy = noauth`` every request is an admin's, so the test
writes a policy file (the operator's override) that refuses every
``cluster_manage:*`` rule, restarts the API, and sends real requests.
"""
from __future__ import annotations

import subprocess

import pytest

from tests.cinder_patch import test_rest_api as rest_specs
from tests.cinder_patch.cinder_api import Client
from tests.support import wait_until

pytestmark = pytest.mark.integration

test_request_refused_by_policy_is_403 = rest_specs.test_request_refused_by_policy_is_403
test_policy_file_leaves_other_apis_alone = rest_specs.test_policy_file_leaves_other_apis_alone


def restart_api(sandbox) -> None:
    subprocess.run(["supervisorctl", "-c", str(sandbox.supervisor_conf), "restart", "cinder-api"],
                   check=True, capture_output=True)
    def answers() -> bool:
        try:
            return Client(sandbox.api_url.rstrip("/")).get("/types").status == 200
        except OSError:
            return False

    wait_until(answers, 60)


@pytest.fixture(scope="module")
def refusing_client(sandbox, deployed_feature):
    """The sandbox's API with a policy file that refuses every cluster_manage rule."""
    policy = sandbox.cinder_conf.with_name("policy.yaml")
    policy.write_text("".join(f'"{rule}": "{check}"\n'
                              for rule, check in rest_specs.REFUSE_ALL.items()))
    restart_api(sandbox)
    try:
        yield Client(sandbox.api_url.rstrip("/"))
    finally:
        policy.unlink()
        restart_api(sandbox)


