"""What a failed cinder-manage run is reported by: the exception, not the SQL logged after it."""
from __future__ import annotations

from deploy.controller.db import cause

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
