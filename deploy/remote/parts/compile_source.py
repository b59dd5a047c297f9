def compile_problem(rel, data):
    """What keeps ``data`` (the bytes of cinder/``rel``) from compiling, or None.

    Compiled as Cinder's interpreter would import it: bytes in, so a coding
    cookie is honoured, and no ``__future__`` flag of the calling script
    leaks in (``dont_inherit``). Nothing is written.
    """
    # (an ASCII file name: Python 2 takes no other; it shows in no message)
    name = ("cinder/" + rel).encode("ascii", "backslashreplace")
    try:
        compile(data, name, "exec", 0, True)
    except SyntaxError as exc:
        return {"path": "cinder/" + rel, "line": exc.lineno,
                "message": exc.msg or "invalid syntax"}
    except (TypeError, ValueError) as exc:   # e.g. null bytes in the source
        return {"path": "cinder/" + rel, "line": None, "message": str(exc)}
    return None
