"""The os-cluster-manage REST API, over real HTTP against a real cinder-api.

cinder-api runs from the patched env on sqlite with ``auth_strategy =
noauth`` (every request is admin); the 403 tests start a second one whose
policy file refuses the cluster_manage rules.

Every spec runs against both releases the feature targets (the ``api_env``
fixture): cinder 29.0.0 and Cinder Train 15.6.0 (Python 2.7), each with the
common tree cinder_patch/cinder and its own release tree laid over it
(cinder_patch/releases/29, releases/train). The contract is the same: same
bodies, status codes, pagination, sorting and errors. Where Train's framework
cannot give the same answer the spec says so, with ``Wording`` or
``client.train``:

* Train's router has no project-less URLs (``/v3/os-cluster-manage``): 404.
* Train validates with jsonschema 3.0.2, whose messages differ in two ways:
  an empty string "is too short" (not "should be non-empty"), and a body
  with both a missing and an unexpected key reports the unexpected one.
  The status (400) is the same.
"""

from __future__ import annotations

import datetime
import uuid
from typing import NamedTuple

import pytest

from tests.cinder_patch.cinder_api import Client

pytestmark = pytest.mark.integration

BASE = "/os-cluster-manage"
CLUSTER_KEYS = {"id", "name", "metadata", "created_at", "updated_at"}


class Wording(NamedTuple):
    """A message fragment that Cinder Train words differently."""

    default: str
    train: str


def wording(client: Client, fragment: str | Wording) -> str:
    """The fragment of an error message to expect from ``client``'s API."""
    if isinstance(fragment, Wording):
        return fragment.train if client.train else fragment.default
    return fragment


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create(client: Client, **cluster: object) -> dict:
    reply = client.post(BASE, {"cluster": cluster})
    assert reply.status == 200, reply
    return reply.json["cluster"]


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value)


# --- clusters -------------------------------------------------------------

def test_create_returns_200_and_the_cluster(client: Client) -> None:
    name = unique()
    reply = client.post(BASE, {"cluster": {
        "name": name, "metadata": {"attr10": "kaska", "attr2": "111"}}})
    assert reply.status == 200, reply
    cluster = reply.json["cluster"]
    assert set(cluster) == CLUSTER_KEYS
    assert uuid.UUID(cluster["id"])
    assert cluster["name"] == name
    assert cluster["metadata"] == {"attr10": "kaska", "attr2": "111"}
    assert parse_time(cluster["created_at"])
    assert cluster["updated_at"] is None


def test_create_with_empty_cluster_has_no_name_and_no_metadata(
        client: Client) -> None:
    cluster = create(client)
    assert cluster["name"] is None
    assert cluster["metadata"] == {}


def test_create_with_null_name_is_unnamed(client: Client) -> None:
    assert create(client, name=None)["name"] is None


def test_names_are_not_unique(client: Client) -> None:
    name = unique()
    first, second = create(client, name=name), create(client, name=name)
    assert first["id"] != second["id"]


def test_show_returns_the_cluster(client: Client) -> None:
    created = create(client, name=unique(), metadata={"k": "v"})
    reply = client.get(f"{BASE}/{created['id']}")
    assert reply.status == 200, reply
    assert reply.json == {"cluster": created}


def test_urls_without_project_id_work_too(client: Client) -> None:
    created = create(client, name=unique())
    reply = client.get(f"{BASE}/{created['id']}", with_project=False)
    if client.train:
        # Train's ProjectMapper routes /v3/{project_id}/... only.
        assert reply.status == 404, reply
        assert client.get(BASE, with_project=False).status == 404
        return
    assert reply.status == 200, reply
    assert reply.json["cluster"]["id"] == created["id"]
    listed = client.get(f"{BASE}?name={created['name']}", with_project=False)
    assert [c["id"] for c in listed.json["clusters"]] == [created["id"]]


def test_list_returns_clusters_key(client: Client) -> None:
    created = create(client, name=unique())
    reply = client.get(BASE)
    assert reply.status == 200, reply
    assert created in reply.json["clusters"]
    assert all(set(c) == CLUSTER_KEYS for c in reply.json["clusters"])


def test_list_filters_by_exact_name(client: Client) -> None:
    name = unique()
    wanted = [create(client, name=name)["id"] for _ in range(2)]
    create(client, name=name + "x")
    reply = client.get(f"{BASE}?name={name}")
    assert sorted(c["id"] for c in reply.json["clusters"]) == sorted(wanted)


