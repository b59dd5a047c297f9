"""Pieces of code more than one controller script needs, written once.

A script names one with a line ``# devloop-include: <part>``; ``script()``
writes the part in its place, so each call still sends one standalone
script. Parts are plain stdlib functions (and the stdlib imports they need) for
Python 2.7 and 3.6+, with no ``__future__`` import and nothing else that
runs on import.
"""
