"""systemd, the production service manager (``systemctl``)."""
from __future__ import annotations

from deploy.base import output
from deploy.base.errors import ServiceError
from deploy.controller.services.interface import ServiceStatus
from deploy.transport.commands import Remote

_NO_SYSTEMD = "System has not been booted with systemd"

#: seconds a stop waits for uWSGI workers still loading the app, before killing them
UWSGI_LOAD_WAIT = 30
#: what the settle script says on stderr when it waited (or had to kill)
_SETTLED = "devloop-settle:"

# uWSGI's master asks its workers to end (SIGINT) and waits up to
# worker-reload-mercy (DevStack: 80 s) for each. A worker still importing
# Cinder (lazy-apps) does not end on that signal: a stop or restart right
# after a start (a rollback after a cut deploy, a second restart) took 80 s.
# So wait until every worker this start spawned has loaded its app (or
# failed to), bounded; a worker hung in its import is killed: it serves nothing.
_UWSGI_SETTLE = r"""
unit=$1 action=$2 limit=$3
inv=$(systemctl show --property InvocationID --value -- "$unit")
polls=0 done_with="waited"
if [ -n "$inv" ] && systemctl is-active --quiet -- "$unit"; then
  while :; do
    log=$(journalctl --no-pager --output cat _SYSTEMD_INVOCATION_ID="$inv")
    spawned=$(printf '%s\n' "$log" |
      grep -c -e '^spawned uWSGI worker' -e '^Respawned uWSGI worker')
    loaded=$(printf '%s\n' "$log" |
      grep -c -e '^WSGI app [0-9]* (mountpoint=.*ready' -e 'no app loaded')
    [ "$loaded" -ge "$spawned" ] && break
    if [ "$polls" -ge $((limit * 5)) ]; then
      done_with="killed it after"
      systemctl kill --signal=SIGKILL -- "$unit"
      break
    fi
    sleep 0.2
    polls=$((polls + 1))
  done
fi
[ "$polls" -gt 0 ] && echo "DEVLOOP $done_with $((polls / 5)).$((polls % 5 * 2)) s" >&2
exec systemctl "$action" -- "$unit"
""".replace("DEVLOOP", _SETTLED)


class Systemd:
    """Drive a unit with systemctl; ``systemctl show`` gives its state.

    ``uwsgi``: the unit runs uWSGI (DevStack's ``devstack@c-api``), whose stop
    first lets the workers of a fresh start finish loading (see above).
    """

    def __init__(self, unit: str, *, uwsgi: bool = False) -> None:
        self.unit = unit
        self.uwsgi = uwsgi

    def control_argv(self, action: str) -> list[str]:
        """``systemctl <start|stop|restart> -- <unit>`` (stop and restart settle uWSGI first).

        The unit comes after ``--`` in every systemctl command: never read as an option.
        """
        if self.uwsgi and action in ("stop", "restart"):
            return ["sh", "-c", _UWSGI_SETTLE, "devloop-settle", self.unit, action,
                    str(UWSGI_LOAD_WAIT)]
        return ["systemctl", action, "--", self.unit]

    def show_argv(self) -> list[str]:
        """``systemctl show --property=... -- <unit>``: one ``Key=value`` a line."""
        return ["systemctl", "show",
                "--property=LoadState,ActiveState,SubState,MainPID,ActiveEnterTimestamp",
                "--", self.unit]

    def _control(self, remote: Remote, action: str) -> None:
        result = remote.run(self.control_argv(action), check=False)
        for line in result.stderr.splitlines():
            if line.startswith(_SETTLED):
                waited = line[len(_SETTLED):].strip()
                output.detail(f"a uWSGI worker was still loading Cinder; {waited} "
                              f"before systemctl {action} (uWSGI would wait its "
                              f"worker-reload-mercy for it)")
        if result.exited != 0:
            text = "\n".join(line for line in (result.stderr or result.stdout).splitlines()
                             if not line.startswith(_SETTLED)).strip()
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
            remote.run(["systemctl", "reset-failed", "--", self.unit], check=False)
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
