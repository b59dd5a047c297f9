"""One controller: what is there (facts, records, database), its service, health,
and the steps that change it.

May import ``deploy.openstack``, ``deploy.transport``, ``deploy.base`` and
``deploy.remote``; never a workflow.
"""
