"""cinder-devloop: deploy a Cinder overlay tree to controllers and run it.

The package is split by responsibility: ``inventory`` reads hosts.yaml,
``connection`` opens strict SSH connections, ``commands`` runs things,
``sync`` builds and runs rsync, ``services`` drives systemd or supervisord,
``db`` wraps cinder-manage, ``health`` waits for the API, and the workflow
modules (``deployment``, ``status``, ``logs``) combine them for ``tasks.py``.
"""
