"""``invoke watch``: run the loop for every burst of saves in the source tree.

watchfiles (Rust-backed inotify) gathers the events of a burst of saves,
waiting until the tree has been quiet for the debounce interval, and yields
them together; each burst runs the loop once on connections that stay open
between runs. A failed run is reported and watching goes on; Ctrl-C stops.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

from deploy.base import output
from deploy.base.errors import DevloopError, UsageError
from deploy.base.inventory import Controller, Inventory
from deploy.controller.facts import Target
from deploy.controller.lock import DEFAULT_WAIT, controller_lock
from deploy.transport.commands import Remote
from deploy.transport.layout import laid_out
from deploy.transport.tree import Rules, shown
from deploy.workflows.deployment import fitting, locate_for
from deploy.workflows.loop import run_loop


def changed_paths(changes: Iterable[tuple[object, str]], source: Path | Iterable[Path],
                  excludes: Sequence[str]) -> list[str]:
    """The changed files relative to the source (or to the layer they are in), without
    those a deploy leaves out.

    The tree's rules decide, as for a deploy (:mod:`deploy.transport.tree`,
    git asked once per burst): a save the way vim makes it (its swap file,
    its probe ``4913``, the backup it renames the old file to) names only
    the file saved. A new directory stands for the files in it: inotify can
    only watch a new directory once it is reported, so files created in it
    right away may have no event of their own.
    """
    roots = [root.resolve() for root in ([source] if isinstance(source, Path) else source)]
    rules = {root: Rules.of(root, excludes) for root in roots}
    paths = set()
    for _, path in changes:
        full = Path(path).absolute()
        files = [p for p in full.rglob("*") if p.is_file()] if full.is_dir() else [full]
        for file in files:
            root = max((root for root in roots if file.is_relative_to(root)),
                       key=lambda root: len(root.parts), default=None)
            rel = file.relative_to(root).as_posix() if root else file.name
            if rules[root or roots[0]].left_out(rel) is None:
                paths.add(rel)
    return sorted(paths)


def _describe(paths: list[str]) -> str:
    named = ", ".join(shown(path) for path in paths[:3])
    return named + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def watch(inventory: Inventory, controllers: list[Controller], *, debounce_ms: int = 400,
          timeout: float = 60.0, smoke: bool = False, ignore_manifest: bool = False,
          lock_wait: float = DEFAULT_WAIT) -> None:
    """Watch the source tree and run the loop on each burst, until Ctrl-C.

    A run whose deploy leaves the API unhealthy is rolled back at once and
    reported as failed. The database is checked (behind the newest migration
    on disk?) on each controller's first run and after a failed one. With a
    MANIFEST.txt, each controller's tree (the source or a variant of it) is
    chosen and checked at start, and every chosen tree is watched (both
    layers of a common tree with a release tree laid over it). Each
    controller's lock is held only while a burst runs the loop there
    (waiting up to ``lock_wait`` for another run's); an idle watch holds none.

    Raises:
        UsageError: the source is on a devbox (watching needs a local tree).
        ConnectError: a controller cannot be reached at start.
        ManifestRefused: the source does not fit a controller's Cinder.
    """
    import watchfiles

    if inventory.source_host is not None:
        raise UsageError("watch needs the source tree on this machine; it is on "
                         f"{inventory.source_host.name}")
    controllers = [laid_out(controller) for controller in controllers]
    remotes: dict[str, Remote] = {}
    targets: dict[str, Target] = {}
    trees: set[Path] = {inventory.source}
    # The database is checked on a controller's first run; later runs db-sync
    # only for a migration they send (the files on disk change no other way).
    database_checked: set[str] = set()
    # After a controller's first successful run, only the files the watcher
    # saw are looked at (the rest are as the last deploy left them); after a
    # failed run the whole tree is compared again.
    in_step: set[str] = set()
    offered: set[str] = set()         # told once how to turn fast restart on
    deploying = False
    try:
        for controller in controllers:
            remote = remotes[controller.name] = Remote.open(controller)
            targets[controller.name] = locate_for(remote, inventory)
            chosen = fitting(remote, inventory, targets[controller.name],
                             ignore_manifest=ignore_manifest)
            # a layered tree: a save in any of its layers deploys (the
            # composed copy is written by the deploy itself, never watched)
            trees.update(chosen.layers or (chosen.source,))
        ready = False
        # raise_interrupt=False: Ctrl-C while waiting ends the generator quietly.
        # yield_on_timeout: the first (empty) yield proves inotify is set up, so
        # "watching" is only announced once a save can no longer be missed.
        for changes in watchfiles.watch(*sorted(trees), debounce=debounce_ms, step=50,
                                        rust_timeout=500, yield_on_timeout=True,
                                        raise_interrupt=False):
            if not ready:
                ready = True
                output.step("watch", f"watching {', '.join(map(str, sorted(trees)))} "
                                     f"(Ctrl-C stops)")
            paths = changed_paths(changes, sorted(trees), inventory.excludes)
            if not paths:
                continue
            deploying = True
            burst = list(remotes.items())
            for index, (name, remote) in enumerate(burst):
                stamp = time.strftime("%H:%M:%S")
                # once the burst's last deploy has ended, a Ctrl-C (even one sent on
                # reading its result line) is a stop, not an interruption
                last = index == len(burst) - 1
                try:
                    # a save that breaks the service is rolled back: the
                    # controller keeps serving the previous code
                    with controller_lock(remote, "watch", lock_wait):
                        report = run_loop(inventory, remote, target=targets[name],
                                          timeout=timeout, smoke=smoke, rollback_on_failure=True,
                                          ignore_manifest=ignore_manifest,
                                          check_database=name not in database_checked,
                                          seen=paths if name in in_step else None,
                                          offer_fast_restart=name not in offered)
                    deploying = not last
                    offered.add(name)
                    database_checked.add(name)
                    in_step.add(name)
                    output.result(f"[{stamp}] {name}: {_describe(paths)} -> OK: "
                                  f"{report.one_line()}")
                except DevloopError as exc:
                    deploying = not last
                    database_checked.discard(name)
                    in_step.discard(name)
                    text = "\n".join(exc.lines()).splitlines() or [type(exc).__name__]
                    output.result(f"[{stamp}] {name}: {_describe(paths)} -> FAILED: {text[0]}")
                    if text[1:]:           # e.g. the files that do not compile, the log lines
                        output.detail("\n".join(text[1:]))
                    remotes[name] = _reconnect(remote)
    except KeyboardInterrupt:
        # watchfiles ends quietly on a Ctrl-C during its wait; one that lands
        # between two of its polls (it yields every 500 ms) is the same stop.
        # Only a Ctrl-C during a deploy is an interruption (exit 130).
        if deploying:
            raise
    finally:
        for remote in remotes.values():
            remote.close()
        output.step("watch", "stopped")


def _reconnect(remote: Remote) -> Remote:
    """A fresh connection if the old one died (the next run needs one)."""
    transport = remote.conn.client.get_transport()
    if transport is not None and transport.is_active():
        return remote
    remote.close()
    try:
        return Remote.open(remote.controller)
    except DevloopError as exc:
        output.warn(str(exc))
        return remote