@pytest.mark.parametrize("query, descending", [
    ("sort=id:asc", False),
    ("sort=id:desc", True),
    ("sort_key=id&sort_dir=asc", False),
    ("sort_key=id&sort_dir=desc", True),
])
def test_list_sorts(client: Client, query: str, descending: bool) -> None:
    name = unique()
    ids = [create(client, name=name)["id"] for _ in range(3)]
    reply = client.get(f"{BASE}?name={name}&{query}")
    assert reply.status == 200, reply
    assert [c["id"] for c in reply.json["clusters"]] == sorted(
        ids, reverse=descending)


def test_list_sorts_on_several_keys(client: Client) -> None:
    tag = unique()
    made = [create(client, name=f"{tag}-{n}") for n in ("b", "a", "c")]
    reply = client.get(f"{BASE}?sort=name:asc,created_at:desc")
    assert reply.status == 200, reply
    names = [c["name"] for c in reply.json["clusters"]
             if (c["name"] or "").startswith(tag)]
    assert names == sorted(c["name"] for c in made)


def test_list_pages_with_limit_and_marker(client: Client) -> None:
    name = unique()
    ids = sorted(create(client, name=name)["id"] for _ in range(3))
    first = client.get(f"{BASE}?name={name}&sort=id:asc&limit=2")
    assert [c["id"] for c in first.json["clusters"]] == ids[:2]
    second = client.get(f"{BASE}?name={name}&sort=id:asc&limit=2"
                        f"&marker={ids[1]}")
    assert [c["id"] for c in second.json["clusters"]] == ids[2:]


def test_list_skips_with_offset(client: Client) -> None:
    name = unique()
    ids = sorted(create(client, name=name)["id"] for _ in range(3))
    reply = client.get(f"{BASE}?name={name}&sort=id:asc&offset=1")
    assert [c["id"] for c in reply.json["clusters"]] == ids[1:]


def test_update_name_keeps_metadata(client: Client) -> None:
    created = create(client, name=unique(), metadata={"k": "v"})
    reply = client.put(f"{BASE}/{created['id']}", {"cluster": {"name": "new"}})
    assert reply.status == 200, reply
    cluster = reply.json["cluster"]
    assert cluster["name"] == "new"
    assert cluster["metadata"] == {"k": "v"}
    assert parse_time(cluster["updated_at"]) >= parse_time(
        cluster["created_at"])
    assert client.get(f"{BASE}/{created['id']}").json["cluster"] == cluster


def test_update_metadata_replaces_the_whole_set(client: Client) -> None:
    created = create(client, name=unique(), metadata={"a": "1", "b": "2"})
    reply = client.put(f"{BASE}/{created['id']}",
                       {"cluster": {"metadata": {"b": "3", "c": "4"}}})
    assert reply.status == 200, reply
    assert reply.json["cluster"]["metadata"] == {"b": "3", "c": "4"}
    assert reply.json["cluster"]["name"] == created["name"]


def test_update_name_to_null_unnames_it(client: Client) -> None:
    created = create(client, name=unique())
    reply = client.put(f"{BASE}/{created['id']}", {"cluster": {"name": None}})
    assert reply.status == 200, reply
    assert reply.json["cluster"]["name"] is None


def test_delete_returns_202_and_the_cluster_is_gone(client: Client) -> None:
    created = create(client, name=unique(), metadata={"k": "v"})
    reply = client.delete(f"{BASE}/{created['id']}")
    assert reply.status == 202, reply
    assert client.get(f"{BASE}/{created['id']}").status == 404
    listed = client.get(f"{BASE}?name={created['name']}")
    assert listed.json["clusters"] == []
    assert created["id"] not in [c["id"] for c in
                                 client.get(BASE).json["clusters"]]


def test_deleted_cluster_cannot_be_used_as_marker(client: Client) -> None:
    created = create(client, name=unique())
    assert client.delete(f"{BASE}/{created['id']}").status == 202
    reply = client.get(f"{BASE}?marker={created['id']}")
    assert reply.status == 400, reply


@pytest.mark.parametrize("method, path, body", [
    ("GET", "", None),
    ("PUT", "", {"cluster": {"name": "x"}}),
    ("DELETE", "", None),
    ("GET", "/metadata", None),
    ("POST", "/metadata", {"metadata": {"k": "v"}}),
    ("PUT", "/metadata", {"metadata": {"k": "v"}}),
    ("GET", "/metadata/k", None),
    ("PUT", "/metadata/k", {"meta": {"k": "v"}}),
    ("DELETE", "/metadata/k", None),
])
def test_unknown_cluster_is_404(client: Client, method: str, path: str,
                                body: object) -> None:
    missing = str(uuid.uuid4())
    reply = client.request(method, f"{BASE}/{missing}{path}", body)
    assert reply.status == 404, reply
    assert missing in reply.error_message()
    assert "itemNotFound" in reply.json


