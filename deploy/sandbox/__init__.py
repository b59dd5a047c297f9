"""Sandbox controllers: real controllers built and run on this machine.

One module per kind, and what they share in one place:

* ``supervisord`` (the default, quick): sshd + supervisord + cinder-api in
  a venv under one directory; ``auth_strategy = noauth``;
* ``rdo``: a Debian tree booted with ``systemd-nspawn`` in its own network
  namespace, laid out as RDO ships Cinder (system site-packages, the
  ``openstack-cinder-api`` unit, journald) with Keystone in front;
* ``legacy``: the same machinery with Python 2.7 as ``/usr/bin/python2`` and
  Cinder Train (15.6.0, sqlalchemy-migrate) in its site-packages, noauth;
* ``devstack``: the same machinery laid out as DevStack (a git checkout
  installed ``-e`` into a venv, uWSGI as ``devstack@c-api``, MariaDB, Keystone);
* ``nspawn``: the container machinery any systemd kind builds on (tree
  build + cache, overlay per boot, cgroup, namespace, teardown by PID);
* ``common``: keys, known_hosts, waiting, ending processes by PID.

Beside ``deploy.workflows`` at the top: may import ``deploy.transport`` and
``deploy.base``; no task imports a sandbox (only ``tasks.py`` and the tests do).
"""
from __future__ import annotations

from deploy.sandbox.common import SERVICE_USER, end_process
from deploy.sandbox.supervisord import (  # noqa: F401
    DEFAULT_ROOT,
    PROGRAM,
    REQUIREMENTS,
    SandboxLayout,
    _requirements_digest,
    clone_venv,
    down,
    status_lines,
    up,
)

#: the kinds ``invoke sandbox.up --kind`` knows; the first is the default
KINDS = ("supervisord", "rdo", "legacy", "devstack")

__all__ = ["DEFAULT_ROOT", "KINDS", "PROGRAM", "REQUIREMENTS", "SERVICE_USER", "SandboxLayout",
           "clone_venv", "down", "end_process", "status_lines", "up"]
