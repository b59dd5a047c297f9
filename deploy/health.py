"""Wait until the Cinder API answers, checked from the controller itself.

The probe runs on the controller with its own python (always there, since
Cinder runs on it), so it works whatever the workstation can route to, and
a whole wait is a single SSH round trip. Cinder's root URL answers 300 (a
version list), so any status below 500 counts as answering.
"""
from __future__ import annotations

from dataclasses import dataclass

from deploy.commands import STDLIB_ONLY, Remote, tail
from deploy.errors import HealthCheckError

_PROBE = """\
import sys, time, urllib.error, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
start = time.monotonic()
last = 'no answer'
while True:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            code = reply.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except Exception as exc:
        code, last = None, str(getattr(exc, 'reason', exc))
    if code is not None and code < 500:
        print('answering', code, round(time.monotonic() - start, 2))
        sys.exit(0)
    if code is not None:
        last = 'HTTP %d' % code
    if time.monotonic() - start >= limit:
        print('down', last)
        sys.exit(1)
    time.sleep(0.1)
"""


@dataclass(frozen=True, slots=True)
class ApiState:
    answering: bool
    detail: str          # "HTTP 300 after 1.42 s" or the last error


def probe_api(remote: Remote, timeout: float = 0.0) -> ApiState:
    """Ask the API (``api_url``) until it answers or ``timeout`` seconds pass."""
    result = remote.run([remote.controller.python, *STDLIB_ONLY, "-c", _PROBE,
                         remote.controller.api_url, str(timeout)], check=False)
    words = result.stdout.split()
    if result.exited == 0 and words[:1] == ["answering"]:
        return ApiState(True, f"HTTP {words[1]} after {words[2]} s")
    return ApiState(False, " ".join(words[1:]) or (result.stderr.strip() or "probe failed"))


def wait_for_api(remote: Remote, timeout: float) -> ApiState:
    """Wait for the API; on the deadline raise with the last log lines.

    Raises:
        HealthCheckError: no answer within ``timeout`` seconds.
    """
    state = probe_api(remote, timeout)
    if state.answering:
        return state
    log = remote.run(["tail", "-n", "15", remote.controller.log_file], check=False).stdout
    raise HealthCheckError(
        f"{remote.name}: the API at {remote.controller.api_url} did not answer within "
        f"{timeout:g} s ({state.detail}); last lines of {remote.controller.log_file}:\n  "
        + (tail(log, 15).replace("\n", "\n  ") or "(empty)"))
