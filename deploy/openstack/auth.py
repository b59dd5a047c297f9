"""How the tool talks to a controller's API: a token and the Block Storage endpoint.

One place answers "which URL, which project, which token" for everything
that calls the API (``smoke``, the health checks that need a token):

* the controller names a cloud (``cloud: NAME`` in hosts.yaml), or the
  environment does (``OS_CLOUD``): that entry of ``clouds.yaml``, looked up
  where OpenStack's own clients look (``OS_CLIENT_CONFIG_FILE``,
  ``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``,
  ``/etc/openstack/clouds.yaml``);
* or ``OS_AUTH_URL`` and the other ``OS_*`` variables are set;
* otherwise the API is taken to run ``auth_strategy = noauth`` (the
  supervisord sandbox): the controller's ``api_url``, and the token
  ``admin:<project>``.

With Keystone, keystoneauth1 authenticates and the endpoint comes from the
catalog (service type ``block-storage``, also found as ``volumev3``).
Every failure is one ``AuthError`` line: a missing cloud, a wrong password,
an unreachable Keystone, no endpoint.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from deploy.base.errors import AuthError
from deploy.base.inventory import Controller

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


def clouds_yaml_candidates(env: Mapping[str, str] | None = None) -> list[Path]:
    """The clouds.yaml files OpenStack clients read, in their order."""
    env = os.environ if env is None else env
    paths = []
    if env.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(env["OS_CLIENT_CONFIG_FILE"]).expanduser())
    paths += [Path.cwd() / "clouds.yaml", Path("~/.config/openstack/clouds.yaml").expanduser(),
              Path("/etc/openstack/clouds.yaml")]
    return paths


def load_cloud(name: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The entry ``name`` of the first clouds.yaml that has it.

    Raises:
        AuthError: no clouds.yaml names it (or one cannot be read).
    """
    searched, seen = [], []
    for path in clouds_yaml_candidates(env):
        if not path.is_file():
            continue
        searched.append(str(path))
        try:
            clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds") or {}
        except (OSError, yaml.YAMLError, AttributeError) as exc:
            raise AuthError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        if isinstance(clouds, dict) and isinstance(clouds.get(name), dict):
            return dict(clouds[name])
        seen += [str(c) for c in clouds] if isinstance(clouds, dict) else []
    if not searched:
        where = ", ".join(str(p) for p in clouds_yaml_candidates(env))
        raise AuthError(f"cloud {name!r}: no clouds.yaml found (looked for {where}; "
                        f"set OS_CLIENT_CONFIG_FILE)")
    known = ", ".join(dict.fromkeys(seen)) or "none"
    raise AuthError(f"cloud {name!r} is not in {', '.join(searched)} (clouds there: {known})")


def _cloud_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """A clouds.yaml-shaped entry made of the ``OS_*`` variables."""
    keys = ("auth_url", "username", "password", "project_name", "project_id",
            "user_domain_name", "user_domain_id", "project_domain_name", "project_domain_id",
            "user_id", "domain_name", "domain_id")
    auth = {k: env[f"OS_{k.upper()}"] for k in keys if env.get(f"OS_{k.upper()}")}
    if "project_name" not in auth and env.get("OS_TENANT_NAME"):
        auth["project_name"] = env["OS_TENANT_NAME"]
    entry: dict[str, Any] = {"auth": auth}
    for key in ("region_name", "interface", "auth_type"):
        if env.get(f"OS_{key.upper()}"):
            entry[key] = env[f"OS_{key.upper()}"]
    return entry


def _session(cloud: Mapping[str, Any], label: str) -> Any:
    from keystoneauth1 import exceptions as ks_exc
    from keystoneauth1 import loading, session

    auth_type = str(cloud.get("auth_type") or "password")
    try:
        loader: Any = loading.get_plugin_loader(auth_type)
        options = {o.dest for o in loader.get_options()}
        auth = loader.load_from_options(**{k.replace("-", "_"): v
                                           for k, v in dict(cloud.get("auth") or {}).items()
                                           if k.replace("-", "_") in options})
    except ks_exc.NoMatchingPlugin:
        raise AuthError(f"{label}: unknown auth_type {auth_type!r}") from None
    except ks_exc.MissingRequiredOptions as exc:
        missing = ", ".join(o.dest for o in exc.options)
        raise AuthError(f"{label}: auth settings missing: {missing}") from None
    verify = cloud.get("verify", True)
    if cloud.get("cacert"):
        verify = cloud["cacert"]
    return session.Session(auth=auth, verify=verify, timeout=30)


