"""A request the policy refuses gets 403, on both kinds of controller.

On the supervisord sandbox (``auth_strategy = noauth``) every request is an
admin's, so the spec writes a policy file (the operator's override) that
refuses every ``cluster_manage:*`` rule and restarts the API. On the rdo
controller the policy is Cinder's own default and the users are real:
``demo``, a member of project ``demo`` with a Keystone token, is refused
every os-cluster-manage operation, while the admin gets the 2xx (the REST
specs of test_feature.py run as the admin there).
"""
from __future__ import annotations

import pytest

from tests.cinder_patch import test_rest_api as rest_specs
from tests.cinder_patch.cinder_api import Client
from tests.support import wait_until

pytestmark = pytest.mark.integration

test_request_refused_by_policy_is_403 = rest_specs.test_request_refused_by_policy_is_403
test_policy_file_leaves_other_apis_alone = rest_specs.test_policy_file_leaves_other_apis_alone


def client_of(controller, member: bool = False) -> Client:
    """A REST client of the controller's API: noauth admin, or a Keystone token."""
    access = controller.api(member=member)
    return Client(access.base_url, access.project_id, access.token)


def restart_api(controller) -> None:
    controller.restart_service()

    def answers() -> bool:
        try:
            return client_of(controller).get("/types").status == 200
        except OSError:
            return False

    wait_until(answers, 60)


@pytest.fixture(scope="module")
def refusing_client(controller, feature_controller):
    """A client the policy refuses every cluster_manage rule to."""
    if not controller.noauth:
        yield client_of(controller, member=True)      # a real member user
        return
    policy = controller.host_path(controller.config_files[-1]).with_name("policy.yaml")
    policy.write_text("".join(f'"{rule}": "{check}"\n'
                              for rule, check in rest_specs.REFUSE_ALL.items()))
    restart_api(controller)
    try:
        yield client_of(controller)
    finally:
        policy.unlink()
        restart_api(controller)


@pytest.mark.parametrize("controller", ["rdo"], indirect=True)   # noauth has no users
def test_the_member_is_refused_with_a_real_keystone_token_and_the_admin_is_not(
        controller, feature_controller):
    admin, member = controller.api(), controller.api(member=True)
    assert member.project_id != admin.project_id
    assert ":" not in member.token          # not a noauth user:project pair
    assert client_of(controller, member=True).get("/volumes").status == 200
    refused = client_of(controller, member=True).post(rest_specs.BASE,
                                                      {"cluster": {"name": "member"}})
    assert refused.status == 403, refused
    assert "cluster_manage:create" in refused.error_message()
    created = client_of(controller).post(rest_specs.BASE, {"cluster": {"name": "admin"}})
    assert created.status == 200, created
    assert client_of(controller).delete(
        f"{rest_specs.BASE}/{created.json['cluster']['id']}").status == 202
