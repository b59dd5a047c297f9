"""The sandboxes' service set and broker, their pure parts: units, configs, names, the greeting.

The real thing (every kind booted, a volume created over RabbitMQ) is in
tests/integration/test_services_sandbox.py.
"""
from __future__ import annotations

import socket
import struct
import threading
from configparser import ConfigParser
from pathlib import Path

import pytest

from deploy.sandbox import broker, devstack, legacy, rdo, services
from deploy.sandbox.broker import OwnBroker


def start_frame(properties: dict[str, str]) -> bytes:
    """An AMQP 0-9-1 Connection.Start frame whose server-properties are ``properties``."""
    table = b"".join(bytes([len(k)]) + k.encode() + b"S" + struct.pack(">I", len(v)) + v.encode()
                     for k, v in properties.items())
    # a nested table (capabilities) the parser must step over
    table = b"\x0ccapabilities" + b"F" + struct.pack(">I", 9) + b"\x03abc" + b"t\x01" + \
        b"\x00\x00\x00" + table
    payload = b"\x00\x0a\x00\x0a\x00\x09" + struct.pack(">I", len(table)) + table + \
        struct.pack(">I", 5) + b"PLAIN" + struct.pack(">I", 5) + b"en_US"
    return b"\x01\x00\x00" + struct.pack(">I", len(payload)) + payload + b"\xce"


