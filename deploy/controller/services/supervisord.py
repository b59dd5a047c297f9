"""supervisord, the sandbox's service manager (systemd cannot run here)."""
from __future__ import annotations

import re

from deploy.base.errors import ServiceError
from deploy.controller.services.interface import ServiceStatus
from deploy.transport.commands import Remote

_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<rest>.*)$")


class Supervisord:
    """Drive one program through ``supervisorctl -c <conf>``.

    supervisorctl's exit codes are coarse (3 for any stopped state, 4 for
    both "no such process" and "supervisord not running"), so the text is
    what is read.
    """

    def __init__(self, config: str, program: str) -> None:
        self.config = config
        self.program = program

    def ctl_argv(self, *args: str) -> list[str]:
        """``supervisorctl -c <conf> <args...>``."""
        return ["supervisorctl", "-c", self.config, *args]

    # "ERROR" lines that only say the service already is where we want it.
    _BENIGN = {"start": "(already started)", "stop": "(not running)", "restart": "(not running)"}

    def _ctl(self, remote: Remote, action: str) -> str:
        result = remote.run(self.ctl_argv(action, self.program), check=False)
        text = (result.stdout + result.stderr).strip()
        errors = [line for line in text.splitlines()
                  if "ERROR" in line and self._BENIGN[action] not in line]
        if result.exited != 0 or errors:
            raise ServiceError(f"{remote.name}: supervisorctl {action} {self.program} failed "
                               f"(exit {result.exited}): {self._explain(text)}")
        return text

    def _explain(self, text: str) -> str:
        if "could not find config file" in text:
            return (f"supervisor_config {self.config} does not exist on the controller; "
                    f"check supervisor_config in the inventory")
        if "refused connection" in text or "no such file" in text.lower():
            return (f"supervisord is not running with {self.config}; "
                    f"start it (for the sandbox: invoke sandbox.up)")
        if "no such process" in text:
            return f"supervisord has no program {self.program!r}; check 'service' in the inventory"
        if "spawn error" in text:
            return f"{self.program} exited at start ({text.splitlines()[-1]}); see its log"
        return text.splitlines()[-1] if text else "no output"

    def start(self, remote: Remote) -> None:
        self._ctl(remote, "start")

    def stop(self, remote: Remote) -> None:
        self._ctl(remote, "stop")

    def restart(self, remote: Remote) -> None:
        self._ctl(remote, "restart")

    def status(self, remote: Remote) -> ServiceStatus:
        result = remote.run(self.ctl_argv("status", self.program), check=False)
        text = (result.stdout + result.stderr).strip()
        # 0: running, 3: in a stopped state; 4: no such program or no supervisord;
        # anything else (2: no such config file, a bad option) is no answer either
        if result.exited not in (0, 3) or "refused connection" in text:
            raise ServiceError(f"{remote.name}: {self._explain(text)}")
        return parse_status(text)


def parse_status(text: str) -> ServiceStatus:
    """Read ``supervisorctl status <program>`` output.

    ``cinder-api   RUNNING   pid 4242, uptime 0:00:05`` is running;
    ``STOPPED``/``EXITED``/``FATAL``/``BACKOFF`` lines are not.
    """
    for line in text.splitlines():
        match = _STATUS.match(line.strip())
        if not match:
            continue
        state, rest = match["state"], match["rest"]
        pid = re.search(r"pid (\d+)", rest)
        uptime = re.search(r"uptime ([\d:]+(?: days?, [\d:]+)?)", rest)
        running = state == "RUNNING"
        return ServiceStatus(state, running, int(pid[1]) if pid and running else None,
                             f"uptime {uptime[1]}" if uptime else rest.strip())
    return ServiceStatus("UNKNOWN", False, None, text.strip())
