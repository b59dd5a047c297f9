"""The ``invoke`` command of a cinder-devloop venv: Invoke, plus ``--inventory``.

Every task takes ``--inventory FILE``, but a user driving several tasks at
once against one controller (``invoke deploy db-sync status``) wants to say
it once, before the task names, as Invoke's own options go. Stock Invoke
rejects an option it does not know there, so the project installs this
program as the venv's ``invoke`` (``[project.scripts]`` in pyproject.toml):
Invoke's own program with one more core option, which sets
``$DEVLOOP_INVENTORY`` for the tasks of the run (a task's own
``--inventory`` still wins). Everything else is Invoke unchanged.
"""
from __future__ import annotations

import os
from typing import List, Optional

from invoke import Argument, Program, __version__


class DevloopProgram(Program):
    """Invoke's program with a core ``--inventory FILE`` option."""

    def core_args(self) -> List[Argument]:
        return [*super().core_args(),
                Argument(names=("inventory",),
                         help="Inventory file for every task of this run "
                              "(default: $DEVLOOP_INVENTORY or hosts.yaml).")]

    def parse_core(self, argv: Optional[List[str]]) -> None:
        super().parse_core(argv)
        chosen = self.args.inventory.value
        if chosen:
            os.environ["DEVLOOP_INVENTORY"] = os.path.abspath(os.path.expanduser(chosen))


program = DevloopProgram(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"],
                         version=__version__)


def main() -> None:
    """Console-script entry point: run the program on ``sys.argv``."""
    program.run()
