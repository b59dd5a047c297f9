"""Which cloud, with which settings: clouds.yaml read exactly as OpenStack's clients read it.

openstacksdk's own loader (``openstack.config``, what ``openstack`` and the
SDK use) does the reading, so every form users keep credentials in works:

* the first ``clouds.yaml`` found (``$OS_CLIENT_CONFIG_FILE``, ``./``,
  ``~/.config/openstack/``, ``/etc/openstack/``; also ``.yml``/``.json``),
  with the first ``secure.yaml`` found (``$OS_CLIENT_SECURE_FILE``, then the
  same directories) merged in;
* vendor profiles (``profile:``) from ``clouds-public.yaml`` or
  openstacksdk's own list; ``regions:``;
* every ``auth_type`` keystoneauth knows (password, application
  credentials, tokens, ...);
* ``OS_CLOUD``, and the ``OS_*`` variables as the cloud ``envvars``.

Only openstacksdk's config package is imported (:func:`sdk_loader`), and
only inside :func:`load`, which runs once a cloud is named (or
``OS_AUTH_URL`` is set): noauth controllers never pay for it.

Everything that can go wrong here is one :class:`AuthError` line naming the
cloud and the file(s) it came from; no secret is ever part of a message.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Collection

from deploy.base import output
from deploy.base.errors import AuthError

#: how messages name the cloud made of the ``OS_*`` variables
ENV_LABEL = "the OS_* variables"
#: auth settings whose values are secrets (matched as parts of the setting's name)
SECRET_WORDS = ("password", "secret", "token", "passcode")

# One load at a time: openstacksdk's warnings (a vendor profile it cannot
# find) are caught to be turned into lines, and catching is process-wide.
_lock = threading.Lock()


@dataclass(frozen=True)
class Cloud:
    """One cloud's settings, merged as OpenStack's clients merge them."""

    name: str               # the clouds.yaml name ("envvars" for the OS_* variables)
    short: str              # "cloud NAME" or "OS_* variables" (progress lines)
    label: str              # "cloud NAME (FILE[, SECURE])" or "the OS_* variables" (errors)
    region: Any             # openstack.config.cloud_region.CloudRegion
    secrets: tuple[str, ...]

    def __repr__(self) -> str:   # never show the settings (they hold the secrets)
        return f"Cloud({self.label!r})"

    @property
    def auth(self) -> dict[str, Any]:
        return dict(self.region.config.get("auth") or {})

    @property
    def auth_type(self) -> str:
        return str(self.region.config.get("auth_type") or "password")

    def mask(self, text: str) -> str:
        """``text`` with every secret of this cloud replaced by ``***``."""
        return mask(text, self.secrets)


def mask(text: str, secrets: Collection[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def first_line(exc: object) -> str:
    """The first line of ``exc``'s message (at most 300 characters)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def sdk_loader() -> ModuleType:
    """openstacksdk's ``openstack.config.loader``, without the rest of the SDK.

    ``import openstack.config`` first runs ``openstack/__init__.py``, which
    imports ``openstack.connection`` and with it every service's proxy:
    0.25 s on an idle 2-core machine, 1.3 s on a busy one, where the config
    package alone takes a sixth of that. So the package is registered
    without running its ``__init__`` (its submodules import as usual from
    its directory); the config package needs nothing from that ``__init__``.
    A process that imported the whole SDK before keeps it.

    One thread at a time: a module another thread is still importing is in
    ``sys.modules`` already, half made (one thread per controller runs this).
    """
    with _SDK_LOCK:
        loaded = sys.modules.get("openstack.config.loader")
        if loaded is not None:
            return loaded
        if "openstack" not in sys.modules:
            spec = importlib.util.find_spec("openstack")
            if spec is None:
                raise AuthError("openstacksdk is not installed: pip install -r requirements.txt")
            sys.modules["openstack"] = importlib.util.module_from_spec(spec)
        return importlib.import_module("openstack.config.loader")


_SDK_LOCK = threading.Lock()


def config_dirs() -> list[str]:
    """The directories OpenStack's clients look in, in their order (no repeats)."""
    loader = sdk_loader()
    # the loader took the working directory when it was imported: take it now
    return list(dict.fromkeys([os.getcwd(), *loader.CONFIG_SEARCH_PATH[1:]]))


