"""Invoke tasks of cinder-devloop: flags in, one call into ``deploy/`` out.

Run ``invoke --list`` for the tasks and ``invoke --help TASK`` for flags.
Imports of ``deploy`` modules happen inside the tasks so that listing the
tasks stays fast.
"""
from __future__ import annotations

from invoke import Collection, task

from deploy.cli import reports_errors

HOST = "controller name(s) from the inventory, repeatable or comma-separated (default: all)"
INVENTORY = "inventory file (default: $DEVLOOP_INVENTORY or hosts.yaml)"
VERBOSE = "echo every command as it runs"
TIMEOUT = "seconds to wait for the API to answer after a restart (default 60)"
IGNORE_MANIFEST = ("send the tree even if its MANIFEST.txt does not fit the controller's Cinder "
                   "(release or replaced upstream files differ): loud, and it may break Cinder")


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "dry_run": "show the files that would change; change nothing",
    "no_restart": "sync only: do not restart the service",
    "checksum": "compare file contents, not times and sizes",
    "diff": "show the unified diff of each changed file first (with --dry-run: only that)",
    "rollback_on_failure": "if the API is not healthy afterwards, undo this deploy at once",
    "ignore_manifest": IGNORE_MANIFEST,
})
@reports_errors
def deploy(c, host=None, inventory=None, dry_run=False, no_restart=False, checksum=False,
           diff=False, rollback_on_failure=False, timeout=60, verbose=False,
           ignore_manifest=False):
    """Sync the source tree into each controller's cinder, restart, check the API."""
    from deploy.cli import selected
    from deploy.deployment import deploy_to, summary_table
    from deploy.fleet import on_each

    inv, controllers = selected(inventory, host)
    on_each(controllers, lambda ctl: deploy_to(
        inv, ctl, dry_run=dry_run, restart=not no_restart, timeout=float(timeout),
        checksum=checksum, diff=diff, rollback_on_failure=rollback_on_failure,
        ignore_manifest=ignore_manifest),
        summary=summary_table)


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "smoke": "run the smoke test at the end",
    "checksum": "compare file contents, not times and sizes",
    "rollback_on_failure": "if the deploy leaves the API unhealthy, undo it at once",
    "ignore_manifest": IGNORE_MANIFEST,
})
@reports_errors
def loop(c, host=None, inventory=None, smoke=False, checksum=False, rollback_on_failure=False,
         timeout=60, verbose=False, ignore_manifest=False):
    """Deploy; db-sync only if a migration changed or the DB is behind; restart only if needed."""
    from deploy.cli import selected
    from deploy.fleet import on_each
    from deploy.loop import loop_on

    inv, controllers = selected(inventory, host)
    on_each(controllers, lambda ctl: loop_on(inv, ctl, timeout=float(timeout), smoke=smoke,
                                             checksum=checksum,
                                             rollback_on_failure=rollback_on_failure,
                                             ignore_manifest=ignore_manifest))


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "smoke": "run the smoke test after each loop",
    "debounce": "milliseconds of quiet that end a burst of saves (default 400)",
    "ignore_manifest": IGNORE_MANIFEST,
})
@reports_errors
def watch(c, host=None, inventory=None, smoke=False, debounce=400, timeout=60, verbose=False,
          ignore_manifest=False):
    """Watch the source tree; run the loop for each burst of saves until Ctrl-C."""
    from deploy.cli import selected
    from deploy.watch import watch as watch_tree

    inv, controllers = selected(inventory, host)
    watch_tree(inv, controllers, debounce_ms=int(debounce), timeout=float(timeout), smoke=smoke,
               ignore_manifest=ignore_manifest)


@task(iterable=["host"], help={
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
    "to": "undo every deploy after this deploy id ('original': undo them all)",
    "no_restart": "restore files only: do not restart the service",
})
@reports_errors
def rollback(c, host=None, inventory=None, to=None, no_restart=False, timeout=60,
             verbose=False):
    """Undo the newest deploy: restore replaced files, remove added ones, restart, check."""
    from deploy.cli import selected
    from deploy.fleet import on_each
    from deploy.rollback import rollback as undo

    _, controllers = selected(inventory, host)
    on_each(controllers, lambda ctl: undo(ctl, to=to, restart=not no_restart,
                                          timeout=float(timeout)))


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE,
                               "timeout": TIMEOUT})
@reports_errors
def restart(c, host=None, inventory=None, timeout=60, verbose=False):
    """Restart the API service and wait until it answers."""
    from deploy.cli import selected
    from deploy.commands import Remote
    from deploy.deployment import restart_and_check
    from deploy.fleet import on_each

    def work(ctl):
        remote = Remote.open(ctl)
        try:
            return restart_and_check(remote, float(timeout))
        finally:
            remote.close()

    _, controllers = selected(inventory, host)
    on_each(controllers, work)


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE})
@reports_errors
def status(c, host=None, inventory=None, verbose=False):
    """Show service state, PID, uptime, API and database revision per controller."""
    from deploy import output
    from deploy.cli import selected
    from deploy.fleet import on_each
    from deploy.status import read_status

    inv, controllers = selected(inventory, host)
    for report in on_each(controllers, lambda ctl: read_status(inv, ctl)).values():
        for line in report.lines():
            output.result(line)