def test_deleted_cluster_is_404_everywhere(client: Client) -> None:
    created = create(client, name=unique(), metadata={"k": "v"})
    deleted = client.delete(f"{BASE}/{created['id']}")
    assert deleted.status == 202, deleted
    for method, path, body in [("GET", "", None), ("DELETE", "", None),
                               ("GET", "/metadata", None),
                               ("GET", "/metadata/k", None)]:
        reply = client.request(method, f"{BASE}/{created['id']}{path}", body)
        assert reply.status == 404, (method, path, reply)


# --- metadata -------------------------------------------------------------

@pytest.fixture
def cluster(client: Client) -> dict:
    return create(client, name=unique(), metadata={"a": "1", "b": "2"})


def test_get_metadata(client: Client, cluster: dict) -> None:
    reply = client.get(f"{BASE}/{cluster['id']}/metadata")
    assert reply.status == 200, reply
    assert reply.json == {"metadata": {"a": "1", "b": "2"}}


def test_post_metadata_merges(client: Client, cluster: dict) -> None:
    reply = client.post(f"{BASE}/{cluster['id']}/metadata",
                        {"metadata": {"b": "20", "c": "3"}})
    assert reply.status == 200, reply
    assert reply.json == {"metadata": {"a": "1", "b": "20", "c": "3"}}
    shown = client.get(f"{BASE}/{cluster['id']}").json["cluster"]
    assert shown["metadata"] == {"a": "1", "b": "20", "c": "3"}


def test_put_metadata_replaces(client: Client, cluster: dict) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}/metadata",
                       {"metadata": {"c": "3"}})
    assert reply.status == 200, reply
    assert reply.json == {"metadata": {"c": "3"}}
    assert client.get(f"{BASE}/{cluster['id']}/metadata").json == {
        "metadata": {"c": "3"}}


def test_put_empty_metadata_clears_it(client: Client, cluster: dict) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}/metadata", {"metadata": {}})
    assert reply.status == 200, reply
    assert reply.json == {"metadata": {}}


def test_get_metadata_key(client: Client, cluster: dict) -> None:
    reply = client.get(f"{BASE}/{cluster['id']}/metadata/a")
    assert reply.status == 200, reply
    assert reply.json == {"meta": {"a": "1"}}


def test_put_metadata_key_sets_one_key(client: Client, cluster: dict) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}/metadata/c",
                       {"meta": {"c": "3"}})
    assert reply.status == 200, reply
    assert reply.json == {"meta": {"c": "3"}}
    assert client.get(f"{BASE}/{cluster['id']}/metadata").json == {
        "metadata": {"a": "1", "b": "2", "c": "3"}}


def test_delete_metadata_key(client: Client, cluster: dict) -> None:
    reply = client.delete(f"{BASE}/{cluster['id']}/metadata/a")
    assert reply.status == 200, reply
    assert client.get(f"{BASE}/{cluster['id']}/metadata").json == {
        "metadata": {"b": "2"}}
    assert client.get(f"{BASE}/{cluster['id']}/metadata/a").status == 404


@pytest.mark.parametrize("method, body", [
    ("GET", None), ("DELETE", None)])
def test_unknown_metadata_key_is_404(client: Client, cluster: dict,
                                     method: str, body: object) -> None:
    reply = client.request(method, f"{BASE}/{cluster['id']}/metadata/nope",
                           body)
    assert reply.status == 404, reply
    assert "nope" in reply.error_message()


def test_deleted_key_can_be_set_again(client: Client, cluster: dict) -> None:
    assert client.delete(f"{BASE}/{cluster['id']}/metadata/a").status == 200
    reply = client.put(f"{BASE}/{cluster['id']}/metadata/a",
                       {"meta": {"a": "again"}})
    assert reply.status == 200, reply
    assert client.get(f"{BASE}/{cluster['id']}/metadata/a").json == {
        "meta": {"a": "again"}}


# --- bad requests ---------------------------------------------------------

LONG = "x" * 256

