"""How the tool talks to a controller's API: a token and the Block Storage endpoint.

One place answers "which URL, which project, which token" for everything
that calls the API (``smoke``, the health checks that need a token):

* the controller names a cloud (``cloud: NAME`` in hosts.yaml), or the
  environment does (``OS_CLOUD``): that cloud, read from clouds.yaml (and
  secure.yaml, clouds-public.yaml) exactly as OpenStack's clients read it
  (:mod:`deploy.openstack.clouds`);
* or ``OS_AUTH_URL`` and the other ``OS_*`` variables are set: the cloud
  they make;
* otherwise the API is taken to run ``auth_strategy = noauth`` (the
  supervisord sandbox): the controller's ``api_url``, and the token
  ``admin:<project>``. Nothing of openstacksdk or keystoneauth is imported.

With Keystone, keystoneauth1 authenticates (any ``auth_type`` it knows)
and the endpoint comes from the catalog (service type ``block-storage``,
also found as ``volumev3``). Every failure is one ``AuthError`` line that
names the cloud and its file(s), and shows no secret: a missing cloud or
secret, a refused credential, an unreachable Keystone, no endpoint.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast

from deploy.base.errors import AuthError
from deploy.base.inventory import Controller
from deploy.openstack.clouds import Cloud, first_line, load

# keystoneauth logs its own warnings (with the auth_url as written, password and
# all) through logging's last resort, onto stderr; the AuthError says what failed.
logging.getLogger("keystoneauth").setLevel(logging.CRITICAL)

NOAUTH_PROJECT = "5e1f7e57"
SERVICE_TYPES = ("block-storage", "volumev3")
_VERSIONED = re.compile(r"^(?P<root>.*?)/v3(?:/(?P<project>[^/]+))?/?$")


@dataclass(frozen=True, slots=True)
class ApiAccess:
    """Where the Block Storage API is and how to call it."""

    base_url: str            # the API's root, e.g. http://ctl:8776 (no /v3)
    project_id: str
    token: str
    cloud: str | None = None  # None: noauth

    def __repr__(self) -> str:   # never show the token
        return (f"ApiAccess(base_url={self.base_url!r}, project_id={self.project_id!r}, "
                f"cloud={self.cloud!r})")

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    @property
    def describe(self) -> str:
        how = f"Keystone ({self.cloud})" if self.cloud else "noauth"
        return f"{self.base_url} as project {self.project_id} via {how}"


def _who(cloud: Cloud) -> str:
    """Whom Keystone refused: the user, the application credential, the token."""
    auth = cloud.auth
    if "applicationcredential" in cloud.auth_type.replace("_", ""):
        ident = auth.get("application_credential_id") or auth.get("application_credential_name")
        return (f"application credential {str(ident)!r} (401: wrong secret, or it expired "
                f"or was deleted)")
    if cloud.auth_type in ("token", "v3token", "v2token"):
        return "the token (401: expired or revoked, or not valid for that project)"
    user = auth.get("username") or auth.get("user_id")
    if user:
        return f"user {str(user)!r} (401: wrong user name, password or project)"
    return f"the {cloud.auth_type} credentials (401)"


_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _unreachable(exc: Exception, timeout: object) -> str:
    """Why Keystone could not be reached, in a few words (requests nests the reason deep)."""
    from keystoneauth1 import exceptions as ks_exc

    if isinstance(exc, ks_exc.ConnectTimeout):
        return f"no answer within {timeout} s"
    reason = _OS_ERROR.search(str(exc))
    return reason.group(1).strip().lower() if reason else first_line(exc)[:200]


def keystone_access(cloud: Cloud) -> ApiAccess:
    """Authenticate as ``cloud``; find Block Storage in the catalog.

    Raises:
        AuthError: Keystone refused or cannot be reached, or no endpoint.
    """
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc  # (after load(): the config package alone)

    label, region = cloud.label, cloud.region
    auth_url = cloud.auth.get("auth_url", "?")
    interface = region.get_interface("block-storage") or "public"
    region_name = region.get_region_name("block-storage") or None
    try:
        sess = region.get_session()
        token = sess.get_token()
        project_id = sess.get_project_id()
        endpoint = region.get_endpoint("block-storage")    # block_storage_endpoint_override
        for service_type in () if endpoint else SERVICE_TYPES:
            try:
                endpoint = sess.get_endpoint(service_type=service_type, interface=interface,
                                             region_name=region_name)
            except ks_exc.EndpointNotFound:
                endpoint = None
            if endpoint:
                break
    except ks_exc.Unauthorized:
        raise AuthError(f"{label}: Keystone at {auth_url} refused {_who(cloud)}") from None
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure) as exc:
        raise AuthError(cloud.mask(f"{label}: cannot reach Keystone at {auth_url}: "
                                   f"{_unreachable(exc, region.config.get('api_timeout'))}")
                        ) from None
    except (ks_exc.ClientException, sdk_exc.SDKException) as exc:
        raise AuthError(cloud.mask(f"{label}: Keystone at {auth_url}: "
                                   f"{first_line(exc)[:200]}")) from None
    if not endpoint:
        where = f" in region {region_name}" if region_name else ""
        raise AuthError(f"{label}: no Block Storage endpoint ({'/'.join(SERVICE_TYPES)}, "
                        f"interface {interface}{where}) in the catalog of {auth_url}")
    if not project_id:
        raise AuthError(f"{label}: the token Keystone at {auth_url} gave is scoped to no "
                        f"project (name one: project_name or project_id)")
    match = _VERSIONED.match(endpoint.rstrip("/"))
    base = match.group("root") if match else endpoint.rstrip("/")
    return ApiAccess(base, str(project_id), str(token), cloud.short)


def _named(controller: Controller) -> str | None:
    """The cloud ``controller`` authenticates as: its own, else OS_CLOUD (None: neither)."""
    return controller.cloud or os.environ.get("OS_CLOUD") or None


def keystone_wanted(controller: Controller) -> bool:
    """Whether ``controller``'s API is called with a Keystone token (else noauth)."""
    return bool(_named(controller) or os.environ.get("OS_AUTH_URL"))


