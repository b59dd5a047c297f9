"""Whether a controller whose inventory entry does not say is laid out as RDO or DevStack.

A DevStack host's entry holds what its user knows (address, key,
known_hosts, cloud); the unit file DevStack writes for Cinder's API tells
it apart. One ``test -e`` over the run's shared connection, remembered for
the rest of the run, so every step sees the same controller.
"""
from __future__ import annotations

import threading

from deploy.base import output
from deploy.base.inventory import DEVSTACK_UNIT_FILE, Controller, with_layout
from deploy.transport.commands import Remote

_found: dict[tuple[str, str, int], str] = {}
_found_lock = threading.Lock()


def laid_out(controller: Controller) -> Controller:
    """``controller`` with its layout settled: as written, or asked of the controller.

    Raises:
        ConnectError / HostKeyUnknown / HostKeyMismatch: the controller cannot be
            reached to ask (the same error the step itself would give).
    """
    if not controller.needs_layout:
        return controller
    key = (controller.name, controller.address, controller.port)
    with _found_lock:
        layout = _found.get(key)
    if layout is None:
        remote = Remote.open(controller)
        found = remote.run(["test", "-e", DEVSTACK_UNIT_FILE], check=False).exited == 0
        layout = "devstack" if found else "rdo"
        with _found_lock:
            _found[key] = layout
    settled = with_layout(controller, layout)
    if output.is_verbose():     # status always says it (its layout line)
        output.detail(f"{controller.name}: layout {how_settled(settled)}")
    return settled


def how_settled(controller: Controller) -> str:
    """How the layout of ``controller`` (as :func:`laid_out` gave it) was found, for status.

    "" when the inventory said (``layout``, ``service`` or a supervisord entry).
    """
    if controller.layout is None or "layout" in controller.given or \
            (controller.name, controller.address, controller.port) not in _found:
        return ""
    found = controller.layout == "devstack"
    return (f"{controller.layout} ({DEVSTACK_UNIT_FILE} {'found' if found else 'absent'}; "
            "hosts.yaml does not say)")
