"""The base: the inventory, the error hierarchy, progress output, the CLI boundary.

Imports nothing else of ``deploy``; every other layer may import it.
"""
