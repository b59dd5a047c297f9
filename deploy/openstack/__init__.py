"""OpenStack access: clouds.yaml and Keystone tokens, API requests through the
connection, smoke checks.

May import ``deploy.transport`` and ``deploy.base``, nothing above.
"""
