"""Small Python programs that run on the controller with its own python.

Each is a standalone script (stdlib, plus what Cinder itself installs) sent as
``python3 -c <source> <args...>``: one SSH round trip does a whole job, and
nothing has to be installed on the controller.

The bottom layer: these scripts import nothing of ``deploy`` and no
workstation library (a contract in pyproject.toml); every layer may send them.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
_INCLUDE = re.compile(r"^# devloop-include: (\w+)$", re.M)


@lru_cache(maxsize=None)
def script(name: str) -> str:
    """The source of ``deploy/remote/<name>.py``, with its parts written in.

    Each ``# devloop-include: <part>`` line becomes ``parts/<part>.py``: a
    piece two scripts need is written once, and a call still sends one script.
    """
    text = (HERE / f"{name}.py").read_text()
    return _INCLUDE.sub(lambda found: (HERE / "parts" / f"{found.group(1)}.py").read_text()
                        .rstrip("\n"), text)
