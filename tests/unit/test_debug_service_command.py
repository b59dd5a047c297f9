"""Specs for what ``debug --service`` runs: the command read from a unit (busctl) or a
supervisord program, and the guard's session built from it."""
from __future__ import annotations

import json

import pytest

from deploy.base.errors import DebugError
from deploy.base.inventory import Controller
from deploy.controller.services.command import (
    ServiceCommand,
    bus_path,
    busctl_argv,
    busctl_tokens,
    parse_busctl,
    parse_program,
    supervisord_environment,
)
from deploy.workflows.debug import guard_argv, last_output

RDO_VOLUME = (
    'a(sasbttttuii) 1 "/usr/bin/cinder-volume" 7 "/usr/bin/cinder-volume" "--config-file" '
    '"/usr/share/cinder/cinder-dist.conf" "--config-file" "/etc/cinder/cinder.conf" '
    '"--logfile" "/var/log/cinder/volume.log" false 0 0 0 0 0 0 0\n'
    's "cinder"\n'
    'as 3 "MALLOC_ARENA_MAX=1" "MALLOC_MMAP_THRESHOLD_=131072" '
    '"MALLOC_TRIM_THRESHOLD_=262144"\n'
    's ""\n')


@pytest.mark.parametrize("unit, path", [
    ("openstack-cinder-volume.service",
     "/org/freedesktop/systemd1/unit/openstack_2dcinder_2dvolume_2eservice"),
    ("devstack@c-sch.service", "/org/freedesktop/systemd1/unit/devstack_40c_2dsch_2eservice"),
    ("1x.service", "/org/freedesktop/systemd1/unit/_31x_2eservice"),
])
def test_a_units_bus_path_escapes_every_byte_but_letters_and_digits(unit, path):
    assert bus_path(unit) == path


def test_busctl_reads_the_four_properties_of_the_units_service():
    assert busctl_argv("devstack@c-vol.service") == [
        "busctl", "get-property", "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1/unit/devstack_40c_2dvol_2eservice",
        "org.freedesktop.systemd1.Service",
        "ExecStart", "User", "Environment", "WorkingDirectory"]


def test_the_rdo_volume_units_command_user_and_environment_are_read_from_busctl():
    command = parse_busctl(RDO_VOLUME, "openstack-cinder-volume.service")
    assert command.argv == ("/usr/bin/cinder-volume", "--config-file",
                            "/usr/share/cinder/cinder-dist.conf", "--config-file",
                            "/etc/cinder/cinder.conf", "--logfile", "/var/log/cinder/volume.log")
    assert command.user == "cinder"
    assert command.env == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072",
                           "MALLOC_TRIM_THRESHOLD_": "262144"}
    assert command.directory == ""
    assert command.entry == "/usr/bin/cinder-volume"


def test_an_argument_with_a_space_or_a_quote_stays_one_argument():
    assert busctl_tokens(r'as 2 "a b" "say \"hi\"\n\303\251\x21"') == [
        "as", "2", b"a b", b'say "hi"\n\xc3\xa9!']


def test_the_program_a_unit_runs_is_its_path_even_when_argv0_differs():
    text = RDO_VOLUME.replace('7 "/usr/bin/cinder-volume"', '7 "cinder-volume"')
    assert parse_busctl(text, "u.service").argv[0] == "/usr/bin/cinder-volume"


@pytest.mark.parametrize("text, message", [
    ("", "0 lines, expected 4"),
    (RDO_VOLUME.replace("a(sasbttttuii) 1", "a(sasbttttuii) 2"), "has 2 ExecStart lines"),
    (RDO_VOLUME.replace('"cinder"', '"cinder'), "unterminated string"),
])
def test_a_busctl_answer_of_another_shape_is_an_error_naming_the_unit(text, message):
    with pytest.raises(DebugError, match=message):
        parse_busctl(text, "openstack-cinder-volume.service")


@pytest.mark.parametrize("argv, entry", [
    (("/usr/bin/python2", "-s", "/usr/bin/cinder-volume", "--config-file", "c"),
     "/usr/bin/cinder-volume"),
    (("/opt/stack/data/venv/bin/cinder-volume", "--config-file", "c"),
     "/opt/stack/data/venv/bin/cinder-volume"),
])
def test_the_entry_point_is_the_script_a_python_runs(argv, entry):
    assert ServiceCommand(argv, "cinder").entry == entry


