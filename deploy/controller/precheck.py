"""Before anything is sent: the changed Python files must compile on the controller.

They are compiled by the interpreter that runs Cinder there (the inventory's
``python``), whatever its version, so code that is valid on the workstation's
Python 3 but not on a controller's Python 2.7 is refused too. The files travel
compressed as arguments of one remote call (``deploy/remote/compile_check.py``).

An overlay tree is small (``cinder_patch/`` is 12 modules, 10 KB compressed),
so all its modules travel and the controller compiles those that differ from
its copies; the same call reads the API log's size for the health check after
the restart. A tree too large for one call (a whole Cinder checkout) is
checked as rsync's dry run lists its changes, in a few calls, each within what
an SSH exec request and the remote argv can carry.
"""
from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from deploy.base import output
from deploy.base.errors import CompileError
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote
from deploy.transport.sync import Change

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
    """The compile helper's file arguments for ``paths``, in batches.

    Each file is two arguments: its path relative to the cinder package and
    its bytes, zlib compressed and base64 encoded. A file larger than a batch
    gets a batch of its own.
    """
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for rel in paths:
        packed = base64.b64encode(zlib.compress((source / rel).read_bytes(), 6)).decode()
        if current and size + len(packed) + len(rel) > _BATCH_BYTES:
            batches.append(current)
            current, size = [], 0
        current += [rel, packed]
        size += len(packed) + len(rel)
    if current:
        batches.append(current)
    return batches


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


def compile_check_argv(python: str, batch: Sequence[str], *, against: str = "",
                       log_file: str = "") -> list[str]:
    """``python -I -S -c <compile_check.py> CINDER_DIR LOG_FILE PATH DATA ...``."""
    return [python, *STDLIB_ONLY, "-c", script("compile_check"), against, log_file, *batch]


def run_compile_check(remote: Remote, batch: Sequence[str], *, against: str = "",
                      log_file: str = "") -> CompileResult:
    """One call of the helper with the controller's python.

    Raises:
        CommandFailed: the helper itself could not run.
    """
    result = remote.run(compile_check_argv(cinder_python(remote), batch, against=against,
                                           log_file=log_file),
                        hint=f"is {cinder_python(remote)} the python that runs Cinder?")
    return parse_output(result.stdout)


def refuse(remote: Remote, problems: Sequence[CompileProblem]) -> None:
    """Raise ``CompileError`` listing ``problems``, if there are any."""
    if problems:
        raise CompileError(
            f"{remote.name}: {len(problems)} changed file(s) do not compile with "
            f"{cinder_python(remote)} on the controller; nothing was sent or restarted",
            [problem.format() for problem in problems])


def check_changes(remote: Remote, source: Path, changes: Sequence[Change]) -> CompileResult:
    """Compile the changed ``.py`` files (from rsync's dry run), in as few calls as fit.

    The first call also reads the size of the API log, so the health check
    after the restart reads only what the restart writes.

    Raises:
        CompileError: one line per file that does not compile; nothing sent.
    """
    problems: list[CompileProblem] = []
    compiled = 0
    log_size = None
    for index, batch in enumerate(pack(source, python_files(changes))):
        result = run_compile_check(remote, batch,
                                   log_file=remote.controller.log_file if index == 0 else "")
        problems += result.problems
        compiled += result.compiled
        log_size = result.log_size if index == 0 else log_size
    refuse(remote, problems)
    tell_compiled(remote, compiled)
    return CompileResult((), compiled, log_size)


def tell_compiled(remote: Remote, compiled: int) -> None:
    if compiled:
        output.detail(f"{compiled} changed .py file(s) compile with {cinder_python(remote)}")
