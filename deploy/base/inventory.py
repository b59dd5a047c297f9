"""Read hosts.yaml into typed, frozen data, reporting every problem at once.

The file names the source tree to deploy and one or more controllers::

    source: cinder_patch/cinder        # relative to hosts.yaml
    controllers:
      ctl1:
        address: 192.0.2.10            # everything else has an RDO default
        cloud: mycloud                 # clouds.yaml entry for Keystone (optional)

Workstation paths (``source``, ``identity_file``, ``known_hosts``) are
resolved against the directory of hosts.yaml; controller paths are used as
written. Defaults describe a packaged (RDO) controller, so a real controller
needs only its address; a ``defaults:`` mapping applies to every controller.

Hosts that are not controllers go under ``hosts:``: a devbox that holds the
checkout (``source_host: devbox``; ``source`` is then a path on the devbox and
rsync runs there) or a gateway a controller is reached through
(``gateway: bastion`` on the controller).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from deploy.base.errors import InventoryError

DEFAULT_EXCLUDES: tuple[str, ...] = (".vscode/", ".git/", "__pycache__/", "*.pyc", ".tox/")
SERVICE_MANAGERS = ("systemd", "supervisord")
RDO_CONFIG_FILES = ("/usr/share/cinder/cinder-dist.conf", "/etc/cinder/cinder.conf")
LAYOUTS = ("rdo", "devstack")
#: what ``layout: devstack`` changes from the RDO defaults: the uWSGI unit,
#: the venv's cinder-manage, the stack user, logs in journald only
#: (``log_file`` empty); the python is read from the unit (see ``facts``).
DEVSTACK_DEFAULTS: Mapping[str, Any] = {
    "service": "devstack@c-api.service",
    # not how the service starts (uWSGI does): what ``invoke debug`` runs in
    # the foreground, Cinder's own single-process server from the venv
    "cinder_api": "/opt/stack/data/venv/bin/cinder-api",
    "cinder_manage": "/opt/stack/data/venv/bin/cinder-manage",
    "config_files": ("/etc/cinder/cinder.conf",),
    "log_file": "",
    "service_user": "stack",
}
#: the unit file DevStack writes for Cinder's API: a controller whose entry
#: names neither ``layout`` nor ``service`` is DevStack's when it has this
DEVSTACK_UNIT_FILE = "/etc/systemd/system/devstack@c-api.service"
#: the largest inventory file read (a real one is a few KiB)
MAX_INVENTORY_BYTES = 256 * 1024
#: the most values an inventory's YAML may expand to, aliases followed
#: (a real one has a few hundred; an alias bomb has billions)
MAX_YAML_VALUES = 100_000
#: connect_timeout's ceiling, in seconds
MAX_CONNECT_TIMEOUT = 3600


@dataclass(frozen=True, slots=True)
class Host:
    """A host that is not a controller: a devbox or an SSH gateway."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    identity_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    connect_timeout: float = 10.0
    gateway: "Host | None" = None

    @property
    def label(self) -> str:
        """``user@address:port``, for messages."""
        return f"{self.user}@{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Controller(Host):
    """One controller: a host, and where Cinder lives on it."""

    service_manager: str = "systemd"
    #: whose defaults the other keys take: "rdo" (packages) or "devstack";
    #: None: the entry does not say, the controller is asked (``needs_layout``)
    layout: str | None = "rdo"
    service: str = "openstack-cinder-api.service"
    supervisor_config: str | None = None
    #: the controller's python for the helpers; None: the one in cinder_api's ``#!``
    python: str | None = None
    cinder_api: str = "/usr/bin/cinder-api"
    cinder_manage: str = "/usr/bin/cinder-manage"
    config_files: tuple[str, ...] = RDO_CONFIG_FILES
    #: "" (the devstack layout): the API logs to the unit's journal only
    log_file: str = "/var/log/cinder/api.log"
    service_user: str = "cinder"
    cinder_dir: str | None = None
    api_url: str = "http://127.0.0.1:8776/"
    state_dir: str = "/var/lib/cinder-devloop"
    #: the clouds.yaml entry to authenticate with (None: OS_CLOUD / OS_* or noauth)
    cloud: str | None = None
    #: the keys the inventory wrote for this controller (its own or ``defaults:``)
    given: frozenset[str] = frozenset()

    @property
    def needs_layout(self) -> bool:
        """True while nobody has said whether this is an RDO or a DevStack controller."""
        return self.layout is None


