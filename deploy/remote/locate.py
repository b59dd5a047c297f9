"""Print where cinder lives and who owns it, as JSON: {"cinder_dir", "owner"}.

argv[1] is the inventory's cinder_dir, or "" to find the package without
importing it (cinder/__init__ is not free).
"""
import grp
import importlib.util
import json
import os
import pwd
import sys

path = sys.argv[1]
if not path:
    spec = importlib.util.find_spec("cinder")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("cinder is not importable by this python")
    path = list(spec.submodule_search_locations)[0]
info = os.stat(path)
owner = "%s:%s" % (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name)
print(json.dumps({"cinder_dir": path, "owner": owner}))
