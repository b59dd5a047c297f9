"""Write argv[2] to the file argv[1] atomically, creating its directory."""
import os
import sys

path, text = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "w") as handle:
    handle.write(text)
os.replace(path + ".tmp", path)
