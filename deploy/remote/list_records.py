"""Print the deploy records under <state_dir>/deploys as one JSON list, oldest first.

Python 2.7 and 3.6+, standard library only.
"""
import glob
import json
import os
import sys

records = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "deploys", "*", "record.json"))):
    try:
        with open(path) as handle:
            records.append(json.load(handle))
    except (EnvironmentError, ValueError) as exc:  # IOError on Python 2, OSError on 3
        records.append({"id": os.path.basename(os.path.dirname(path)), "state": "unreadable",
                        "error": str(exc)})
sys.stdout.write(json.dumps(records) + "\n")
