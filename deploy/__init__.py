"""cinder-devloop: deploy a Cinder overlay tree to controllers and run it.

The package is in layers, each importing only the ones below it (the
import-linter contracts in pyproject.toml hold it so):

    workflows/  sandbox/     what a task does / the built-in controllers
    controller/              facts, services and steps on one controller
    openstack/               Keystone, the API through the connection, smoke
    transport/               SSH, commands, rsync, tunnels, several hosts
    base/                    inventory, errors, output, the CLI boundary
    remote/                  stdlib scripts run by the controller's python
"""
