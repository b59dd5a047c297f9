"""The ``invoke`` command of a cinder-devloop venv: Invoke, plus ``--inventory``.

Every task takes ``--inventory FILE``, but a user driving several tasks at
once against one controller (``invoke deploy db-sync status``) wants to say
it once, before the task names, as Invoke's own options go. Stock Invoke
rejects an option it does not know there, so the project installs this
program as the venv's ``invoke`` (``[project.scripts]`` in pyproject.toml):
Invoke's own program with one more core option, which sets
``$DEVLOOP_INVENTORY`` for the tasks of the run (a task's own
``--inventory`` still wins).

A flag Invoke cannot parse (``--port abc``, an unknown flag, a flag without
its value) ends the run as every other user error does: one ``error: ...``
line and exit code 2, no traceback. Everything else is Invoke unchanged.
"""
from __future__ import annotations

import os
import re
from typing import Any, List, Optional

from invoke import Argument, Exit, ParseError, Parser, Program, __version__

#: exit code of a usage error (as ``deploy.base.errors.UsageError``)
USAGE = 2


class _CheckedArgument(Argument):
    """An Argument whose value that does not convert is a ``ParseError`` naming the flag.

    Invoke converts ``--port abc`` with ``int('abc')`` and lets the
    ``ValueError`` escape as a traceback.
    """

    #: the task whose flag this is ("" for Invoke's own options)
    task = ""

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except (TypeError, ValueError):
            kind = {int: "a whole number", float: "a number"}.get(self.kind, "a value")
            where = f"{self.task} {flag_name(self)}" if self.task else flag_name(self)
            raise ParseError(f"{where}: expected {kind}, got {value!r}") from None


def flag_name(argument: Argument) -> str:
    """``--lock-wait`` (the longest of its names, as typed)."""
    name = max(argument.names, key=len)
    return f"-{name}" if len(name) == 1 else f"--{name}"


def usage_message(exc: ParseError) -> str:
    """Invoke's parse error as one line in the tool's words."""
    text = str(exc)
    task = getattr(getattr(exc, "context", None), "name", None)
    needed = re.fullmatch(r"Flag <\w+: (\w+).*> needed value and was not given one!", text)
    unknown = re.fullmatch(r"No idea what '(.*)' is!", text)
    if needed:
        name = needed[1].replace("_", "-")
        text = f"{'-' if len(name) == 1 else '--'}{name} needs a value"
    elif unknown and unknown[1].startswith("-"):
        text = (f"unknown flag {unknown[1]} (invoke --help {task or ''} lists the "
                f"flags)").replace("  ", " ")
    elif unknown:
        text = f"no task {unknown[1]!r} (invoke --list shows the tasks)"
    return f"{task}: {text}" if task else text


class DevloopProgram(Program):
    """Invoke's program with a core ``--inventory FILE`` option and one-line parse errors."""

    def core_args(self) -> List[Argument]:
        arguments = [*super().core_args(),
                     Argument(names=("inventory",),
                              help="Inventory file for every task of this run "
                                   "(default: $DEVLOOP_INVENTORY or hosts.yaml).")]
        for argument in arguments:
            argument.__class__ = _CheckedArgument
        return arguments

    def parse_core(self, argv: Optional[List[str]]) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise Exit(f"error: {usage_message(exc)}", code=USAGE) from None
        chosen = self.args.inventory.value
        if chosen:
            os.environ["DEVLOOP_INVENTORY"] = os.path.abspath(os.path.expanduser(chosen))

    def parse_collection(self) -> None:
        try:
            super().parse_collection()
        except ParseError as exc:
            raise Exit(f"error: {usage_message(exc)}", code=USAGE) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"error: {usage_message(exc)}", code=USAGE) from None

    def _make_parser(self) -> Parser:
        parser = super()._make_parser()
        for name, context in parser.contexts.items():
            for argument in context.args.values():
                # (each task's parser contexts are deep copies of these: the class goes along)
                argument.__class__ = _CheckedArgument
                argument.task = name
        return parser


program = DevloopProgram(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"],
                         version=__version__)


def main() -> None:
    """Console-script entry point: run the program on ``sys.argv``."""
    program.run()


if __name__ == "__main__":
    main()
