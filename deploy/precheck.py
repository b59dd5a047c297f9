"""Before anything is sent: the changed Python files must compile on the controller.

They are compiled by the interpreter that runs Cinder there (the inventory's
``python``), whatever its version, so code that is valid on the workstation's
Python 3 but not on a controller's Python 2.7 is refused too. The files travel
compressed as arguments of one remote call (``deploy/remote/compile_check.py``);
a very large change set is split into a few calls, each within what an SSH
exec request and the remote argv can carry.
"""
from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from deploy import output
from deploy.commands import STDLIB_ONLY, Remote
from deploy.errors import CompileError
from deploy.remote import script
from deploy.sync import Change

# per remote call: well under OpenSSH's 256 KiB packet limit for the command
# and Linux's 128 KiB limit for one argument
_BATCH_BYTES = 96 * 1024


@dataclass(frozen=True, slots=True)
class CompileProblem:
    """A file that does not compile: where, and the interpreter's message."""

    path: str                  # as shown: cinder/api/contrib/x.py
    line: int | None
    message: str

    def format(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def python_files(changes: Iterable[Change]) -> list[str]:
    """The changed ``.py`` files (paths relative to the cinder package)."""
    return [c.path for c in changes if c.path.endswith(".py")]


def pack(source: Path, paths: Sequence[str]) -> list[list[str]]:
    """The compile helper's arguments for ``paths``, in batches.

    Each file is two arguments: ``cinder/<path>`` and its bytes, zlib
    compressed and base64 encoded. A file larger than a batch gets a batch
    of its own.
    """
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for rel in paths:
        packed = base64.b64encode(zlib.compress((source / rel).read_bytes(), 6)).decode()
        shown = f"cinder/{rel}"
        if current and size + len(packed) + len(shown) > _BATCH_BYTES:
            batches.append(current)
            current, size = [], 0
        current += [shown, packed]
        size += len(packed) + len(shown)
    if current:
        batches.append(current)
    return batches


def parse_problems(stdout: str) -> list[CompileProblem]:
    """Read the helper's JSON lines (other output is ignored)."""
    problems = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        problems.append(CompileProblem(data["path"], data.get("line"), data["message"]))
    return problems


def compile_problems(remote: Remote, source: Path, paths: Sequence[str]) -> list[CompileProblem]:
    """Compile ``paths`` (under ``source``) with the controller's python.

    Raises:
        CommandFailed: the helper itself could not run.
    """
    problems: list[CompileProblem] = []
    for batch in pack(source, paths):
        result = remote.run([remote.controller.python, *STDLIB_ONLY, "-c",
                             script("compile_check"), *batch],
                            hint=f"is {remote.controller.python} the python that runs Cinder?")
        problems += parse_problems(result.stdout)
    return problems


def check_compiles(remote: Remote, source: Path, changes: Sequence[Change]) -> int:
    """Refuse the deploy when a changed ``.py`` file does not compile there.

    Returns how many files were compiled.

    Raises:
        CompileError: one line per file that does not compile; nothing sent.
    """
    paths = python_files(changes)
    if not paths:
        return 0
    problems = compile_problems(remote, source, paths)
    if problems:
        raise CompileError(
            f"{remote.name}: {len(problems)} changed file(s) do not compile with "
            f"{remote.controller.python} on the controller; nothing was sent or restarted",
            [problem.format() for problem in problems])
    output.detail(f"{len(paths)} changed .py file(s) compile with {remote.controller.python}")
    return len(paths)
