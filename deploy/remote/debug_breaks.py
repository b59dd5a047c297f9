"""Resolve ``--break`` locations on the controller to module, file and line.

Usage: ``python -B -c <this> <cinder package dir or ""> <JSON list of locations>``
(an empty directory means: where this python imports cinder from),
each location ``{"text", "path", "line"}`` (FILE:LINE) or ``{"text",
"name"}`` (a dotted function name). Prints a JSON list with, for each,
either ``{"module", "file", "line", "label"}`` or ``{"error"}``.

A line must start a statement (so the stop can go right before it). A line
in a function's header (its decorators or ``def``) stands for the function:
the stop goes before the first statement of its body, after the docstring.
Dotted names are imported and followed to the function that really runs,
through decorators (``inspect.unwrap``: Cinder's ``validation.schema``,
``wsgi.response`` ... use ``functools.wraps``).

Python 2.7 and 3.6+, standard library only: this runs with the controller's
python (``-B``: importing Cinder here writes no .pyc into its tree).
"""
import ast
import importlib
import inspect
import json
import os
import sys
import warnings

FUNCTIONS = (ast.FunctionDef, getattr(ast, "AsyncFunctionDef", ast.FunctionDef))
# blocks whose inner lines belong to statements of their own
BLOCKS = tuple(getattr(ast, name) for name in ("If", "For", "While", "With", "Try", "TryExcept",
                                               "TryFinally") if hasattr(ast, name))


class Unresolved(Exception):
    """The location does not name code on this controller."""


def _is_docstring(node):
    if not isinstance(node, ast.Expr):
        return False
    value = node.value
    if type(value).__name__ == "Str":   # Python < 3.8
        return True
    return isinstance(value, getattr(ast, "Constant", ())) and isinstance(value.value, str)


def _header_start(node):
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


def _qualnames(tree):
    """Map each function node to its dotted name inside the module."""
    names = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FUNCTIONS + (ast.ClassDef,)):
                name = prefix + child.name
                names[child] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")
    return names


def _code_lines(tree):
    return sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.stmt)})


def resolve_line(path, line):
    """(line to stop before, function name or '') for ``path:line``.

    Raises:
        Unresolved: no such file, line out of range, or no statement there.
    """
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except EnvironmentError as exc:  # IOError on Python 2
        raise Unresolved("cannot read %s: %s" % (path, exc.strerror))
    try:
        tree = ast.parse(source, path)
    except SyntaxError as exc:
        raise Unresolved("%s does not parse: %s (line %s)" % (path, exc.msg, exc.lineno))
    count = len(source.splitlines())
    if not 1 <= line <= count:
        raise Unresolved("%s has %d lines; there is no line %d" % (path, count, line))
    names = _qualnames(tree)
    for node in ast.walk(tree):
        if isinstance(node, FUNCTIONS) and _header_start(node) <= line < node.body[0].lineno:
            body = node.body
            first = body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]
            return first.lineno, names.get(node, node.name)
    starts = [node for node in ast.walk(tree)
              if isinstance(node, ast.stmt) and node.lineno == line]
    if starts:
        inside = [f for f in ast.walk(tree) if isinstance(f, FUNCTIONS) and
                  f.body[0].lineno <= line <= getattr(f, "end_lineno", f.lineno + 10 ** 6)]
        inside.sort(key=lambda f: f.body[0].lineno)
        return line, names.get(inside[-1], "") if inside else ""
    for node in ast.walk(tree):
        end = getattr(node, "end_lineno", None)
        if isinstance(node, ast.stmt) and end and node.lineno < line <= end and \
                not isinstance(node, FUNCTIONS + (ast.ClassDef,) + BLOCKS):
            raise Unresolved("line %d of %s is inside the statement that starts at line %d; "
                             "break at line %d" % (line, path, node.lineno, node.lineno))
    lines = _code_lines(tree)
    before = [n for n in lines if n < line][-1:]
    after = [n for n in lines if n > line][:1]
    near = " and ".join(str(n) for n in before + after)
    raise Unresolved("line %d of %s holds no statement (blank, comment or a block's "
                     "else/except/finally line)%s" % (line, path,
                                                       "; nearest code: " + near if near else ""))


def package_parent(real):
    """The directory above the top package holding ``real``, if this python imports that
    package from there: an editable install (``pip install -e``, as DevStack's checkout) is
    found by an import hook, not through sys.path."""
    top = None
    directory = os.path.dirname(real)
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        top = directory
        directory = os.path.dirname(directory)
    if top is None:
        return None
    name = os.path.basename(top)
    try:
        import importlib.util
        spec = importlib.util.find_spec(name)
        places = list(spec.submodule_search_locations or []) if spec else []
    except ImportError:      # Python 2
        import imp
        try:
            places = [imp.find_module(name)[1]]
        except ImportError:
            places = []
    if any(os.path.realpath(place) == top for place in places):
        return os.path.dirname(top)
    return None


