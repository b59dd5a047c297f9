"""Smoke-test the os-cluster-manage API of a deployed controller.

Standard library only (urllib), so it runs from the workstation with no
extra packages::

    report = run_smoke("http://ctl1:8776", project_id="c1a55e7",
                       token="admin:c1a55e7")
    print(report.format())

With ``auth_strategy = noauth`` the token is ``<user>:<project>``; project
ids must be hex (``[0-9a-f-]+``), Cinder's default ``project_id_regex``.
Every HTTP or connection error becomes a failed check, never a traceback,
and the cluster the smoke test creates is deleted even when a check fails.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALIAS = "os-cluster-manage"


@dataclass(frozen=True, slots=True)
class Check:
    """One smoke check: its name, outcome, detail and duration (s)."""

    name: str
    ok: bool
    detail: str
    duration: float

    def format(self) -> str:
        mark = "PASS" if self.ok else "FAIL"
        return f"{mark}  {self.name:<22} {self.duration * 1000:7.1f} ms  {self.detail}"


@dataclass(slots=True)
class SmokeReport:
    """The checks of one smoke run, in order."""

    base_url: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def summary(self) -> str:
        """Return one line: ``smoke PASSED: 12/12 checks ...``."""
        passed = len(self.checks) - len(self.failed)
        if self.ok:
            return f"smoke PASSED: {passed}/{len(self.checks)} checks against {self.base_url}"
        first = self.failed[0] if self.failed else None
        reason = f"; first failure: {first.name}: {first.detail}" if first else ""
        return (f"smoke FAILED: {passed}/{len(self.checks)} checks passed "
                f"against {self.base_url}{reason}")

    def format(self) -> str:
        """Return one line per check, then the summary."""
        return "\n".join([check.format() for check in self.checks] + [self.summary()])


class CheckFailed(Exception):
    """Raised inside a check to fail it with a message."""


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: Any


class _Client:
    def __init__(self, base_url: str, project_id: str, token: str, timeout: float,
                 opener: urllib.request.OpenerDirector | None = None) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/v3"):
            root = root[: -len("/v3")]
        self.root = root
        self.prefix = f"{root}/v3/{project_id}"
        self.token = token
        self.timeout = timeout
        self.open = opener.open if opener is not None else urllib.request.urlopen

    def request(self, method: str, url: str, body: object = None) -> _Reply:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, method=method,
            headers={"X-Auth-Token": self.token, "Accept": "application/json",
                     "Content-Type": "application/json"})
        try:
            with self.open(request, timeout=self.timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise CheckFailed(f"{method} {url}: {reason or type(reason).__name__}") from None
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw[:200].decode(errors="replace")
        return _Reply(status, decoded)

    def api(self, method: str, path: str, body: object = None) -> _Reply:
        return self.request(method, f"{self.prefix}/{ALIAS}{path}", body)


def _expect(reply: _Reply, *statuses: int) -> Any:
    if reply.status not in statuses:
        raise CheckFailed(f"HTTP {reply.status} (expected "
                          f"{'/'.join(map(str, statuses))}): {reply.body}")
    return reply.body


def _equal(what: str, actual: object, expected: object) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: got {actual!r}, expected {expected!r}")


def run_smoke(base_url: str, *, project_id: str, token: str, timeout: float = 10.0,
              opener: urllib.request.OpenerDirector | None = None) -> SmokeReport:
    """Exercise every os-cluster-manage call once and report each check.

    ``opener`` carries the requests (e.g. through the controller's SSH
    connection, see ``deploy.transport.tunnel``); plain urllib by default.

    Stops at the first failed check, then deletes the cluster it created.
    """
    report = SmokeReport(base_url=base_url)
    client = _Client(base_url, project_id, token, timeout, opener)
    tag = f"smoke-{uuid.uuid4().hex[:8]}"
    state: dict[str, Any] = {"id": None, "deleted": False}

    def run(name: str, body: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = body(), True
        except CheckFailed as error:
            detail, ok = str(error), False
        except Exception as error:  # a bug or an unexpected reply shape
            detail, ok = f"{type(error).__name__}: {error}", False
        report.checks.append(Check(name, ok, detail, time.monotonic() - started))
        return ok

    def api_answers() -> str:
        reply = client.request("GET", f"{client.root}/")
        _expect(reply, 200, 300)
        _expect(client.request("GET", f"{client.prefix}/extensions/{ALIAS}"), 200)
        return f"{client.root}/ answered {reply.status}; {ALIAS} is loaded"

    def create() -> str:
        body = _expect(client.api("POST", "", {"cluster": {
            "name": tag, "metadata": {"attr10": "kaska", "attr2": "111"}}}), 200, 202)
        state["id"] = body["cluster"]["id"]
        _equal("metadata", body["cluster"]["metadata"], {"attr10": "kaska", "attr2": "111"})
        return f"created {state['id']}"

    def show() -> str:
        cluster = _expect(client.api("GET", f"/{state['id']}"), 200)["cluster"]
        _equal("name", cluster["name"], tag)
        return "read back name and metadata"

    def listed() -> str:
        clusters = _expect(client.api("GET", f"?name={tag}"), 200)["clusters"]
        _equal("ids listed", [c["id"] for c in clusters], [state["id"]])
        return "listed by name"

    def update() -> str:
        cluster = _expect(client.api("PUT", f"/{state['id']}", {"cluster": {"name": tag + "-2"}}),
                          200)["cluster"]
        _equal("name", cluster["name"], tag + "-2")
        return "renamed"

    def merge_metadata() -> str:
        added = {"metadata": {"attr2": "222", "extra": "x"}}
        metadata = _expect(client.api("POST", f"/{state['id']}/metadata", added),
                           200)["metadata"]
        _equal("metadata", metadata, {"attr10": "kaska", "attr2": "222", "extra": "x"})
        return "merged 2 keys"

    def set_key() -> str:
        meta = _expect(client.api("PUT", f"/{state['id']}/metadata/extra",
                                  {"meta": {"extra": "y"}}), 200)["meta"]
        _equal("meta", meta, {"extra": "y"})
        read = _expect(client.api("GET", f"/{state['id']}/metadata/extra"), 200)["meta"]
        _equal("meta read back", read, {"extra": "y"})
        return "set and read one key"

    def delete_key() -> str:
        _expect(client.api("DELETE", f"/{state['id']}/metadata/extra"), 200, 202, 204)
        metadata = _expect(client.api("GET", f"/{state['id']}/metadata"), 200)["metadata"]
        _equal("metadata", metadata, {"attr10": "kaska", "attr2": "222"})
        return "deleted one key"

    def delete() -> str:
        _expect(client.api("DELETE", f"/{state['id']}"), 202, 204)
        state["deleted"] = True
        return "deleted"

    def gone() -> str:
        _expect(client.api("GET", f"/{state['id']}"), 404)
        clusters = _expect(client.api("GET", ""), 200)["clusters"]
        if any(c["id"] == state["id"] for c in clusters):
            raise CheckFailed("deleted cluster is still listed")
        return "404 and absent from the list"

    steps = [("api answers", api_answers), ("create", create), ("show", show),
             ("list", listed), ("update", update), ("metadata merge", merge_metadata),
             ("metadata set key", set_key), ("metadata delete key", delete_key),
             ("delete", delete), ("gone", gone)]
    try:
        for name, body in steps:
            if not run(name, body):
                break
    finally:
        if state["id"] and not state["deleted"]:
            def cleanup() -> str:
                _expect(client.api("DELETE", f"/{state['id']}"), 202, 204, 404)
                return f"deleted leftover {state['id']}"
            run("cleanup", cleanup)
    return report


def junit_xml(results: dict[str, SmokeReport | str]) -> str:
    """The smoke runs as a JUnit XML report, the format CI servers display.

    One ``<testsuite>`` per controller and one ``<testcase>`` per check
    (``classname`` ``smoke.<controller>``, ``time`` in seconds, a
    ``<failure>`` with the check's detail when it failed). A controller whose
    smoke test could not run at all (``results[name]`` is the error text)
    gets one testcase with an ``<error>``.
    """
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="cinder-devloop smoke")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for name, result in results.items():
        suite = ET.SubElement(root, "testsuite", name=f"smoke.{name}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        if isinstance(result, str):
            case = ET.SubElement(suite, "testcase", classname=f"smoke.{name}", name="smoke",
                                 time="0.000")
            ET.SubElement(case, "error", message=result.splitlines()[0] if result else "error"
                          ).text = result
            counts["tests"], counts["errors"] = 1, 1
        else:
            suite.set("hostname", result.base_url)
            for check in result.checks:
                case = ET.SubElement(suite, "testcase", classname=f"smoke.{name}",
                                     name=check.name, time=f"{check.duration:.3f}")
                if not check.ok:
                    ET.SubElement(case, "failure", message=check.detail,
                                  type="CheckFailed").text = check.detail
                    counts["failures"] += 1
                counts["tests"] += 1
                counts["time"] += check.duration
        for key, value in counts.items():
            suite.set(key, f"{value:.3f}" if key == "time" else str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, f"{value:.3f}" if key == "time" else str(int(value)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
