"""The managed_cluster_* DB API on a real (sqlite) Cinder database."""

import pytest
import sqlalchemy as sa

from cinder.cluster_manage import exception as cm_exception
from cinder import exception
from release import cinder_models, db, db_api, models


def test_models_are_on_cinders_declarative_base():
    tables = cinder_models.BASE.metadata.tables
    assert tables["managed_clusters"] is models.ManagedCluster.__table__
    assert "managed_cluster_metadata" in tables
    assert "clusters" in tables  # upstream's own clusters are untouched


def test_create_returns_cluster_with_metadata(admin):
    cluster = db.managed_cluster_create(
        admin, {"name": "c1", "metadata": {"attr10": "kaska", "attr2": "111"}})
    assert len(cluster.id) == 36
    assert cluster.name == "c1"
    assert cluster["metadata"] == {"attr10": "kaska", "attr2": "111"}
    assert cluster.created_at is not None
    assert cluster.deleted is False


def test_dict_of_a_cluster_has_columns_rows_and_metadata(admin):
    cluster = db.managed_cluster_create(
        admin, {"name": "c1", "metadata": {"attr10": "kaska", "attr2": "111"}})
    as_dict = dict(db.managed_cluster_get(admin, cluster.id))
    assert {"id", "name", "created_at", "updated_at", "deleted_at",
            "deleted", "cluster_metadata", "metadata"} <= set(as_dict)
    assert as_dict["metadata"] == {"attr10": "kaska", "attr2": "111"}
    assert sorted((row.key, row.value)
                  for row in as_dict["cluster_metadata"]) == [
        ("attr10", "kaska"), ("attr2", "111")]
    assert cluster.get("metadata") == {"attr10": "kaska", "attr2": "111"}
    assert dict(iter(cluster))["metadata"] == as_dict["metadata"]


def test_create_without_values_has_no_name(admin):
    cluster = db.managed_cluster_create(admin, {})
    assert cluster.name is None
    assert cluster["metadata"] == {}


def test_create_uses_given_id(admin):
    cluster = db.managed_cluster_create(
        admin, {"id": "11111111-2222-3333-4444-555555555555"})
    assert cluster.id == "11111111-2222-3333-4444-555555555555"


def test_get_unknown_raises_not_found_with_message(admin):
    with pytest.raises(cm_exception.ManagedClusterNotFound) as caught:
        db.managed_cluster_get(admin, "nope")
    assert isinstance(caught.value, exception.NotFound)
    assert caught.value.code == 404
    assert "Managed cluster nope could not be found." == caught.value.msg


def test_user_context_is_allowed_anonymous_is_not(user):
    db.managed_cluster_create(user, {"name": "by-user"})
    with pytest.raises(exception.CinderException):
        db.managed_cluster_get_all(None)


def test_get_all_filters_by_name(admin):
    ids = {db.managed_cluster_create(admin, {"name": "a"}).id
           for _ in range(2)}
    db.managed_cluster_create(admin, {"name": "b"})
    found = db.managed_cluster_get_all(admin, filters={"name": "a"})
    assert {c.id for c in found} == ids


def test_get_all_sorts_and_pages(admin):
    for name in ("b", "c", "a"):
        db.managed_cluster_create(admin, {"name": name})
    names = [c.name for c in db.managed_cluster_get_all(
        admin, sort_keys=["name"], sort_dirs=["asc"])]
    assert names == ["a", "b", "c"]
    first = db.managed_cluster_get_all(admin, sort_keys=["name"],
                                       sort_dirs=["desc"], limit=2)
    assert [c.name for c in first] == ["c", "b"]
    rest = db.managed_cluster_get_all(admin, sort_keys=["name"],
                                      sort_dirs=["desc"], limit=2,
                                      marker=first[-1].id)
    assert [c.name for c in rest] == ["a"]
    skipped = db.managed_cluster_get_all(admin, sort_keys=["name"],
                                         sort_dirs=["asc"], offset=2)
    assert [c.name for c in skipped] == ["c"]


def test_get_all_default_order_is_newest_first(admin):
    for n in range(3):
        db.managed_cluster_create(admin, {"name": str(n)})
    found = db.managed_cluster_get_all(admin)
    keys = [(c.created_at, c.id) for c in found]
    assert len(keys) == 3
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"sort_keys": ["color"]}, "Invalid sort key color"),
    ({"sort_keys": ["cluster_metadata"]}, "Invalid sort key"),
    ({"sort_keys": ["name"], "sort_dirs": ["up"]}, "Unknown sort direction"),
    ({"filters": {"color": "red"}}, "Invalid filters: color"),
    ({"marker": "nope"}, "Marker nope could not be found"),
])
def test_get_all_rejects_bad_input(admin, kwargs, fragment):
    with pytest.raises(exception.InvalidInput) as caught:
        db.managed_cluster_get_all(admin, **kwargs)
    assert fragment in caught.value.msg


def test_update_name_and_replace_metadata(admin):
    cluster = db.managed_cluster_create(
        admin, {"name": "c1", "metadata": {"a": "1", "b": "2"}})
    updated = db.managed_cluster_update(
        admin, cluster.id, {"name": "c2", "metadata": {"b": "3", "c": "4"}})
    assert updated.name == "c2"
    assert updated["metadata"] == {"b": "3", "c": "4"}
    assert updated.updated_at is not None
    assert db.managed_cluster_get(admin, cluster.id)["metadata"] == {
        "b": "3", "c": "4"}


