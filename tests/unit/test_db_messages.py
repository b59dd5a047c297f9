"""What a failed cinder-manage run is reported by: the exception, not the SQL logged after it."""
from __future__ import annotations

from deploy.controller.db import cause
from deploy.controller.manage_log import log_path, own_lines, split_pid, with_pid

CREATE_FAILED = """\
2026-12-06 10:37:02.380 23509 CRITICAL cinder [-] Unhandled error: \
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked
2026-12-06 10:37:02.382 23509 ERROR cinder Traceback (most recent call last):
2026-12-06 10:37:02.382 23509 ERROR cinder   File "/usr/lib/python3/cinder/cmd/manage.py", line 1
2026-12-06 10:37:02.382 23509 ERROR cinder sqlalchemy.exc.OperationalError: \
(sqlite3.OperationalError) database is locked
2026-12-06 10:37:02.382 23509 ERROR cinder [SQL:
2026-12-06 10:37:02.382 23509 ERROR cinder CREATE TABLE managed_clusters (
2026-12-06 10:37:02.382 23509 ERROR cinder 	id VARCHAR(36) NOT NULL,
2026-12-06 10:37:02.382 23509 ERROR cinder )
2026-12-06 10:37:02.382 23509 ERROR cinder ]
"""


def test_the_last_exception_line_is_the_cause_without_the_log_prefix():
    assert cause(CREATE_FAILED) == ("sqlalchemy.exc.OperationalError: "
                                    "(sqlite3.OperationalError) database is locked")


def test_a_plain_traceback_of_python_2_names_its_exception_too():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
            "oslo_config.cfg.ConfigFilesNotFoundError: Failed to find some config files: /x\n")
    assert cause(text) == ("oslo_config.cfg.ConfigFilesNotFoundError: "
                           "Failed to find some config files: /x")


def test_output_without_an_exception_has_no_cause():
    assert cause("Error: unable to connect\nusage: cinder-manage db sync\n") is None


class TestTheLogFileOfCinderManage:
    """Where the config sets log_dir (RDO's cinder-dist.conf), cinder-manage's traceback goes
    to <log_dir>/cinder-manage.log and the terminal shows only warnings."""

    def test_log_dir_alone_means_the_binarys_own_file_in_it(self):
        dist = "[DEFAULT]\nlog_dir = /var/log/cinder\nstate_path = /var/lib/cinder\n"
        assert log_path([dist, "[database]\nconnection = sqlite://\n"]) == \
            "/var/log/cinder/cinder-manage.log"

    def test_a_later_file_wins_and_log_file_is_joined_to_log_dir(self):
        assert log_path(["[DEFAULT]\nlogdir = /a\n", "[DEFAULT]\nlog_dir = /b\n",
                         "[DEFAULT]\nlog_file = manage.log\n"]) == "/b/manage.log"
        assert log_path(["[DEFAULT]\nlog_file = /var/log/m.log\n"]) == "/var/log/m.log"

    def test_no_log_options_or_an_unreadable_file_mean_the_terminal(self):
        assert log_path(["[database]\nconnection = sqlite://\n", "", "not ini at all ["]) is None

    def test_only_the_runs_own_lines_are_kept_by_the_pid_in_their_prefix(self):
        older = CREATE_FAILED.replace(" 23509 ", " 23400 ").replace("locked", "gone")
        kept = own_lines(older + CREATE_FAILED, 23509)
        assert kept.splitlines() == CREATE_FAILED.splitlines()
        assert own_lines(older, 23509) == ""

    def test_the_pid_line_the_wrapper_writes_is_taken_out_of_stderr(self):
        argv = with_pid(["cinder-manage", "db", "sync"])
        assert argv[:2] == ["sh", "-c"] and argv[-3:] == ["cinder-manage", "db", "sync"]
        said = "devloop-pid 4242\nwarning: eventlet\n"
        assert split_pid(said) == (4242, "warning: eventlet\n")
        assert split_pid("no pid here\n") == (None, "no pid here\n")


def test_cinder_manages_own_migration_error_line_is_a_cause():
    text = "Error during database migration: devloop: refused\n2026-12-06 1 INFO x [-] 132 -> 133\n"
    assert cause(text) == "Error during database migration: devloop: refused"
