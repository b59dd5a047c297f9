"""What a failed cinder-manage wrote to its log file, not to the terminal.

A controller whose config sets ``log_dir`` (RDO's cinder-dist.conf does) has
cinder-manage log to ``<log_dir>/cinder-manage.log``: oslo.log's exception
hook writes the traceback there, and the terminal shows only Python's
warnings. The run's own lines are told apart by the PID oslo.log puts in
each line's prefix; :func:`with_pid` makes the command say its PID first.
"""
from __future__ import annotations

import configparser
import posixpath
import re

from deploy.transport.commands import Remote, as_user

#: the first line :func:`with_pid`'s command writes to stderr
_PID_LINE = re.compile(r"^devloop-pid (\d+)$", re.M)
#: lines of the log searched for the run's own (a traceback is some 40)
SCANNED_LINES = 400


def with_pid(argv: list[str]) -> list[str]:
    """``argv`` run by ``sh`` which first says the PID the command will have."""
    return ["sh", "-c", 'echo "devloop-pid $$" >&2; exec "$@"', "sh", *argv]


def split_pid(stderr: str) -> tuple[int | None, str]:
    """The PID :func:`with_pid` reported, and stderr without that line."""
    found = _PID_LINE.search(stderr)
    if not found:
        return None, stderr
    return int(found.group(1)), stderr[:found.start()] + stderr[found.end() + 1:]


def log_path(config_texts: list[str], binary: str = "cinder-manage") -> str | None:
    """The file oslo.log writes to, from the config files' [DEFAULT], later ones winning.

    ``log_file`` alone, ``log_dir``/``log_file``, ``log_dir``/``<binary>.log``,
    or None (the terminal). The deprecated names ``logfile``/``logdir`` count too.
    """
    values: dict[str, str] = {}
    for text in config_texts:
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue        # cinder-manage itself says what is wrong with the file
        for name, canonical in (("logfile", "log_file"), ("log_file", "log_file"),
                                ("logdir", "log_dir"), ("log_dir", "log_dir")):
            if parser.has_option("DEFAULT", name):
                values[canonical] = parser.get("DEFAULT", name).strip()
    log_file, log_dir = values.get("log_file"), values.get("log_dir")
    if log_file:
        return posixpath.join(log_dir, log_file) if log_dir else log_file
    return posixpath.join(log_dir, binary + ".log") if log_dir else None


def own_lines(log_text: str, pid: int) -> str:
    """The lines of ``log_text`` oslo.log wrote for process ``pid``."""
    mark = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ %d " % pid)
    return "\n".join(line for line in log_text.splitlines() if mark.match(line))


def logged_by(remote: Remote, pid: int) -> str:
    """What cinder-manage process ``pid`` logged to its file, or "" (no file, or none).

    The config files and the log are read as the service user, as cinder-manage
    read and wrote them: root follows no link that user may have put there.
    """
    # one round trip for every config file, each ended by a NUL (a missing one: empty)
    read = remote.run(as_user(remote.controller.service_user,
                              ["sh", "-c", 'for f do cat -- "$f"; printf "\\000"; done', "sh",
                               *remote.controller.config_files]), check=False)
    found = log_path(read.stdout.split("\0"))
    if found is None:
        return ""
    result = remote.run(as_user(remote.controller.service_user,
                                ["tail", "-n", str(SCANNED_LINES), "--", found]), check=False)
    return own_lines(result.stdout, pid) if result.exited == 0 else ""
