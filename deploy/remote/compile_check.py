"""Compile Python sources with this interpreter; print one JSON line per file that fails.

argv: pairs of (display path, base64 of the zlib-compressed file bytes). Each
file is compiled as Cinder's interpreter would import it (bytes in, so a
coding cookie is honoured; no __future__ flags of this script leak in), and
nothing is written. A file that compiles prints nothing. Runs on Python 2.7
and 3.6+, with -E -s -S or -I -S.
"""
import base64
import json
import sys
import warnings
import zlib

warnings.simplefilter("ignore")      # SyntaxWarnings are not errors

args = sys.argv[1:]
for index in range(0, len(args) - 1, 2):
    path, packed = args[index], args[index + 1]
    source = zlib.decompress(base64.b64decode(packed.encode("ascii")))
    try:
        compile(source, path, "exec", 0, True)
    except SyntaxError as exc:
        message = exc.msg or "invalid syntax"
        print(json.dumps({"path": path, "line": exc.lineno, "message": message}))
    except (TypeError, ValueError) as exc:   # e.g. null bytes in the source
        print(json.dumps({"path": path, "line": None, "message": str(exc)}))