def answering(reply: bytes):
    """A one-shot TCP server on loopback sending ``reply`` after the client's first bytes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            conn.sendall(reply)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def test_the_amqp_greeting_names_the_brokers_product_and_version():
    port = answering(start_frame({"cluster_name": "rabbit@localhost", "product": "RabbitMQ",
                                  "version": "3.10.8"}))
    assert broker.amqp_server("127.0.0.1", port) == "RabbitMQ 3.10.8"


def test_something_that_does_not_speak_amqp_is_no_broker():
    assert broker.amqp_server("127.0.0.1", answering(b"HTTP/1.0 400 Bad Request\r\n\r\n")) is None


def test_nothing_listening_is_no_broker():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert broker.amqp_server("127.0.0.1", port) is None


def test_each_sandbox_root_gets_a_node_name_of_its_own_on_localhost():
    a, b = OwnBroker(Path("/tmp/run-1/sandbox")), OwnBroker(Path("/tmp/run-2/sandbox"))
    assert a.node != b.node
    assert a.node.startswith("devloop-") and a.node.endswith("@localhost")


def test_the_sandboxs_rabbitmqctl_runs_as_rabbitmq_with_the_sandboxs_node_and_cookie():
    own = OwnBroker(Path("/srv/sbx"))
    assert own.rabbitmqctl("list_queues") == [
        "runuser", "-u", "rabbitmq", "--", "env", "HOME=/srv/sbx/var/lib/rabbitmq",
        "RABBITMQ_CONF_ENV_FILE=/srv/sbx/etc/rabbitmq/rabbitmq-env.conf",
        "/usr/lib/rabbitmq/bin/rabbitmqctl", "list_queues"]


def test_the_sandboxs_broker_programs_keep_to_its_own_epmd_and_stop_as_a_group():
    programs = dict(OwnBroker(Path("/srv/sbx")).programs())
    assert set(programs) == {"epmd", "rabbitmq-server"}
    assert "-address 127.0.0.1" in programs["epmd"] and "$ERL_EPMD_PORT" in programs["epmd"]
    server = programs["rabbitmq-server"]
    assert "user = rabbitmq" in server and "stopasgroup = true" in server
    assert 'RABBITMQ_CONF_ENV_FILE="/srv/sbx/etc/rabbitmq/rabbitmq-env.conf"' in server


def test_the_broker_makes_the_sandboxs_user_instead_of_guest():
    conf = broker.server_conf("cinder", "s3cret")
    assert "default_user = cinder\n" in conf and "default_pass = s3cret\n" in conf
    assert broker.transport_url("cinder", "s3cret", "10.0.0.2") == \
        "rabbit://cinder:s3cret@10.0.0.2:5672/"


def test_passwords_and_cookies_are_new_each_time_and_fit_a_url():
    first, second = broker.new_password(), broker.new_password()
    assert first != second and len(first) >= 20
    assert all(c.isalnum() or c in "-_" for c in first)
    cookie = broker.new_cookie()
    assert len(cookie) == 20 and cookie.isupper() and cookie != broker.new_cookie()


def cinder_conf(text: str) -> ConfigParser:
    parser = ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("text", [
    rdo._cinder_conf("10.0.0.2", "pw", "rpw"),
    legacy.cinder_conf_text(broker.transport_url("cinder", "rpw", "10.0.0.2")),
    devstack._cinder_conf("db", "10.0.0.2", "pw", "rpw"),
], ids=["rdo", "legacy", "devstack"])
def test_every_kinds_cinder_conf_names_rabbitmq_the_stand_in_and_posix_backups(text):
    conf = cinder_conf(text)
    default = conf["DEFAULT"]
    assert default["transport_url"].startswith("rabbit://") and "@10.0.0.2:5672/" in \
        default["transport_url"]
    assert default["enabled_backends"] == services.BACKEND == "fake-stand-in"
    assert conf[services.BACKEND]["volume_driver"] == \
        "cinder.tests.fake_driver.FakeLoggingVolumeDriver"
    assert default["backup_driver"] == "cinder.backup.drivers.posix.PosixBackupDriver"
    assert default["backup_posix_path"].endswith("/backup")
    assert "fake://" not in text


def test_devstack_uses_its_own_broker_user():
    url = cinder_conf(devstack._cinder_conf("db", "10.0.0.2", "pw", "rpw"))["DEFAULT"][
        "transport_url"]
    assert url == "rabbit://stackrabbit:rpw@10.0.0.2:5672/"


@pytest.mark.parametrize("units", [rdo.SERVICE_UNITS, legacy.SERVICE_UNITS], ids=["rdo", "legacy"])
def test_rdos_units_run_each_service_as_cinder_with_rdos_command_line(units):
    for (unit, text), (binary, log) in zip(units.items(), (("cinder-scheduler", "scheduler"),
                                                           ("cinder-volume", "volume"),
                                                           ("cinder-backup", "backup"))):
        assert unit == f"openstack-{binary}.service"
        assert "User=cinder\n" in text
        assert (f"ExecStart=/usr/bin/{binary} --config-file /usr/share/cinder/cinder-dist.conf "
                f"--config-file /etc/cinder/cinder.conf --logfile /var/log/cinder/{log}.log\n"
                ) in text
        assert "Restart=on-failure\n" in text


def test_devstack_units_are_written_as_write_user_unit_file_leaves_them():
    assert list(devstack.SERVICE_UNITS) == ["devstack@c-sch.service", "devstack@c-vol.service",
                                            "devstack@c-bak.service"]
    volume = devstack.SERVICE_UNITS["devstack@c-vol.service"]
    service = volume.split("[Service]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # iniset inserts each option under the header: the calls' reverse order, and
    # the service's own Environment in place of stack.sh's PATH
    assert service == [
        "ExecReload = /usr/bin/kill -HUP $MAINPID",
        "TimeoutStopSec = 300",
        "KillMode = process",
        "ExecStart = /opt/stack/data/venv/bin/cinder-volume --config-file /etc/cinder/cinder.conf",
        "User = stack",
        "Environment = MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=131072 "
        "MALLOC_TRIM_THRESHOLD_=262144",
    ]
    scheduler = devstack.SERVICE_UNITS["devstack@c-sch.service"]
    assert 'Environment = "PATH=/opt/stack/data/venv/bin:' in scheduler
    assert "uwsgi" not in "".join(devstack.SERVICE_UNITS.values())


def test_the_service_list_reads_up_when_any_host_of_a_binary_is_up():
    listed = [{"binary": "cinder-scheduler", "host": "a", "state": "up"},
              {"binary": "cinder-volume", "host": "a@old", "state": "down"},
              {"binary": "cinder-volume", "host": "a@fake-stand-in", "state": "up"},
              {"binary": "cinder-backup", "host": "a", "state": "down"}]
    assert services.states(listed) == {"cinder-scheduler": "up", "cinder-volume": "up",
                                       "cinder-backup": "down"}
    assert services.states(None) == {}


def test_a_broker_that_never_answered_shows_its_logs_last_lines(tmp_path):
    own = OwnBroker(tmp_path)
    assert own.last_lines() == ""                     # nothing written yet: nothing shown
    own.log_dir.mkdir(parents=True)
    (own.log_dir / "console.log").write_text("".join(f"line {n}\n" for n in range(20)))
    (own.log_dir / "epmd.log").write_text("\n")
    assert own.last_lines(2) == "console.log:\n    line 18\n    line 19"
