"""One interface over the controller's service manager.

A manager only formats commands (``systemctl restart X``,
``supervisorctl -c CONF restart X``) and reads their answers; running them
is ``Remote.run``'s job. ``manager_for`` picks the implementation named by
the inventory's ``service_manager``.
"""
from __future__ import annotations

from deploy.base.inventory import Controller
from deploy.controller.services.interface import ServiceManager, ServiceStatus


def manager_for(controller: Controller) -> ServiceManager:
    """Return the service manager the inventory names for ``controller``."""
    if controller.service_manager == "supervisord":
        from deploy.controller.services.supervisord import Supervisord
        return Supervisord(controller.supervisor_config or "", controller.service)
    from deploy.controller.services.systemd import Systemd
    return Systemd(controller.service, uwsgi=controller.layout == "devstack")


__all__ = ["ServiceManager", "ServiceStatus", "manager_for"]
