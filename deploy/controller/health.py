"""Is the API up, and does it serve what a deploy sent?

The probe runs on the controller with its own python (always there, since
Cinder runs on it; Python 2.7 or 3), so it works whatever the workstation can
route to, and a whole wait is a single SSH round trip. Cinder's root URL
answers 300 (a version list), so any status below 500 counts as answering.

An API that answers may still not serve what was sent: Cinder skips an
extension that fails to load and serves without it. So after a deploy's
restart the probe also returns the log written since the restart (from the
log's size before it), and :func:`check_serving` fails on a failure of sent
code in it, or on a sent extension the API does not list.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploy.base import output
from deploy.base.errors import HealthCheckError
from deploy.controller.extensions import failures_in_log, sent_aliases
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail

_LOG_MARK = "--log--\n"
#: seconds per probe under uWSGI, between looks at the journal for a failed load
UWSGI_SLICE = 2.0
#: what uWSGI logs when its worker could not load the app, then for each request
UWSGI_NO_APP = ("*** no app loaded", "no python application found")


@dataclass(frozen=True, slots=True)
class ApiState:
    answering: bool
    detail: str          # "HTTP 300 after 1.42 s" or the last error
    log: str = ""        # the log written since the mark (when asked for)


def log_mark(remote: Remote) -> int:
    """The size of the API log now: what a later check reads from (0: journald only)."""
    if not remote.controller.log_file:
        return 0
    result = remote.run(["stat", "-c", "%s", "--", remote.controller.log_file], check=False)
    text = result.stdout.strip()
    return int(text) if result.exited == 0 and text.isdigit() else 0


def probe_api(remote: Remote, timeout: float = 0.0, log_since: int | None = None) -> ApiState:
    """Ask the API (``api_url``) until it answers or ``timeout`` seconds pass.

    With ``log_since`` (a :func:`log_mark`), an answering state carries the
    log written since then.
    """
    argv = [cinder_python(remote), *STDLIB_ONLY, "-c", script("probe_api"),
            remote.controller.api_url, str(timeout)]
    if log_since is not None and remote.controller.log_file:
        argv += [remote.controller.log_file, str(log_since)]
    result = remote.run(argv, check=False)
    head, _, log = result.stdout.partition(_LOG_MARK)
    words = head.split()
    if result.exited == 0 and words[:1] == ["answering"]:
        return ApiState(True, f"HTTP {words[1]} after {words[2]} s", log)
    return ApiState(False, " ".join(words[1:]) or (result.stderr.strip() or "probe failed"))


def wait_for_api(remote: Remote, timeout: float, log_since: int | None = None) -> ApiState:
    """Wait for the API; on the deadline raise with the last log lines.

    Under uWSGI (DevStack) a Cinder that fails to import does not stop the
    service: the master stays up and answers 500 to everything. So there the
    wait goes in slices, and a 500 after which the unit's journal (this start
    of it) says the worker loaded no application ends it at once.

    Raises:
        HealthCheckError: no answer within ``timeout`` seconds, or uWSGI
            loaded no application.
    """
    if remote.controller.layout == "devstack":
        state = _wait_for_uwsgi(remote, timeout, log_since)
    else:
        state = probe_api(remote, timeout, log_since)
    if state.answering:
        return state
    raise _not_answering(remote, f"did not answer within {timeout:g} s ({state.detail})")


def _wait_for_uwsgi(remote: Remote, timeout: float, log_since: int | None) -> ApiState:
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.0)
        state = probe_api(remote, min(UWSGI_SLICE, left), log_since)
        if state.answering or left <= UWSGI_SLICE:
            return state
        if not state.detail.startswith("HTTP 500"):
            continue
        journal = journal_since_start(remote)
        if any(said in journal for said in UWSGI_NO_APP):
            raise _not_answering(remote, "answers HTTP 500: uWSGI's worker loaded no "
                                 "application (Cinder failed to import)",
                                 _without_requests(journal))


def journal_since_start(remote: Remote, containing: str | None = None) -> str:
    """The unit's journal since its current start (its InvocationID), as text.

    With ``containing``, only its lines holding that text (grep on the controller).
    """
    script_text = ('journalctl --no-pager --output cat _SYSTEMD_INVOCATION_ID="$(systemctl '
                   'show --property InvocationID --value -- "$1")"')
    if containing is not None:
        script_text += ' | grep -F "$2"'
    return remote.run(["sh", "-c", script_text, "devloop-journal", remote.controller.service,
                       *([containing] if containing is not None else [])], check=False).stdout


def _without_requests(journal: str) -> str:
    """``journal`` without uWSGI's line per request (each 500 adds two): the load's own lines."""
    return "\n".join(line for line in journal.splitlines()
                     if UWSGI_NO_APP[1] not in line and "=> generated" not in line)


def _not_answering(remote: Remote, why: str, log: str | None = None) -> HealthCheckError:
    """The error for an API that is not up: ``why``, and the log's (or journal's) last lines."""
    ctl = remote.controller
    if log is None:
        log = _last_lines(remote)
    return HealthCheckError(
        f"{remote.name}: the API at {ctl.api_url} {why}; last lines of "
        f"{ctl.log_file or 'the journal of ' + ctl.service}:\n  "
        + (tail(log, 15).replace("\n", "\n  ") or "(empty)"))


def _last_lines(remote: Remote) -> str:
    """The API log's last lines (the unit's journal's, for DevStack, which has no log file)."""
    ctl = remote.controller
    if ctl.log_file:
        return remote.run(["tail", "-n", "15", "--", ctl.log_file], check=False).stdout
    return remote.run(["journalctl", "--unit", ctl.service, "--lines", "15", "--no-pager",
                       "--output", "cat"], check=False).stdout


def check_serving(remote: Remote, state: ApiState, source: Path, sent: Sequence[str]) -> int:
    """Fail unless the restarted API serves the code a deploy sent.

    ``state`` is the answering probe (with the log since the restart),
    ``sent`` the files sent, relative to the cinder package, ``source`` the
    local tree they came from. Returns how many extensions were confirmed.

    Raises:
        HealthCheckError: the log shows a failure of sent code (a sent
            extension that failed to load, a traceback naming a sent file),
            or a sent extension's alias is missing from the API's list.
    """
    from deploy.openstack.api_access import api_client, list_extensions

    if not sent:
        return 0
    failures = failures_in_log(state.log, sent)
    log_file = remote.controller.log_file
    if failures:
        raise HealthCheckError(
            f"{remote.name}: the API answers but does not serve what was sent: "
            + "; ".join(failures.reasons) + f"\n{log_file} since the restart:\n  "
            + "\n  ".join(failures.lines))
    for other in failures.others:
        output.warn(f"{remote.name}: an extension this deploy did not send failed to load: "
                    f"{other}")
    aliases = sent_aliases(source, sent)
    if not aliases:
        return 0
    try:
        listed = list_extensions(api_client(remote))
    except HealthCheckError as error:
        raise HealthCheckError(
            f"{remote.name}: cannot check the extensions sent: {error}") from None
    missing = {path: alias for path, alias in aliases.items() if alias not in listed}
    if missing:
        shown = ", ".join(f"{alias} (cinder/{path})" for path, alias in missing.items())
        recent = tail(state.log, 10)
        raise HealthCheckError(
            f"{remote.name}: the API answers but does not list the extension(s) sent: {shown}"
            + (f"\n{log_file} since the restart:\n  " + recent.replace("\n", "\n  ")
               if recent else ""))
    return len(aliases)
