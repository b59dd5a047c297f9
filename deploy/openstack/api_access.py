"""How the tool sends requests to a controller's Block Storage API.

Who the tool is (the token, project and endpoint) comes from
:mod:`deploy.openstack.auth`: Keystone for a controller with a cloud, noauth
otherwise. How requests travel is decided here: through the controller's SSH
connection (``deploy.transport.tunnel``), so the URL stays the controller's own and
nothing needs a route from the workstation.
"""
from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from deploy.base.errors import HealthCheckError
from deploy.openstack.auth import ApiAccess
from deploy.transport.commands import Remote


@dataclass(frozen=True)
class ApiClient:
    """An authenticated way to one controller's API."""

    access: ApiAccess
    opener: urllib.request.OpenerDirector

    @property
    def root(self) -> str:
        root = self.access.base_url.rstrip("/")
        return root[: -len("/v3")] if root.endswith("/v3") else root

    @property
    def project_url(self) -> str:
        """``<root>/v3/<project>``: where the project's resources live."""
        return f"{self.root}/v3/{self.access.project_id}"

    def get_json(self, url: str, timeout: float = 10.0) -> tuple[int, Any]:
        """GET ``url`` with the token; return (status, decoded JSON or None).

        Raises:
            OSError: the request could not be sent or answered.
        """
        request = urllib.request.Request(url, headers={
            **self.access.headers, "Accept": "application/json"})
        try:
            with self.opener.open(request, timeout=timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None


def api_client(remote: Remote, *, project_id: str | None = None,
               token: str | None = None) -> ApiClient:
    """How to reach ``remote``'s API, authenticated as
    :func:`deploy.openstack.auth.api_access` says.

    ``token`` replaces the one authentication gives (e.g. a noauth ``user:project``).

    Raises:
        AuthError: Keystone authentication failed.
    """
    from deploy.openstack.auth import api_access
    from deploy.transport.tunnel import api_opener

    access = api_access(remote.controller, project_id)
    if token:
        access = dataclasses.replace(access, token=token)
    return ApiClient(access, api_opener(remote))


def list_extensions(client: ApiClient) -> set[str]:
    """The aliases the API lists at ``/v3/<project>/extensions``.

    Raises:
        HealthCheckError: the list could not be read.
    """
    url = f"{client.project_url}/extensions"
    try:
        status, body = client.get_json(url)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise HealthCheckError(f"GET {url} failed: {reason}") from None
    if status != 200 or not isinstance(body, dict):
        raise HealthCheckError(f"GET {url} answered HTTP {status}: {str(body)[:200]}")
    return {str(ext["alias"]) for ext in body.get("extensions", [])
            if isinstance(ext, dict) and ext.get("alias")}
