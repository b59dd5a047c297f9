"""``invoke logs``: the tail of the API log, optionally followed."""
from __future__ import annotations

from deploy import output
from deploy.commands import Remote
from deploy.inventory import Controller


def tail_argv(log_file: str, lines: int, follow: bool) -> list[str]:
    """``tail -n <lines> [-F] <log_file>``; -F survives log rotation."""
    return ["tail", "-n", str(lines), *(["-F"] if follow else []), log_file]


def show_logs(controller: Controller, lines: int = 50, follow: bool = False) -> None:
    """Print the last ``lines`` of the controller's API log (and follow it).

    Following runs with a pty so Ctrl-C ends the remote ``tail`` too.

    Raises:
        CommandFailed: the log cannot be read.
    """
    remote = Remote.open(controller)
    try:
        output.step(controller.name, f"{controller.log_file}")
        argv = tail_argv(controller.log_file, lines, follow)
        if follow:
            remote.run(argv, pty=True, hide=False, check=False)
        else:
            result = remote.run(argv, hint=f"check log_file for {controller.name} in the inventory")
            for line in result.stdout.splitlines():
                output.result(line)
    finally:
        remote.close()
