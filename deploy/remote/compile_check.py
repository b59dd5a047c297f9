"""Compile Python sources with this interpreter; print one JSON line per file that fails.

stdin (never argv: /proc/*/cmdline is world-readable, and one argument
holds at most 128 KiB): zlib-compressed JSON::

    {"against": CINDER_DIR or "", "log_file": PATH or "",
     "files": [[REL, BASE64_BYTES], ...]}

REL is a path relative to the cinder package. With ``against``, a file
whose bytes equal the installed copy's is skipped (the deploy will not send
it); "" compiles every file given. With ``log_file``, its size is printed
first ({"log_size": N}), so a later health check reads only what the
restart writes; "" skips it.

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


# devloop-include: fsnames


def main():
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    job = json.loads(zlib.decompress(stdin.read()).decode("utf-8"))
    cinder_dir, log_file = job.get("against") or "", job.get("log_file") or ""
    if log_file:
        try:
            size = os.path.getsize(fs_name(log_file))
        except OSError:
            size = 0
        print(json.dumps({"log_size": size}))
    compiled = 0
    for path, packed in job["files"]:
        source = base64.b64decode(packed.encode("ascii"))
        if cinder_dir:
            try:
                with open(os.path.join(fs_name(cinder_dir), fs_name(path)), "rb") as installed:
                    if installed.read() == source:
                        continue
            except (IOError, OSError):
                pass                      # a new file
        compiled += 1
        problem = compile_problem(path, source)
        if problem:
            print(json.dumps(problem))
    print(json.dumps({"compiled": compiled}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
