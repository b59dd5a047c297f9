"""cinder.cluster_manage.api (cluster_api): policy, DB calls, JSON views."""

import datetime
import json

import pytest

from cinder.cluster_manage import api as cluster_api
from cinder.cluster_manage import exception as cm_exception
from cinder import exception
from cinder.policies import cluster_manage as policies
from cinder import policy

API = cluster_api.API()


def test_create_returns_json_ready_dict(admin):
    cluster = API.create(admin, name="c1", metadata={"a": "1"})
    assert set(cluster) == {"id", "name", "metadata", "created_at",
                            "updated_at"}
    assert cluster["metadata"] == {"a": "1"}
    assert datetime.datetime.strptime(cluster["created_at"], "%Y-%m-%dT%H:%M:%S.%f")
    assert cluster["updated_at"] is None
    json.dumps(cluster)  # nothing needs a custom encoder


def test_get_get_all_update_delete(admin):
    created = API.create(admin, name="c1")
    assert API.get(admin, created["id"]) == created
    assert API.get_all(admin, filters={"name": "c1"}) == [created]
    updated = API.update(admin, created["id"],
                         {"name": "c2", "metadata": {"k": "v"}})
    assert updated["name"] == "c2" and updated["metadata"] == {"k": "v"}
    assert datetime.datetime.strptime(updated["updated_at"], "%Y-%m-%dT%H:%M:%S.%f")
    API.delete(admin, created["id"])
    with pytest.raises(cm_exception.ManagedClusterNotFound):
        API.get(admin, created["id"])


def test_metadata_calls(admin):
    cid = API.create(admin, metadata={"a": "1"})["id"]
    assert API.get_metadata(admin, cid) == {"a": "1"}
    assert API.update_metadata(admin, cid, {"b": "2"}) == {"a": "1", "b": "2"}
    assert API.update_metadata(admin, cid, {"c": "3"}, delete=True) == {
        "c": "3"}
    assert API.get_metadata_item(admin, cid, "c") == {"c": "3"}
    API.delete_metadata_item(admin, cid, "c")
    with pytest.raises(cm_exception.ManagedClusterMetadataNotFound):
        API.get_metadata_item(admin, cid, "c")


def test_policies_are_documented_and_admin_only():
    rules = policies.list_rules()
    assert {rule.name for rule in rules} == {
        "cluster_manage:create", "cluster_manage:get",
        "cluster_manage:get_all", "cluster_manage:update",
        "cluster_manage:delete", "cluster_manage:get_metadata",
        "cluster_manage:update_metadata", "cluster_manage:delete_metadata"}
    for rule in rules:
        assert rule.check_str == "rule:admin_api"
        assert rule.description and rule.operations


def test_register_policies_is_idempotent():
    cluster_api.register_policies()
    cluster_api.register_policies()
    assert "cluster_manage:get" in policy._ENFORCER.registered_rules
    assert "clusters:get" in policy._ENFORCER.registered_rules


@pytest.mark.parametrize("call", [
    lambda ctx: API.create(ctx, name="x"),
    lambda ctx: API.get(ctx, "x"),
    lambda ctx: API.get_all(ctx),
    lambda ctx: API.update(ctx, "x", {"name": "y"}),
    lambda ctx: API.delete(ctx, "x"),
    lambda ctx: API.get_metadata(ctx, "x"),
    lambda ctx: API.get_metadata_item(ctx, "x", "k"),
    lambda ctx: API.update_metadata(ctx, "x", {"k": "v"}),
    lambda ctx: API.delete_metadata_item(ctx, "x", "k"),
])
def test_non_admin_is_refused_by_policy(user, call):
    with pytest.raises(exception.PolicyNotAuthorized):
        call(user)


def test_policy_survives_enforcer_reset(admin):
    policy.reset()
    assert API.get_all(admin) == []
