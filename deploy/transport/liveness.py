"""Notice a controller that went away while a task waits on it, within a bound.

A connection whose packets are dropped (a cable pulled, a firewall, a
frozen host) never fails by itself: paramiko would wait on a command's
output for ever, and TCP's own retries take a quarter of an hour. So each
task's connection is watched: every few seconds the watcher opens an SSH
channel and closes it again, which needs an answer from sshd; when none
comes within the host's ``connect_timeout``, the connection is closed.
Whatever waited on it then ends at once, and :func:`lost` says why, so the
caller reports the loss (:class:`~deploy.base.errors.ConnectError`) instead of
a command's exit code. A connection reset or closed by the controller
ends the same waits without the watcher; :func:`lost` says so too.

The watcher is a daemon thread that ends with its connection.
"""
from __future__ import annotations

import threading
import time
import weakref

import paramiko

#: Why a transport was given up (one entry per transport the watcher closed).
_given_up: "weakref.WeakKeyDictionary[paramiko.Transport, str]" = weakref.WeakKeyDictionary()


def interval_for(allowance: float) -> float:
    """How often to ask: often enough that a loss is seen within ~1.5 x ``allowance``."""
    return max(0.5, min(5.0, allowance / 2))


def watch(transport: paramiko.Transport, allowance: float) -> threading.Thread:
    """Start watching ``transport``: closed if sshd leaves a channel open unanswered
    for ``allowance`` seconds."""
    thread = threading.Thread(target=_watch, args=(transport, allowance),
                              name="devloop-liveness", daemon=True)
    thread.start()
    return thread


def _watch(transport: paramiko.Transport, allowance: float) -> None:
    interval = interval_for(allowance)
    while transport.is_active():
        time.sleep(interval)
        if not transport.is_active():
            return
        try:
            transport.open_session(timeout=allowance).close()
        except Exception as exc:
            # only silence is ours to act on: a refusal (MaxSessions) is an answer, and
            # a transport that failed otherwise is closed by paramiko itself
            if not transport.is_active() or unanswered(transport, exc):
                return


def unanswered(transport: paramiko.Transport | None, error: BaseException) -> bool:
    """Give ``transport`` up if ``error`` says sshd left a channel open unanswered.

    (A wait the watcher would have ended a little later: the controller is gone.)
    """
    if transport is None or not isinstance(error, paramiko.SSHException) \
            or "Timeout opening channel" not in str(error):
        return False
    give_up(transport, error, transport.channel_timeout or 0)
    return True


def give_up(transport: paramiko.Transport, error: BaseException, allowance: float) -> None:
    """Close ``transport`` for ``error`` (which a wait on it raised); :func:`lost` says why."""
    reason = str(error) or type(error).__name__
    if "Timeout" in reason:
        reason = f"no answer within {allowance:g} s"
    _given_up[transport] = reason
    transport.close()


def lost(transport: paramiko.Transport | None) -> str | None:
    """Why ``transport`` is no longer usable (None: it still is, or never was opened)."""
    if transport is None:
        return None
    if transport in _given_up:
        return _given_up[transport]
    if transport.is_active():
        return None
    error = transport.get_exception()
    if error is not None:
        return str(error) or type(error).__name__
    return "the connection was closed"
