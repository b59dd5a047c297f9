"""Restart the API after a change and check it serves: the one way every task restarts.

A controller in fast-restart mode forks a fresh cinder-api from its warm
parent instead of a full restart, unless a migration rules that out
(:mod:`deploy.controller.fastrestart`); either way the restart counts only
once the API answers and, after a deploy, serves what was sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploy.base import output
from deploy.controller.facts import cinder_python
from deploy.controller.health import ApiState, check_serving, log_mark, wait_for_api
from deploy.controller.services import ServiceStatus, manager_for
from deploy.transport.commands import Remote


@dataclass(frozen=True)
class Served:
    """What a restart after a deploy must find served: the files sent, from which tree."""

    sent: Sequence[str]               # relative to the cinder package
    source: Path                      # the local tree they came from
    log_since: int | None = None      # the API log's size before the deploy, if known
    fast_mode: bool | None = None     # fast restart on? (None: ask the controller)


def restart_and_check(remote: Remote, timeout: float, served: Served | None = None, *,
                      migrated: bool = False) -> tuple[ServiceStatus, ApiState]:
    """Restart the service, wait until the API answers, return the new state.

    After a deploy (``served``), a controller in fast-restart mode forks a
    fresh cinder-api from its warm parent unless the deploy changed a
    migration or ``migrated`` the database (see :mod:`deploy.controller.fastrestart`).

    With ``served`` (what a deploy just sent), healthy also means serving
    it: no failure of sent code in the log written since the restart, and
    every sent extension listed by the API (:func:`check_serving`).

    Raises:
        ServiceError: the service manager refused.
        HealthCheckError: no answer before the deadline (log tail shown), or
            the sent code is not served (reason and log lines shown).
    """
    cinder_python(remote)   # the probe runs with Cinder's python: found now if not yet
    manager = manager_for(remote.controller)
    mark = None
    if served is not None and served.sent:
        mark = served.log_since if served.log_since is not None else log_mark(remote)
        from deploy.openstack.auth import prefetch
        prefetch(remote.controller)      # the token for check_serving, while it restarts
    output.step(remote.name, f"restart {remote.controller.service}")
    fast = None
    if served is None or served.fast_mode is False:
        manager.restart(remote)
    else:
        from deploy.controller import fastrestart
        fast = fastrestart.restart(remote, manager,
                                   fastrestart.full_restart_reason(served.sent, migrated),
                                   timeout, mark)
    api = fast.api if fast and fast.api.answering else wait_for_api(
        remote, 1.0 if fast else timeout, mark)
    confirmed = (check_serving(remote, api, served.source, served.sent)
                 if served is not None and served.sent else 0)
    status = fast.status if fast else manager.status(remote)
    listed = f"; {confirmed} extension(s) sent are listed" if confirmed else ""
    output.detail(f"{status.describe()}; API {api.detail}{listed}")
    return status, api
