"""Deploy ids order the records: rollback undoes the newest by id."""
from __future__ import annotations

import time

from deploy.workflows.deployment import new_deploy_id


def test_ids_made_within_one_second_sort_in_the_order_they_were_made():
    ids = []
    for _ in range(5):
        ids.append(new_deploy_id())
        time.sleep(0.002)
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)
