"""Invoke tasks of cinder-devloop: flags in, one call into ``deploy/`` out.

Run ``invoke --list`` for the tasks and ``invoke --help TASK`` for flags.
Imports of ``deploy`` modules happen inside the tasks so that listing the
tasks stays fast.
"""
from __future__ import annotations

from invoke import Collection, task

from deploy.base.cli import reports_errors

HOST = "controller name(s) from the inventory, repeatable or comma-separated (default: all)"
INVENTORY = "inventory file (default: $DEVLOOP_INVENTORY or hosts.yaml)"
VERBOSE = "echo every command as it runs"
TIMEOUT = "seconds to wait for the API to answer after a restart (default 60)"
LOCK_WAIT = ("seconds to wait while another run holds a controller's lock, then refuse "
             "(default 30)")
IGNORE_MANIFEST = ("send the tree even if its MANIFEST.txt does not fit the controller's Cinder "
                   "(release or replaced upstream files differ): loud, and it may break Cinder")


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "dry_run": "show the files that would change; change nothing",
    "no_restart": "sync only: do not restart the service",
    "checksum": "compare file contents, not times and sizes",
    "diff": "show the unified diff of each changed file first (with --dry-run: only that)",
    "rollback_on_failure": "if the API is not healthy afterwards, undo this deploy at once",
    "ignore_manifest": IGNORE_MANIFEST, "lock_wait": LOCK_WAIT,
    "force": "replace files even where the controller's git checkout (DevStack's) has "
             "uncommitted changes to them",
})
@reports_errors
def deploy(c, host=None, inventory=None, dry_run=False, no_restart=False, checksum=False,
           diff=False, rollback_on_failure=False, timeout=60, verbose=False,
           ignore_manifest=False, force=False, lock_wait=30):
    """Sync the source tree into each controller's cinder, restart, check the API."""
    from deploy.base.cli import seconds, selected
    from deploy.controller.lock import locked
    from deploy.transport.fleet import on_each
    from deploy.workflows.deployment import deploy_to, summary_table

    timeout, lock_wait = seconds("--timeout", timeout), seconds("--lock-wait", lock_wait)
    inv, controllers = selected(inventory, host)

    def work(ctl):
        return deploy_to(inv, ctl, dry_run=dry_run, restart=not no_restart,
                         timeout=timeout, checksum=checksum, diff=diff,
                         rollback_on_failure=rollback_on_failure,
                         ignore_manifest=ignore_manifest, force=force)

    # a dry run changes nothing: it takes no lock
    on_each(controllers, work if dry_run else locked("deploy", lock_wait, work),
            summary=summary_table)


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "smoke": "run the smoke test at the end",
    "checksum": "compare file contents, not times and sizes",
    "rollback_on_failure": "if the deploy leaves the API unhealthy, undo it at once",
    "ignore_manifest": IGNORE_MANIFEST, "lock_wait": LOCK_WAIT,
})
@reports_errors
def loop(c, host=None, inventory=None, smoke=False, checksum=False, rollback_on_failure=False,
         timeout=60, verbose=False, ignore_manifest=False, lock_wait=30):
    """Deploy; db-sync only if a migration changed or the DB is behind; restart only if needed."""
    from deploy.base.cli import seconds, selected
    from deploy.controller.lock import locked
    from deploy.transport.fleet import on_each
    from deploy.workflows.loop import loop_on

    timeout, lock_wait = seconds("--timeout", timeout), seconds("--lock-wait", lock_wait)
    inv, controllers = selected(inventory, host)
    on_each(controllers, locked("loop", lock_wait, lambda ctl: loop_on(
        inv, ctl, timeout=timeout, smoke=smoke, checksum=checksum,
        rollback_on_failure=rollback_on_failure, ignore_manifest=ignore_manifest)))


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "smoke": "run the smoke test after each loop",
    "debounce": "milliseconds of quiet that end a burst of saves (default 400)",
    "ignore_manifest": IGNORE_MANIFEST,
    "lock_wait": LOCK_WAIT + "; the lock is held only while a burst deploys",
})
@reports_errors
def watch(c, host=None, inventory=None, smoke=False, debounce=400, timeout=60, verbose=False,
          ignore_manifest=False, lock_wait=30):
    """Watch the source tree; run the loop for each burst of saves until Ctrl-C."""
    from deploy.base.cli import count, seconds, selected
    from deploy.workflows.watch import watch as watch_tree

    debounce, timeout = count("--debounce", debounce), seconds("--timeout", timeout)
    lock_wait = seconds("--lock-wait", lock_wait)
    inv, controllers = selected(inventory, host)
    watch_tree(inv, controllers, debounce_ms=debounce, timeout=timeout, smoke=smoke,
               ignore_manifest=ignore_manifest, lock_wait=lock_wait)


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "lock_wait": LOCK_WAIT,
    "to": "undo every deploy after this deploy id ('original': undo them all)",
    "no_restart": "restore files only: do not restart the service",
})
@reports_errors
def rollback(c, host=None, inventory=None, to=None, no_restart=False, timeout=60,
             verbose=False, lock_wait=30):
    """Undo the newest deploy: restore replaced files, remove added ones, restart, check."""
    from deploy.base.cli import seconds, selected
    from deploy.controller.lock import locked
    from deploy.transport.fleet import on_each
    from deploy.workflows.rollback import rollback as undo

    timeout, lock_wait = seconds("--timeout", timeout), seconds("--lock-wait", lock_wait)
    _, controllers = selected(inventory, host)
    on_each(controllers, locked("rollback", lock_wait, lambda ctl: undo(
        ctl, to=to, restart=not no_restart, timeout=timeout)))


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE,
                               "timeout": TIMEOUT, "lock_wait": LOCK_WAIT})
