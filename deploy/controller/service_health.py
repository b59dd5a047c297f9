"""Is a restarted scheduler, volume or backup service serving? The API's service list says.

Every Cinder service beside the API sends a heartbeat: each
``report_interval`` seconds (10 by default, the first one that long after
its start) it writes its row of the services table, which moves that row's
``updated_at``; the API's service list (``GET /v3/{project}/os-services``)
shows it, ``up`` while the last heartbeat is recent. So a restarted
service counts as healthy once its entries show ``up`` with an
``updated_at`` later than the moment its restart returned (taken from the
controller's clock, as the heartbeat is; the old process is gone by then,
so only the new one can have written it).

A new process writes its row once as it is built (``Service.__init__``
saves the versions it runs), before its manager's ``init_host``; the
heartbeats come after. For ``cinder-volume`` the heartbeat is also the
proof its driver initialised: the service skips it while the volume
manager is not working (``VolumeManager.is_working()`` is
``driver.initialized``), so a backend whose driver failed ``do_setup``
stays frozen and goes ``down``. So the volume service counts only once
its entry has moved twice since the restart (the write at start, then a
heartbeat: about ``report_interval`` more); the scheduler and backup
services once. With several backends (``HOST@backend`` entries), every
entry of the binary that was ``up`` before the restart must report again.

A service whose process ends meanwhile (its manager no longer says
running, or its PID changed: it was restarted after a crash) fails at
once, with its own last log lines: its log file since the restart and its
console (the unit's journal, or supervisord's capture of its output), where
a traceback at import lands before logging is set up.
"""
from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from deploy.base.errors import HealthCheckError
from deploy.controller.services.found import Service
from deploy.transport.commands import Remote, tail

#: seconds between looks at the service list
POLL = 1.0


@dataclass(frozen=True)
class Entry:
    """One row of the service list."""

    binary: str
    host: str
    state: str
    updated: float | None     # epoch seconds; None: never reported


def parse_time(text: str | None) -> float | None:
    """``2026-12-06T04:40:12.123456`` (UTC, as Cinder writes it) -> epoch seconds."""
    if not text or text == "None":
        return None
    text = text.replace(" ", "T").split("+")[0].rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple()) + (float(f"0.{fraction}") if fraction.isdigit()
                                                  else 0.0)


def entries(body: Any) -> list[Entry] | None:
    """The service list's rows from the API's answer (None: not a service list)."""
    services = body.get("services") if isinstance(body, dict) else None
    if not isinstance(services, list):
        return None
    return [Entry(str(s.get("binary", "")), str(s.get("host", "")), str(s.get("state", "")),
                  parse_time(s.get("updated_at")))
            for s in services if isinstance(s, dict)]


def read_entries(client: Any) -> list[Entry] | None:
    """The API's service list through ``client`` (an ApiClient); None if it does not answer it."""
    try:
        status, body = client.get_json(f"{client.project_url}/os-services", timeout=10.0)
    except OSError:
        return None
    return entries(body) if status == 200 else None


#: how many distinct writes of its row since the restart make a service count
WRITES_NEEDED = {"cinder-volume": 2}


def fresh(binary: str, listed: Sequence[Entry], since: float, were_up: set[str],
          seen: dict[tuple[str, str], set[float]] | None = None) -> bool:
    """Has every entry of ``binary`` that was up (at least one) reported, ``up``, after ``since``
    (as many times as :data:`WRITES_NEEDED` says, counted in ``seen`` across calls)?"""
    seen = {} if seen is None else seen
    for e in listed:
        if e.binary == binary and e.state == "up" and e.updated is not None \
                and e.updated > since:
            seen.setdefault((binary, e.host), set()).add(e.updated)
    needed = WRITES_NEEDED.get(binary, 1)
    reported = {host for (name, host), times in seen.items()
                if name == binary and len(times) >= needed}
    return bool(reported) and were_up <= reported


def controller_time(remote: Remote) -> float:
    """The controller's clock, in epoch seconds (the heartbeats' clock)."""
    text = remote.run(["date", "+%s.%N"], check=False).stdout.strip()
    try:
        return float(text)
    except ValueError:
        return time.time()


def last_lines(remote: Remote, service: Service, log_since: int | None) -> str:
    """``service``'s own last lines: its log file since ``log_since``, then its console."""
    ctl = remote.controller
    parts = []
    if service.log_file:
        start = f"+{log_since + 1}" if log_since is not None else "+1"
        text = remote.run(["sh", "-c", 'tail -c "$1" -- "$2" | tail -n 15', "devloop-tail",
                           start, service.log_file], check=False).stdout
        parts.append(f"{service.log_file}:\n" + (tail(text, 15) or "(nothing since the restart)"))
    if ctl.service_manager == "supervisord":
        text = remote.run(["supervisorctl", "-c", ctl.supervisor_config or "", "tail", "-1600",
                           service.unit], check=False).stdout
        parts.append(f"its console (supervisorctl tail {service.unit}):\n"
                     + (tail(text, 15) or "(empty)"))
    else:
        text = remote.run(["journalctl", "--unit", service.unit, "--lines", "15", "--no-pager",
                           "--output", "cat"], check=False).stdout
        parts.append(f"the journal of {service.unit}:\n" + (tail(text, 15) or "(empty)"))
    return "\n".join(parts)