@task(iterable=["host"], help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE,
                               "n": "how many lines to show, as tail -n (default 50)",
                               "follow": "keep printing new lines until Ctrl-C (one controller)",
                               "journal": "read the unit's journal (journalctl -u) instead of "
                                          "the log file (systemd controllers)"})
@reports_errors
def logs(c, host=None, inventory=None, n=50, follow=False, journal=False, verbose=False):
    """Show the tail of the cinder-api log (or of its systemd journal)."""
    from deploy.cli import selected
    from deploy.errors import UsageError
    from deploy.logs import show_logs

    _, controllers = selected(inventory, host)
    if follow and len(controllers) > 1:
        raise UsageError("--follow follows one controller: pass --host NAME")
    for ctl in controllers:
        show_logs(ctl, int(n), follow, journal)


@task(name="db-sync", iterable=["host"],
      help={"host": HOST, "inventory": INVENTORY, "verbose": VERBOSE})
@reports_errors
def db_sync(c, host=None, inventory=None, verbose=False):
    """Run cinder-manage db sync as the service user; show the revision before and after."""
    from deploy import output
    from deploy.cli import selected
    from deploy.commands import Remote
    from deploy.db import db_sync as sync
    from deploy.fleet import on_each

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

    _, controllers = selected(inventory, host)
    on_each(controllers, work)


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
    from deploy.cli import selected
    from deploy.smoke_task import smoke_controllers

    _, controllers = selected(inventory, host)
    smoke_controllers(controllers, project_id=project, token=token, junit_path=junit_xml)


@task(help={
    "host": "the controller to debug on (needed when the inventory names several)",
    "inventory": INVENTORY, "verbose": VERBOSE,
    "break_": "stop here without editing the code: FILE:LINE inside the cinder package, or "
              "a dotted function name; repeatable",
    "timeout": "seconds to wait for the API once the service is back (default 60)",
}, iterable=["break_"])
@reports_errors
def debug(c, host=None, break_=None, inventory=None, timeout=60, verbose=False):
    """Stop the service, run cinder-api in this terminal under pdb, then start it again."""
    from deploy.cli import selected
    from deploy.debug import debug as run_session
    from deploy.errors import UsageError

    _, controllers = selected(inventory, [host] if host else None)
    if len(controllers) != 1:
        raise UsageError("debug runs on one controller: pass --host NAME (one of "
                         f"{', '.join(ctl.name for ctl in controllers)})")
    run_session(controllers[0], break_ or [], float(timeout))


@task(name="fast-restart", iterable=["host"], help={
    "mode": "on: serve cinder-api from a warm parent, so a deploy of cinder/ restarts it "
            "fast; off: put the service definition back as it was",
    "host": HOST, "inventory": INVENTORY, "verbose": VERBOSE, "timeout": TIMEOUT,
})
@reports_errors
def fast_restart(c, mode, host=None, inventory=None, timeout=60, verbose=False):
    """Turn fast restart (cinder-api forked from a warm parent) on or off."""
    from deploy.cli import selected
    from deploy.errors import UsageError
    from deploy.fastrestart import switch
    from deploy.fleet import on_each

    if mode not in ("on", "off"):
        raise UsageError(f"fast-restart takes on or off, not {mode!r}")
    _, controllers = selected(inventory, host)
    on_each(controllers, lambda ctl: switch(ctl, mode == "on", float(timeout)))


# --- the sandbox controller ----------------------------------------------------

SANDBOX_HELP = {
    "kind": "supervisord (default: quick, noauth), rdo (systemd container, Keystone) or "
            "legacy (systemd container, Python 2.7, Cinder Train, noauth)",
    "root": "sandbox directory (default /opt/cinder-devloop/sandbox, .../rdo or .../legacy)",
    "ssh_port": "sshd port on 127.0.0.1 (supervisord kind; default 22022)",
    "api_port": "cinder-api port on 127.0.0.1 (supervisord kind; default 18776)",
    "verbose": VERBOSE,
}


def _sandbox(kind, root, ssh_port, api_port):
    """The module of ``kind`` and its layout."""
    from pathlib import Path

    from deploy.errors import UsageError
    from deploy.sandbox import KINDS

    if kind not in KINDS:
        raise UsageError(f"--kind: unknown sandbox kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == "rdo":
        from deploy.sandbox import rdo

        return rdo, rdo.RdoLayout(Path(root) if root else rdo.DEFAULT_ROOT)
    if kind == "legacy":
        from deploy.sandbox import legacy

        return legacy, legacy.LegacyLayout(Path(root) if root else legacy.DEFAULT_ROOT)
    from deploy.sandbox import DEFAULT_ROOT, SandboxLayout, supervisord

    return supervisord, SandboxLayout(Path(root) if root else DEFAULT_ROOT, int(ssh_port),
                                      int(api_port))


@task(name="up", help=SANDBOX_HELP)
@reports_errors
def sandbox_up(c, kind="supervisord", root=None, ssh_port=22022, api_port=18776, verbose=False):
    """Build and start a local sandbox controller (idempotent; later runs are fast)."""
    module, layout = _sandbox(kind, root, ssh_port, api_port)
    module.up(layout)


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
    from deploy import output

    module, layout = _sandbox(kind, root, ssh_port, api_port)
    for line in module.status_lines(layout):
        output.result(line)


ns = Collection(deploy, loop, watch, rollback, restart, status, logs, db_sync, smoke, debug,
                fast_restart)
ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down, sandbox_status))
