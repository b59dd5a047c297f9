"""Reaching controllers: strict SSH connections, remote commands, rsync, relays, tunnels, fleets.

May import ``deploy.base`` and the ``deploy.remote`` scripts, nothing above.
"""
