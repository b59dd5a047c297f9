"""Compile Python sources with this interpreter; print one JSON line per file that fails.

argv: CINDER_DIR LOG_FILE, then pairs of (path relative to the cinder package,
base64 of the zlib-compressed file bytes). With CINDER_DIR, a file whose bytes
equal the installed copy's is skipped (the deploy will not send it); "" compiles
every file given. With LOG_FILE, its size is printed first ({"log_size": N}), so
a later health check reads only what the restart writes; "" skips it.

Each file is compiled as Cinder's interpreter would import it (bytes in, so a
coding cookie is honoured; no __future__ flags of this script leak in), and
nothing is written. A file that compiles prints nothing; the last line says how
many files were compiled. Runs on Python 2.7 and 3.6+, with -E -s -S or -I -S.
"""
import base64
import json
import os
import sys
import warnings
import zlib

warnings.simplefilter("ignore")      # SyntaxWarnings are not errors

# devloop-include: compile_source


cinder_dir, log_file, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if log_file:
    try:
        size = os.path.getsize(log_file)
    except OSError:
        size = 0
    print(json.dumps({"log_size": size}))

compiled = 0
for index in range(0, len(args) - 1, 2):
    path, packed = args[index], args[index + 1]
    source = zlib.decompress(base64.b64decode(packed.encode("ascii")))
    if cinder_dir:
        try:
            with open(os.path.join(cinder_dir, path), "rb") as installed:
                if installed.read() == source:
                    continue
        except (IOError, OSError):
            pass                      # a new file
    compiled += 1
    problem = compile_problem(path, source)
    if problem:
        print(json.dumps(problem))
print(json.dumps({"compiled": compiled}))
