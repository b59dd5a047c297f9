"""Cinder's services beside the API, as every sandbox kind runs them.

Each kind runs ``cinder-scheduler``, ``cinder-volume`` and ``cinder-backup``
the way its distribution does (RDO's ``openstack-cinder-*.service`` units,
DevStack's ``devstack@c-sch``/``c-vol``/``c-bak``, programs of the
supervisord sandbox); what they share is written once here:

* the volume backend, a **stand-in**: a sandbox has no block devices, so
  ``cinder-volume`` drives ``cinder.tests.fake_driver.FakeLoggingVolumeDriver``,
  the fake driver Cinder ships in its own package (DevStack's ``fake``
  backend): it logs each call and stores nothing, so volumes go through the
  API, the scheduler and the volume manager and become ``available``, but
  hold no data. Its backend is named ``fake-stand-in`` so the service list
  (``HOST@fake-stand-in``) says what it is;
* the backup driver, a real one: ``PosixBackupDriver`` writing to a directory;
* the API's service list (``GET /v3/{project}/os-services``), which
  ``up`` waits on and ``status`` shows.
"""
from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.request

from deploy.base.errors import SandboxError

#: what each kind runs beside cinder-api, as the service list names them
BINARIES = ("cinder-scheduler", "cinder-volume", "cinder-backup")
BACKEND = "fake-stand-in"
VOLUME_DRIVER = "cinder.tests.fake_driver.FakeLoggingVolumeDriver"
BACKUP_DRIVER = "cinder.backup.drivers.posix.PosixBackupDriver"


def sqlite_url(path: str) -> str:
    """``[database] connection`` for a SQLite file the four services share.

    Each service writes its heartbeat to the ``services`` table every ten
    seconds; a request that writes while another holds the file's lock waits
    for it (``timeout``, seconds) instead of failing with "database is locked"
    (HTTP 500) after pysqlite's default five, which a loaded machine exceeds.
    """
    return f"sqlite:///{path}?timeout=60"


def default_options(transport_url: str, backup_path: str) -> str:
    """cinder.conf's ``[DEFAULT]`` lines for the broker, the stand-in backend and backups."""
    return f"""\
transport_url = {transport_url}
enabled_backends = {BACKEND}
backup_driver = {BACKUP_DRIVER}
backup_posix_path = {backup_path}
"""


#: cinder.conf's section of the stand-in backend
BACKEND_SECTION = f"""
[{BACKEND}]
# A stand-in, not storage: the fake driver Cinder ships (cinder/tests/fake_driver.py)
# logs each call and keeps no data; a sandbox has no block devices to give a real one.
volume_backend_name = {BACKEND}
volume_driver = {VOLUME_DRIVER}
"""


def service_list(api_root: str, project: str, token: str,
                 timeout: float = 5.0) -> list[dict[str, str]] | None:
    """The API's service list (``binary``, ``host``, ``state``, ``status``…), as an admin.

    None when the API does not answer it (down, starting, or refusing the token).
    """
    request = urllib.request.Request(f"{api_root.rstrip('/')}/v3/{project}/os-services",
                                     headers={"X-Auth-Token": token,
                                              "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = json.loads(reply.read())
    # urllib's errors are OSErrors; a connection to a port nothing listens on
    # can meet itself (TCP's self-connect) and read its own request back
    except (OSError, ValueError, http.client.HTTPException):
        return None
    services = body.get("services") if isinstance(body, dict) else None
    if not isinstance(services, list):
        return None
    return [{key: str(value) for key, value in service.items()}
            for service in services if isinstance(service, dict)]


def states(services: list[dict[str, str]] | None) -> dict[str, str]:
    """``{binary: "up"|"down"}`` of the services beside the API (``up`` if any host is)."""
    found: dict[str, str] = {}
    for service in services or []:
        binary = service.get("binary", "")
        if binary in BINARIES and found.get(binary) != "up":
            found[binary] = service.get("state", "down")
    return found


def wait_until_up(api_root: str, project: str, token: str, timeout: float = 180.0) -> None:
    """Return once the service list shows every one of :data:`BINARIES` ``up``.

    Raises:
        SandboxError: not within ``timeout`` seconds (the message says which were not).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = states(service_list(api_root, project, token))
        if all(found.get(binary) == "up" for binary in BINARIES):
            return
        if time.monotonic() > deadline:
            missing = ", ".join(f"{binary} ({found.get(binary, 'not listed')})"
                                for binary in BINARIES if found.get(binary) != "up")
            raise SandboxError(f"sandbox: timed out after {timeout:g} s waiting for Cinder's "
                               f"service list to show {missing} up")
        time.sleep(0.5)


def status_line(api_root: str, project: str, token: str) -> str:
    """``services     cinder-scheduler up, cinder-volume up (HOST@fake-stand-in), …``."""
    listed = service_list(api_root, project, token)
    if listed is None:
        return "services     unknown (the API does not answer its service list)"
    found = states(listed)
    hosts = {service["binary"]: service.get("host", "") for service in listed
             if service.get("binary") == "cinder-volume"}
    parts = []
    for binary in BINARIES:
        part = f"{binary} {found.get(binary, 'not listed')}"
        if binary == "cinder-volume" and binary in hosts:
            part += f" ({hosts[binary]}: a stand-in backend, {VOLUME_DRIVER})"
        parts.append(part)
    return "services     " + ", ".join(parts)


def main(argv: list[str]) -> int:
    """``wait API PROJECT TOKEN SECONDS`` or ``status API PROJECT TOKEN``, where the API is
    reachable (a sandbox's network namespace): what ``up`` and ``status`` ask there."""
    if argv[:1] == ["wait"] and len(argv) == 5:
        try:
            wait_until_up(argv[1], argv[2], argv[3], float(argv[4]))
        except SandboxError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        return 0
    if argv[:1] == ["status"] and len(argv) == 4:
        sys.stdout.write(status_line(argv[1], argv[2], argv[3]) + "\n")
        return 0
    sys.stderr.write("usage: wait API PROJECT TOKEN SECONDS | status API PROJECT TOKEN\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
