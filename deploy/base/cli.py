"""What ``tasks.py`` needs to stay thin: the inventory path and error reporting.

``reports_errors`` wraps each task body: a ``DevloopError`` becomes
``invoke.Exit`` with ``error: ...`` lines and the error's exit code, Ctrl-C
becomes exit 130, and anything else is a bug that keeps its traceback.
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from invoke.exceptions import Exit

from deploy.base import output
from deploy.base.errors import DevloopError, UsageError
from deploy.base.inventory import Controller, Inventory, load_inventory

F = TypeVar("F", bound=Callable[..., Any])
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def inventory_path(flag: str | None) -> Path:
    """``--inventory``, else ``$DEVLOOP_INVENTORY``, else the project's hosts.yaml."""
    value = flag or os.environ.get("DEVLOOP_INVENTORY")
    if value:
        return Path(value)
    local = Path("hosts.yaml")
    return local if local.exists() else PROJECT_ROOT / "hosts.yaml"


def selected(inventory_flag: str | None, hosts: list[str] | None
             ) -> tuple[Inventory, list[Controller]]:
    """Load the inventory and pick the controllers named by ``--host``."""
    inventory = load_inventory(inventory_path(inventory_flag))
    return inventory, inventory.select(hosts)


def seconds(flag: str, value: object) -> float:
    """A flag's number of seconds: a finite number, not negative.

    Raises:
        UsageError: it is not.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"{flag} {value}: expected a number of seconds, 0 or more")
    return number


def count(flag: str, value: object) -> int:
    """A flag's whole number, 0 or more.

    Raises:
        UsageError: it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{flag} {value}: expected a whole number, 0 or more")
    return value


def port(flag: str, value: object) -> int:
    """A flag's TCP port: 1 to 65535.

    Raises:
        UsageError: it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise UsageError(f"{flag} {value}: expected a port number from 1 to 65535")
    return value


def reports_errors(body: F) -> F:
    """Turn user-fixable errors into one ``error:`` line each and an exit code."""
    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        output.set_verbose(bool(kwargs.get("verbose")))
        try:
            return body(*args, **kwargs)
        except DevloopError as exc:
            raise Exit(output.redacted("\n".join(f"error: {line}" for line in exc.lines())),
                       code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("Aborted!", code=130) from None
    return wrapper  # type: ignore[return-value]
