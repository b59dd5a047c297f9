"""A deploy sends what changed since this checkout's last one, and never misses a change there.

After a first deploy (the whole tree compared: in one call if small, else
by rsync), a deploy sends only the files changed since, in one call, with
the (size, mtime) of the rest for the controller to check. A file that is
not as this checkout left it (another checkout's deploy, a hand edit) is
named, compared and sent as rsync would; rollback still restores.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.support import invoke, write_inventory

pytestmark = pytest.mark.integration

#: more files than one call takes whole: the first deploy goes through rsync
BIG = 2001


@pytest.fixture
def area(controller, source):
    """A fresh directory of the package for this spec, removed from the controller afterwards."""
    name = f"devloop_inc_{uuid.uuid4().hex[:6]}"
    (source / name).mkdir()
    yield name
    shutil.rmtree(controller.cinder_dir / name, ignore_errors=True)


def deploy(hosts: Path, *args: str):
    result = invoke("deploy", "--inventory", str(hosts), "--no-restart", "--verbose", *args)
    assert result.returncode == 0, result.stderr
    return result


class TestWholeCheckout:
    def test_one_changed_file_of_a_big_tree_goes_in_one_call_and_rolls_back(
            self, controller, controller_hosts, source, area):
        for index in range(BIG):
            (source / area / f"data_{index:04d}.txt").write_text(f"{index}\n")
        module = source / area / "module.py"
        module.write_text("VALUE = 1\n")
        first = deploy(controller_hosts)
        assert "[local] $ rsync " in first.stderr and "--dry-run" in first.stderr  # whole tree
        there = controller.cinder_dir / area / "module.py"
        assert there.read_text() == "VALUE = 1\n"

        module.write_text("VALUE = 2\n")
        second = deploy(controller_hosts)

        assert "[local] $ rsync " not in second.stderr
        assert (f"1 file(s) changed since this checkout's last deploy here; {BIG} more "
                f"checked unchanged on the controller, in one call") in second.stderr
        assert "not as this checkout last sent them" not in second.stderr
        assert second.stdout.splitlines() == [f"sbx: changed cinder/{area}/module.py"]
        assert there.read_text() == "VALUE = 2\n"

        undone = invoke("rollback", "--inventory", str(controller_hosts), "--no-restart")
        assert undone.returncode == 0, undone.stderr
        assert "restored 1 file(s), removed 0" in undone.stderr
        assert there.read_text() == "VALUE = 1\n"


@pytest.mark.parametrize("controller", ["supervisord", "legacy"], indirect=True)
class TestNothingChangedThereIsMissed:
    def test_another_checkouts_deploy_in_between_is_detected_and_compared(
            self, controller, controller_hosts, source, area, tmp_path):
        shared, mine = source / area / "shared.py", source / area / "mine.py"
        shared.write_text("OWNER = 'me'\n")
        mine.write_text("MINE = 1\n")
        deploy(controller_hosts)
        other = tmp_path / "other" / "cinder"
        (other / area).mkdir(parents=True)
        (other / area / "shared.py").write_text("OWNER = 'a colleague'\n")
        other_hosts = write_inventory(tmp_path / "other.yaml", other, {"sbx": controller.entry()})
        deploy(other_hosts)
        there = controller.cinder_dir / area / "shared.py"
        assert there.read_text() == "OWNER = 'a colleague'\n"

        mine.write_text("MINE = 2\n")
        result = deploy(controller_hosts)

        assert (f"1 file(s) on the controller are not as this checkout last sent them "
                f"({area}/shared.py)") in result.stderr
        assert "comparing them too" in result.stderr
        # as rsync would: the controller's copy differs from this tree's, so it is sent
        assert there.read_text() == "OWNER = 'me'\n"
        assert (controller.cinder_dir / area / "mine.py").read_text() == "MINE = 2\n"

    def test_a_hand_edit_there_is_detected_sent_over_and_kept_in_the_backup(
            self, controller, controller_hosts, source, area):
        (source / area / "edited.py").write_text("EDITED = False\n")
        mine = source / area / "mine.py"
        mine.write_text("MINE = 1\n")
        deploy(controller_hosts)
        there = controller.cinder_dir / area / "edited.py"
        there.write_text("EDITED = 'by hand'\n")

        mine.write_text("MINE = 2\n")
        result = deploy(controller_hosts)

        assert f"({area}/edited.py)" in result.stderr
        assert there.read_text() == "EDITED = False\n"
        undone = invoke("rollback", "--inventory", str(controller_hosts), "--no-restart")
        assert undone.returncode == 0, undone.stderr
        assert there.read_text() == "EDITED = 'by hand'\n"      # nothing lost