BAD_CLUSTER_BODIES = [
    # (id, body, message fragment)
    ("missing_cluster_key", {}, "'cluster' is a required property"),
    ("unknown_top_level_field", {"cluster": {"name": "x"}, "extra": 1},
     "Additional properties are not allowed"),
    ("unknown_field", {"cluster": {"color": "red"}}, "'color' was unexpected"),
    ("cluster_not_an_object", {"cluster": "c1"}, "is not of type 'object'"),
    ("body_not_an_object", ["cluster"], "is not of type 'object'"),
    ("name_not_a_string", {"cluster": {"name": 5}}, "is not of type"),
    ("empty_name", {"cluster": {"name": ""}},
     Wording("should be non-empty", train="is too short")),
    ("blank_name", {"cluster": {"name": "   "}}, "does not match"),
    ("over_long_name", {"cluster": {"name": LONG}}, "is too long"),
    ("metadata_not_an_object", {"cluster": {"metadata": ["a"]}},
     "is not of type 'object'"),
    ("metadata_value_not_a_string", {"cluster": {"metadata": {"k": 1}}},
     "is not of type 'string'"),
    ("metadata_value_null", {"cluster": {"metadata": {"k": None}}},
     "is not of type 'string'"),
    ("empty_metadata_key", {"cluster": {"metadata": {"": "v"}}},
     "does not match any of the regexes"),
    ("over_long_metadata_key", {"cluster": {"metadata": {LONG: "v"}}},
     "does not match any of the regexes"),
    ("over_long_metadata_value", {"cluster": {"metadata": {"k": LONG}}},
     "is too long"),
]


@pytest.mark.parametrize("body, fragment",
                         [case[1:] for case in BAD_CLUSTER_BODIES],
                         ids=[case[0] for case in BAD_CLUSTER_BODIES])
def test_post_with_bad_body_is_400(client: Client, body: object,
                                   fragment: str) -> None:
    reply = client.post(BASE, body)
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()


@pytest.mark.parametrize("body, fragment",
                         [case[1:] for case in BAD_CLUSTER_BODIES],
                         ids=[case[0] for case in BAD_CLUSTER_BODIES])
def test_put_with_bad_body_is_400(client: Client, cluster: dict,
                                  body: object, fragment: str) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}", body)
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()


def test_put_with_unknown_field_is_400(client: Client, cluster: dict) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}",
                       {"cluster": {"name": "x", "id": "y"}})
    assert reply.status == 400, reply
    assert "'id' was unexpected" in reply.error_message()


def test_put_with_nothing_to_update_is_400(client: Client,
                                           cluster: dict) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}", {"cluster": {}})
    assert reply.status == 400, reply
    assert reply.error_message()


@pytest.mark.parametrize("method, path", [
    ("POST", ""), ("PUT", "/{id}"), ("POST", "/{id}/metadata"),
    ("PUT", "/{id}/metadata"), ("PUT", "/{id}/metadata/a")])
@pytest.mark.parametrize("raw, fragment", [
    (b'{"cluster": ', "Malformed request body"),
    (b"", "Missing request body"),
])
def test_malformed_or_missing_json_is_400(client: Client, cluster: dict,
                                          method: str, path: str,
                                          raw: bytes, fragment: str) -> None:
    reply = client.request(method, BASE + path.format(id=cluster["id"]),
                           raw=raw)
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()


