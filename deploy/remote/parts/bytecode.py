import errno
import os


def drop_compiled(path):
    """Remove what Python compiled from the source file ``path``; the paths removed.

    A compiled file left behind can outlive or outrank its source: Python 2
    imports ``x.pyc`` (or ``x.pyo``) beside a removed ``x.py``, Python 3 a
    sourceless ``x.pyc`` there, and either trusts a cached file whose
    source changed within the same second and size. So ``x.pyc``/``x.pyo``
    beside it go, and ``__pycache__/x.<tag>.pyc`` (``.opt-N``, ``.pyo``);
    an emptied ``__pycache__`` too.
    """
    if not path.endswith(".py"):
        return []
    directory, name = os.path.split(path)
    stem = name[:-3]
    gone = [compiled for compiled in (path + "c", path + "o") if unlink_if_there(compiled)]
    cache = os.path.join(directory, "__pycache__")
    try:
        entries = os.listdir(cache)
    except OSError:
        return gone
    for entry in entries:
        parts = entry[len(stem) + 1:].split(".") if entry.startswith(stem + ".") else []
        # x.cpython-36.pyc, x.cpython-36.opt-1.pyc, x.cpython-34.pyo: never y.x.* or x.y.*
        if (parts and parts[-1] in ("pyc", "pyo")
                and (len(parts) == 2 or len(parts) == 3 and parts[1].startswith("opt-"))):
            if unlink_if_there(os.path.join(cache, entry)):
                gone.append(os.path.join(cache, entry))
    try:
        os.rmdir(cache)  # only succeeds while empty
    except OSError:
        pass
    return gone


def unlink_if_there(path):
    """Remove ``path``; whether it was there."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return False
    return True