def with_layout(controller: Controller, layout: str) -> Controller:
    """``controller`` as a ``layout`` controller: that layout's defaults where the entry is silent.

    What the inventory wrote always wins; only the keys it left out take the
    layout's defaults (DevStack's unit, venv, user, journald).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    defaults = DEVSTACK_DEFAULTS if layout == "devstack" else {}
    changes = {key: value for key, value in defaults.items() if key not in controller.given}
    return dataclasses.replace(controller, layout=layout, **changes)


@dataclass(frozen=True, slots=True)
class Inventory:
    """The whole hosts.yaml: what to deploy and where."""

    path: Path
    source: Path
    excludes: tuple[str, ...]
    controllers: Mapping[str, Controller] = field(default_factory=dict)
    source_host: Host | None = None
    hosts: Mapping[str, Host] = field(default_factory=dict)
    #: the local trees ``source`` lays one over the other (a common tree, then
    #: a release tree); empty for a tree sent as it is
    layers: tuple[Path, ...] = ()

    @property
    def display_path(self) -> str:
        return _display(self.path)

    def get(self, name: str) -> Controller:
        """Return the controller called ``name``.

        Raises:
            InventoryError: no controller has that name.
        """
        try:
            return self.controllers[name]
        except KeyError:
            known = ", ".join(self.controllers) or "none"
            raise InventoryError(self.display_path, [
                f"unknown controller {name!r} (known: {known})"]) from None

    def select(self, names: Sequence[str] | None) -> list[Controller]:
        """Return the named controllers (comma lists allowed), or all of them.

        Raises:
            InventoryError: a name is unknown.
        """
        wanted = [n.strip() for item in (names or []) for n in item.split(",") if n.strip()]
        if not wanted:
            return list(self.controllers.values())
        unknown = [n for n in wanted if n not in self.controllers]
        if unknown:
            known = ", ".join(self.controllers) or "none"
            raise InventoryError(self.display_path, [
                f"--host: unknown controller {n!r} (known: {known})" for n in unknown])
        return [self.controllers[n] for n in dict.fromkeys(wanted)]


# --- validation ----------------------------------------------------------------

# Values that become arguments of commands on the controller (or of ssh here)
# are checked for their kind, so none can be read as an option or break a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: a user name as useradd allows it (shadow-utils, RHEL's wider set): no leading
#: dash, at most 32 characters, not all digits
_USER_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,30}[A-Za-z0-9_.$-]?")
#: an SSH login: a user name, or a directory's user@realm
_LOGIN_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}")
#: a host name, an IPv4 or an IPv6 address (with a %zone)
_ADDRESS = re.compile(r"[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*")
#: a systemd unit name (systemd's unit_name_is_valid characters; the suffix may be
#: left out, systemctl adds .service), without a leading dash
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,254}")
#: a supervisord program (or group:program) name: none of supervisord's forbidden
#: characters (space, colon, slash), no glob, no leading dash
_PROGRAM_NAME = re.compile(r"[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]*(:[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]*)?")


def _expect_str(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "expected a non-empty string"


def _expect_port(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "expected an integer"
    return None if 0 < value < 65536 else "expected a port number from 1 to 65535"


def _expect_positive(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value) or value > MAX_CONNECT_TIMEOUT:
        return f"expected a positive number of seconds (at most {MAX_CONNECT_TIMEOUT})"
    return None


def _expect_str_list(value: Any) -> str | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return None
    return "expected a non-empty list of strings"


def _expect_manager(value: Any) -> str | None:
    if value in SERVICE_MANAGERS:
        return None
    return f"expected one of {', '.join(SERVICE_MANAGERS)}"


def _expect_layout(value: Any) -> str | None:
    if value in LAYOUTS:
        return None
    return f"expected one of {', '.join(LAYOUTS)}"


def _expect_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("http://", "https://")) \
            and not _CONTROL.search(value) and " " not in value:
        return None
    return "expected an http:// or https:// URL"


def _expect_user_name(value: Any) -> str | None:
    if isinstance(value, str) and _USER_NAME.fullmatch(value) and not value.isdigit() \
            and value not in (".", ".."):
        return None
    return ("expected a user name (letters, digits, '_', '.', '-', not starting with '-', "
            "at most 32 characters)")


def _expect_login_name(value: Any) -> str | None:
    if isinstance(value, str) and (_expect_user_name(value) is None
                                   or _LOGIN_NAME.fullmatch(value)):
        return None
    return ("expected a user name (letters, digits, '_', '.', '-', '@', not starting with "
            "'-')")


def _expect_address(value: Any) -> str | None:
    if isinstance(value, str) and _ADDRESS.fullmatch(value):
        return None
    return "expected a host name or an IP address"


def _expect_unit_name(value: Any) -> str | None:
    if isinstance(value, str) and _UNIT_NAME.fullmatch(value) and not value.startswith("@"):
        return None
    return ("expected a systemd unit name (letters, digits, ':', '_', '.', '@', '-', "
            "not starting with '-')")


def _expect_program_name(value: Any) -> str | None:
    if isinstance(value, str) and _PROGRAM_NAME.fullmatch(value) and value != "all":
        return None
    return ("expected a supervisord program name, or group:program (letters, digits, '_', '.', "
            "'@', '+', '-', not starting with '-'; not 'all')")


def _expect_abs_path(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/") and not _CONTROL.search(value):
        return None
    return "expected an absolute path on the controller (no control characters)"


def _expect_abs_list(value: Any) -> str | None:
    problem = _expect_str_list(value)
    if problem is None and any(_expect_abs_path(v) for v in value):
        problem = "expected absolute paths on the controller (no control characters)"
    return problem


def _expect_local_path(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        return None
    return "expected a path (no NUL character)"


# key -> check; every key a host may carry (controllers take them all).
_HOST_KEYS: dict[str, Callable[[Any], str | None]] = {
    "address": _expect_address,
    "port": _expect_port,
    "user": _expect_login_name,
    "identity_file": _expect_local_path,
    "known_hosts": _expect_local_path,
    "connect_timeout": _expect_positive,
    "gateway": _expect_str,
}
_CONTROLLER_KEYS: dict[str, Callable[[Any], str | None]] = {
    **_HOST_KEYS,
    "service_manager": _expect_manager,
    "layout": _expect_layout,
    "service": _expect_str,             # a unit or a program: checked once the manager is known
    "supervisor_config": _expect_abs_path,
    "python": _expect_abs_path,
    "cinder_api": _expect_abs_path,
    "cinder_manage": _expect_abs_path,
    "config_files": _expect_abs_list,
    "log_file": _expect_abs_path,
    "service_user": _expect_user_name,
    "cinder_dir": _expect_abs_path,
    "api_url": _expect_url,
    "state_dir": _expect_abs_path,
    "cloud": _expect_str,
}
_TOP_KEYS = ("source", "source_host", "excludes", "defaults", "hosts", "controllers")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class _Problems:
    """Collects problems with their place, so all are reported at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, place: str, message: str) -> None:
        self.items.append(f"{place}: {message}" if place else message)

    def about(self, place: str) -> bool:
        """Whether a problem at ``place`` was reported already."""
        return any(item.startswith(f"{place}: ") for item in self.items)