BAD_METADATA_BODIES = [
    ("missing_metadata_key", {}, "'metadata' is a required property"),
    ("meta_instead_of_metadata", {"meta": {"k": "v"}},
     Wording("'metadata' is a required property",
             train="'meta' was unexpected")),
    ("metadata_not_an_object", {"metadata": "k=v"}, "is not of type 'object'"),
    ("value_not_a_string", {"metadata": {"k": 1}}, "is not of type 'string'"),
    ("empty_key", {"metadata": {"": "v"}}, "does not match any of the regexes"),
    ("over_long_key", {"metadata": {LONG: "v"}},
     "does not match any of the regexes"),
    ("over_long_value", {"metadata": {"k": LONG}}, "is too long"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("body, fragment",
                         [case[1:] for case in BAD_METADATA_BODIES],
                         ids=[case[0] for case in BAD_METADATA_BODIES])
def test_metadata_with_bad_body_is_400(client: Client, cluster: dict,
                                       method: str, body: object,
                                       fragment: str) -> None:
    reply = client.request(method, f"{BASE}/{cluster['id']}/metadata", body)
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()
    assert client.get(f"{BASE}/{cluster['id']}/metadata").json == {
        "metadata": {"a": "1", "b": "2"}}


BAD_META_BODIES = [
    ("missing_meta_key", {}, "'meta' is a required property"),
    ("metadata_instead_of_meta", {"metadata": {"a": "v"}},
     Wording("'meta' is a required property",
             train="'metadata' was unexpected")),
    ("key_not_matching_url", {"meta": {"other": "v"}},
     "Request body and URI mismatch"),
    ("empty_meta", {"meta": {}}, "meta"),
    ("two_keys", {"meta": {"a": "1", "b": "2"}}, "meta"),
    ("value_not_a_string", {"meta": {"a": 1}}, "is not of type 'string'"),
    ("over_long_value", {"meta": {"a": LONG}}, "is too long"),
]


@pytest.mark.parametrize("body, fragment",
                         [case[1:] for case in BAD_META_BODIES],
                         ids=[case[0] for case in BAD_META_BODIES])
def test_put_metadata_key_with_bad_body_is_400(client: Client, cluster: dict,
                                               body: object,
                                               fragment: str) -> None:
    reply = client.put(f"{BASE}/{cluster['id']}/metadata/a", body)
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()


BAD_QUERIES = [
    ("limit_not_an_integer", "limit=ten", "limit param must be an integer"),
    ("negative_limit", "limit=-1", "limit param must be positive"),
    ("negative_offset", "offset=-1", "offset"),
    ("unknown_marker", f"marker={uuid.uuid4()}", "could not be found"),
    ("unknown_sort_key", "sort=color:asc", "Invalid sort key color"),
    ("relationship_sort_key", "sort=cluster_metadata", "Invalid sort key"),
    ("unknown_sort_direction", "sort=name:sideways", "Unknown sort direction"),
    ("unknown_legacy_sort_key", "sort_key=color", "Invalid sort key color"),
    ("unknown_legacy_sort_dir", "sort_key=name&sort_dir=up",
     "Unknown sort direction"),
    ("sort_with_sort_key", "sort=name&sort_key=id", "cannot be used with"),
    ("unknown_parameter", "color=red", "Invalid query parameters: color"),
]


@pytest.mark.parametrize("query, fragment",
                         [case[1:] for case in BAD_QUERIES],
                         ids=[case[0] for case in BAD_QUERIES])
def test_list_with_bad_query_is_400(client: Client, query: str,
                                    fragment: str) -> None:
    reply = client.get(f"{BASE}?{query}")
    assert reply.status == 400, reply
    assert wording(client, fragment) in reply.error_message()


# --- policy ---------------------------------------------------------------

REFUSE_ALL = {name: "role:not-a-role" for name in (
    "cluster_manage:create", "cluster_manage:get", "cluster_manage:get_all",
    "cluster_manage:update", "cluster_manage:delete",
    "cluster_manage:get_metadata", "cluster_manage:update_metadata",
    "cluster_manage:delete_metadata")}


@pytest.fixture(scope="module")
def refusing_client(start_api) -> Client:
    """A client of a cinder-api whose policy file refuses cluster_manage."""
    return start_api(policy=REFUSE_ALL).client()


@pytest.mark.parametrize("method, path, body", [
    ("GET", "", None),
    ("POST", "", {"cluster": {"name": "x"}}),
    ("GET", "/{id}", None),
    ("PUT", "/{id}", {"cluster": {"name": "x"}}),
    ("DELETE", "/{id}", None),
    ("GET", "/{id}/metadata", None),
    ("POST", "/{id}/metadata", {"metadata": {"k": "v"}}),
    ("PUT", "/{id}/metadata", {"metadata": {"k": "v"}}),
    ("GET", "/{id}/metadata/k", None),
    ("PUT", "/{id}/metadata/k", {"meta": {"k": "v"}}),
    ("DELETE", "/{id}/metadata/k", None),
])
def test_request_refused_by_policy_is_403(refusing_client: Client,
                                          method: str, path: str,
                                          body: object) -> None:
    reply = refusing_client.request(
        method, BASE + path.format(id=uuid.uuid4()), body)
    assert reply.status == 403, reply
    assert "cluster_manage:" in reply.error_message()


def test_policy_file_leaves_other_apis_alone(refusing_client: Client) -> None:
    assert refusing_client.get("/types").status == 200


def test_extension_is_listed(client: Client) -> None:
    reply = client.get("/extensions/os-cluster-manage")
    assert reply.status == 200, reply
    assert reply.json["extension"]["alias"] == "os-cluster-manage"
