"""What each task does (deploy, loop, watch, rollback, debug, status, logs, smoke),
built from the layers below.

May import every layer below; ``tasks.py`` calls into it. Nothing in ``deploy``
imports it.
"""
