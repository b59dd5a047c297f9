"""Print the deploy records under <state_dir>/deploys as one JSON list, oldest first."""
import glob
import json
import os
import sys

records = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "deploys", "*", "record.json"))):
    try:
        with open(path) as handle:
            records.append(json.load(handle))
    except (OSError, ValueError) as exc:
        records.append({"id": os.path.basename(os.path.dirname(path)), "state": "unreadable",
                        "error": str(exc)})
print(json.dumps(records))