def failed(remote: Remote, service: Service, why: str, log_since: int | None) -> HealthCheckError:
    """The error for a service that did not come back: ``why`` and its own last lines."""
    lines = last_lines(remote, service, log_since)
    unit = f" ({service.unit})" if service.unit != service.binary else ""
    return HealthCheckError(f"{remote.name}: {service.binary}{unit} {why}\n"
                            f"last lines of " + lines.replace("\n", "\n  "))


def wait_for_services(remote: Remote, restarted: Sequence[Service], since: float,
                      before: Mapping[str, set[str]], pids: Mapping[str, int | None],
                      log_marks: Mapping[str, int | None], timeout: float) -> dict[str, str]:
    """Wait until each restarted service reports ``up`` after ``since``; return what each shows.

    ``before``: per binary, the hosts whose entry was ``up`` before the restart;
    ``pids``: each service's PID right after it; ``log_marks``: its log's size before.

    Raises:
        HealthCheckError: a service's process ended or was replaced, or it did
            not report within ``timeout`` seconds (its last lines shown).
    """
    from deploy.openstack.api_access import api_client

    client = api_client(remote)
    waiting = {service.name: service for service in restarted}
    shown: dict[str, str] = {}
    started = time.monotonic()
    listed: list[Entry] | None = None
    seen: dict[tuple[str, str], set[float]] = {}
    while waiting:
        listed = read_entries(client)
        for name, service in list(waiting.items()):
            status = service.manager.status(remote)
            if not status.running:
                raise failed(remote, service, f"is not running after its restart "
                             f"({status.describe()})", log_marks.get(name))
            if pids.get(name) and status.pid and status.pid != pids[name]:
                raise failed(remote, service, f"was started again (pid {pids[name]} -> "
                             f"{status.pid}): its process ended", log_marks.get(name))
            if listed is not None and fresh(service.binary, listed, since,
                                            before.get(service.binary, set()), seen):
                seconds = time.monotonic() - started
                hosts = sorted(e.host for e in listed if e.binary == service.binary
                               and e.updated is not None and e.updated > since)
                shown[name] = (f"{status.describe()}; up in the service list "
                               f"({', '.join(hosts)}) after {seconds:.1f} s")
                del waiting[name]
        if not waiting:
            break
        if time.monotonic() - started > timeout:
            service = next(iter(waiting.values()))
            why = ("did not report up in the API's service list" if listed is not None else
                   "could not be checked: the API does not answer its service list")
            raise failed(remote, service, f"{why} within {timeout:g} s of its restart "
                         f"(a volume service whose driver did not initialise sends no "
                         f"heartbeat)", log_marks.get(service.name))
        time.sleep(POLL)
    return shown


def up_before(remote: Remote) -> dict[str, set[str]] | None:
    """Per binary, the hosts whose entry is ``up`` now (None: the API does not answer)."""
    from deploy.openstack.api_access import api_client

    listed = read_entries(api_client(remote))
    if listed is None:
        return None
    found: dict[str, set[str]] = {}
    for entry in listed:
        if entry.state == "up":
            found.setdefault(entry.binary, set()).add(entry.host)
    return found


def status_lines(remote: Remote, found: Mapping[str, Service],
                 volume_drivers: Sequence[str] = ()) -> list[str]:
    """A line per service beside the API: ``NAME  STATE; up in the service list (HOST,
    heartbeat N s ago)``.

    ``volume_drivers``: the configured ones, named on the volume line (the
    sandboxes' stand-in says it is one).
    """
    from deploy.openstack.api_access import api_client

    others = [service for name, service in found.items() if name != "api"]
    if not others:
        return []
    try:
        listed = read_entries(api_client(remote))
    except Exception as exc:   # noqa: BLE001 -- an AuthError or the like: the line says so
        listed, why = None, str(exc).splitlines()[0]
    else:
        why = "the API does not answer its service list"
    now = controller_time(remote)
    lines = []
    for service in others:
        try:
            state = service.manager.status(remote).describe()
        except Exception as exc:   # noqa: BLE001 -- a ServiceError: shown in place
            state = str(exc).splitlines()[0]
        if listed is None:
            listing = f"service list unknown ({why})"
        else:
            mine = [e for e in listed if e.binary == service.binary]
            listing = "; ".join(
                f"{e.state} in the service list ({e.host}"
                + (f", heartbeat {max(now - e.updated, 0):.0f} s ago" if e.updated else "")
                + ")" for e in mine) or "not in the service list"
        drivers = ""
        if service.name == "volume" and volume_drivers:
            stand_in = any("fake" in driver.lower() for driver in volume_drivers)
            drivers = (f"; driver {', '.join(volume_drivers)}"
                       + (" (a stand-in: it stores no data)" if stand_in else ""))
        lines.append(f"{service.name:<9} {service.unit}: {state}; {listing}{drivers}")
    return lines
