"""Print what a deploy must know about the controller's Cinder, as one JSON object.

argv: python cinder_dir state_dir paths_json

- ``python``: the interpreter that runs Cinder (echoed back; the caller found
  it in cinder-api's ``#!`` line, or the inventory named it);
- ``cinder_dir``: the inventory's, or "" to find the package on this
  python's path without importing it (cinder/__init__ is not free);
- ``state_dir``: cinder-devloop's directory, for the deploy records;
- ``paths_json``: a JSON list of paths inside the package to hash.

Prints ``{"python", "python_version", "cinder_dir", "owner", "version",
"python_from", "hashes"}``: ``python_from`` says where the caller found the
python (a DevStack unit or uWSGI ini; "" otherwise); ``version`` is the
installed Cinder release from its dist-info/egg-info metadata (null when
there is none); ``hashes`` maps each path to the sha256 of the upstream file
(the backup kept by the oldest applied deploy that replaced it, else the
file itself; null when missing).

Python 2.7 and 3.6+, standard library only.
"""
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import sys


def find_cinder():
    try:
        import importlib.util
    except ImportError:  # Python 2
        import imp
        try:
            return os.path.abspath(imp.find_module("cinder")[1])
        except ImportError:
            return None
    spec = importlib.util.find_spec("cinder")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def editable_metadata(checkout):
    """The dist-info, on this python's path, of an editable install of ``checkout``.

    ``pip install -e`` (PEP 660, as DevStack's setup_develop does today)
    keeps the metadata in site-packages, with a direct_url.json naming the
    checkout, not beside the package.
    """
    found = []
    for entry in sys.path:
        for meta in glob.glob(os.path.join(entry or ".", "cinder-*.dist-info")):
            try:
                with open(os.path.join(meta, "direct_url.json")) as handle:
                    url = json.load(handle).get("url", "")
            except (EnvironmentError, ValueError):
                continue
            if url.startswith("file://") and \
                    os.path.realpath(url[len("file://"):]) == os.path.realpath(checkout):
                found.append(meta)
    return found


def installed_version(cinder_dir):
    """Cinder's release from its metadata: beside the package (pip, RPM or develop),
    else an editable install's in site-packages."""
    parent = os.path.dirname(os.path.abspath(cinder_dir))
    candidates = sorted(glob.glob(os.path.join(parent, "cinder-*.dist-info")) +
                        glob.glob(os.path.join(parent, "cinder-*.egg-info")) +
                        glob.glob(os.path.join(parent, "cinder.egg-info"))) or \
        editable_metadata(parent)
    for meta in candidates:
        for name in ("METADATA", "PKG-INFO", ""):
            path = os.path.join(meta, name) if name else meta
            if not os.path.isfile(path):
                continue
            with open(path) as handle:
                found = re.search(r"^Version:\s*(\S+)", handle.read(), re.M)
            if found:
                return found.group(1)
    return None


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def upstream_copies(state_dir, target):
    """{path: backup file} from the oldest applied deploy that replaced each path."""
    copies = {}
    for path in sorted(glob.glob(os.path.join(state_dir, "deploys", "*", "record.json"))):
        try:
            with open(path) as handle:
                record = json.load(handle)
        except (EnvironmentError, ValueError):
            continue
        if record.get("state") not in ("applied", "applying") or \
                os.path.realpath(record.get("target", "")) != os.path.realpath(target):
            continue
        for rel in record.get("replaced", []):
            backup = os.path.join(record.get("backup", ""), rel)
            if rel not in copies and os.path.isfile(backup):
                copies[rel] = backup
    return copies


def main():
    python, cinder_dir, state_dir, paths = sys.argv[1], sys.argv[2], sys.argv[3], \
        json.loads(sys.argv[4])
    if not cinder_dir:
        cinder_dir = find_cinder()
        if not cinder_dir:
            sys.stderr.write("cinder is not importable by %s\n" % python)
            return 3
    try:
        info = os.stat(cinder_dir)
    except OSError as exc:
        sys.stderr.write("%s: %s\n" % (cinder_dir, exc.strerror))
        return 3
    owner = "%s:%s" % (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name)
    copies = upstream_copies(state_dir, cinder_dir) if paths else {}
    hashes = {}
    for rel in paths:
        path = copies.get(rel, os.path.join(cinder_dir, rel))
        hashes[rel] = sha256(path) if os.path.isfile(path) else None
    sys.stdout.write(json.dumps({
        "python": python, "python_version": "%d.%d.%d" % sys.version_info[:3],
        "cinder_dir": cinder_dir, "owner": owner, "version": installed_version(cinder_dir),
        "python_from": os.environ.get("DEVLOOP_PYTHON_FROM", ""),
        "hashes": hashes}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
