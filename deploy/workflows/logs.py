"""``invoke logs``: the tail of the API log (or the unit's journal), optionally followed."""
from __future__ import annotations

from deploy.base import output
from deploy.base.errors import UsageError
from deploy.base.inventory import Controller
from deploy.transport.commands import Remote
from deploy.transport.layout import laid_out


def tail_argv(log_file: str, lines: int, follow: bool) -> list[str]:
    """``tail -n <lines> [-F] -- <log_file>``; -F survives log rotation."""
    return ["tail", "-n", str(lines), *(["-F"] if follow else []), "--", log_file]


def journal_argv(unit: str, lines: int, follow: bool) -> list[str]:
    """``journalctl --unit <unit> -n <lines> --no-pager [-f]``: what systemd kept of the unit.

    (``--unit`` takes the next word as its value, whatever it starts with.)
    """
    return ["journalctl", "--unit", unit, "--lines", str(lines), "--no-pager",
            *(["--follow"] if follow else [])]


def show_logs(controller: Controller, lines: int = 50, follow: bool = False,
              journal: bool = False) -> None:
    """Print the last ``lines`` of the controller's API log or journal (and follow it).

    Following runs with a pty so Ctrl-C ends the remote ``tail`` too.

    Raises:
        UsageError: ``journal`` on a controller that is not run by systemd.

    A controller without ``log_file`` (DevStack's layout) has only the journal.
        CommandFailed: the log cannot be read.
    """
    controller = laid_out(controller)
    journal = journal or not controller.log_file     # DevStack: journald only
    if journal and controller.service_manager != "systemd":
        raise UsageError(f"{controller.name}: --journal reads systemd's journal; this "
                         f"controller's service_manager is {controller.service_manager} "
                         f"(its log: {controller.log_file})")
    remote = Remote.open(controller)
    try:
        if journal:
            output.step(controller.name, f"journal of {controller.service}")
            argv = journal_argv(controller.service, lines, follow)
        else:
            output.step(controller.name, f"{controller.log_file}")
            argv = tail_argv(controller.log_file, lines, follow)
        if follow:
            remote.run(argv, pty=True, hide=False, check=False)
        else:
            result = remote.run(argv, hint=f"check {'service' if journal else 'log_file'} "
                                f"for {controller.name} in the inventory")
            for line in result.stdout.splitlines():
                output.result(line)
    finally:
        remote.close()