def candidates(stem: str) -> list[str]:
    """``<dir>/<stem>.yaml|.yml|.json`` for each of :func:`config_dirs`."""
    loader = sdk_loader()

    return [os.path.join(directory, stem + suffix) for directory in config_dirs()
            for suffix in (*loader.YAML_SUFFIXES, *loader.JSON_SUFFIXES)]


def _looked_for(stem: str, override: str | None) -> str:
    home = os.path.expanduser("~")
    shown = [override] if override else []
    for directory in config_dirs():
        if directory.startswith(home + os.sep):
            directory = "~" + directory[len(home):]
        shown.append(os.path.join(directory, stem + ".yaml"))
    return ", ".join(shown) + " (also .yml, .json)"


def load(name: str | None, clouds_file: str | None = None) -> Cloud:
    """The cloud ``name`` of clouds.yaml, or (``None``) the one the ``OS_*`` variables make.

    ``clouds_file`` reads that file alone (no secure.yaml, no variables).

    Raises:
        AuthError: no clouds.yaml names it, a setting is missing or wrong
            (a secret, the auth_type, a vendor profile, the region).
    """
    loader = sdk_loader()
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc
    from openstack import warnings as sdk_warnings

    short = f"cloud {name}" if name else "OS_* variables"
    with _lock, warnings.catch_warnings(record=True) as caught:
        _route_library_logs()
        warnings.simplefilter("always")
        try:
            if clouds_file:
                config = loader.OpenStackConfig(config_files=[clouds_file], secure_files=[],
                                                load_envvars=False)
            else:
                config = loader.OpenStackConfig(config_files=candidates("clouds"),
                                                secure_files=candidates("secure"),
                                                vendor_files=candidates("clouds-public"))
        except sdk_exc.SDKException as exc:
            raise AuthError(f"{short}: {first_line(exc)}") from None
        cloud_name = name or config.envvar_key
        label = _label(config, name)
        if cloud_name not in config.get_cloud_names():
            raise AuthError(_not_found(config, cloud_name))
        entry = config.cloud_config["clouds"][cloud_name]
        secrets = _secret_values(entry)
        try:
            unchecked = config.get_one(cloud=cloud_name, validate=False)
            _refuse_unknown_profile(caught, sdk_warnings.ConfigurationWarning, entry, label)
            _require_secrets(config, unchecked.config, label, name)
            region = config.get_one(cloud=cloud_name)
        except ks_exc.NoMatchingPlugin as exc:
            from keystoneauth1 import loading
            known = ", ".join(sorted(loading.get_available_plugin_names()))
            raise AuthError(f"{label}: unknown auth_type {exc.name!r} (keystoneauth knows: "
                            f"{known})") from None
        except ks_exc.MissingRequiredOptions as exc:
            missing = ", ".join(_setting(o.dest, name) for o in exc.options)
            raise AuthError(f"{label}: missing {missing}") from None
        except (ks_exc.ClientException, sdk_exc.SDKException) as exc:
            raise AuthError(mask(f"{label}: {first_line(exc)}", secrets)) from None
    for warning in caught:
        if issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
            continue     # hidden by Python's default filters, as from `openstack`
        if warning.category.__module__.split(".")[0] in ("openstack", "keystoneauth1"):
            output.warn(mask(f"{label}: {first_line(warning.message)}", secrets))
        else:    # another thread's, caught meanwhile: shown (or not) as it would have been
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if region.config.get("api_timeout") is None:
        region.config["api_timeout"] = 30     # an unreachable Keystone is an error, not a hang
    return Cloud(cloud_name, short, label, region,
                 tuple(sorted(secrets | _secret_values(region.config))))


def _label(config: Any, name: str | None) -> str:
    if name is None:
        return ENV_LABEL
    files = [config.config_filename] if config.config_filename else []
    secure = config.secure_config_filename
    if secure and _names(secure, name):
        files.append(secure)
    return f"cloud {name} ({', '.join(files)})" if files else f"cloud {name}"


def _names(path: str, name: str) -> bool:
    """Whether the YAML/JSON file ``path`` has an entry for cloud ``name``."""
    import yaml

    try:
        with open(path) as stream:
            data = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError):
        return False
    clouds = data.get("clouds") if isinstance(data, dict) else None
    return isinstance(clouds, dict) and name in clouds


