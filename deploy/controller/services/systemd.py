"""systemd, the production service manager (``systemctl``)."""
from __future__ import annotations

from deploy.base import output
from deploy.base.errors import ServiceError
from deploy.controller.services.interface import ServiceStatus
from deploy.transport.commands import Remote

_NO_SYSTEMD = "System has not been booted with systemd"


class Systemd:
    """Drive a unit with systemctl; ``systemctl show`` gives its state."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def control_argv(self, action: str) -> list[str]:
        """``systemctl <start|stop|restart> <unit>``."""
        return ["systemctl", action, self.unit]

    def show_argv(self) -> list[str]:
        """``systemctl show <unit> --property=...``: one ``Key=value`` a line."""
        return ["systemctl", "show", self.unit,
                "--property=LoadState,ActiveState,SubState,MainPID,ActiveEnterTimestamp"]

    def _control(self, remote: Remote, action: str) -> None:
        result = remote.run(self.control_argv(action), check=False)
        if result.exited != 0:
            text = (result.stderr or result.stdout).strip()
            hint = ("systemd is not running on this host; set service_manager in the inventory"
                    if _NO_SYSTEMD in text else
                    f"see: journalctl -u {self.unit} -n 50")
            raise ServiceError(f"{remote.name}: systemctl {action} {self.unit} failed "
                               f"(exit {result.exited}): {text.splitlines()[-1] if text else ''}; "
                               f"{hint}")

    def start(self, remote: Remote) -> None:
        self._starting(remote, "start")

    def stop(self, remote: Remote) -> None:
        self._control(remote, "stop")

    def restart(self, remote: Remote) -> None:
        self._starting(remote, "restart")

    def _starting(self, remote: Remote, action: str) -> None:
        """``systemctl start|restart``; if refused, ``reset-failed`` and once more.

        A unit with ``Restart=on-failure`` whose code is broken crashes and
        is restarted until systemd gives up (its start limit); it then
        refuses every start, a manual one too, until ``reset-failed``. The
        start after a fix (or a rollback) must still work.
        """
        try:
            self._control(remote, action)
        except ServiceError:
            output.detail(f"systemd refused to {action} {self.unit}; it gives up on a unit "
                          f"that failed too often in a row: systemctl reset-failed, then "
                          f"{action} once more")
            remote.run(["systemctl", "reset-failed", self.unit], check=False)
            self._control(remote, action)

    def status(self, remote: Remote) -> ServiceStatus:
        result = remote.run(self.show_argv(), check=False)
        if result.exited != 0:
            text = (result.stderr or result.stdout).strip()
            raise ServiceError(f"{remote.name}: cannot read the state of {self.unit}: {text}")
        return parse_show(result.stdout)


def parse_show(text: str) -> ServiceStatus:
    """Read ``systemctl show`` output into a ``ServiceStatus``."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if props.get("LoadState") == "not-found":
        return ServiceStatus("not-found", False)
    active, sub = props.get("ActiveState", "unknown"), props.get("SubState", "")
    pid = int(props.get("MainPID", "0") or 0) or None
    since = props.get("ActiveEnterTimestamp", "")
    running = active == "active"
    return ServiceStatus(f"{active} ({sub})" if sub else active, running,
                         pid if running else None, f"since {since}" if running and since else "")