SUPERVISORD_CONF = """\
[supervisord]
logfile = /x/supervisord.log

[program:cinder-api]
command = /v/bin/cinder-api --config-file /e/cinder.conf

[program:cinder-volume]
command = /v/bin/cinder-volume --config-file "%(here)s/cinder one.conf" --log-file /l/volume.log
user = cinder
directory = /var/lib/cinder
environment = HOME="/var/lib/cinder",MALLOC_ARENA_MAX="1",NAME=%(program_name)s
"""


def test_a_supervisord_programs_command_is_split_as_supervisord_splits_it():
    command = parse_program(SUPERVISORD_CONF, "/etc/sv/supervisord.conf", "cinder-volume")
    assert command.argv == ("/v/bin/cinder-volume", "--config-file", "/etc/sv/cinder one.conf",
                            "--log-file", "/l/volume.log")
    assert command.user == "cinder"
    assert command.directory == "/var/lib/cinder"
    assert command.env == {"HOME": "/var/lib/cinder", "MALLOC_ARENA_MAX": "1",
                           "NAME": "cinder-volume"}
    assert command.source == "/etc/sv/supervisord.conf [program:cinder-volume]"


def test_a_program_not_in_the_config_is_an_error():
    with pytest.raises(DebugError, match=r"has no \[program:cinder-backup\] with a command"):
        parse_program(SUPERVISORD_CONF, "/etc/sv/supervisord.conf", "cinder-backup")


def test_supervisords_own_environment_in_a_command_is_not_guessed():
    text = SUPERVISORD_CONF.replace("/l/volume.log", "%(ENV_LOGS)s/volume.log")
    with pytest.raises(DebugError, match="cannot expand it here"):
        parse_program(text, "/etc/sv/supervisord.conf", "cinder-volume")


@pytest.mark.parametrize("value", ["A=1,B", "A 1"])
def test_an_environment_that_is_not_key_value_pairs_is_refused(value):
    with pytest.raises(ValueError):
        supervisord_environment(value)


def controller() -> Controller:
    return Controller(name="ctl1", address="10.0.0.5", python="/usr/bin/python3",
                      cinder_api="/usr/bin/cinder-api", service_user="cinder",
                      config_files=("/etc/cinder/cinder.conf",),
                      api_url="http://127.0.0.1:8776/", state_dir="/var/lib/cinder-devloop")


def test_the_guard_runs_the_services_own_command_as_its_user_its_environment_not_in_argv():
    command = parse_busctl(RDO_VOLUME, "openstack-cinder-volume.service")
    argv = guard_argv(controller(), [], ["systemctl", "start", "--", "v"], ["systemctl", "status"],
                      command=command, binary="cinder-volume", settle=3)
    session = json.loads(argv[3])
    assert argv[:2] == ["/usr/bin/python3", "-c"]
    assert session["argv"] == list(command.argv)
    assert session["user"] == "cinder"
    assert command.env["MALLOC_ARENA_MAX"] == "1"
    # a unit's Environment= may hold secrets: the guard reads it from root's file
    assert "MALLOC_ARENA_MAX" not in " ".join(argv)
    assert session["env_file"] == "/var/lib/cinder-devloop/debug/service-env.json"
    assert session["binary"] == "cinder-volume" and session["settle"] == 3
    assert session["start"] == ["systemctl", "start", "--", "v"]


def test_the_apis_session_carries_no_service_command():
    session = json.loads(guard_argv(controller(), [], ["a"], ["b"])[3])
    assert "argv" not in session and "binary" not in session


def test_last_output_is_what_the_service_printed_before_it_exited():
    text = ("--> ctl1: cinder-volume in the foreground as cinder, pid 1: ...\r\n"
            "ImportError: no module\r\n"
            "--> ctl1: cinder-volume exited with status 1; its processes: ended\r\n")
    assert last_output(text, binary="cinder-volume") == "ImportError: no module"