@reports_errors
def restart(c, host=None, inventory=None, timeout=60, verbose=False, lock_wait=30):
    """Restart the API service and wait until it answers."""
    from deploy.base.cli import seconds, selected
    from deploy.controller.restart import restart_and_check
    from deploy.transport.commands import Remote
    from deploy.transport.fleet import on_each

    def work(ctl):
        remote = Remote.open(ctl)
        try:
            return restart_and_check(remote, timeout)
        finally:
            remote.close()

    from deploy.controller.lock import locked

    timeout, lock_wait = seconds("--timeout", timeout), seconds("--lock-wait", lock_wait)
    _, controllers = selected(inventory, host)
    on_each(controllers, locked("restart", lock_wait, work))


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE})
@reports_errors
def status(c, host=None, inventory=None, verbose=False):
    """Show service state, PID, uptime, API and database revision per controller."""
    from deploy.base import output
    from deploy.base.cli import selected
    from deploy.transport.fleet import on_each
    from deploy.workflows.status import read_status

    inv, controllers = selected(inventory, host)
    for report in on_each(controllers, lambda ctl: read_status(inv, ctl)).values():
        for line in report.lines():
            output.result(line)


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE,
                               "n": "how many lines to show, as tail -n (default 50)",
                               "follow": "keep printing new lines until Ctrl-C (one controller)",
                               "journal": "read the unit's journal (journalctl -u) instead of "
                                          "the log file (systemd controllers; always on a "
                                          "DevStack controller, which has no log file)"})
@reports_errors
def logs(c, host=None, inventory=None, n=50, follow=False, journal=False, verbose=False):
    """Show the tail of the cinder-api log (or of its systemd journal)."""
    from deploy.base.cli import count, selected
    from deploy.base.errors import UsageError
    from deploy.workflows.logs import show_logs

    n = count("-n", n)
    _, controllers = selected(inventory, host)
    if follow and len(controllers) > 1:
        raise UsageError("--follow follows one controller: pass --host NAME")
    for ctl in controllers:
        show_logs(ctl, n, follow, journal)


@task(name="db-sync", iterable=["host"],
      help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "lock_wait": LOCK_WAIT})
