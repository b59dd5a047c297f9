"""Benchmarks of cinder-devloop against sandbox controllers, side by side with
the commands a developer types by hand. Medians of N runs, alternating the
two sides run by run so that machine noise hits both alike.

    .venv/bin/python bench/bench.py [--runs 7] [--write bench/RESULTS.md]

It builds (or reuses) up to eight sandbox controllers under
/opt/cinder-devloop/bench (the first installs cinder once, the others
hard-link-clone its venv): ctl1-4 are switched to fast restart and run our
tasks, ctl5-8 stay as installed and get the manual commands, so a manual
``supervisorctl restart`` restarts cinder-api itself. It runs the
comparisons below, turns fast restart off again and stops the controllers
by PID at the end.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
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
ROWS = ("no-restart", "watch-sync", "loop", "watch", "fleet", "fleet-vs-one")
EXTRA_ROWS = ("list", "health")
# the last commit before "healthy means the sent code is serving" (issue 13)
BEFORE_HEALTH_CHECKS = "bed0b34"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
STEP = re.compile(r"^--> \S+: (deploy|check database|db-sync|restart|smoke) \(([\d.]+) s\)")


def layouts() -> list[SandboxLayout]:
    """ctl1-4 run our loop (fast restart on), ctl5-8 the manual commands (as installed)."""
    first = SandboxLayout(BENCH_ROOT / "ctl1", 22101, 18801, name="bench1")
    rest = [SandboxLayout(BENCH_ROOT / f"ctl{i}", 22100 + i, 18800 + i, name=f"bench{i}",
                          base_venv=first.venv) for i in range(2, 9)]
    return [first, *rest]


def cinder_dir(layout: SandboxLayout) -> Path:
    return next((layout.venv / "lib").glob("python3*/site-packages/cinder"))


def write_inventory(path: Path, source: Path, chosen: list[SandboxLayout]) -> Path:
    path.write_text(yaml.safe_dump({
        "source": str(source),
        "controllers": {layout.name: layout.controller_entry() for layout in chosen}}))
    return path


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(argv)}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def ssh_words(layout: SandboxLayout) -> list[str]:
    return ["ssh", "-p", str(layout.ssh_port), "-i", str(layout.identity_file),
            "-o", f"UserKnownHostsFile={layout.known_hosts}", "-o", "StrictHostKeyChecking=yes"]


def rsync_argv(tree: Path, layout: SandboxLayout) -> list[str]:
    """What a developer types: ``rsync -avz -e ssh TREE/ root@controller:CINDER/``."""
    return ["rsync", "-avz", "--exclude=.vscode/", "-e", shlex.join(ssh_words(layout)),
            f"{tree}/", f"root@127.0.0.1:{cinder_dir(layout)}/"]


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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60,
             interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout} s")
        time.sleep(interval)


def wait_serving(layout: SandboxLayout, alias: str, timeout: float = 60) -> None:
    wait_for(lambda: serves(layout, alias), f"{alias} served by {layout.name}", timeout)


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


class Steps:
    """Seconds per named step, collected run by run (for "where the time goes")."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, list[float]]] = {}

    def add(self, row: str, step: str, seconds: float) -> None:
        self.seen.setdefault(row, {}).setdefault(step, []).append(seconds)

    def from_output(self, row: str, text: str, wall: float | None = None) -> None:
        """The loop's own step lines (``--> ctl: restart (0.75 s): ...``)."""
        total = 0.0
        for line in text.splitlines():
            match = STEP.match(line.strip())
            if match:
                self.add(row, match[1], float(match[2]))
                total += float(match[2])
        if wall is not None:
            self.add(row, "start-up, connect, the rest", wall - total)