def _check_mapping(raw: Any, place: str, problems: _Problems) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(place, f"expected a mapping, got {_describe(raw)}")
        return {}
    return raw


def _check_keys(values: Mapping[str, Any], place: str, problems: _Problems,
                schema: Mapping[str, Callable[[Any], str | None]] = _CONTROLLER_KEYS
                ) -> dict[str, Any]:
    good: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{place}.{key}"
        check = schema.get(str(key))
        if check is None:
            known = ", ".join(sorted(schema))
            problems.add(where, f"unknown key (known keys: {known})")
            continue
        problem = check(value)
        if problem:
            problems.add(where, f"{problem}, got {_describe(value)}")
        else:
            good[key] = value
    return good


def _local_path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _ssh_fields(values: dict[str, Any], place: str, base: Path,
                problems: _Problems) -> dict[str, Any]:
    """Resolve the workstation-side SSH paths and check they exist."""
    kwargs: dict[str, Any] = dict(values)
    if "address" not in values and not problems.about(f"{place}.address"):
        problems.add(f"{place}.address", "missing (every host needs an address)")
    for key in ("identity_file", "known_hosts"):
        if key in kwargs:
            kwargs[key] = _local_path(kwargs[key], base)
    kwargs.setdefault("known_hosts", _local_path("~/.ssh/known_hosts", base))
    if kwargs.get("identity_file") is not None:
        problem = _key_file_problem(kwargs["identity_file"])
        if problem:
            problems.add(f"{place}.identity_file", problem)
    if "known_hosts" in values and not kwargs["known_hosts"].is_file():
        problems.add(f"{place}.known_hosts", f"no such file: {kwargs['known_hosts']}")
    return kwargs