@reports_errors
def db_sync(c, host=None, inventory=None, verbose=False, lock_wait=30):
    """Run cinder-manage db sync as the service user; show the revision before and after."""
    from deploy.base import output
    from deploy.base.cli import seconds, selected
    from deploy.controller.db import db_sync as sync
    from deploy.transport.commands import Remote
    from deploy.transport.fleet import on_each

    def work(ctl):
        remote = Remote.open(ctl)
        try:
            output.step(ctl.name, "cinder-manage db sync")
            result = sync(remote)
        finally:
            remote.close()
        change = f"{result.before} -> {result.after}" if result.changed else \
            f"{result.after} (already at the newest revision)"
        output.result(f"{ctl.name}: database {change}")
        return result

    from deploy.controller.lock import locked

    lock_wait = seconds("--lock-wait", lock_wait)
    _, controllers = selected(inventory, host)
    on_each(controllers, locked("db-sync", lock_wait, work))


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE,
    "project": "noauth only: project id to use (hex, Cinder's default project_id_regex; "
               "default 5e1f7e57)",
    "token": "X-Auth-Token to send instead of the one from Keystone (or admin:<project>)",
    "junit_xml": "also write the checks to FILE as a JUnit XML report (for CI servers)",
})
@reports_errors
def smoke(c, host=None, inventory=None, project=None, token=None, junit_xml=None,
          verbose=False):
    """Create, read, list, update, edit metadata of and delete a cluster; report each check.

    The token and the endpoint come from the controller's cloud (clouds.yaml),
    OS_CLOUD or OS_* variables, through Keystone; without any, noauth.
    """
    from deploy.base.cli import selected
    from deploy.workflows.smoke_task import smoke_controllers

    _, controllers = selected(inventory, host)
    smoke_controllers(controllers, project_id=project, token=token, junit_path=junit_xml)


@task(help={
    "host": "the controller to debug on (needed when the inventory names several)",
    "inventory": INVENTORY, "verbose": VERBOSE,
    "break_": "stop here without editing the code: FILE:LINE inside the cinder package, or "
              "a dotted function name; repeatable",
    "timeout": "seconds to wait for the API once the service is back (default 60)",
    "attach": "for the IDE: debugpy in the serving cinder-api, its port forwarded here "
              "(VS Code attaches to 127.0.0.1:PORT)",
    "port": "the local port the IDE attaches to (default 5678)",
    "launch_json": "with --attach: write the attach entry into this launch.json "
                   "(e.g. .vscode/launch.json)",
    "print_config": "print the VS Code launch.json to attach (every selected controller) "
                    "and change nothing",
    "lock_wait": LOCK_WAIT + "; the lock is held for the whole session",
}, iterable=["break_"])
@reports_errors
def debug(c, host=None, break_=None, inventory=None, timeout=60, attach=False, port=5678,
          launch_json=None, print_config=False, verbose=False, lock_wait=30):
    """Stop the service, run cinder-api under pdb here (or debugpy for the IDE), restart it."""
    from pathlib import Path

    from deploy.base.cli import port as port_number
    from deploy.base.cli import seconds, selected
    from deploy.base.errors import UsageError
    from deploy.controller.lock import locked
    from deploy.workflows.debug import debug as run_session

    port, timeout = port_number("--port", port), seconds("--timeout", timeout)
    lock_wait = seconds("--lock-wait", lock_wait)
    loaded, controllers = selected(inventory, [host] if host else None)
    if print_config:
        from deploy.workflows.attach import print_config as show

        show(loaded, controllers, port)
        return
    if len(controllers) != 1:
        raise UsageError("debug runs on one controller: pass --host NAME (one of "
                         f"{', '.join(ctl.name for ctl in controllers)})")
    options = None
    if attach:
        from deploy.workflows.attach import AttachOptions, writable_launch_json

        if break_:
            raise UsageError("--break is for pdb in this terminal; with --attach, set the "
                             "breakpoints in the IDE")

        # refused here, before any controller is touched (the session stops the service)
        options = AttachOptions(loaded, port,
                                writable_launch_json(Path(launch_json)) if launch_json else None)
    elif launch_json:
        raise UsageError("--launch-json goes with --attach")
    from deploy.transport.fleet import on_each

    on_each(controllers, locked("debug", lock_wait,
                                lambda ctl: run_session(ctl, break_ or [], timeout,
                                                        attach=options)))


