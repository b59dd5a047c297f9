"""Ask the API until it answers or the time is up; then the log written since a mark.

argv: URL SECONDS [LOG_FILE OFFSET]. Prints ``answering CODE SECONDS`` (exit
0) or ``down REASON`` (exit 1); with LOG_FILE, an answering probe then prints
``--log--`` and the bytes written to it since it was OFFSET bytes long.

Python 2.7 and 3.6+, standard library only.
"""
import sys

# devloop-include: api_probe

url, limit = sys.argv[1], float(sys.argv[2])
code, seconds, why = wait_for_answer(url, limit, 0.1)
if code is None:
    print("down " + why)
    sys.exit(1)
print("answering %d %.2f" % (code, seconds))
if len(sys.argv) > 4:
    data = log_since(sys.argv[3], int(sys.argv[4]))
    if data is not None:
        sys.stdout.write("--log--\n")
        sys.stdout.flush()
        getattr(sys.stdout, "buffer", sys.stdout).write(data)