def keystone_access(cloud: Mapping[str, Any], label: str) -> ApiAccess:
    """Authenticate with ``cloud`` (a clouds.yaml entry); find Block Storage in the catalog.

    Raises:
        AuthError: wrong credentials, Keystone unreachable, or no endpoint.
    """
    from keystoneauth1 import exceptions as ks_exc

    sess = _session(cloud, label)
    auth_url = (cloud.get("auth") or {}).get("auth_url", "?")
    user = (cloud.get("auth") or {}).get("username", "?")
    interface = str(cloud.get("interface") or "public")
    region = cloud.get("region_name")
    try:
        token = sess.get_token()
        project_id = sess.get_project_id()
        endpoint = None
        for service_type in SERVICE_TYPES:
            try:
                endpoint = sess.get_endpoint(service_type=service_type, interface=interface,
                                             region_name=region)
            except ks_exc.EndpointNotFound:
                endpoint = None
            if endpoint:
                break
    except ks_exc.Unauthorized:
        raise AuthError(f"{label}: Keystone at {auth_url} refused user {user!r} "
                        f"(401: wrong user name, password or project)") from None
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure) as exc:
        raise AuthError(f"{label}: cannot reach Keystone at {auth_url}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    except ks_exc.ClientException as exc:
        raise AuthError(f"{label}: Keystone at {auth_url}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    if not endpoint:
        where = f" in region {region}" if region else ""
        raise AuthError(f"{label}: no Block Storage endpoint ({'/'.join(SERVICE_TYPES)}, "
                        f"interface {interface}{where}) in the catalog of {auth_url}")
    match = _VERSIONED.match(endpoint.rstrip("/"))
    base = match.group("root") if match else endpoint.rstrip("/")
    return ApiAccess(base, str(project_id), str(token), label)


def api_access(controller: Controller, project: str | None = None,
               env: Mapping[str, str] | None = None) -> ApiAccess:
    """How to call ``controller``'s API: Keystone when a cloud is named, else noauth.

    ``project`` applies to noauth only (Keystone gives the token's project).

    Raises:
        AuthError: see :func:`load_cloud` and :func:`keystone_access`.
    """
    env = os.environ if env is None else env
    name = controller.cloud or env.get("OS_CLOUD")
    if name:
        return _remembered(("cloud", name, env.get("OS_CLIENT_CONFIG_FILE")),
                           lambda: keystone_access(load_cloud(name, env), f"cloud {name}"))
    if env.get("OS_AUTH_URL"):
        return _remembered(("env", *sorted((k, v) for k, v in env.items() if k.startswith("OS_"))),
                           lambda: keystone_access(_cloud_from_env(env), "OS_AUTH_URL"))
    project = project or NOAUTH_PROJECT
    return ApiAccess(controller.api_url.rstrip("/"), project, f"admin:{project}")


# A Keystone token costs a password check (bcrypt: about 0.3 s); one run, and
# a watch session's bursts, reuse it for a while (tokens live an hour).
_REUSE_SECONDS = 600.0
_remembered_access: dict[tuple[object, ...], tuple[float, ApiAccess]] = {}
_fetching: dict[tuple[object, ...], threading.Lock] = {}
_fetching_lock = threading.Lock()


def _remembered(key: tuple[object, ...], fetch: Callable[[], ApiAccess]) -> ApiAccess:
    """``fetch()``'s access, or the same one fetched less than a while ago.

    Two threads asking at once (a prefetch and the caller) fetch it once.
    """
    with _fetching_lock:
        lock = _fetching.setdefault(key, threading.Lock())
    with lock:
        kept = _remembered_access.get(key)
        if kept is not None and time.monotonic() - kept[0] < _REUSE_SECONDS:
            return kept[1]
        access = fetch()
        _remembered_access[key] = (time.monotonic(), access)
        return access


def prefetch(controller: Controller) -> None:
    """Authenticate for ``controller`` in the background, if it needs Keystone.

    The restart after a deploy runs meanwhile; the health check that follows
    then finds the token ready. A failure here is left for that check to
    meet and report.
    """
    env = os.environ
    if not (controller.cloud or env.get("OS_CLOUD") or env.get("OS_AUTH_URL")):
        return

    def fetch() -> None:
        try:
            api_access(controller, env=env)
        except AuthError:
            pass

    threading.Thread(target=fetch, name=f"token-{controller.name}", daemon=True).start()


def cloud_access(name: str, env: Mapping[str, str] | None = None) -> ApiAccess:
    """Authenticate as the clouds.yaml entry ``name`` (e.g. a member user, for the specs)."""
    return keystone_access(load_cloud(name, env), f"cloud {name}")
