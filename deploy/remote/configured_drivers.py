"""Which volume and backup drivers the controller's Cinder is configured to load.

argv: CINDER_DIR CONFIG_FILE...; the files are read in order, a later one
winning, as oslo.config does. The volume driver is each enabled backend's
``volume_driver`` (``enabled_backends``), or ``[DEFAULT] volume_driver``;
the backup driver is ``[DEFAULT] backup_driver``. For each, the driver
modules it loads are found by reading their ``import`` lines (no import of
Cinder): its own module, and those of ``cinder.volume.drivers`` /
``cinder.backup.drivers`` / ``cinder.tests`` it imports, transitively.

Prints one JSON line: {"volume_driver": [DOTTED, ...], "backup_driver": [...],
"modules": {"volume driver": [PATH, ...], "backup driver": [...]}}, paths
relative to the package. Python 2.7 and 3.6+, standard library only.
"""
import ast
import json
import os
import sys

try:
    from configparser import RawConfigParser
except ImportError:   # Python 2.7
    from ConfigParser import RawConfigParser

DEFAULTS = {"volume_driver": "cinder.volume.drivers.lvm.LVMVolumeDriver",
            "backup_driver": "cinder.backup.drivers.swift.SwiftBackupDriver"}
FOLLOWED = ("cinder.volume.drivers", "cinder.backup.drivers", "cinder.tests")


def read_config(paths):
    options = {}
    for path in paths:
        parser = RawConfigParser()
        try:
            if hasattr(parser, "read_file"):
                parser = RawConfigParser(strict=False)
            parser.read([path])
        except Exception:   # an unreadable or malformed file: oslo.config would refuse it too
            continue
        for key, value in parser.defaults().items():
            options[("DEFAULT", key)] = value
        for section in parser.sections():
            for key, value in parser.items(section):
                options[(section, key)] = value
    return options


def module_file(cinder_dir, dotted):
    rel = "/".join(dotted.split(".")[1:])
    for candidate in (rel + ".py", rel + "/__init__.py"):
        if os.path.isfile(os.path.join(cinder_dir, candidate)):
            return candidate
    return None


def imported(cinder_dir, rel):
    try:
        with open(os.path.join(cinder_dir, rel), "rb") as handle:
            tree = ast.parse(handle.read())
    except (IOError, OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found.extend(node.module + "." + alias.name for alias in node.names)
    return [name for name in found if name.startswith(FOLLOWED)]


def closure(cinder_dir, driver):
    first = ".".join(driver.split(".")[:-1])
    seen, todo, paths = set(), [first], []
    while todo:
        dotted = todo.pop()
        if dotted in seen:
            continue
        seen.add(dotted)
        rel = module_file(cinder_dir, dotted)
        if rel is None:
            continue
        paths.append(rel)
        todo.extend(imported(cinder_dir, rel))
    return paths


def main():
    cinder_dir, configs = sys.argv[1], sys.argv[2:]
    options = read_config(configs)
    backends = [name.strip() for name in
                options.get(("DEFAULT", "enabled_backends"), "").split(",") if name.strip()]
    volume = [options.get((name, "volume_driver")) or DEFAULTS["volume_driver"]
              for name in backends] or \
        [options.get(("DEFAULT", "volume_driver")) or DEFAULTS["volume_driver"]]
    backup = [options.get(("DEFAULT", "backup_driver")) or DEFAULTS["backup_driver"]]
    modules = {}
    for key, drivers in (("volume driver", volume), ("backup driver", backup)):
        found = []
        for driver in drivers:
            found.extend(path for path in closure(cinder_dir, driver.strip())
                         if path not in found)
        modules[key] = found
    sys.stdout.write(json.dumps({"volume_driver": volume, "backup_driver": backup,
                                 "modules": modules}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
