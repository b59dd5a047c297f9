"""The only writer of progress text.

Progress goes to stderr in pyinfra's shape (``--> ctl1: sync cinder tree``
then indented detail); results a user may pipe go to stdout. With verbose
on, every command is echoed exactly as it runs. A password in a URL
(``http://admin:secret@keystone:5000/v3``, a database URL in a command's
output) is never printed: it shows as ``admin:***@``.
"""
from __future__ import annotations

import re
import sys
import threading

_lock = threading.Lock()
_verbose = False


def set_verbose(flag: bool) -> None:
    """Echo every command as it runs (the tasks' ``--verbose``)."""
    global _verbose
    _verbose = flag


def is_verbose() -> bool:
    return _verbose


#: ``scheme://user:password@``: the password is masked wherever it is printed
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@:]*):([^\s/@]*)@")


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_CREDENTIALS.sub(r"\1\2:***@", text)


def _write(stream_name: str, text: str) -> None:
    with _lock:
        stream = getattr(sys, stream_name)
        stream.write(redacted(text) + "\n")
        stream.flush()


def step(where: str, message: str) -> None:
    """Announce a step on one controller."""
    _write("stderr", f"--> {where}: {message}")


def detail(message: str) -> None:
    """Indented detail under the current step."""
    for line in message.splitlines() or [""]:
        _write("stderr", f"    {line}")


def warn(message: str) -> None:
    _write("stderr", f"warning: {message}")


def command(where: str, text: str) -> None:
    """Echo a command about to run, when verbose."""
    if _verbose:
        _write("stderr", f"    [{where}] $ {text}")


def result(message: str) -> None:
    """A result line, on stdout."""
    _write("stdout", message)
