"""Write argv[2] to the file argv[1] atomically, creating its directory.

Python 2.7 and 3.6+, standard library only.
"""
import errno
import os
import sys

path, text = sys.argv[1], sys.argv[2]
try:
    os.makedirs(os.path.dirname(path))
except OSError as exc:
    if exc.errno != errno.EEXIST:
        raise
with open(path + ".tmp", "w") as handle:
    handle.write(text)
os.rename(path + ".tmp", path)  # atomic on POSIX, and overwrites (os.replace is 3.3+)
