"""What ``invoke debug --attach`` costs, on each kind of controller.

    .venv/bin/python bench/attach.py [--runs 3] [--requests 30] [--kind supervisord|rdo|legacy|all]

Per kind, one fresh controller (in a temporary directory, stopped by PID and
removed at the end), then medians of ``--runs`` sessions of each sort,
alternating:

* start-up: seconds from starting ``invoke debug`` (pdb) or ``invoke debug
  --attach`` to the foreground cinder-api answering, and (attach) to
  debugpy listening in its worker, as the tool prints them;
* per request: the median of ``--requests`` GETs of ``/types`` through the
  API with the session up, and (attach) a DAP client attached as VS Code
  does, no breakpoint hit; both sessions run one API worker.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dap_client import DapClient  # noqa: E402
from tests.integration.controllers import (  # noqa: E402
    LegacyController,
    RdoController,
    SupervisordController,
)
from tests.support import free_port, write_inventory  # noqa: E402


def boot(kind: str, base: Path):
    from deploy.sandbox import SandboxLayout, legacy, rdo, supervisord

    if kind == "supervisord":
        layout = SandboxLayout(base / "controller", free_port(), free_port(), name="bench-attach")
        supervisord.up(layout)
        return SupervisordController(layout), lambda: supervisord.down(layout, purge=True)
    if kind == "rdo":
        layout = rdo.RdoLayout(base / "controller", name="bench-attach-rdo")
        rdo.up(layout)
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(layout.clouds_file)
        return RdoController(layout), lambda: rdo.down(layout, purge=True)
    layout = legacy.LegacyLayout(base / "controller", name="bench-attach-legacy")
    legacy.up(layout)
    return LegacyController(layout), lambda: legacy.down(layout, purge=True)


def get_ms(controller, count: int) -> float:
    access = controller.api()
    url = f"{access.base_url}/v3/{access.project_id}/types"
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, headers=access.headers),
                                    timeout=30) as reply:
            reply.read()
            assert reply.status == 200
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def session(inventory: Path, controller, attach: bool, requests: int) -> dict[str, float]:
    port = free_port()
    args = ["-m", "invoke", "--search-root", str(ROOT), "debug", "--inventory", str(inventory)]
    if attach:
        args += ["--attach", "--port", str(port)]
    started = time.perf_counter()
    child = pexpect.spawn(sys.executable, args, encoding="utf-8", timeout=300,
                          dimensions=(50, 200), env={**os.environ, "TERM": "xterm"})
    figures = {}
    try:
        child.expect("answers at")
        figures["answers"] = time.perf_counter() - started
        if attach:
            child.expect("in the API worker; attach the IDE")
            figures["debugpy"] = time.perf_counter() - started
            with DapClient(port) as dap:
                dap.request("initialize", clientID="vscode", adapterID="debugpy")
                attached = dap.send("attach", justMyCode=False)
                dap.wait_event("initialized")
                dap.request("configurationDone")
                dap.response(attached)
                figures["request_ms"] = get_ms(controller, requests)
                dap.request("disconnect")
        else:
            figures["request_ms"] = get_ms(controller, requests)
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return figures


def bench_kind(kind: str, runs: int, requests: int) -> str:
    base = Path(tempfile.mkdtemp(prefix=f"devloop-bench-attach-{kind}-"))
    base.chmod(0o755)
    controller, down = boot(kind, base)
    try:
        inventory = write_inventory(base / "hosts.yaml", ROOT / "cinder_patch" / "cinder",
                                    {"bench": controller.entry()})
        plain, attach = [], []
        for _ in range(runs):
            plain.append(session(inventory, controller, False, requests))
            attach.append(session(inventory, controller, True, requests))

        def med(rows, key):
            return statistics.median(row[key] for row in rows)
        return (f"| {kind} | {med(plain, 'answers'):.1f} s | {med(attach, 'answers'):.1f} s, "
                f"debugpy {med(attach, 'debugpy'):.1f} s | {med(plain, 'request_ms'):.0f} ms | "
                f"{med(attach, 'request_ms'):.0f} ms |")
    finally:
        down()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--kind", choices=("supervisord", "rdo", "legacy", "all"), default="all")
    options = parser.parse_args()
    kinds = ("supervisord", "rdo", "legacy") if options.kind == "all" else (options.kind,)
    print("| kind | pdb session: API answers | attach: API answers, debugpy listens "
          "| GET /types, pdb session | GET /types, IDE attached |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        print(bench_kind(kind, options.runs, options.requests), flush=True)


if __name__ == "__main__":
    main()