class Watcher:
    """``invoke watch`` in the background; counts the bursts it has finished."""

    def __init__(self, inventory: Path) -> None:
        self.lines: list[str] = []
        self.done = 0
        self.proc = subprocess.Popen([*INVOKE, "watch", "--inventory", str(inventory),
                                      "--debounce", "100"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        for line in self.proc.stdout:          # ready once inotify is armed
            if "watching" in line:
                break
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "-> OK:" in line or "-> FAILED:" in line:
                self.done += 1

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--only", choices=ROWS + EXTRA_ROWS, action="append",
                        help="run only this comparison (repeatable; default: all but "
                             f"{', '.join(EXTRA_ROWS)})")
    args = parser.parse_args()
    wanted = set(args.only or ROWS)
    load_before = os.getloadavg()

    every = layouts()
    fleet = bool(wanted & {"fleet", "fleet-vs-one"})
    ours_ctl = every[:4] if fleet else every[:1]
    manual_ctl = every[4:] if "fleet" in wanted else every[4:5]
    chosen = ours_ctl + manual_ctl
    for layout in chosen:
        sandbox.up(layout)
    work = Path(tempfile.mkdtemp(prefix="devloop-bench-"))
    source = work / "cinder"
    shutil.copytree(ROOT / "cinder_patch" / "cinder", source)
    (source / "devloop_bench").mkdir()
    probe = source / "devloop_bench" / "probe.py"
    one = write_inventory(work / "one.yaml", source, ours_ctl[:1])
    four = write_inventory(work / "four.yaml", source, ours_ctl)
    everything = write_inventory(work / "all.yaml", source, chosen)
    first, manual_first = ours_ctl[0], manual_ctl[0]
    results = []
    steps = Steps()
    try:
        run([*INVOKE, "deploy", "--inventory", str(everything), "db-sync", "--inventory",
             str(everything)])
        run([*INVOKE, "fast-restart", "on", "--inventory", str(four)])

        def edit(tree: Path = source) -> None:
            (tree / "devloop_bench" / "probe.py").write_text(f"EDIT = {uuid.uuid4().hex!r}\n")

        aliases: list[str] = []

        def save(tree: Path) -> None:
            alias = f"bench-{uuid.uuid4().hex[:8]}"
            aliases.append(alias)
            (tree / "api" / "contrib" / "devloop_bench_ext.py").write_text(extension(alias))

        def by_hand(layout: SandboxLayout, tree: Path, row: str | None = None) -> None:
            """What the developer types: rsync, ssh restart, ssh status, then poll."""
            supervisorctl = ["supervisorctl", "-c", str(layout.supervisor_conf)]
            commands = [("rsync", rsync_argv(tree, layout))] + [
                (f"ssh {action}", [*ssh_words(layout), "root@127.0.0.1",
                                   shlex.join([*supervisorctl, action, "cinder-api"])])
                for action in ("restart", "status")]
            for name, argv in commands:
                seconds = timed(lambda: run(argv))
                if row:
                    steps.add(row, name, seconds)
            seconds = timed(lambda: wait_serving(layout, aliases[-1]))
            if row:
                steps.add(row, "poll until served", seconds)

        if "no-restart" in wanted:
            # one changed file, no restart, vs plain rsync -avz -e ssh (same controller)
            def ours_sync() -> None:
                started = time.perf_counter()
                text = run([*INVOKE, "deploy", "--inventory", str(one), "--no-restart", "-v"])
                steps.from_output("no-restart", text)
                steps.add("no-restart", "wall", time.perf_counter() - started)

            ours, manual = side_by_side(args.runs, ours_sync, lambda: run(rsync_argv(source, first)),
                                        before=edit)
            results.append(("one changed file, no restart", "invoke deploy --no-restart",
                            "rsync -avz -e ssh", ours, manual, 1.5))

        if "loop" in wanted:
            # edit to serving: the new code answers over HTTP; one shot from a cold shell
            def ours_loop() -> None:
                started = time.perf_counter()
                text = run([*INVOKE, "loop", "--inventory", str(one)])
                wall = time.perf_counter() - started
                seconds = timed(lambda: wait_serving(first, aliases[-1]))
                steps.from_output("loop", text, wall)
                steps.add("loop", "poll until served", seconds)

            ours, manual = side_by_side(args.runs, ours_loop,
                                        lambda: by_hand(manual_first, source, "manual"),
                                        before=lambda: save(source))
            results.append(("edit to serving (new code answers over HTTP)", "invoke loop",
                            "rsync; ssh restart; ssh status; poll", ours, manual, 0.7))

        if wanted & {"watch", "watch-sync"}:
            # `invoke watch` already running (connection open). The manual side works
            # from its own copy of the tree, out of the watcher's sight.
            manual_tree = work / "manual" / "cinder"
            shutil.copytree(source, manual_tree)
            watcher = Watcher(one)
            try:
                target = cinder_dir(first) / "devloop_bench" / "probe.py"

                def saved_to_controller() -> None:
                    edit()
                    wanted_text = probe.read_text()
                    wait_for(lambda: target.exists() and target.read_text() == wanted_text,
                             "the edit on the controller", interval=0.005)

                def burst_over(done: int, row: str) -> None:
                    """(untimed) let the watcher finish a burst before the next run."""
                    seconds = timed(lambda: wait_for(lambda: watcher.done > done, "watch burst",
                                                     interval=0.005))
                    steps.add(row, "(untimed) rest of the burst", seconds)

                def watched_side(side: Callable[[], None], row: str) -> Callable[[], float]:
                    def measured() -> float:
                        done = watcher.done
                        seconds = timed(side)
                        burst_over(done, row)
                        return seconds
                    return measured

                def alternate(ours_side: Callable[[], float], manual_side: Callable[[], None]
                              ) -> tuple[list[float], list[float]]:
                    ours, manual = [], []
                    for index in range(args.runs):
                        if index % 2:
                            manual.append(timed(manual_side))
                        ours.append(ours_side())
                        if not index % 2:
                            manual.append(timed(manual_side))
                    return ours, manual

                if "watch-sync" in wanted:
                    ours, manual = alternate(
                        watched_side(saved_to_controller, "watch-sync"),
                        lambda: (edit(manual_tree), run(rsync_argv(manual_tree, manual_first))))
                    results.append(("with invoke watch running: save -> file on the controller",
                                    "save -> on the controller", "rsync -avz -e ssh",
                                    ours, manual, 1.0))

                if "watch" in wanted:
                    def watched() -> None:
                        save(source)
                        wait_serving(first, aliases[-1])

                    def by_hand_copy() -> None:
                        save(manual_tree)
                        by_hand(manual_first, manual_tree)

                    mark = len(watcher.lines)
                    ours, manual = alternate(watched_side(watched, "watch"), by_hand_copy)
                    steps.from_output("watch", "".join(watcher.lines[mark:]))
                    results.append(("edit to serving, with invoke watch running",
                                    "save -> served", "rsync; ssh restart; ssh status; poll",
                                    ours, manual, 0.5))
            finally:
                watcher.stop()

        if "fleet" in wanted:
            # 4 controllers with restart vs four manual sequences run in parallel
            def ours_fleet() -> None:
                run([*INVOKE, "deploy", "--inventory", str(four)])
                for layout in ours_ctl:
                    wait_serving(layout, aliases[-1])

            def manual_fleet() -> None:
                threads = [threading.Thread(target=by_hand, args=(layout, source))
                           for layout in manual_ctl]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            ours, manual = side_by_side(args.runs, ours_fleet, manual_fleet,
                                        before=lambda: save(source))
            results.append(("4 controllers with restart, to serving", "invoke deploy (4)",
                            "4 manual sequences in parallel", ours, manual, 1.2))

        if "fleet-vs-one" in wanted:
            ours, manual = side_by_side(
                args.runs, lambda: run([*INVOKE, "deploy", "--inventory", str(four)]),
                lambda: run([*INVOKE, "deploy", "--inventory", str(one)]), before=edit)
            results.append(("deploy with restart: 4 controllers vs 1 (information)",
                            "4 controllers", "1 controller", ours, manual, None))

        if "list" in wanted:
            # start-up: invoke --list with the project's tasks vs an empty tasks file
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
            # deploy with restart, with the health checks vs the tree before them
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
    finally:
        try:
            run([*INVOKE, "fast-restart", "off", "--inventory", str(four)])
        except SystemExit as exc:
            print(exc, file=sys.stderr)
        for path in (cinder_dir(layout) / "api" / "contrib" / "devloop_bench_ext.py"
                     for layout in chosen):
            path.unlink(missing_ok=True)
        for layout in chosen:
            sandbox.down(layout)
        shutil.rmtree(work, ignore_errors=True)
    report(results, steps, args, load_before)


def spread(values: list[float]) -> str:
    """min-max around the median, as a percentage of the median: how noisy a side was."""
    middle = statistics.median(values)
    return f"{100 * (max(values) - min(values)) / middle:.0f}%"


def report(results: list[tuple[str, str, str, list[float], list[float], float | None]],
           steps: Steps, args: argparse.Namespace, load_before: tuple[float, ...]) -> None:
    load_after = os.getloadavg()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), {args.runs} runs per "
        "side, the two sides alternating run by run; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after. Reproduce with:",
        "",
        f"    .venv/bin/python bench/bench.py --runs {args.runs} --write bench/RESULTS.md",
        "",
        "Ours runs on controllers in fast-restart mode (`invoke fast-restart on`); the manual "
        "commands run on identical controllers as installed (cinder-api started by supervisord).",
        "",
        "| comparison | ours | median | baseline | median | ratio | target | spread ours / base |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, ours_label, base_label, ours, base, target in results:
        ratio = statistics.median(ours) / statistics.median(base)
        goal = ("information" if target is None else
                f"≤ {target} ({'met' if ratio <= target else 'NOT met'})")
        lines.append(f"| {name} | {ours_label} | {statistics.median(ours):.3f} s | {base_label} "
                     f"| {statistics.median(base):.3f} s | {ratio:.2f} | {goal} "
                     f"| {spread(ours)} / {spread(base)} |")
    lines += ["", "## Where the time goes", "",
              "Medians of each step over the runs of a row, in seconds (the loop's steps as it "
              "reports them; the manual ones timed around each command).", ""]
    for row, seen in steps.seen.items():
        lines.append(f"- **{row}**: " + "; ".join(
            f"{step} {statistics.median(values):.3f}" for step, values in seen.items()))
    lines += ["", "## Raw seconds", ""]
    for name, _, _, ours, base, _ in results:
        lines.append(f"- {name}: ours {', '.join(f'{x:.3f}' for x in ours)}; "
                     f"baseline {', '.join(f'{x:.3f}' for x in base)}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
