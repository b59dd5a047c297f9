"""How the tool talks to a controller's Block Storage API: the one place for auth.

Every request the tool sends to the API (the smoke test, the health check's
extension list) gets its base URL, project, token and transport from
:func:`api_access`. Today that is Cinder's ``noauth`` scheme (token
``<user>:<project>``, project ids in hex); Keystone authentication for real
controllers plugs in here.

Requests travel through the controller's SSH connection (``deploy.tunnel``),
so the URL stays the controller's own.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from deploy.commands import Remote
from deploy.errors import HealthCheckError

DEFAULT_PROJECT = "5e1f7e57"


@dataclass(frozen=True)
class ApiAccess:
    """Where the API is and how to authenticate to it."""

    base_url: str                      # the API's root URL, e.g. http://127.0.0.1:8776/
    project_id: str
    token: str
    opener: urllib.request.OpenerDirector

    @property
    def root(self) -> str:
        root = self.base_url.rstrip("/")
        return root[: -len("/v3")] if root.endswith("/v3") else root

    @property
    def project_url(self) -> str:
        """``<root>/v3/<project>``: where the project's resources live."""
        return f"{self.root}/v3/{self.project_id}"

    def get_json(self, url: str, timeout: float = 10.0) -> tuple[int, Any]:
        """GET ``url`` with the token; return (status, decoded JSON or None).

        Raises:
            OSError: the request could not be sent or answered.
        """
        request = urllib.request.Request(url, headers={
            "X-Auth-Token": self.token, "Accept": "application/json"})
        try:
            with self.opener.open(request, timeout=timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None


def api_access(remote: Remote, *, project_id: str = DEFAULT_PROJECT,
               token: str | None = None) -> ApiAccess:
    """How to reach ``remote``'s API: noauth (``admin:<project>``) unless a token is given."""
    from deploy.tunnel import api_opener

    return ApiAccess(remote.controller.api_url, project_id, token or f"admin:{project_id}",
                     api_opener(remote))


def list_extensions(access: ApiAccess) -> set[str]:
    """The aliases the API lists at ``/v3/<project>/extensions``.

    Raises:
        HealthCheckError: the list could not be read.
    """
    url = f"{access.project_url}/extensions"
    try:
        status, body = access.get_json(url)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise HealthCheckError(f"GET {url} failed: {reason}") from None
    if status != 200 or not isinstance(body, dict):
        raise HealthCheckError(f"GET {url} answered HTTP {status}: {str(body)[:200]}")
    return {ext.get("alias") for ext in body.get("extensions", []) if isinstance(ext, dict)}