@task(name="fast-restart", iterable=["host"], help={
    "mode": "on: serve cinder-api from a warm parent, so a deploy of cinder/ restarts it "
            "fast; off: put the service definition back as it was",
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "lock_wait": LOCK_WAIT,
})
@reports_errors
def fast_restart(c, mode, host=None, inventory=None, timeout=60, verbose=False, lock_wait=30):
    """Turn fast restart (cinder-api forked from a warm parent) on or off."""
    from deploy.base.cli import seconds, selected
    from deploy.base.errors import UsageError
    from deploy.controller.fastrestart import switch
    from deploy.controller.lock import locked
    from deploy.transport.fleet import on_each

    if mode not in ("on", "off"):
        raise UsageError(f"fast-restart takes on or off, not {mode!r}")
    timeout, lock_wait = seconds("--timeout", timeout), seconds("--lock-wait", lock_wait)
    _, controllers = selected(inventory, host)
    on_each(controllers, locked("fast-restart", lock_wait,
                                lambda ctl: switch(ctl, mode == "on", timeout)))


# --- the sandbox controller ----------------------------------------------------

SANDBOX_HELP = {
    "kind": "supervisord (default: quick, noauth), rdo (systemd container, Keystone) or "
            "legacy (systemd container, Python 2.7, Cinder Train, noauth) or devstack (systemd "
            "container laid out as DevStack: checkout, uWSGI, MariaDB, Keystone)",
    "root": "sandbox directory (default /opt/cinder-devloop/sandbox, .../rdo, .../legacy or "
            ".../devstack)",
    "ssh_port": "sshd port on 127.0.0.1 (supervisord kind; default 22022)",
    "api_port": "cinder-api port on 127.0.0.1 (supervisord kind; default 18776)",
    "verbose": VERBOSE,
}


def _sandbox(kind, root, ssh_port, api_port):
    """The module of ``kind`` and its layout."""
    from pathlib import Path

    from deploy.base.cli import port
    from deploy.base.errors import UsageError
    from deploy.sandbox import KINDS

    ssh_port, api_port = port("--ssh-port", ssh_port), port("--api-port", api_port)
    if kind not in KINDS:
        raise UsageError(f"--kind: unknown sandbox kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == "rdo":
        from deploy.sandbox import rdo

        return rdo, rdo.RdoLayout(Path(root) if root else rdo.DEFAULT_ROOT)
    if kind == "legacy":
        from deploy.sandbox import legacy

        return legacy, legacy.LegacyLayout(Path(root) if root else legacy.DEFAULT_ROOT)
    if kind == "devstack":
        from deploy.sandbox import devstack

        return devstack, devstack.DevstackLayout(Path(root) if root else devstack.DEFAULT_ROOT)
    from deploy.sandbox import DEFAULT_ROOT, SandboxLayout, supervisord

    return supervisord, SandboxLayout(Path(root) if root else DEFAULT_ROOT, int(ssh_port),
                                      int(api_port))


@task(name="up", help={**SANDBOX_HELP, "fast_restart": "serve cinder-api from a warm parent "
                        "(default; --no-fast-restart leaves the service's command as it is)"})
@reports_errors
def sandbox_up(c, kind="supervisord", root=None, ssh_port=22022, api_port=18776,
               fast_restart=True, verbose=False):
    """Build and start a local sandbox controller, fast restart on (idempotent)."""
    from deploy.workflows import sandbox_up as workflow

    module, layout = _sandbox(kind, root, ssh_port, api_port)
    workflow.up(module, layout, fast_restart)


@task(name="down", help={**SANDBOX_HELP, "purge": "also delete the sandbox directory"})
@reports_errors
def sandbox_down(c, kind="supervisord", root=None, ssh_port=22022, api_port=18776, purge=False,
                 verbose=False):
    """Stop a sandbox controller (by PID) and remove what it held."""
    module, layout = _sandbox(kind, root, ssh_port, api_port)
    module.down(layout, purge=purge)


@task(name="status", help=SANDBOX_HELP)
@reports_errors
def sandbox_status(c, kind="supervisord", root=None, ssh_port=22022, api_port=18776,
                   verbose=False):
    """Show whether a sandbox controller's parts are running."""
    from deploy.base import output

    module, layout = _sandbox(kind, root, ssh_port, api_port)
    for line in module.status_lines(layout):
        output.result(line)


ns = Collection(deploy, loop, watch, rollback, restart, status, logs, db_sync, smoke, debug,
                fast_restart)
ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down, sandbox_status))
