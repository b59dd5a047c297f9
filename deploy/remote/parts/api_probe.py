def ask_api(url):
    """The HTTP status the API answers at ``url`` and "", or None and why not.

    Any answer below 500 counts (the root URL answers 300, an
    unauthenticated request 401): the API is up and routing.
    """
    try:
        from urllib.request import urlopen
        from urllib.error import HTTPError
    except ImportError:   # Python 2.7
        from urllib2 import urlopen, HTTPError
    try:
        reply = urlopen(url, timeout=3)
        code = reply.getcode()
        reply.close()
    except HTTPError as exc:
        code = exc.code
    except Exception as exc:
        return None, str(getattr(exc, "reason", exc))
    if code >= 500:
        return None, "HTTP %d" % code
    return code, ""


def wait_for_answer(url, limit, pause):
    """Ask the API every ``pause`` seconds until it answers or ``limit`` seconds pass.

    Returns (status or None, seconds waited, the last reason it did not answer).
    """
    import time
    clock = getattr(time, "monotonic", time.time)   # Python 2.7 has no monotonic
    started = clock()
    while True:
        code, why = ask_api(url)
        if code is not None or clock() - started >= limit:
            return code, clock() - started, why or "no answer"
        time.sleep(pause)


def log_since(path, offset, most=524288):
    """The bytes written to ``path`` since it was ``offset`` bytes long (its last ``most``).

    A log shorter than ``offset`` was rotated: all of it counts. None when
    it cannot be read.
    """
    try:
        log = open(path, "rb")
    except (IOError, OSError):
        return None
    try:
        log.seek(0, 2)
        size = log.tell()
        log.seek(max(0 if size < offset else offset, size - most))
        return log.read()
    finally:
        log.close()