def _not_found(config: Any, name: str) -> str:
    if not config.config_filename:
        return (f"cloud {name!r}: no clouds.yaml found (looked for "
                f"{_looked_for('clouds', os.environ.get('OS_CLIENT_CONFIG_FILE'))}; "
                f"set OS_CLIENT_CONFIG_FILE)")
    known = ", ".join(n for n in config.get_cloud_names() if n != config.envvar_key) or "none"
    return f"cloud {name!r} is not in {config.config_filename} (clouds there: {known})"


def _secret_values(entry: Any) -> set[str]:
    """Every value under a secret-looking key of ``entry`` (nested), as text."""
    found: set[str] = set()
    if isinstance(entry, dict):
        for key, value in entry.items():
            if isinstance(value, (dict, list)):
                found |= _secret_values(value)
            elif value not in (None, "") and any(w in str(key).lower() for w in SECRET_WORDS):
                found.add(str(value))
    elif isinstance(entry, list):
        for value in entry:
            found |= _secret_values(value)
    return found


def _setting(dest: str, name: str | None) -> str:
    """How the user spells the setting ``dest``: ``password`` or ``OS_PASSWORD``."""
    return f"OS_{dest.upper()}" if name is None else dest


def _refuse_unknown_profile(caught: list[warnings.WarningMessage], category: type,
                            entry: dict[str, Any], label: str) -> None:
    profile = entry.get("profile") or entry.get("cloud")
    if profile and any(issubclass(w.category, category) and "vendor profile" in str(w.message)
                       for w in caught):
        raise AuthError(f"{label}: unknown vendor profile {profile!r} (not in "
                        f"{_looked_for('clouds-public', None)}, nor among openstacksdk's "
                        f"vendor profiles)")


def _require_secrets(config: Any, settings: dict[str, Any], label: str,
                     name: str | None) -> None:
    """Refuse, before any request, a cloud whose auth_type lacks its secret.

    keystoneauth would fail later and less clearly (a bare ``Exception:
    password is a required attribute`` on the first request).
    """
    from keystoneauth1 import loading

    auth_type = settings.get("auth_type") or "password"
    if auth_type in ("none", "None", "token_endpoint", "admin_token"):
        return
    plugin: Any = loading.get_plugin_loader(auth_type)
    auth = settings.get("auth") or {}
    missing = []
    for opt in plugin.get_options():
        if not opt.secret or not (opt.required or opt.prompt or opt.dest == "token"):
            continue
        spellings = {opt.dest, opt.name.replace("-", "_"), *(d.dest for d in opt.deprecated)}
        if not any(auth.get(key) not in (None, "") or settings.get(key) not in (None, "")
                   for key in spellings):
            missing.append(opt.dest)
    if not missing:
        return
    shown = ", ".join(_setting(dest, name) for dest in missing)
    if name is None:
        raise AuthError(f"{label}: {shown} not set")
    read = [path for path in (config.config_filename, config.secure_config_filename) if path]
    where = f"in neither {' nor '.join(read)}" if len(read) > 1 else f"not in {read[0]}"
    hint = ""
    if not config.secure_config_filename:
        hint = f"; no secure.yaml found (looked for {_looked_for('secure', None)}"
        beside = os.path.join(os.path.dirname(config.config_filename), "secure.yaml")
        if os.path.isfile(beside):
            hint += f"; {beside} is read only when OS_CLIENT_SECURE_FILE names it"
        hint += ")"
    raise AuthError(f"{label}: {shown} missing: {where}{hint}")


_routed = False


def _route_library_logs() -> None:
    """openstacksdk's and keystoneauth's log lines: warnings become ``warning:`` lines, or go.

    Without a handler, Python would print their warnings bare on stderr
    (keystoneauth's "Failed to discover available identity versions" before
    our own error line says the same).
    """
    global _routed
    if _routed:
        return
    _routed = True
    logging.getLogger("keystoneauth").addHandler(logging.NullHandler())
    logging.getLogger("keystoneauth").propagate = False
    sdk = logging.getLogger("openstack")
    sdk.addHandler(_WarningLines())
    sdk.propagate = False


class _WarningLines(logging.Handler):
    """openstacksdk's warnings (a clouds.yaml it skips as broken) as one ``warning:`` line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        text = " ".join(record.getMessage().split())
        output.warn(f"openstacksdk: {text[:300]}")
