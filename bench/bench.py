"""Benchmarks of cinder-devloop against sandbox controllers, side by side with
the commands a developer types by hand. Medians of N runs, alternating the
two sides run by run so that machine noise hits both alike.

    .venv/bin/python bench/bench.py [--runs 7] [--write bench/RESULTS.md]

It builds (or reuses) four sandbox controllers under
/opt/cinder-devloop/bench (the first installs cinder once, the others
hard-link-clone its venv), runs the four comparisons below and stops the
controllers by PID at the end.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from deploy import sandbox  # noqa: E402
from deploy.sandbox import SandboxLayout  # noqa: E402

BENCH_ROOT = Path("/opt/cinder-devloop/bench")
ROWS = ("no-restart", "edit-to-serving", "watch", "list", "health", "fleet", "fleet-no-restart")
# the last commit before "healthy means the sent code is serving" (issue 13)
BEFORE_HEALTH_CHECKS = "bed0b34"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def layouts() -> list[SandboxLayout]:
    first = SandboxLayout(BENCH_ROOT / "ctl1", 22101, 18801, name="bench1")
    rest = [SandboxLayout(BENCH_ROOT / f"ctl{i}", 22100 + i, 18800 + i, name=f"bench{i}",
                          base_venv=first.venv) for i in (2, 3, 4)]
    return [first, *rest]


def cinder_dir(layout: SandboxLayout) -> Path:
    return next((layout.venv / "lib").glob("python3*/site-packages/cinder"))


def write_inventory(path: Path, source: Path, chosen: list[SandboxLayout]) -> Path:
    path.write_text(yaml.safe_dump({
        "source": str(source),
        "controllers": {layout.name: layout.controller_entry() for layout in chosen}}))
    return path


def run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(argv)}\n{proc.stderr}")


def ssh_words(layout: SandboxLayout) -> list[str]:
    return ["ssh", "-p", str(layout.ssh_port), "-i", str(layout.identity_file),
            "-o", f"UserKnownHostsFile={layout.known_hosts}", "-o", "StrictHostKeyChecking=yes"]


def extension(alias: str) -> str:
    return ("from cinder.api import extensions\n\n\n"
            # Cinder derives the class name from the file name (devloop_bench_ext.py)
            "class Devloop_bench_ext(extensions.ExtensionDescriptor):\n"
            '    """Benchmark probe."""\n\n'
            f"    name = 'Bench{alias}'\n    alias = '{alias}'\n"
            "    updated = '2026-11-25T00:00:00+00:00'\n")


def serves(layout: SandboxLayout, alias: str) -> bool:
    request = urllib.request.Request(f"{layout.api_url}v3/extensions/{alias}",
                                     headers={"X-Auth-Token": "admin:5e1f7e57"})
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_serving(layout: SandboxLayout, alias: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not serves(layout, alias):
        if time.monotonic() > deadline:
            raise SystemExit(f"{alias} not served within {timeout} s")
        time.sleep(0.02)


def timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def side_by_side(runs: int, ours: Callable[[], None], manual: Callable[[], None],
                 before: Callable[[], None] = lambda: None) -> tuple[list[float], list[float]]:
    a, b = [], []
    for index in range(runs):
        for side, out in ((ours, a), (manual, b)) if index % 2 == 0 else ((manual, b), (ours, a)):
            before()
            out.append(timed(side))
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--only", choices=ROWS, action="append",
                        help="run only this comparison (repeatable; default: all)")
    args = parser.parse_args()
    wanted = set(args.only or ROWS)

    chosen = layouts() if wanted & {"fleet", "fleet-no-restart"} else layouts()[:1]
    for layout in chosen:
        sandbox.up(layout)
    work = Path(tempfile.mkdtemp(prefix="devloop-bench-"))
    source = work / "cinder"
    shutil.copytree(ROOT / "cinder_patch" / "cinder", source)
    (source / "devloop_bench").mkdir()
    probe = source / "devloop_bench" / "probe.py"
    one = write_inventory(work / "one.yaml", source, chosen[:1])
    four = write_inventory(work / "four.yaml", source, chosen)
    first = chosen[0]
    target = cinder_dir(first)
    results = []
    try:
        run([*INVOKE, "deploy", "--inventory", str(four), "db-sync", "--inventory", str(four)])

        def edit() -> None:
            probe.write_text(f"EDIT = {uuid.uuid4().hex!r}\n")

        manual_rsync = ["rsync", "-avz", "--exclude=.vscode/", "-e", shlex.join(ssh_words(first)),
                        f"{source}/", f"root@127.0.0.1:{target}/"]

        aliases: list[str] = []

        def save(tree: Path) -> None:
            alias = f"bench-{uuid.uuid4().hex[:8]}"
            aliases.append(alias)
            (tree / "api" / "contrib" / "devloop_bench_ext.py").write_text(extension(alias))

        supervisorctl = ["supervisorctl", "-c", str(first.supervisor_conf)]

        def by_hand(rsync_argv: list[str]) -> None:
            """What the developer types: rsync, ssh restart, ssh status, then poll."""
            run(rsync_argv)
            for action in ("restart", "status"):
                run([*ssh_words(first), "root@127.0.0.1",
                     shlex.join([*supervisorctl, action, "cinder-api"])])
            wait_serving(first, aliases[-1])

        if "no-restart" in wanted:
            # 1. one changed file, no restart, vs plain rsync -avz
            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "deploy", "--inventory", str(one), "--no-restart"]),
                lambda: run(manual_rsync), before=edit)
            results.append(("deploy one changed file, no restart",
                            "invoke deploy --no-restart", shlex.join(manual_rsync[:2]) + " ...",
                            ours, manual, 1.0))

        if "edit-to-serving" in wanted:
            # 2. edit to serving: the new code answers over HTTP
            def ours_loop() -> None:
                run([*INVOKE, "loop", "--inventory", str(one)])
                wait_serving(first, aliases[-1])

            ours, manual = side_by_side(args.runs, ours_loop, lambda: by_hand(manual_rsync),
                                        before=lambda: save(source))
            results.append(("edit to serving (new code answers over HTTP)", "invoke loop",
                            "rsync; ssh restart; ssh status; poll", ours, manual, 0.6))

        if "watch" in wanted:
            # 2b. the same with `invoke watch` already running (connection open). The
            # manual side works from its own copy of the tree, out of the watcher's sight.
            manual_tree = work / "manual" / "cinder"
            shutil.copytree(source, manual_tree)
            manual_copy = [*manual_rsync[:-2], f"{manual_tree}/", manual_rsync[-1]]

            def watched() -> None:
                save(source)
                wait_serving(first, aliases[-1])

            def by_hand_copy() -> None:
                save(manual_tree)
                by_hand(manual_copy)

            watcher = subprocess.Popen([*INVOKE, "watch", "--inventory", str(one), "--debounce",
                                        "100"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                for line in watcher.stdout:            # ready once inotify is armed
                    if "watching" in line:
                        break
                threading.Thread(target=lambda: [None for _ in watcher.stdout], daemon=True).start()
                ours, manual = side_by_side(args.runs, watched, by_hand_copy)
            finally:
                os.killpg(watcher.pid, signal.SIGINT)
                watcher.wait(timeout=30)
            results.append(("edit to serving, with invoke watch running", "save -> served",
                            "rsync; ssh restart; ssh status; poll", ours, manual, 0.6))

        if "list" in wanted:
            # 3. start-up: invoke --list with the project's tasks vs an empty tasks file
            empty = work / "empty"
            empty.mkdir()
            # (a tasks file with no task at all makes --list fail: one no-op task)
            (empty / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef noop(c):\n"
                                            "    pass\n")
            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "--list"]),
                lambda: run([sys.executable, "-m", "invoke", "--search-root", str(empty), "--list"]))
            results.append(("invoke --list: project tasks vs an empty tasks file", "project tasks",
                            "one no-op task", ours, manual, 1.5))

        if "health" in wanted:
            # 3b. deploy with restart, with the health checks (compile before sending, log
            # and extension list after the restart) vs the tree before them
            before = work / "before-health-checks"
            before.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_HEALTH_CHECKS],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)

            def change() -> None:
                edit()              # a module
                save(source)        # and an extension, so every check runs

            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "deploy", "--inventory", str(one)]),
                lambda: run([sys.executable, "-m", "invoke", "--search-root", str(before),
                             "deploy", "--inventory", str(one)]), before=change)
            results.append(("deploy with restart, after vs before the health checks",
                            "with checks", f"at {BEFORE_HEALTH_CHECKS}", ours, manual, 1.1))

        if "fleet" in wanted:
            # 4. deploy (with restart) to four controllers vs one
            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "deploy", "--inventory", str(four)]),
                lambda: run([*INVOKE, "deploy", "--inventory", str(one)]), before=edit)
            results.append(("deploy with restart: 4 controllers vs 1", "4 controllers",
                            "1 controller", ours, manual, 1.5))

        if "fleet-no-restart" in wanted:
            # 5. the same without the restart: the transfers alone, in parallel
            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "deploy", "--inventory", str(four), "--no-restart"]),
                lambda: run([*INVOKE, "deploy", "--inventory", str(one), "--no-restart"]),
                before=edit)
            results.append(("deploy --no-restart: 4 controllers vs 1", "4 controllers",
                            "1 controller", ours, manual, 1.5))
    finally:
        for path in (cinder_dir(layout) / "api" / "contrib" / "devloop_bench_ext.py"
                     for layout in chosen):
            path.unlink(missing_ok=True)
        for layout in chosen:
            sandbox.down(layout)
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


def report(results: list[tuple[str, str, str, list[float], list[float], float]],
           args: argparse.Namespace) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), {args.runs} runs per "
        "side, the two sides alternating run by run. Reproduce with:",
        "",
        f"    .venv/bin/python bench/bench.py --runs {args.runs} --write bench/RESULTS.md",
        "",
        "| comparison | ours | median | baseline | median | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ours_label, base_label, ours, base, target in results:
        ratio = statistics.median(ours) / statistics.median(base)
        mark = "met" if ratio <= target else "NOT met"
        lines.append(f"| {name} | {ours_label} | {statistics.median(ours):.3f} s | {base_label} "
                     f"| {statistics.median(base):.3f} s | {ratio:.2f} | ≤ {target} ({mark}) |")
    lines += ["", "Raw seconds:", ""]
    for name, _, _, ours, base, _ in results:
        lines.append(f"- {name}: ours {', '.join(f'{x:.3f}' for x in ours)}; "
                     f"baseline {', '.join(f'{x:.3f}' for x in base)}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