def module_for(path):
    """The dotted module name Python would import ``path`` as (via sys.path)."""
    real = os.path.realpath(path)
    best = None
    for entry in sys.path:
        base = os.path.realpath(entry or ".")
        if real.startswith(base + os.sep) and (best is None or len(base) > len(best)):
            best = base
    if best is None:
        best = package_parent(real)
    if best is None:
        raise Unresolved("%s is not under any directory on the controller python's "
                         "sys.path" % path)
    parts = os.path.relpath(real, best)[:-len(".py")].split(os.sep)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_longest(name):
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        try:
            return importlib.import_module(candidate), parts[end:]
        except ImportError as exc:
            missing = getattr(exc, "name", None)
            if missing and (candidate == missing or candidate.startswith(missing + ".")):
                continue
            said = str(exc)   # Python 2: "No module named <last part>"
            if missing is None and said.startswith("No module named ") and \
                    candidate.endswith(said[len("No module named "):].strip("'")):
                continue
            raise Unresolved("importing %s failed: %s" % (candidate, exc))
        except Exception as exc:
            raise Unresolved("importing %s failed: %s: %s" % (candidate, type(exc).__name__,
                                                              exc))
    raise Unresolved("no module named %s" % parts[0])


def _getattr_static(cls, attr):
    """``cls.attr`` as stored (a staticmethod stays one), like inspect.getattr_static."""
    for klass in inspect.getmro(cls):
        if attr in vars(klass):
            return vars(klass)[attr]
    raise AttributeError(attr)


def _unwrap(func):
    """The function under its decorators.

    ``__wrapped__`` (functools.wraps sets it on Python 3); Python 2's wraps
    does not, so there the wrapper's closure is searched for a function of
    the same name.
    """
    seen = set()
    while id(func) not in seen:
        seen.add(id(func))
        inner = getattr(func, "__wrapped__", None)
        if inner is None:
            for cell in getattr(func, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:   # an empty cell
                    continue
                value = getattr(value, "__func__", value)
                if inspect.isfunction(value) and value.__name__ == func.__name__:
                    inner = value
                    break
        if inner is None:
            break
        func = inner
    return func


def resolve_name(name):
    """(file, first line of the function) for a dotted function name."""
    module, rest = _import_longest(name)
    obj, where = module, module.__name__
    for attr in rest:
        try:
            obj = _getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)
        except AttributeError:
            raise Unresolved("%s has no attribute %r" % (where, attr))
        where = where + "." + attr
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    obj = getattr(obj, "__func__", obj)
    obj = _unwrap(obj)
    if inspect.isclass(obj) or inspect.ismodule(obj):
        raise Unresolved("%s is a %s; name one of its functions or methods, or use FILE:LINE"
                         % (name, "class" if inspect.isclass(obj) else "module"))
    code = getattr(obj, "__code__", None)
    if code is None:
        raise Unresolved("%s is not a Python function (%s)" % (name, type(obj).__name__))
    return code.co_filename, code.co_firstlineno


def resolve(location, cinder_dir):
    if "name" in location:
        path, first = resolve_name(location["name"])
    else:
        path = location["path"]
        if not os.path.isabs(path):
            path = os.path.join(cinder_dir, path)
        if not os.path.isfile(path):
            raise Unresolved("no file %s on the controller" % path)
        first = location["line"]
    if not path.endswith(".py"):
        raise Unresolved("%s is not a Python source file" % path)
    line, function = resolve_line(path, first)
    package_root = os.path.dirname(os.path.realpath(cinder_dir))
    shown = os.path.relpath(os.path.realpath(path), package_root) \
        if os.path.realpath(path).startswith(package_root + os.sep) else path
    label = "%s:%d" % (shown, line) + (" (%s)" % function if function else "")
    return {"module": module_for(path), "file": os.path.realpath(path), "line": line,
            "label": label}


def main():
    warnings.simplefilter("ignore")
    cinder_dir, locations = sys.argv[1], json.loads(sys.argv[2])
    if not cinder_dir:
        try:
            cinder_dir = os.path.dirname(importlib.import_module("cinder").__file__)
        except ImportError:
            sys.stdout.write(json.dumps({"error": "cinder is not importable by %s"
                                         % sys.executable}) + "\n")
            return
    results = []
    for location in locations:
        try:
            results.append(resolve(location, cinder_dir))
        except Unresolved as exc:
            results.append({"error": str(exc)})
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
