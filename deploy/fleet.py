"""Run one piece of work on each selected controller, in parallel.

A failure on one controller does not stop the others; afterwards the
failures are raised together as ``ControllersFailed`` naming each one.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from deploy.errors import ControllersFailed, DevloopError
from deploy.inventory import Controller

T = TypeVar("T")


def on_each(controllers: Sequence[Controller], work: Callable[[Controller], T]) -> dict[str, T]:
    """Call ``work(controller)`` for every controller; return results by name.

    Raises:
        DevloopError: the single controller's own error, when only one ran.
        ControllersFailed: several ran and at least one failed.
    """
    if len(controllers) == 1:
        return {controllers[0].name: work(controllers[0])}
    results: dict[str, T] = {}
    failures: dict[str, DevloopError] = {}
    with ThreadPoolExecutor(max_workers=min(len(controllers), 16)) as pool:
        futures = {c.name: pool.submit(work, c) for c in controllers}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except DevloopError as exc:
                failures[name] = exc
    if failures:
        raise ControllersFailed(failures)
    return results