def test_update_only_name_keeps_metadata(admin):
    cluster = db.managed_cluster_create(admin, {"metadata": {"a": "1"}})
    updated = db.managed_cluster_update(admin, cluster.id, {"name": "n"})
    assert updated["metadata"] == {"a": "1"}


def test_update_refuses_other_fields(admin):
    cluster = db.managed_cluster_create(admin, {})
    with pytest.raises(exception.InvalidInput):
        db.managed_cluster_update(admin, cluster.id, {"id": "x"})


def test_update_unknown_raises_not_found(admin):
    with pytest.raises(cm_exception.ManagedClusterNotFound):
        db.managed_cluster_update(admin, "nope", {"name": "x"})


def test_destroy_soft_deletes_cluster_and_metadata(admin):
    cluster = db.managed_cluster_create(admin, {"metadata": {"a": "1"}})
    values = db.managed_cluster_destroy(admin, cluster.id)
    assert values["deleted"] is True and values["deleted_at"] is not None
    with pytest.raises(cm_exception.ManagedClusterNotFound):
        db.managed_cluster_get(admin, cluster.id)
    assert db.managed_cluster_get_all(admin) == []
    with db_api.get_engine().connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT deleted FROM managed_cluster_metadata")).fetchall()
        clusters = connection.execute(sa.text(
            "SELECT deleted, deleted_at FROM managed_clusters")).fetchall()
    assert [tuple(r) for r in rows] == [(1,)]
    assert clusters[0][0] == 1 and clusters[0][1] is not None
    with pytest.raises(cm_exception.ManagedClusterNotFound):
        db.managed_cluster_destroy(admin, cluster.id)


def test_deleted_clusters_are_hidden_even_with_read_deleted(admin):
    cluster = db.managed_cluster_create(admin, {})
    db.managed_cluster_destroy(admin, cluster.id)
    admin.read_deleted = "yes"
    assert db.managed_cluster_get_all(admin) == []


def test_metadata_get_merge_replace_delete(admin):
    cluster = db.managed_cluster_create(admin, {"metadata": {"a": "1"}})
    assert db.managed_cluster_metadata_get(admin, cluster.id) == {"a": "1"}
    merged = db.managed_cluster_metadata_update(
        admin, cluster.id, {"b": "2", "a": "10"}, delete=False)
    assert merged == {"a": "10", "b": "2"}
    replaced = db.managed_cluster_metadata_update(
        admin, cluster.id, {"c": "3"}, delete=True)
    assert replaced == {"c": "3"}
    db.managed_cluster_metadata_delete(admin, cluster.id, "c")
    assert db.managed_cluster_metadata_get(admin, cluster.id) == {}
    again = db.managed_cluster_metadata_update(
        admin, cluster.id, {"c": "30"}, delete=False)
    assert again == {"c": "30"}


def test_metadata_change_bumps_updated_at(admin):
    cluster = db.managed_cluster_create(admin, {})
    assert cluster.updated_at is None
    db.managed_cluster_metadata_update(admin, cluster.id, {"a": "1"}, False)
    assert db.managed_cluster_get(admin, cluster.id).updated_at is not None


def test_metadata_delete_unknown_key_raises(admin):
    cluster = db.managed_cluster_create(admin, {"metadata": {"a": "1"}})
    with pytest.raises(cm_exception.ManagedClusterMetadataNotFound) as caught:
        db.managed_cluster_metadata_delete(admin, cluster.id, "zz")
    assert caught.value.code == 404
    assert "zz" in caught.value.msg


@pytest.mark.parametrize("call", [
    lambda ctx: db.managed_cluster_metadata_get(ctx, "nope"),
    lambda ctx: db.managed_cluster_metadata_update(ctx, "nope", {}, False),
    lambda ctx: db.managed_cluster_metadata_delete(ctx, "nope", "k"),
])
def test_metadata_of_unknown_cluster_raises_not_found(admin, call):
    with pytest.raises(cm_exception.ManagedClusterNotFound):
        call(admin)


def _refused(what):
    """What oslo.db raises for an error of SQLite's it has no filter for."""
    from oslo_db import exception as db_exc
    return db_exc.DBError(sa.exc.OperationalError(
        "UPDATE managed_clusters ...", {}, Exception(what)))


def _failing_once(error):
    """A stand-in for _managed_cluster_get that raises ``error`` on its first call."""
    real = db._managed_cluster_get
    calls = []

    def get(context, cluster_id):
        calls.append(cluster_id)
        if len(calls) == 1:
            raise error
        return real(context, cluster_id)
    return get, calls


def test_a_write_sqlite_refuses_as_locked_runs_again(admin, monkeypatch):
    cluster = db.managed_cluster_create(admin, {"name": "c1"})
    get, calls = _failing_once(_refused("database is locked"))
    monkeypatch.setattr(db, "_managed_cluster_get", get)
    assert db.managed_cluster_metadata_update(
        admin, cluster.id, {"k": "v"}, False) == {"k": "v"}
    assert calls == [cluster.id, cluster.id]


def test_another_database_error_is_not_run_again(admin, monkeypatch):
    from oslo_db import exception as db_exc
    cluster = db.managed_cluster_create(admin, {"name": "c1"})
    get, calls = _failing_once(_refused("disk I/O error"))
    monkeypatch.setattr(db, "_managed_cluster_get", get)
    with pytest.raises(db_exc.DBError):
        db.managed_cluster_metadata_update(admin, cluster.id, {"k": "v"}, False)
    assert calls == [cluster.id]