def api_access(controller: Controller, project: str | None = None) -> ApiAccess:
    """How to call ``controller``'s API: Keystone when a cloud is named, else noauth.

    ``project`` applies to noauth only (Keystone gives the token's project).

    Raises:
        AuthError: see :func:`deploy.openstack.clouds.load` and :func:`keystone_access`.
    """
    if not keystone_wanted(controller):
        project = project or NOAUTH_PROJECT
        return ApiAccess(controller.api_url.rstrip("/"), project, f"admin:{project}")
    key = _key(controller)
    return _remembered(("access", *key),
                       lambda: keystone_access(_remembered(("cloud", *key),
                                                           lambda: load(key[0]))))


def _key(controller: Controller) -> tuple[str | None, ...]:
    """The cloud's name and all the loader reads: the same key, the same cloud."""
    return (_named(controller), os.getcwd(),
            *(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OS_")))


# A Keystone token costs a password check (bcrypt: about 0.3 s); one run, and
# a watch session's bursts, reuse it (and the cloud read) for a while
# (tokens live an hour).
_REUSE_SECONDS = 600.0
_remembered_values: dict[tuple[object, ...], tuple[float, Any]] = {}
_fetching: dict[tuple[object, ...], threading.Lock] = {}
_fetching_lock = threading.Lock()
T = TypeVar("T")


def _remembered(key: tuple[object, ...], fetch: Callable[[], T]) -> T:
    """``fetch()``'s value, or the same one fetched less than a while ago.

    Two threads asking at once (a prefetch and the caller) fetch it once.
    """
    with _fetching_lock:
        lock = _fetching.setdefault(key, threading.Lock())
    with lock:
        kept = _remembered_values.get(key)
        if kept is not None and time.monotonic() - kept[0] < _REUSE_SECONDS:
            return cast(T, kept[1])
        value = fetch()
        _remembered_values[key] = (time.monotonic(), value)
        return value


def _in_background(controller: Controller, purpose: str, work: Callable[[], object]) -> None:
    """Run ``work`` in a thread, if ``controller`` needs Keystone; its AuthError is left
    for the caller who needs the result to meet and report."""
    if not keystone_wanted(controller):
        return

    def run() -> None:
        try:
            work()
        except AuthError:
            pass

    threading.Thread(target=run, name=f"{purpose}-{controller.name}", daemon=True).start()


def read_cloud_early(controller: Controller) -> None:
    """Read ``controller``'s cloud in the background (openstacksdk's import, the files).

    Called as a deploy starts: what costs CPU here (about 0.25 s) overlaps
    the sync's waits on the network instead of the token's way after the
    restart. No request is made (no token for a deploy that changes nothing).
    """
    _in_background(controller, "cloud",
                   lambda: _remembered(("cloud", *_key(controller)),
                                       lambda: load(_key(controller)[0])))


def prefetch(controller: Controller) -> None:
    """Authenticate for ``controller`` in the background, if it needs Keystone.

    The restart after a deploy runs meanwhile; the health check that follows
    then finds the token ready.
    """
    _in_background(controller, "token", lambda: api_access(controller))


def cloud_access(name: str, clouds_file: str | os.PathLike[str] | None = None) -> ApiAccess:
    """Authenticate as the cloud ``name`` (e.g. a member user, for the specs).

    ``clouds_file`` reads that clouds.yaml alone, whatever the environment says.

    Raises:
        AuthError: see :func:`api_access`.
    """
    return keystone_access(load(name, os.fspath(clouds_file) if clouds_file else None))
