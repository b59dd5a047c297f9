"""Which services a deploy restarts: the map, the drivers, ``--service`` and ``services:``."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from deploy.base.cli import service_names
from deploy.base.errors import InventoryError, UsageError
from deploy.base.inventory import parse_inventory
from deploy.controller import service_health
from deploy.controller.service_map import NAMES, choose, driver_paths, needs_drivers, rule_for
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY

RUNNING = NAMES
STAND_IN = {"volume driver": ["tests/fake_driver.py", "volume/drivers/lvm.py",
                              "tests/__init__.py", "volume/drivers/__init__.py"],
            "backup driver": ["backup/drivers/posix.py", "backup/drivers/nfs.py"]}


def restarted(*paths: str, running=RUNNING, drivers=STAND_IN) -> set[str]:
    return set(choose(list(paths), running, drivers)[0])


class TestTheMap:
    @pytest.mark.parametrize("path, services", [
        ("volume/manager.py", {"volume"}),
        ("volume/flows/manager/create_volume.py", {"volume"}),
        ("volume/targets/lio.py", {"volume"}),
        ("api/v3/volumes.py", {"api"}),
        ("api/contrib/services.py", {"api"}),
        ("policies/volumes.py", {"api"}),
        ("volume/api.py", {"api"}),
        ("backup/api.py", {"api"}),
        ("scheduler/filters/capacity_filter.py", {"scheduler"}),
        ("scheduler/host_manager.py", {"scheduler"}),
        ("backup/manager.py", {"backup"}),
        ("cmd/volume.py", {"volume"}),
        ("cmd/manage.py", set()),
        ("tests/unit/test_volume.py", set()),
        ("opts.py", set()),
    ])
    def test_a_service_own_code_restarts_that_service(self, path, services):
        assert restarted(path) == services

    @pytest.mark.parametrize("path", [
        "objects/volume.py", "db/sqlalchemy/api.py", "db/migrations/versions/x_y.py", "rpc.py",
        "utils.py", "context.py", "exception.py", "i18n.py", "coordination.py",
        "flow_utils.py", "manager.py", "service.py", "quota.py", "quota_utils.py",
        "volume/rpcapi.py", "scheduler/rpcapi.py", "backup/rpcapi.py",
        "volume/volume_types.py", "volume/volume_utils.py", "common/config.py",
        "a_new_top_level_module.py", "devloop_it/probe.py",
    ])
    def test_shared_code_and_unknown_code_restart_every_service(self, path):
        assert restarted(path) == set(NAMES)

    def test_only_the_running_services_are_restarted(self):
        assert restarted("objects/volume.py", running=("volume",)) == {"volume"}
        reasons, unloaded = choose(["api/v3/volumes.py"], ("volume",))
        assert reasons == {} and unloaded == ["api/v3/volumes.py"]

    def test_a_driver_is_restarted_only_if_the_configured_driver_loads_it(self):
        assert restarted("volume/drivers/lvm.py") == {"volume"}       # the stand-in's base
        assert restarted("tests/fake_driver.py") == {"volume"}
        assert restarted("volume/drivers/netapp/common.py") == set()
        assert restarted("backup/drivers/posix.py") == {"backup"}
        assert restarted("backup/drivers/swift.py") == set()

    def test_reasons_name_the_first_file_and_count_the_rest(self):
        reasons, unloaded = choose(["volume/manager.py", "volume/driver.py",
                                    "volume/drivers/netapp/common.py"], RUNNING, STAND_IN)
        assert reasons == {"volume": "cinder/volume/manager.py changed and 1 more"}
        assert unloaded == ["volume/drivers/netapp/common.py"]

    def test_the_drivers_are_read_only_when_a_driver_rule_decides(self):
        assert not needs_drivers(["volume/manager.py", "api/v3/volumes.py"])
        assert needs_drivers(["volume/drivers/rbd.py"])
        assert needs_drivers(["tests/fake_driver.py"])

    def test_more_specific_rules_win(self):
        assert rule_for("volume/rpcapi.py")[0] == "volume/rpcapi.py"
        assert rule_for("volume/drivers/lvm.py")[0] == "volume/drivers/"

    def test_a_driver_class_names_its_module_and_package(self):
        assert driver_paths("cinder.volume.drivers.netapp.common.NetAppDriver") == [
            "volume/drivers/netapp/common.py", "volume/drivers/netapp/"]
        assert driver_paths("cinder.tests.fake_driver.FakeLoggingVolumeDriver") == [
            "tests/fake_driver.py"]
        assert driver_paths("cinder.volume.drivers.lvm.LVMVolumeDriver") == [
            "volume/drivers/lvm.py"]
        assert driver_paths("other.Driver") == []


class TestConfiguredDrivers:
    """The controller-side reader of cinder.conf's drivers and their imports (2.7, 3.6, ours)."""

    @pytest.fixture(autouse=True)
    def interpreter(self, python):  # noqa: F811
        self.python = python

    def run(self, tmp_path, conf: str) -> dict:
        cinder = tmp_path / "cinder"
        for rel, text in {
            "tests/__init__.py": "",
            "tests/fake_driver.py": "from cinder.volume.drivers import lvm\nimport os\n",
            "volume/drivers/__init__.py": "",
            "volume/drivers/lvm.py": "from cinder.volume import driver\n",
            "backup/drivers/posix.py": "from cinder.backup.drivers import nfs\n",
            "backup/drivers/nfs.py": "",
        }.items():
            (cinder / rel).parent.mkdir(parents=True, exist_ok=True)
            (cinder / rel).write_text(text)
        (tmp_path / "a.conf").write_text("[DEFAULT]\nvolume_driver = nope\n")
        (tmp_path / "b.conf").write_text(textwrap.dedent(conf))
        out = subprocess.run([self.python, *STDLIB_ONLY, "-c", script("configured_drivers"),
                              str(cinder),
                              str(tmp_path / "a.conf"), str(tmp_path / "b.conf")],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def test_enabled_backends_name_the_volume_driver_and_its_imports_are_followed(self, tmp_path):
        found = self.run(tmp_path, """\
            [DEFAULT]
            enabled_backends = stand-in
            backup_driver = cinder.backup.drivers.posix.PosixBackupDriver
            [stand-in]
            volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
            """)
        assert found["volume_driver"] == ["cinder.tests.fake_driver.FakeLoggingVolumeDriver"]
        assert sorted(found["modules"]["volume driver"]) == [
            "tests/fake_driver.py", "volume/drivers/__init__.py", "volume/drivers/lvm.py"]
        assert sorted(found["modules"]["backup driver"]) == [
            "backup/drivers/nfs.py", "backup/drivers/posix.py"]

    def test_without_backends_the_default_section_decides_a_later_file_winning(self, tmp_path):
        found = self.run(tmp_path, "[DEFAULT]\nvolume_driver = cinder.volume.drivers.lvm.X\n")
        assert found["volume_driver"] == ["cinder.volume.drivers.lvm.X"]
        assert found["backup_driver"] == ["cinder.backup.drivers.swift.SwiftBackupDriver"]


class TestServiceFlag:
    def test_names_come_back_in_the_services_order(self):
        assert service_names("--service", "volume,api") == ("api", "volume")
        assert service_names("--service", ["backup", "scheduler"]) == ("scheduler", "backup")
        assert service_names("--service", "all") == NAMES
        assert service_names("--service", None) is None

    @pytest.mark.parametrize("value, message", [
        ("volumes", "--service volumes: no such service; expected one or more of api, "
                    "scheduler, volume, backup, comma-separated, or all"),
        (",", "--service: expected one or more of api, scheduler, volume, backup, "
              "comma-separated, or all"),
    ])
    def test_a_bad_value_is_one_usage_error(self, value, message):
        with pytest.raises(UsageError) as raised:
            service_names("--service", value)
        assert str(raised.value) == message
        assert raised.value.exit_code == 2


class TestInventoryServices:
    def parse(self, tmp_path, services) -> object:
        text = json.dumps({"source": str(tmp_path), "controllers": {
            "c": {"address": "10.0.0.1", "services": services}}})
        return parse_inventory(text, tmp_path / "hosts.yaml")

    def test_services_limit_the_controller_in_the_services_order(self, tmp_path):
        assert self.parse(tmp_path, ["volume", "api"]).get("c").services == ("api", "volume")

    @pytest.mark.parametrize("value", [[], ["volumes"], "volume", ["api", "api"], [1]])
    def test_a_bad_services_value_is_one_clear_line(self, tmp_path, value):
        with pytest.raises(InventoryError) as raised:
            self.parse(tmp_path, value)
        assert ("controllers.c.services: expected a list of services, each once, from api, "
                "scheduler, volume, backup") in str(raised.value)


class TestHeartbeat:
    def test_cinder_times_read_as_utc_epoch_seconds(self):
        assert service_health.parse_time("1970-01-01T00:01:00.500000") == 60.5
        assert service_health.parse_time("1970-01-01T00:01:00") == 60.0
        assert service_health.parse_time("1970-01-01 00:01:00+00:00") == 60.0
        assert service_health.parse_time(None) is None
        assert service_health.parse_time("soon") is None

    def test_fresh_needs_every_entry_that_was_up_to_report_after_the_restart(self):
        E = service_health.Entry
        listed = [E("cinder-backup", "h@a", "up", 20.0), E("cinder-backup", "h@b", "up", 5.0),
                  E("cinder-scheduler", "h", "up", 20.0)]
        assert service_health.fresh("cinder-backup", listed, 10.0, {"h@a"})
        assert not service_health.fresh("cinder-backup", listed, 10.0, {"h@a", "h@b"})
        assert not service_health.fresh("cinder-volume", listed, 10.0, set())
        down = [E("cinder-backup", "h@a", "down", 20.0)]
        assert not service_health.fresh("cinder-backup", down, 10.0, set())

    def test_the_volume_service_needs_a_heartbeat_after_its_write_at_start(self):
        # the write at start comes before the driver's init; only a heartbeat proves it
        E = service_health.Entry
        seen: dict = {}
        assert not service_health.fresh("cinder-volume", [E("cinder-volume", "h@a", "up", 11.0)],
                                        10.0, {"h@a"}, seen)
        assert not service_health.fresh("cinder-volume", [E("cinder-volume", "h@a", "up", 11.0)],
                                        10.0, {"h@a"}, seen)
        assert service_health.fresh("cinder-volume", [E("cinder-volume", "h@a", "up", 21.0)],
                                    10.0, {"h@a"}, seen)
