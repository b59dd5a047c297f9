import os


def drop_compiled_here(name):
    """Remove what Python compiled from the source ``name`` in the current directory.

    Returns the names removed, relative to that directory. A compiled file
    left behind can outlive or outrank its source: Python 2 imports
    ``x.pyc`` (or ``x.pyo``) beside a removed ``x.py``, Python 3 a
    sourceless ``x.pyc`` there, and either trusts a cached file whose
    source changed within the same second and size. So ``x.pyc``/``x.pyo``
    beside it go, and ``__pycache__/x.<tag>.pyc`` (``.opt-N``, ``.pyo``);
    an emptied ``__pycache__`` too. A ``__pycache__`` that is not a real
    directory (a symlink) is never entered.
    """
    if not name.endswith(".py"):
        return []
    stem = name[:-3]
    gone = []
    for compiled in (name + "c", name + "o"):
        try:
            if unlink_here(compiled):
                gone.append(compiled)
        except OSError:
            pass                       # a directory of that name: not ours
    try:
        cache = os.open("__pycache__", DIR_FLAGS)
    except OSError:
        return gone                    # none, or not a directory: never followed
    here = os.open(".", DIR_FLAGS)
    try:
        os.fchdir(cache)
        for entry in os.listdir("."):
            parts = entry[len(stem) + 1:].split(".") if entry.startswith(stem + ".") else []
            # x.cpython-36.pyc, x.cpython-36.opt-1.pyc, x.cpython-34.pyo: never y.x.* or x.y.*
            if (parts and parts[-1] in ("pyc", "pyo")
                    and (len(parts) == 2 or len(parts) == 3 and parts[1].startswith("opt-"))):
                if unlink_here(entry):
                    gone.append("__pycache__/" + entry)
    finally:
        os.fchdir(here)
        os.close(here)
        os.close(cache)
    try:
        os.rmdir("__pycache__")        # only succeeds while empty
    except OSError:
        pass
    return gone


def drop_compiled(top, rel):
    """``drop_compiled_here`` for the source ``top/rel``; the paths removed.

    The directory is reached without following a symlink (Refused if one is
    on the way); nothing is removed if it is not there.
    """
    directory, name = os.path.split(rel)
    fd = enter(top, directory)
    if fd is None:
        return []
    try:
        return [os.path.join(top, directory, gone) for gone in drop_compiled_here(name)]
    finally:
        leave(fd)