def _key_file_problem(path: Path) -> str | None:
    """Why ssh would not use the private key at ``path``, if it would not.

    OpenSSH ignores a key of one's own that others may read ("UNPROTECTED
    PRIVATE KEY FILE"); so does the tool, and says how to fix it.
    """
    try:
        info = path.stat()
    except OSError:
        info = None
    if info is None or not path.is_file():
        return f"no such file: {path}"
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        return (f"{path} is open to others (mode {info.st_mode & 0o777:04o}); ssh refuses "
                f"such a private key: chmod 600 {path}")
    return None


def _resolve_gateway(kwargs: dict[str, Any], place: str, hosts: Mapping[str, Host],
                     problems: _Problems) -> None:
    name = kwargs.get("gateway")
    if name is None:
        return
    if name not in hosts:
        known = ", ".join(hosts) or "none"
        problems.add(f"{place}.gateway", f"no host {name!r} under hosts: (known: {known})")
        kwargs.pop("gateway")
    else:
        kwargs["gateway"] = hosts[name]


def _build_hosts(entries: dict[str, Any], base: Path, problems: _Problems) -> dict[str, Host]:
    raw: dict[str, dict[str, Any]] = {}
    for name, entry in entries.items():
        place = f"hosts.{name}"
        values = _check_keys(_check_mapping(entry, place, problems), place, problems, _HOST_KEYS)
        raw[str(name)] = _ssh_fields(values, place, base, problems)
    hosts: dict[str, Host] = {}
    # gateways may chain (a devbox behind a bastion): resolve in dependency order
    pending = dict(raw)
    while pending:
        ready = [n for n, kw in pending.items()
                 if kw.get("gateway") is None or kw["gateway"] in hosts
                 or kw["gateway"] not in pending]
        if not ready:
            for n in pending:
                problems.add(f"hosts.{n}.gateway", "gateways form a loop")
            break
        for n in ready:
            kw = pending.pop(n)
            _resolve_gateway(kw, f"hosts.{n}", hosts, problems)
            if "address" in kw:
                hosts[n] = Host(name=n, **kw)
    return hosts


