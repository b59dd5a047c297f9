"""The inventory's ``cloud`` key and the journal command of ``logs --journal``."""
from __future__ import annotations

import pytest

from deploy.base.errors import InventoryError
from deploy.base.inventory import parse_inventory
from deploy.workflows.logs import journal_argv


def test_a_controller_may_name_its_cloud_and_defaults_to_none(tmp_path):
    (tmp_path / "cinder").mkdir()
    inv = parse_inventory("source: cinder\ncontrollers:\n  a: {address: h, cloud: mine}\n"
                          "  b: {address: h}\n", tmp_path / "hosts.yaml")
    assert inv.get("a").cloud == "mine"
    assert inv.get("b").cloud is None


def test_a_cloud_that_is_not_a_name_is_refused_with_its_place(tmp_path):
    (tmp_path / "cinder").mkdir()
    with pytest.raises(InventoryError) as caught:
        parse_inventory("source: cinder\ncontrollers:\n  a: {address: h, cloud: 5}\n",
                        tmp_path / "hosts.yaml")
    assert "controllers.a.cloud: expected a non-empty string" in caught.value.lines()[0]


@pytest.mark.parametrize("follow, expected", [
    (False, ["journalctl", "--unit", "openstack-cinder-api.service", "--lines", "20",
             "--no-pager"]),
    (True, ["journalctl", "--unit", "openstack-cinder-api.service", "--lines", "20",
            "--no-pager", "--follow"]),
])
def test_journal_argv_reads_the_units_journal(follow, expected):
    assert journal_argv("openstack-cinder-api.service", 20, follow) == expected
