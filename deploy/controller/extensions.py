"""What the API log and the source say about Cinder's API extensions.

Cinder loads every module in ``cinder/api/contrib/`` as an extension when
the API starts and, when one fails, logs a warning (``Failed to load
extension cinder.api.contrib.x.X: <error>``) and serves without it. So an
API that answers may still not serve what a deploy sent: these functions
find the evidence. All of them are pure (text in, facts out).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

FAILED_TO_LOAD = "Failed to load extension "
CONTRIB = "api/contrib/"

# oslo.log lines start "<date> <time> <pid> <LEVEL> ..."
_LOG_PID = re.compile(r"^\S+ \S+ (\d+) ")
_ALIAS = re.compile(r"""^\s*alias\s*=\s*['"]([^'"]+)['"]""", re.M)


def module_name(path: str) -> str:
    """``api/contrib/x.py`` -> ``cinder.api.contrib.x`` (a package's ``__init__``: the
    package)."""
    parts = ["cinder", *path[:-3].split("/")] if path.endswith(".py") else ["cinder", path]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_extension(path: str) -> bool:
    """Whether Cinder loads ``path`` (relative to the package) as an API extension."""
    name = path.rsplit("/", 1)[-1]
    return (path.startswith(CONTRIB) and path.count("/") == 2 and name.endswith(".py")
            and name != "__init__.py")


def extension_alias(text: str) -> str | None:
    """The alias of the ExtensionDescriptor defined in a module's source.

    Found statically: a class whose base is named ``ExtensionDescriptor``
    (``extensions.ExtensionDescriptor`` or imported by name) and its
    ``alias = "..."`` (or ``alias = NAME`` of a module-level string). Source this
    Python cannot parse (e.g. Python 2 only) falls back to the first ``alias = "..."`` line.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        match = _ALIAS.search(text)
        return match.group(1) if match else None
    constants = _string_constants(tree.body)       # alias = ALIAS, ALIAS defined above
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                 for b in node.bases]
        if "ExtensionDescriptor" in bases:
            alias = _string_constants(node.body, constants).get("alias")
            if alias:
                return alias
    return None


def _string_constants(body: list[ast.stmt], known: dict[str, str] | None = None
                      ) -> dict[str, str]:
    """``NAME = "text"`` (or ``= OTHER_NAME`` known already) assignments of one body."""
    values: dict[str, str] = {}
    for item in body:
        if not isinstance(item, ast.Assign):
            continue
        value = item.value
        text = (value.value if isinstance(value, ast.Constant) and isinstance(value.value, str)
                else (known or {}).get(value.id) if isinstance(value, ast.Name) else None)
        if text is None:
            continue
        for target in item.targets:
            if isinstance(target, ast.Name):
                values[target.id] = text
    return values


def sent_aliases(source: Path, sent: Iterable[str]) -> dict[str, str]:
    """The alias of every extension module among ``sent``: path -> alias."""
    aliases = {}
    for path in sent:
        if not is_extension(path):
            continue
        try:
            alias = extension_alias((source / path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if alias:
            aliases[path] = alias
    return aliases


@dataclass(frozen=True, slots=True)
class LogFailures:
    """What the log written since a restart says went wrong with sent code."""

    reasons: tuple[str, ...]        # one line each: "cinder.api.contrib.x.X: boom"
    lines: tuple[str, ...]          # the log lines that show it
    others: tuple[str, ...] = ()    # extensions not sent by the deploy that failed too

    def __bool__(self) -> bool:
        return bool(self.reasons)


def _failed_extension(line: str) -> str | None:
    at = line.find(FAILED_TO_LOAD)
    return line[at + len(FAILED_TO_LOAD):].strip() if at >= 0 else None


def failures_in_log(log: str, sent: Sequence[str], *, context: int = 12,
                    limit: int = 40) -> LogFailures:
    """Find the failures of sent code in log text written since a restart.

    A failure is a ``Failed to load extension`` line naming a module the
    deploy sent (or mentioning one), or a traceback line naming a sent file
    (``File ".../cinder/<path>", line N``). Each is shown with the lines
    after it, up to ``limit`` lines in all.
    """
    modules = [module_name(path) for path in sent if path.endswith(".py")]
    files = [f'/cinder/{path}"' for path in sent]
    lines = log.splitlines()
    reasons: list[str] = []
    others: list[str] = []
    hits: list[int] = []
    for index, line in enumerate(lines):
        failed = _failed_extension(line)
        if failed is not None:
            if any(failed.startswith(m + ".") or m in failed for m in modules):
                reasons.append(f"failed to load extension {failed}")
                hits.append(index)
            else:
                others.append(failed)
        elif any(name in line for name in files):
            if not reasons or not reasons[-1].startswith("traceback"):
                reasons.append("traceback in " + next(
                    f"cinder/{p}" for p, n in zip(sent, files) if n in line))
            hits.append(index)
    shown: list[int] = []
    for hit in hits:
        for index in range(hit, min(hit + context, len(lines))):
            if index not in shown:
                shown.append(index)
    return LogFailures(tuple(dict.fromkeys(reasons)),
                       tuple(lines[i] for i in shown[:limit]), tuple(dict.fromkeys(others)))


def failed_in(log: str) -> list[str]:
    """The extensions every line of ``log`` says failed to load (a journal of one start)."""
    failed = []
    for line in log.splitlines():
        name = _failed_extension(line)
        if name is not None and name not in failed:
            failed.append(name)
    return failed


def failed_since_start(log: str, pid: int) -> list[str]:
    """The extensions that failed to load in the service process ``pid``.

    Extensions load in cinder-api's parent process before it forks its
    workers, and oslo.log puts the PID on every line, so the lines of this
    process tell what failed since the service started.
    """
    failed = []
    for line in log.splitlines():
        match = _LOG_PID.match(line)
        if not match or int(match.group(1)) != pid:
            continue
        name = _failed_extension(line)
        if name is not None and name not in failed:
            failed.append(name)
    return failed
