"""Run one piece of work on each selected controller, in parallel.

A failure on one controller does not stop the others; afterwards the
failures are raised together as ``ControllersFailed`` naming each one.
Each piece of work gets its controller with the layout settled
(:mod:`deploy.transport.layout`), asked in that controller's own thread.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

from deploy.base.errors import ControllersFailed, DevloopError
from deploy.base.inventory import Controller
from deploy.transport.layout import laid_out

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """How the work went on one controller."""

    name: str
    result: T | None
    error: DevloopError | None
    seconds: float


def _timed(work: Callable[[Controller], T], controller: Controller) -> Outcome[T]:
    started = time.monotonic()
    try:
        return Outcome(controller.name, work(laid_out(controller)), None,
                       time.monotonic() - started)
    except DevloopError as exc:
        return Outcome(controller.name, None, exc, time.monotonic() - started)


def on_each(controllers: Sequence[Controller], work: Callable[[Controller], T],
            summary: Callable[[list[Outcome[T]]], None] | None = None) -> dict[str, T]:
    """Call ``work(controller)`` for every controller; return results by name.

    With several controllers they run in parallel threads and ``summary`` (if
    given) is called with every outcome before failures are raised.

    Raises:
        DevloopError: the single controller's own error, when only one ran.
        ControllersFailed: several ran and at least one failed.
    """
    if len(controllers) == 1:
        return {controllers[0].name: work(laid_out(controllers[0]))}
    with ThreadPoolExecutor(max_workers=min(len(controllers), 16)) as pool:
        outcomes = list(pool.map(lambda c: _timed(work, c), controllers))
    if summary is not None:
        summary(outcomes)
    failures = {o.name: o.error for o in outcomes if o.error is not None}
    if failures:
        raise ControllersFailed(failures)
    return {o.name: o.result for o in outcomes if o.result is not None}