def _build_controller(name: str, values: dict[str, Any], place: str, base: Path,
                      hosts: Mapping[str, Host], problems: _Problems) -> Controller | None:
    given = frozenset(values)
    if values.get("layout") == "devstack":
        values = {**DEVSTACK_DEFAULTS, **values}
    elif "layout" not in values and values.get("service_manager", "systemd") == "systemd" \
            and "service" not in values:
        # RDO or DevStack: the first connection looks (deploy.transport.layout)
        values = {**values, "layout": None}
    kwargs = _ssh_fields(values, place, base, problems)
    if "service" in values:
        check = (_expect_program_name if values.get("service_manager") == "supervisord"
                 else _expect_unit_name)
        problem = check(values["service"])
        if problem:
            problems.add(f"{place}.service", f"{problem}, got {_describe(values['service'])}")
            kwargs.pop("service")
    if values.get("service_manager") == "supervisord" and "supervisor_config" not in values:
        problems.add(f"{place}.supervisor_config",
                     "missing (service_manager supervisord needs the supervisord.conf path)")
    _resolve_gateway(kwargs, place, hosts, problems)
    if "config_files" in kwargs:
        kwargs["config_files"] = tuple(kwargs["config_files"])
    if "address" not in kwargs:
        return None
    return Controller(name=name, given=given, **kwargs)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, noting every key a mapping names twice.

    PyYAML silently keeps the last of duplicate keys (two ``c1:`` under
    ``controllers:`` would quietly drop one controller); YAML 1.2 says keys
    are unique, so each repeat is reported with its line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                first = seen.get(key)
            except TypeError:                  # an unhashable key: PyYAML reports it
                continue
            if first is not None:
                self.duplicates.append(
                    f"line {key_node.start_mark.line + 1}, "
                    f"column {key_node.start_mark.column + 1}: "
                    f"duplicate key {_describe(key)} (first at line {first.start_mark.line + 1}); "
                    f"a key may appear only once in a mapping")
            else:
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _TooLarge(Exception):
    """The document's aliases expand it beyond MAX_YAML_VALUES, or refer to themselves."""


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values ``root`` holds with every alias followed, counted without following them.

    PyYAML composes an alias as the very node it names, so a document of a
    few lines can stand for billions of values (an "alias bomb"), and a node
    may even hold itself. Each distinct node is sized once (iteratively, so
    depth costs no recursion), and the count stops once it passes ``limit``.

    Raises:
        _TooLarge: the expansion passes ``limit``, or a node holds itself.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            in_progress.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children)
            if size > limit:
                raise _TooLarge(f"its aliases expand it to more than {limit} values "
                                f"(an alias bomb?); write it out without such aliases")
            sizes[key] = size
            continue
        if key in in_progress:
            raise _TooLarge(f"line {node.start_mark.line + 1}: an alias refers to a value "
                            f"that holds it; an inventory cannot be recursive")
        in_progress.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress:
                raise _TooLarge(f"line {child.start_mark.line + 1}: an alias refers to a "
                                f"value that holds it; an inventory cannot be recursive")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _load_yaml(text: str) -> tuple[Any, list[str]]:
    """Parse YAML safely; return the data and the duplicate-key problems.

    The document is composed first and its expansion bounded before any
    value is built from it (see :func:`_expanded_size`).

    Raises:
        yaml.YAMLError: not YAML.
        _TooLarge: too many values once aliases are followed, or recursive.
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        _expanded_size(node, MAX_YAML_VALUES)
        return loader.construct_document(node), loader.duplicates
    finally:
        loader.dispose()


def parse_inventory(text: str, path: Path) -> Inventory:
    """Parse the text of an inventory file that lives at ``path``.

    Raises:
        InventoryError: listing every problem, each as ``<place>: <what>``.
    """
    display = _display(path)
    try:
        raw, duplicates = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InventoryError(display, [f"{where}invalid YAML: {problem}"]) from None
    except _TooLarge as exc:
        raise InventoryError(display, [f"refused: {exc}"]) from None
    except RecursionError:
        raise InventoryError(display, ["refused: its values are nested too deeply"]) from None
    if duplicates:
        raise InventoryError(display, duplicates)

    problems = _Problems()
    base = path.parent
    top = _check_mapping(raw, "", problems)
    for key in top:
        if key not in _TOP_KEYS:
            problems.add(str(key), f"unknown key (known keys: {', '.join(_TOP_KEYS)})")

    hosts = _build_hosts(_check_mapping(top.get("hosts"), "hosts", problems), base, problems)
    source_host = None
    if top.get("source_host") is not None:
        name = top["source_host"]
        if name in hosts:
            source_host = hosts[name]
        else:
            problems.add("source_host", f"no host {name!r} under hosts: "
                                        f"(known: {', '.join(hosts) or 'none'})")

    source = top.get("source", "cinder_patch/cinder")
    if _expect_str(source) or _expect_local_path(source):
        problems.add("source", f"expected a path, got {_describe(source)}")
        source = "cinder_patch/cinder"
    if source_host is not None:
        # a path on the devbox: checked there, when rsync runs
        source_path = Path(source)
        if not source_path.is_absolute():
            problems.add("source", "expected an absolute path on the source host "
                                   f"{source_host.name!r}, got {_describe(source)}")
    else:
        source_path = _local_path(source, base)
        if not source_path.is_dir():
            problems.add("source", f"no such directory: {source_path}")

    excludes = top.get("excludes", list(DEFAULT_EXCLUDES))
    if _expect_str_list(excludes):
        problems.add("excludes", f"expected a list of rsync patterns, got {_describe(excludes)}")
        excludes = list(DEFAULT_EXCLUDES)

    defaults = _check_keys(_check_mapping(top.get("defaults"), "defaults", problems),
                           "defaults", problems)

    controllers: dict[str, Controller] = {}
    raw_entries = top.get("controllers")
    entries = _check_mapping(raw_entries, "controllers", problems)
    if raw_entries is None or raw_entries == {}:
        problems.add("controllers", "missing or empty (name at least one controller)")
    for name, entry in entries.items():
        place = f"controllers.{name}"
        values = _check_keys(_check_mapping(entry, place, problems), place, problems)
        controller = _build_controller(str(name), {**defaults, **values}, place, base, hosts,
                                       problems)
        if controller is not None:
            controllers[str(name)] = controller

    if problems.items:
        raise InventoryError(display, problems.items)
    return Inventory(path=path, source=source_path, excludes=tuple(excludes),
                     controllers=controllers, source_host=source_host, hosts=hosts)


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate the inventory file at ``path``.

    Raises:
        InventoryError: the file is missing, unreadable or invalid.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(_display(file), [
            "no such file (pass --inventory PATH or create hosts.yaml)"]) from None
    except OSError as exc:
        raise InventoryError(_display(file), [f"cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError(_display(file), [
            f"refused: larger than {MAX_INVENTORY_BYTES // 1024} KiB; an inventory is a "
            f"few lines of YAML"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InventoryError(_display(file), [
            f"line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as "
            f"UTF-8"]) from None
    return parse_inventory(text, file.resolve())
