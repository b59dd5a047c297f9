"""Before anything is sent: the changed Python files must compile on the controller.

They are compiled by the interpreter that runs Cinder there (the inventory's
``python``), whatever its version, so code that is valid on the workstation's
Python 3 but not on a controller's Python 2.7 is refused too. The files travel
compressed on the stdin of one remote call (``deploy/remote/compile_check.py``),
never in its argv (which any user there can read, and which holds at most
128 KiB an argument), so a file of any size is checked.

An overlay tree is small (``cinder_patch/`` is 12 modules, 10 KB compressed),
so the one-call deploy sends all its modules and the controller compiles
those that differ from its copies (``deploy/remote/receive_tree.py``), in
the same call that writes them. A tree that goes through rsync is checked
as rsync's dry run lists its changes, from the private copy that rsync then
sends (:func:`deploy.transport.tree.stage`): the bytes checked are the bytes
sent. A changed link ending in ``.py`` is checked as the file it leads to.
"""
from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from deploy.base import output
from deploy.base.errors import CommandFailed, CompileError
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, describe, tail
from deploy.transport.sync import Change
from deploy.transport.tree import Tree, link_target_file, read_file, shown


@dataclass(frozen=True, slots=True)
class CompileProblem:
    """A file that does not compile: where, and the interpreter's message."""

    path: str                  # as shown: cinder/api/contrib/x.py
    line: int | None
    message: str

    def format(self) -> str:
        where = f"{shown(self.path)}:{self.line}" if self.line else shown(self.path)
        return f"{where}: {self.message}"


def python_files(changes: Iterable[Change]) -> list[str]:
    """The changed ``.py`` files (paths relative to the cinder package)."""
    return [c.path for c in changes if c.path.endswith(".py")]


def compile_input(files: Sequence[tuple[str, bytes]], *, against: str = "",
                  log_file: str = "") -> bytes:
    """The compile helper's stdin: each (path relative to the package, bytes), compressed."""
    job = {"against": against, "log_file": log_file,
           "files": [[rel, base64.b64encode(data).decode()] for rel, data in files]}
    return zlib.compress(json.dumps(job).encode(), 6)


@dataclass(frozen=True, slots=True)
class CompileResult:
    """What the helper said: the problems, the files it compiled, the log's size."""

    problems: tuple[CompileProblem, ...] = ()
    compiled: int = 0
    log_size: int | None = None


def parse_output(stdout: str) -> CompileResult:
    """Read the helper's JSON lines (other output is ignored)."""
    problems, compiled, log_size = [], 0, None
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        if "log_size" in data:
            log_size = int(data["log_size"])
        elif "compiled" in data:
            compiled += int(data["compiled"])
        else:
            problems.append(CompileProblem(data["path"], data.get("line"), data["message"]))
    return CompileResult(tuple(problems), compiled, log_size)


def compile_check_argv(python: str) -> list[str]:
    """``python -E -s -S -c <compile_check.py>``: the files come on its stdin."""
    return [python, *STDLIB_ONLY, "-c", script("compile_check")]


def run_compile_check(remote: Remote, files: Sequence[tuple[str, bytes]], *,
                      against: str = "", log_file: str = "") -> CompileResult:
    """One call of the helper with the controller's python, the files on its stdin.

    Raises:
        CommandFailed: the helper itself could not run.
    """
    python = cinder_python(remote)
    argv = compile_check_argv(python)
    dialogue = remote.dialogue(argv)
    result = dialogue.finish(compile_input(files, against=against, log_file=log_file))
    if result.exited != 0:
        raise CommandFailed(remote.name, describe(argv), result.exited,
                            tail(result.stderr + "\n" + result.stdout),
                            f"is {python} the python that runs Cinder?")
    return parse_output(result.stdout)


def refuse(remote: Remote, problems: Sequence[CompileProblem]) -> None:
    """Raise ``CompileError`` listing ``problems``, if there are any."""
    if problems:
        raise CompileError(
            f"{remote.name}: {len(problems)} changed file(s) do not compile with "
            f"{cinder_python(remote)} on the controller; nothing was sent or restarted",
            [problem.format() for problem in problems])


def staged_sources(tree: Tree, staged: Path,
                   changes: Sequence[Change]) -> list[tuple[str, bytes]]:
    """The bytes the controller will import for each changed ``.py`` file, as sent.

    A file's are those of its copy in ``staged`` (what rsync sends). A link's
    are those of the file of the tree it leads to (its copy, if it is sent
    too); a link to a file the tree does not hold (the controller's own) or
    to a directory has none to check.

    Raises:
        SourceTreeError: a file cannot be read.
    """
    sources = []
    for rel in python_files(changes):
        if rel in tree.links:
            target = link_target_file(tree, rel)
            if target is None:
                continue
            copy = staged / target
            path = copy if os.path.lexists(copy) else tree.root / target
        else:
            path = staged / rel
        sources.append((rel, read_file(path)[0]))
    return sources


def check_changes(remote: Remote, tree: Tree, staged: Path,
                  changes: Sequence[Change]) -> CompileResult:
    """Compile the changed ``.py`` files (from rsync's dry run), as staged, in one call.

    The call also reads the size of the API log, so the health check after
    the restart reads only what the restart writes.

    Raises:
        CompileError: one line per file that does not compile; nothing sent.
        SourceTreeError: a file cannot be read.
    """
    result = run_compile_check(remote, staged_sources(tree, staged, changes),
                               log_file=remote.controller.log_file)
    refuse(remote, result.problems)
    tell_compiled(remote, result.compiled)
    return CompileResult((), result.compiled, result.log_size)


def tell_compiled(remote: Remote, compiled: int) -> None:
    if compiled:
        output.detail(f"{compiled} changed .py file(s) compile with {cinder_python(remote)}")
