"""Which of Cinder's services load which part of its package: the map a deploy restarts by.

Plain data and pure functions, no controller calls. Paths are relative to
the ``cinder`` package (``volume/manager.py``), as a deploy's changes are.

A service is one of :data:`NAMES`: ``api`` (``cinder-api``), ``scheduler``,
``volume`` and ``backup``. :data:`RULES` are tried in order, the first
whose prefix a path starts with decides; a path no rule names is loaded by
every service (a new top-level module could be imported from anywhere, so
restarting all is the safe answer). Why each rule says what it says:

* shared code every service process imports at start, through
  ``cinder/cmd/<service>.py`` -> ``cinder/service.py`` -> ``cinder/manager.py``,
  ``cinder/objects`` (``objects.register_all()``), ``cinder/db``,
  ``cinder/rpc.py``, ``cinder/context.py``, ``cinder/exception.py``... and the
  three ``rpcapi.py`` modules (every service casts to the others: the API
  to all three, the scheduler to the volume service, the volume service to
  the scheduler, the backup service to the volume service): all four;
* ``cinder/db/migrations/``: loaded by ``cinder-manage`` only, but the
  models and the schema move together, and the ``db-sync`` that applies a
  migration changes what every service reads: all four, like ``cinder/db``;
* the API's own code (``cinder/api``, ``cinder/policies``, ``cinder/wsgi``,
  and the ``api.py`` modules the API calls in-process: ``cinder/volume/api.py``,
  ``cinder/backup/api.py``, ``cinder/group``, ``cinder/transfer``...): ``api``;
* ``cinder/scheduler`` (filters, weighers, host manager, flows): ``scheduler``;
* ``cinder/volume`` (manager, flows/manager, targets, the driver base): ``volume``;
  the helpers every service calls (``volume_types``, ``volume_utils``,
  ``qos_specs``, ``group_types``): all four;
* a volume driver (``cinder/volume/drivers/``, or a driver module elsewhere,
  like the stand-in ``cinder/tests/fake_driver.py``): ``volume`` only if the
  controller's configured ``volume_driver`` loads it (its module, its
  package, and the driver modules it imports); any other driver is loaded
  by nothing that runs. The same for ``cinder/backup/drivers/`` and
  ``backup_driver``;
* ``cinder/backup``: ``backup``;
* code only commands load (``cinder/cmd/manage.py``, ``cinder/cmd/status.py``...),
  the unit tests (``cinder/tests``), the config generator (``cinder/opts.py``),
  hacking checks and translations: nothing.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from deploy.base.inventory import SERVICE_NAMES

#: the services, in the order they are restarted and shown
NAMES = SERVICE_NAMES
BINARIES: Mapping[str, str] = {name: f"cinder-{name}" for name in NAMES}
#: what runs each service beside the API, per kind (the API's own is the inventory's ``service``)
UNITS: Mapping[str, Mapping[str, str]] = {
    "rdo": {"scheduler": "openstack-cinder-scheduler.service",
            "volume": "openstack-cinder-volume.service",
            "backup": "openstack-cinder-backup.service"},
    "devstack": {"scheduler": "devstack@c-sch.service",
                 "volume": "devstack@c-vol.service",
                 "backup": "devstack@c-bak.service"},
    "supervisord": {"scheduler": "cinder-scheduler",
                    "volume": "cinder-volume",
                    "backup": "cinder-backup"},
}

ALL = frozenset(NAMES)
NONE: frozenset[str] = frozenset()
#: a volume or backup driver: loaded only if it is the configured one (see ``loaded_drivers``)
VOLUME_DRIVER = "volume driver"
BACKUP_DRIVER = "backup driver"

_API = frozenset({"api"})
_SCHEDULER = frozenset({"scheduler"})
_VOLUME = frozenset({"volume"})
_BACKUP = frozenset({"backup"})

#: (path prefix, who loads it): the first that matches decides; more specific first
RULES: Sequence[tuple[str, frozenset[str] | str]] = (
    # the rpc clients every service holds
    ("volume/rpcapi.py", ALL), ("scheduler/rpcapi.py", ALL), ("backup/rpcapi.py", ALL),
    # what the API calls in-process
    ("volume/api.py", _API), ("volume/flows/api/", _API), ("backup/api.py", _API),
    ("scheduler/", _SCHEDULER),
    # helpers of every service
    ("volume/volume_types.py", ALL), ("volume/volume_utils.py", ALL),
    ("volume/qos_specs.py", ALL), ("volume/group_types.py", ALL), ("volume/utils.py", ALL),
    ("volume/__init__.py", ALL),
    ("volume/drivers/", VOLUME_DRIVER),
    ("volume/", _VOLUME),
    ("backup/drivers/", BACKUP_DRIVER),
    ("backup/", _BACKUP),
    ("tests/", VOLUME_DRIVER),      # the stand-in backend lives there; tests load nowhere
    ("api/", _API), ("policies/", _API), ("policy.py", _API), ("wsgi/", _API),
    ("group/", _API), ("consistencygroup/", _API), ("transfer/", _API),
    ("cmd/api.py", _API), ("cmd/scheduler.py", _SCHEDULER), ("cmd/volume.py", _VOLUME),
    ("cmd/backup.py", _BACKUP), ("cmd/", NONE),
    ("brick/", _VOLUME), ("zonemanager/", _VOLUME), ("ssh_utils.py", _VOLUME),
    ("privsep/", frozenset({"volume", "backup"})),
    ("image/", frozenset({"api", "volume"})), ("compute/", frozenset({"api", "volume"})),
    ("interface/", frozenset({"volume", "backup"})),
    ("opts.py", NONE), ("hacking/", NONE), ("locale/", NONE),
    # shared: said explicitly, though the fallback says the same
    ("db/", ALL), ("objects/", ALL), ("common/", ALL), ("keymgr/", ALL), ("message/", ALL),
    ("rpc.py", ALL), ("utils.py", ALL), ("context.py", ALL), ("exception.py", ALL),
    ("i18n.py", ALL), ("coordination.py", ALL), ("flow_utils.py", ALL), ("manager.py", ALL),
    ("service.py", ALL), ("quota", ALL), ("version.py", ALL), ("__init__.py", ALL),
)

#: the option each driver rule reads, and its default when cinder.conf has none
DRIVER_OPTIONS: Mapping[str, tuple[str, str]] = {
    VOLUME_DRIVER: ("volume_driver", "cinder.volume.drivers.lvm.LVMVolumeDriver"),
    BACKUP_DRIVER: ("backup_driver", "cinder.backup.drivers.swift.SwiftBackupDriver"),
}


def rule_for(path: str) -> tuple[str, frozenset[str] | str]:
    """The rule that decides ``path``: (its prefix, or "" for the fallback; who loads it)."""
    for prefix, who in RULES:
        if path == prefix or path.startswith(prefix):
            return prefix, who
    return "", ALL


def driver_paths(driver: str) -> list[str]:
    """The package paths a driver's dotted class name loads for sure: its module, and
    for a driver in a package of its own under ``drivers/``, that package.

    ``cinder.volume.drivers.netapp.common.NetAppDriver`` -> ``volume/drivers/netapp/``;
    ``cinder.tests.fake_driver.FakeLoggingVolumeDriver`` -> ``tests/fake_driver.py``.
    """
    parts = driver.split(".")
    if len(parts) < 3 or parts[0] != "cinder":
        return []
    module = parts[1:-1]
    found = ["/".join(module) + ".py"]
    if "drivers" in module[:-1] and module.index("drivers") + 2 < len(module):
        at = module.index("drivers")
        found.append("/".join(module[:at + 2]) + "/")
    return found


def loads(path: str, who: frozenset[str] | str, drivers: Mapping[str, Sequence[str]]) -> bool:
    """For a driver rule: does the configured driver load ``path``?

    ``drivers``: per driver rule, the paths the configured driver loads
    (:func:`driver_paths` of it plus the driver modules it imports).
    """
    return any(path == loaded or (loaded.endswith("/") and path.startswith(loaded))
               for loaded in drivers.get(str(who), ()))


def needs_drivers(paths: Iterable[str]) -> bool:
    """Does deciding ``paths`` need the configured drivers (a driver rule decides one)?"""
    return any(isinstance(rule_for(path)[1], str) for path in paths)


def choose(paths: Sequence[str], running: Iterable[str],
           drivers: Mapping[str, Sequence[str]] | None = None, *,
           verb: str = "changed") -> tuple[dict[str, str], list[str]]:
    """Which of the ``running`` services load a changed path, and why.

    Returns ({service: reason}, [paths no running service loads]), the
    reason naming the first path that decided (``cinder/volume/manager.py changed``,
    with ``and N more`` when several did).
    """
    running = [name for name in NAMES if name in set(running)]
    why: dict[str, list[str]] = {}
    unloaded = []
    for path in paths:
        _, who = rule_for(path)
        if isinstance(who, str):
            who = (frozenset({"volume"}) if who == VOLUME_DRIVER else frozenset({"backup"})) \
                if loads(path, who, drivers or {}) else NONE
        hit = [name for name in running if name in who]
        for name in hit:
            why.setdefault(name, []).append(path)
        if not hit:
            unloaded.append(path)
    reasons = {}
    for name in running:
        if name in why:
            first, more = why[name][0], len(why[name]) - 1
            reasons[name] = f"cinder/{first} {verb}" + (f" and {more} more" if more else "")
    return reasons, unloaded
