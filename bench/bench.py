"""Benchmarks of cinder-devloop against sandbox controllers, side by side with
the commands a developer types by hand. Medians of N runs, alternating the
two sides run by run so that machine noise hits both alike.

    .venv/bin/python bench/bench.py [--runs 7] [--kind supervisord|rdo|legacy|devstack|all]
                                    [--tree whole|patch] [--only ROW ...]
                                    [--root /opt/cinder-devloop]
                                    [--write bench/RESULTS.md]

Each row is a measure registered with ``@row(NAME)`` over a :class:`Bench`
(one kind's controllers, source tree and inventories), run in the order of
this file. What each row measures, the kinds of controller and the results
file: bench/README.md.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from deploy import sandbox  # noqa: E402
from deploy.openstack.auth import NOAUTH_PROJECT, ApiAccess, cloud_access  # noqa: E402
from deploy.sandbox import (  # noqa: E402
    SandboxLayout,
    devstack,  # noqa: E402
    rdo,
)
from deploy.sandbox.common import free_port  # noqa: E402
from deploy.sandbox.devstack import DevstackLayout  # noqa: E402
from deploy.sandbox.rdo import RdoLayout  # noqa: E402

#: where each kind's controllers live: <base>/bench, bench-rdo, bench-legacy, bench-devstack
BENCH_BASE = Path("/opt/cinder-devloop")
ROWS = ("no-restart", "watch-sync", "loop", "watch", "growth", "fleet", "fleet-vs-one")
FLEET_ROWS = ("fleet", "fleet-vs-one")
EXTRA_ROWS = ("list", "health")     # supervisord only
KIND_NAMES = ("supervisord", "rdo", "legacy", "devstack")
#: extra copies of the whole tree in the growth row's largest tree
GROWTH_COPIES = 3
#: the last commit before "healthy means the sent code is serving" (the health row's baseline)
BEFORE_HEALTH_CHECKS = "bed0b34"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
FULL_RESTART = re.compile(r"full restart instead of a fast one: (.*)$")
STEP = re.compile(r"^--> \S+: (deploy|check database|db-sync|restart|smoke) \(([\d.]+) s\)")

Layout = Union[SandboxLayout, RdoLayout]


@dataclass(frozen=True, slots=True)
class SshTarget:
    """How the developer's own ssh reaches a controller."""

    host: str
    port: int
    identity_file: Path
    known_hosts: Path


class Kind:
    """One kind of controller the rows run on: its controllers, and what a developer types.

    ``ours`` get our tasks (fast restart on), ``manual`` the commands by hand
    (as installed); the first ``fleet_size`` of each make the fleet rows.
    """

    name = ""
    fleet_size = 0
    #: does our side run in fast-restart mode? (DevStack's uWSGI refuses it)
    fast_restart = True
    #: the repo's feature for this kind's Cinder (laid over the whole tree): the
    #: common tree with this release tree laid over it (:func:`feature_tree`)
    release_tree = "cinder_patch/releases/29/cinder"
    #: the manual restart and status, as the developer types them over ssh
    manual_commands = ""

    def __init__(self, ours: list[Layout], manual: list[Layout]) -> None:
        self.ours, self.manual = ours, manual
        self.env: dict[str, str] = {}

    def up(self, layout: Layout) -> None:
        raise NotImplementedError

    def down(self, layout: Layout) -> None:
        raise NotImplementedError

    def cinder_dir(self, layout: Layout) -> Path:
        """The installed cinder package, as this machine sees it."""
        raise NotImplementedError

    def cinder_path(self, layout: Layout) -> str:
        """The installed cinder package, as the controller names it (rsync's target)."""
        raise NotImplementedError

    def ssh_target(self, layout: Layout) -> SshTarget:
        raise NotImplementedError

    def service(self, layout: Layout, action: str) -> list[str]:
        """The command run over ssh to ``restart`` or ``status`` cinder-api."""
        raise NotImplementedError

    def entry(self, layout: Layout) -> dict[str, object]:
        """The controller's hosts.yaml entry for our side."""
        return layout.controller_entry()

    def prepare(self, chosen: list[Layout], work: Path) -> None:
        """After ``up``: what our tasks and the probe need to reach the API."""

    def access(self, layout: Layout) -> ApiAccess:
        """URL, project and token the probe asks the API with."""
        raise NotImplementedError


class SupervisordKind(Kind):
    """ctl1-8 under /opt/cinder-devloop/bench; cinder-api in a venv, noauth."""

    name = "supervisord"
    fleet_size = 4
    manual_commands = ("`ssh … supervisorctl restart cinder-api`, "
                       "`ssh … supervisorctl status cinder-api`")

    def __init__(self, base: Path = BENCH_BASE) -> None:
        root = base / "bench"
        # ports the kernel picks for this run: two benches on one machine never meet
        first = SandboxLayout(root / "ctl1", free_port(), free_port(), name="bench1")
        rest = [SandboxLayout(root / f"ctl{i}", free_port(), free_port(), name=f"bench{i}",
                              base_venv=first.venv) for i in range(2, 9)]
        every = [first, *rest]
        super().__init__(every[:4], every[4:])

    def up(self, layout: Layout) -> None:
        sandbox.up(layout)

    def down(self, layout: Layout) -> None:
        sandbox.down(layout)

    def cinder_dir(self, layout: Layout) -> Path:
        return next((layout.venv / "lib").glob("python3*/site-packages/cinder"))

    def cinder_path(self, layout: Layout) -> str:
        return str(self.cinder_dir(layout))

    def ssh_target(self, layout: Layout) -> SshTarget:
        return SshTarget("127.0.0.1", layout.ssh_port, layout.identity_file, layout.known_hosts)

    def service(self, layout: Layout, action: str) -> list[str]:
        return ["supervisorctl", "-c", str(layout.supervisor_conf), action, sandbox.PROGRAM]

    def access(self, layout: Layout) -> ApiAccess:
        return ApiAccess(layout.api_url.rstrip("/"), NOAUTH_PROJECT, f"admin:{NOAUTH_PROJECT}")


class RdoKind(Kind):
    """ctl1-4 under /opt/cinder-devloop/bench-rdo: systemd-nspawn, RDO's layout, Keystone."""

    name = "rdo"
    fleet_size = 2      # 4 containers, each with Keystone and cinder-api, on 2 cores
    manual_commands = (f"`ssh … systemctl restart {rdo.UNIT}`, "
                       f"`ssh … systemctl status {rdo.UNIT}`")

    def __init__(self, base: Path = BENCH_BASE) -> None:
        every = [RdoLayout(base / "bench-rdo" / f"ctl{i}", name=f"bench-rdo{i}")
                 for i in range(1, 5)]
        super().__init__(every[:2], every[2:])
        self.tokens: dict[str, ApiAccess] = {}

    def up(self, layout: Layout) -> None:
        rdo.up(layout)

    def down(self, layout: Layout) -> None:
        rdo.down(layout)

    def cinder_path(self, layout: Layout) -> str:
        return f"/{rdo.PYTHON_SITE}/cinder"

    def cinder_dir(self, layout: Layout) -> Path:
        return layout.instance.merged / rdo.PYTHON_SITE / "cinder"

    def ssh_target(self, layout: Layout) -> SshTarget:
        instance = layout.instance
        return SshTarget(layout.address, 22, instance.identity_file, instance.known_hosts)

    def service(self, layout: Layout, action: str) -> list[str]:
        return ["systemctl", action, rdo.UNIT]

    def cloud(self, layout: Layout) -> str:
        return f"{layout.name}-admin"

    def entry(self, layout: Layout) -> dict[str, object]:
        return self.named_apart(layout, layout.controller_entry())

    def named_apart(self, layout: Layout, entry: dict[str, object]) -> dict[str, object]:
        """``entry`` (the controller's own) with its Keystone's name in our clouds.yaml.

        Every controller has its own Keystone: one clouds.yaml names them apart.
        """
        return {**entry, "cloud": self.cloud(layout)}

    def prepare(self, chosen: list[Layout], work: Path) -> None:
        clouds = {}
        for layout in chosen:
            mine = yaml.safe_load(layout.clouds_file.read_text())["clouds"]
            clouds[self.cloud(layout)] = mine[layout.cloud_admin]
        path = work / "clouds.yaml"
        path.write_text(yaml.safe_dump({"clouds": clouds}))
        path.chmod(0o600)
        self.env = {"OS_CLIENT_CONFIG_FILE": str(path)}
        self.tokens = {layout.name: cloud_access(self.cloud(layout), path)
                       for layout in chosen}

    def access(self, layout: Layout) -> ApiAccess:
        return self.tokens[layout.name]


class LegacyKind(RdoKind):
    """ctl1-2 under /opt/cinder-devloop/bench-legacy: Python 2.7, Cinder Train, noauth."""

    name = "legacy"
    fleet_size = 0      # no fleet rows: one container each side
    release_tree = "cinder_patch/releases/train/cinder"

    def __init__(self, base: Path = BENCH_BASE) -> None:
        from deploy.sandbox.legacy import LegacyLayout

        every = [LegacyLayout(base / "bench-legacy" / f"ctl{i}", name=f"bench-legacy{i}")
                 for i in range(1, 3)]
        Kind.__init__(self, every[:1], every[1:])

    def up(self, layout: Layout) -> None:
        from deploy.sandbox import legacy

        legacy.up(layout)

    def down(self, layout: Layout) -> None:
        from deploy.sandbox import legacy

        legacy.down(layout)

    def cinder_path(self, layout: Layout) -> str:
        from deploy.sandbox import legacy

        return f"/{legacy.SITE}/cinder"

    def cinder_dir(self, layout: Layout) -> Path:
        from deploy.sandbox import legacy

        return layout.instance.merged / legacy.SITE / "cinder"

    def entry(self, layout: Layout) -> dict[str, object]:
        return layout.controller_entry()

    def prepare(self, chosen: list[Layout], work: Path) -> None:
        self.env = {}

    def access(self, layout: Layout) -> ApiAccess:
        return ApiAccess(layout.api_url.rstrip("/"), NOAUTH_PROJECT, f"admin:{NOAUTH_PROJECT}")


class DevstackKind(RdoKind):
    """ctl1-4 under /opt/cinder-devloop/bench-devstack: DevStack's layout (a checkout installed
    -e, uWSGI devstack@c-api, MariaDB, Keystone); no fast restart (refused under uWSGI)."""

    name = "devstack"
    fast_restart = False
    manual_commands = (f"`ssh … systemctl restart {devstack.UNIT}`, "
                       f"`ssh … systemctl status {devstack.UNIT}`")

    def __init__(self, base: Path = BENCH_BASE) -> None:
        every = [DevstackLayout(base / "bench-devstack" / f"ctl{i}", name=f"bench-devstack{i}")
                 for i in range(1, 5)]
        Kind.__init__(self, every[:2], every[2:])
        self.tokens = {}

    def up(self, layout: Layout) -> None:
        devstack.up(layout)

    def down(self, layout: Layout) -> None:
        devstack.down(layout)

    def cinder_path(self, layout: Layout) -> str:
        return f"{devstack.CHECKOUT}/cinder"

    def cinder_dir(self, layout: Layout) -> Path:
        return layout.instance.merged / devstack.CHECKOUT.lstrip("/") / "cinder"

    def service(self, layout: Layout, action: str) -> list[str]:
        return ["systemctl", action, devstack.UNIT]


def make_kind(name: str, base: Path = BENCH_BASE) -> Kind:
    return {"supervisord": SupervisordKind, "rdo": RdoKind, "legacy": LegacyKind,
            "devstack": DevstackKind}[name](base)


def whole_tree(kind: Kind, layout: Layout, dest: Path) -> Path:
    """A whole Cinder checkout of ``layout``'s release at ``dest``: its installed package
    (no ``__pycache__``, mtimes kept) with the repo's feature tree laid over it."""
    shutil.copytree(kind.cinder_dir(layout), dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "devloop_*"))
    shutil.copytree(feature_tree(kind), dest, dirs_exist_ok=True)
    return dest


def feature_tree(kind: Kind) -> Path:
    """The repo's feature for ``kind``'s Cinder, its two layers composed as deploy does."""
    from deploy.controller.layers import compose

    return compose((ROOT / "cinder_patch" / "cinder", ROOT / kind.release_tree))


def count_files(tree: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(tree))


def write_inventory(path: Path, source: Path, kind: Kind, chosen: list[Layout]) -> Path:
    path.write_text(yaml.safe_dump({
        "source": str(source),
        "controllers": {layout.name: kind.entry(layout) for layout in chosen}}))
    return path


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env} if env else None)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(argv)}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def ssh_words(kind: Kind, layout: Layout) -> list[str]:
    target = kind.ssh_target(layout)
    return ["ssh", "-p", str(target.port), "-i", str(target.identity_file),
            "-o", f"UserKnownHostsFile={target.known_hosts}", "-o", "StrictHostKeyChecking=yes"]


def rsync_argv(kind: Kind, tree: Path, layout: Layout) -> list[str]:
    """What a developer types: ``rsync -avz -e ssh TREE/ root@controller:CINDER/``."""
    host = kind.ssh_target(layout).host
    return ["rsync", "-avz", "--exclude=.vscode/", "-e", shlex.join(ssh_words(kind, layout)),
            f"{tree}/", f"root@{host}:{kind.cinder_path(layout)}/"]


def ssh_argv(kind: Kind, layout: Layout, command: list[str]) -> list[str]:
    """What a developer types: ``ssh root@controller COMMAND``."""
    host = kind.ssh_target(layout).host
    return [*ssh_words(kind, layout), f"root@{host}", shlex.join(command)]


def extension(alias: str) -> str:
    return ("from cinder.api import extensions\n\n\n"
            # Cinder derives the class name from the file name (devloop_bench_ext.py)
            "class Devloop_bench_ext(extensions.ExtensionDescriptor):\n"
            '    """Benchmark probe."""\n\n'
            f"    name = 'Bench{alias}'\n    alias = '{alias}'\n"
            "    updated = '2026-11-25T00:00:00+00:00'\n")


def serves(access: ApiAccess, alias: str) -> bool:
    """Does the API answer ``GET /v3/<project>/extensions/<alias>`` with 200?"""
    request = urllib.request.Request(
        f"{access.base_url}/v3/{access.project_id}/extensions/{alias}", headers=access.headers)
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


def wait_serving(kind: Kind, layout: Layout, alias: str, timeout: float = 60) -> None:
    access = kind.access(layout)
    wait_for(lambda: serves(access, alias), f"{alias} served by {layout.name}", timeout)


def check_probe(kind: Kind, layout: Layout) -> None:
    """The probe tells an extension served from one that is not (else every row is void)."""
    wait_serving(kind, layout, "os-cluster-manage")
    if serves(kind.access(layout), f"bench-absent-{uuid.uuid4().hex[:8]}"):
        raise SystemExit(f"{layout.name}: the API answers 200 for an extension it does not "
                         f"have: the probe cannot see an edit")


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
        self.notes: dict[str, dict[str, int]] = {}

    def note(self, row: str, text: str) -> None:
        """Something the loop said in a run (counted): e.g. why it restarted in full."""
        counts = self.notes.setdefault(row, {})
        counts[text] = counts.get(text, 0) + 1

    def add(self, row: str, step: str, seconds: float) -> None:
        self.seen.setdefault(row, {}).setdefault(step, []).append(seconds)

    def from_output(self, row: str, text: str, wall: float | None = None) -> None:
        """The loop's own step lines (``--> ctl: restart (0.75 s): ...``)."""
        total = 0.0
        for line in text.splitlines():
            match = FULL_RESTART.search(line)
            if match:
                self.note(row, f"full restart instead of a fast one ({match[1].strip()})")
            match = STEP.match(line.strip())
            if match:
                self.add(row, match[1], float(match[2]))
                total += float(match[2])
        if wall is not None:
            self.add(row, "start-up, connect, the rest", wall - total)


class Watcher:
    """``invoke watch`` in the background; counts the bursts it has finished."""

    def __init__(self, inventory: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.done = 0
        self.proc = subprocess.Popen([*INVOKE, "watch", "--inventory", str(inventory),
                                      "--debounce", "100"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **env})
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


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison's seconds, side by side."""

    kind: str
    name: str
    ours_label: str
    base_label: str
    ours: list[float]
    base: list[float]
    target: float | None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--kind", choices=(*KIND_NAMES, "all"), default="all",
                        help="the controllers to run the rows on (default: all, one kind "
                             "after the other)")
    parser.add_argument("--tree", choices=("whole", "patch"), default="whole",
                        help="the source tree every row edits a file of: a whole Cinder "
                             "checkout of the controller's release (default) or the 19-file "
                             "overlay alone")
    parser.add_argument("--root", type=Path, default=BENCH_BASE,
                        help="where the controllers are built: ROOT/bench, ROOT/bench-rdo, "
                             f"ROOT/bench-legacy, ROOT/bench-devstack (default: {BENCH_BASE})")
    parser.add_argument("--only", choices=ROWS + EXTRA_ROWS, action="append",
                        help="run only this comparison (repeatable; default: all but "
                             f"{', '.join(EXTRA_ROWS)}, which run on supervisord only)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    wanted = set(args.only or ROWS)
    names = KIND_NAMES if args.kind == "all" else (args.kind,)
    if wanted <= set(EXTRA_ROWS) and "supervisord" not in names:
        parser.error(f"{', '.join(sorted(wanted))} run on the supervisord kind only")
    # a kill ends the run the way Ctrl-C does: through Bench's exit, which stops the controllers
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # Started in the background by a non-interactive shell (nohup … &, a job
    # scheduler), the bench has SIGINT ignored, and every child inherits that:
    # the SIGINT that stops `invoke watch` would reach nothing. Its children
    # get the default back (exec resets a handled signal, not an ignored one).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()
    results: list[Row] = []
    steps: dict[str, Steps] = {}
    kinds = [make_kind(name, args.root) for name in names]
    for kind in kinds:
        steps[kind.name] = Steps()
        extra = wanted & set(EXTRA_ROWS) if kind.name == "supervisord" else set()
        rows = (wanted - set(EXTRA_ROWS)) | extra
        if not kind.fleet_size:
            rows -= set(FLEET_ROWS)
        bench_kind(kind, rows, args.runs, results, steps[kind.name], args.tree)
    report(results, steps, kinds, args, load_before)


class Bench:
    """One kind's run of the rows: its controllers, source tree and inventories, and the
    steps the rows share (edit a file, save an extension, type the manual sequence).

    Entering brings the controllers up, deploys the tree to all of them and
    switches ours to fast restart; leaving (also on Ctrl-C, a kill or an error)
    switches fast restart off and stops the controllers.
    """

    #: inventories of one of ours and of all of ours (the fleet), written once they are up
    one: Path
    fleet_hosts: Path

    def __init__(self, kind: Kind, wanted: set[str], runs: int, results: list[Row],
                 steps: Steps, tree: str = "whole") -> None:
        self.kind, self.wanted, self.runs, self.tree = kind, wanted, runs, tree
        self.results, self.steps = results, steps
        fleet = bool(wanted & set(FLEET_ROWS))
        self.ours_ctl = kind.ours[:kind.fleet_size] if fleet else kind.ours[:1]
        self.manual_ctl = kind.manual[:kind.fleet_size] if "fleet" in wanted else kind.manual[:1]
        self.chosen = self.ours_ctl + self.manual_ctl
        self.first, self.manual_first = self.ours_ctl[0], self.manual_ctl[0]
        self.fleet_label = f"{len(self.ours_ctl)} controllers"
        self.work = Path(tempfile.mkdtemp(prefix=f"devloop-bench-{kind.name}-"))
        self.source = self.work / "cinder"
        self.probe = self.source / "devloop_bench" / "probe.py"
        #: the extension aliases saved so far: "served" means the last one answers
        self.aliases: list[str] = []
        #: inventories switched to fast restart, switched off at the end
        self.fast: list[Path] = []

    @property
    def env(self) -> dict[str, str]:
        """What our tasks run with: the kind's clouds.yaml, once prepared."""
        return self.kind.env

    def __enter__(self) -> Bench:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bring the controllers up, deploy the source tree to all, fast restart on for ours."""
        kind = self.kind
        for layout in self.chosen:
            kind.up(layout)
        if self.tree == "whole":
            whole_tree(kind, self.first, self.source)
        else:
            shutil.copytree(feature_tree(kind), self.source)
        (self.source / "devloop_bench").mkdir()
        self.probe.write_text("EDIT = None\n")
        print(f"--> bench {kind.name}: source tree {self.source}: "
              f"{count_files(self.source)} files", file=sys.stderr)
        kind.prepare(self.chosen, self.work)
        self.one = write_inventory(self.work / "one.yaml", self.source, kind, self.ours_ctl[:1])
        self.fleet_hosts = write_inventory(self.work / "fleet.yaml", self.source, kind,
                                           self.ours_ctl)
        everything = write_inventory(self.work / "all.yaml", self.source, kind, self.chosen)
        self.task("deploy", "--inventory", str(everything), "db-sync", "--inventory",
                  str(everything))
        if kind.fast_restart:
            self.fast.append(self.fleet_hosts)
            self.task("fast-restart", "on", "--inventory", str(self.fleet_hosts))
        for layout in self.chosen:
            check_probe(kind, layout)

    def stop(self) -> None:
        """Fast restart off, the probe extension removed, the controllers down."""
        for inventory in self.fast:
            try:
                self.task("fast-restart", "off", "--inventory", str(inventory))
            except SystemExit as exc:
                print(exc, file=sys.stderr)
        for layout in self.chosen:
            try:
                (self.kind.cinder_dir(layout) / "api" / "contrib" / "devloop_bench_ext.py").unlink(
                    missing_ok=True)
            except (OSError, StopIteration):      # never brought up
                pass
            self.kind.down(layout)
        shutil.rmtree(self.work, ignore_errors=True)

    def add(self, name: str, ours_label: str, base_label: str, ours: list[float],
            base: list[float], target: float | None) -> None:
        """One row's result (``target``: the ratio ours / baseline aimed at, or information)."""
        self.results.append(Row(self.kind.name, name, ours_label, base_label, ours, base, target))

    def task(self, *words: str) -> str:
        """``invoke WORDS`` from a cold shell (with the kind's clouds.yaml)."""
        return run([*INVOKE, *words], self.env)

    def edit(self, tree: Path | None = None) -> None:
        """A new value in the probe module of ``tree`` (default: the source tree)."""
        ((tree or self.source) / "devloop_bench" / "probe.py").write_text(
            f"EDIT = {uuid.uuid4().hex!r}\n")

    def save(self, tree: Path) -> None:
        """A new extension alias in ``tree``: a request sees the edit once it is served."""
        alias = f"bench-{uuid.uuid4().hex[:8]}"
        self.aliases.append(alias)
        (tree / "api" / "contrib" / "devloop_bench_ext.py").write_text(extension(alias))

    def serving(self, layout: Layout) -> None:
        """Poll until ``layout`` serves the last saved alias."""
        wait_serving(self.kind, layout, self.aliases[-1])

    def by_hand(self, layout: Layout, tree: Path, row: str | None = None) -> None:
        """What the developer types: rsync, ssh restart, ssh status, then poll."""
        kind = self.kind
        commands = [("rsync", rsync_argv(kind, tree, layout))] + [
            (f"ssh {action}", ssh_argv(kind, layout, kind.service(layout, action)))
            for action in ("restart", "status")]
        for name, argv in commands:
            seconds = timed(lambda: run(argv))
            if row:
                self.steps.add(row, name, seconds)
        seconds = timed(lambda: self.serving(layout))
        if row:
            self.steps.add(row, "poll until served", seconds)


Measure = Callable[[Bench], None]

#: the measures in the order they run, each with the rows it answers for
MEASURES: list[tuple[frozenset[str], Measure]] = []


def row(*names: str) -> Callable[[Measure], Measure]:
    """Register the measure of the rows ``names``: it runs when any of them is wanted.

    Measures run in the order they are registered (the order of this file).
    """
    def register(measure: Measure) -> Measure:
        MEASURES.append((frozenset(names), measure))
        return measure
    return register


def bench_kind(kind: Kind, wanted: set[str], runs: int, results: list[Row],
               steps: Steps, tree: str = "whole") -> None:
    """The ``wanted`` rows on ``kind``'s controllers, brought up here and stopped at the end."""
    if not wanted:
        return
    with Bench(kind, wanted, runs, results, steps, tree) as bench:
        for names, measure in MEASURES:
            if wanted & names:
                measure(bench)


@row("no-restart")
def no_restart(bench: Bench) -> None:
    """One changed file, no restart, vs plain rsync -avz -e ssh (same controller)."""
    def ours_sync() -> None:
        started = time.perf_counter()
        text = bench.task("deploy", "--inventory", str(bench.one), "--no-restart", "-v")
        bench.steps.from_output("no-restart", text)
        bench.steps.add("no-restart", "wall", time.perf_counter() - started)

    ours, manual = side_by_side(bench.runs, ours_sync,
                                lambda: run(rsync_argv(bench.kind, bench.source, bench.first)),
                                before=bench.edit)
    bench.add("one changed file, no restart", "invoke deploy --no-restart",
              "rsync -avz -e ssh", ours, manual, 1.2)


@row("growth")
def growth(bench: Bench) -> None:
    """One changed file in trees of ~20, ~1,500 and ~6,000 files: how each cost grows."""
    for grown in growth_trees(bench):
        grown_row(bench, grown)


def growth_trees(bench: Bench) -> tuple[Path, Path, Path]:
    """The feature tree, the whole tree, and the whole tree with :data:`GROWTH_COPIES`
    more copies of it inside."""
    small = bench.work / "growth-small" / "cinder"
    shutil.copytree(feature_tree(bench.kind), small)
    medium = bench.work / "growth-whole" / "cinder"
    if bench.tree == "whole":
        shutil.copytree(bench.source, medium)
    else:
        whole_tree(bench.kind, bench.first, medium)
    large = bench.work / "growth-large" / "cinder"
    shutil.copytree(medium, large)
    for index in range(1, GROWTH_COPIES + 1):
        shutil.copytree(medium, large / f"devloop_copy{index}",
                        ignore=shutil.ignore_patterns("devloop_*"))
    return small, medium, large


def grown_row(bench: Bench, grown: Path) -> None:
    """One changed file of the tree ``grown``, no restart: ours against rsync."""
    kind = bench.kind
    grown_probe = grown / "devloop_bench" / "probe.py"
    grown_probe.parent.mkdir(exist_ok=True)
    grown_probe.write_text("EDIT = None\n")
    hosts = write_inventory(bench.work / f"{grown.parent.name}.yaml", grown, kind,
                            bench.ours_ctl[:1])
    # untimed: the tree laid on both controllers by rsync (the large tree's
    # 4,500 new .py files are not worth compiling for this row), then each
    # side's first comparison of the whole tree (ours keeps its record)
    for layout in (bench.first, bench.manual_first):
        run(rsync_argv(kind, grown, layout))
    bench.task("deploy", "--inventory", str(hosts), "--no-restart")
    ours, manual = side_by_side(
        bench.runs, lambda: bench.task("deploy", "--inventory", str(hosts), "--no-restart"),
        lambda: run(rsync_argv(kind, grown, bench.manual_first)),
        before=lambda: bench.edit(grown))
    bench.add(f"growth: one changed file of {count_files(grown):,} files, no restart",
              "invoke deploy --no-restart", "rsync -avz -e ssh", ours, manual, None)


@row("loop")
def loop(bench: Bench) -> None:
    """Edit to serving: the new code answers over HTTP; one shot from a cold shell."""
    def ours_loop() -> None:
        started = time.perf_counter()
        text = bench.task("loop", "--inventory", str(bench.one))
        wall = time.perf_counter() - started
        seconds = timed(lambda: bench.serving(bench.first))
        bench.steps.from_output("loop", text, wall)
        bench.steps.add("loop", "poll until served", seconds)

    ours, manual = side_by_side(bench.runs, ours_loop,
                                lambda: bench.by_hand(bench.manual_first, bench.source, "manual"),
                                before=lambda: bench.save(bench.source))
    bench.add("edit to serving (new code answers over HTTP)", "invoke loop",
              "rsync; ssh restart; ssh status; poll", ours, manual, 0.6)


class Watching:
    """``invoke watch`` running on the source tree (its connection open), and the
    manual side's own copy of the tree, out of the watcher's sight."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.manual_tree = bench.work / "manual" / "cinder"
        shutil.copytree(bench.source, self.manual_tree)
        self.watcher = Watcher(bench.one, bench.env)

    def burst_over(self, done: int, row: str) -> None:
        """(untimed) let the watcher finish a burst before the next run."""
        seconds = timed(lambda: wait_for(lambda: self.watcher.done > done, "watch burst",
                                         interval=0.005))
        self.bench.steps.add(row, "(untimed) rest of the burst", seconds)

    def watched_side(self, side: Callable[[], None], row: str) -> Callable[[], float]:
        """``side`` timed, then (untimed) the rest of the watcher's burst."""
        def measured() -> float:
            done = self.watcher.done
            seconds = timed(side)
            self.burst_over(done, row)
            return seconds
        return measured

    def alternate(self, ours_side: Callable[[], float], manual_side: Callable[[], None]
                  ) -> tuple[list[float], list[float]]:
        """:func:`side_by_side` for a side that times itself."""
        ours: list[float] = []
        manual: list[float] = []
        for index in range(self.bench.runs):
            if index % 2:
                manual.append(timed(manual_side))
            ours.append(ours_side())
            if not index % 2:
                manual.append(timed(manual_side))
        return ours, manual


@row("watch-sync", "watch")
def watch_rows(bench: Bench) -> None:
    """With ``invoke watch`` already running: the edit on the controller, then served."""
    watching = Watching(bench)
    try:
        target = bench.kind.cinder_dir(bench.first) / "devloop_bench" / "probe.py"
        if "watch-sync" in bench.wanted:
            watch_sync(watching, target)
        if "watch" in bench.wanted:
            watch_serving(watching)
    finally:
        watching.watcher.stop()


def watch_sync(watching: Watching, target: Path) -> None:
    """Save -> the file on the controller (``target``), against rsync of the manual copy."""
    bench = watching.bench

    def saved_to_controller() -> None:
        bench.edit()
        wanted_text = bench.probe.read_text()
        wait_for(lambda: target.exists() and target.read_text() == wanted_text,
                 "the edit on the controller", interval=0.005)

    ours, manual = watching.alternate(
        watching.watched_side(saved_to_controller, "watch-sync"),
        lambda: (bench.edit(watching.manual_tree),
                 run(rsync_argv(bench.kind, watching.manual_tree, bench.manual_first))))
    bench.add("with invoke watch running: save -> file on the controller",
              "save -> on the controller", "rsync -avz -e ssh", ours, manual, 0.5)


def watch_serving(watching: Watching) -> None:
    """Save -> served, against the manual sequence on the manual copy."""
    bench = watching.bench

    def watched() -> None:
        bench.save(bench.source)
        bench.serving(bench.first)

    def by_hand_copy() -> None:
        bench.save(watching.manual_tree)
        bench.by_hand(bench.manual_first, watching.manual_tree)

    mark = len(watching.watcher.lines)
    ours, manual = watching.alternate(watching.watched_side(watched, "watch"), by_hand_copy)
    bench.steps.from_output("watch", "".join(watching.watcher.lines[mark:]))
    bench.add("edit to serving, with invoke watch running", "save -> served",
              "rsync; ssh restart; ssh status; poll", ours, manual, 0.4)


@row("fleet")
def fleet(bench: Bench) -> None:
    """N controllers with restart vs N manual sequences run in parallel."""
    def ours_fleet() -> None:
        started = time.perf_counter()
        bench.task("deploy", "--inventory", str(bench.fleet_hosts))
        wall = time.perf_counter() - started

        def all_served() -> None:
            for layout in bench.ours_ctl:
                bench.serving(layout)

        seconds = timed(all_served)
        # (invoke deploy reports no per-step times; loop and watch do)
        bench.steps.add("fleet", "wall of the deploy", wall)
        bench.steps.add("fleet", "poll until all served", seconds)

    ours, manual = side_by_side(bench.runs, ours_fleet, lambda: by_hand_in_parallel(bench),
                                before=lambda: bench.save(bench.source))
    bench.add(f"{bench.fleet_label} with restart, to serving",
              f"invoke deploy ({len(bench.ours_ctl)})",
              f"{len(bench.manual_ctl)} manual sequences in parallel", ours, manual, 1.2)


def by_hand_in_parallel(bench: Bench) -> None:
    """The manual sequence on every manual controller at once, one thread each."""
    failed: list[BaseException] = []

    def one_by_hand(layout: Layout) -> None:
        try:
            bench.by_hand(layout, bench.source, "manual fleet")
        except BaseException as exc:      # SystemExit from run(): report it here
            failed.append(exc)

    threads = [threading.Thread(target=one_by_hand, args=(layout,))
               for layout in bench.manual_ctl]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]


@row("fleet-vs-one")
def fleet_vs_one(bench: Bench) -> None:
    """Deploy with restart to the fleet against to one controller (information)."""
    ours, manual = side_by_side(
        bench.runs, lambda: bench.task("deploy", "--inventory", str(bench.fleet_hosts)),
        lambda: bench.task("deploy", "--inventory", str(bench.one)), before=bench.edit)
    bench.add(f"deploy with restart: {bench.fleet_label} vs 1 (information)",
              bench.fleet_label, "1 controller", ours, manual, None)


@row("list")
def task_list(bench: Bench) -> None:
    """Start-up: invoke --list with the project's tasks vs an empty tasks file."""
    empty = bench.work / "empty"
    empty.mkdir()
    # (a tasks file with no task at all makes --list fail: one no-op task)
    (empty / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef noop(c):\n"
                                    "    pass\n")
    ours, manual = side_by_side(
        bench.runs, lambda: bench.task("--list"),
        lambda: run([sys.executable, "-m", "invoke", "--search-root", str(empty), "--list"]))
    bench.add("invoke --list: project tasks vs an empty tasks file", "project tasks",
              "one no-op task", ours, manual, 1.5)


@row("health")
def health(bench: Bench) -> None:
    """Deploy with restart, with the health checks vs the tree before them."""
    before = bench.work / "before-health-checks"
    before.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_HEALTH_CHECKS],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)

    def change() -> None:
        bench.edit()                # a module
        bench.save(bench.source)    # and an extension, so every check runs

    ours, manual = side_by_side(
        bench.runs, lambda: bench.task("deploy", "--inventory", str(bench.one)),
        lambda: run([sys.executable, "-m", "invoke", "--search-root", str(before),
                     "deploy", "--inventory", str(bench.one)], bench.env), before=change)
    bench.add("deploy with restart, after vs before the health checks",
              "with checks", f"at {BEFORE_HEALTH_CHECKS}", ours, manual, 1.1)


def spread(values: list[float]) -> str:
    """min-max around the median, as a percentage of the median: how noisy a side was."""
    middle = statistics.median(values)
    return f"{100 * (max(values) - min(values)) / middle:.0f}%"


#: how each kind's controllers run cinder-api, for the results file's list of kinds
DESCRIBED = {
    "supervisord": "cinder-api in a venv started by supervisord, noauth; the manual "
                   "restart and status are ",
    "rdo": "systemd-nspawn containers laid out as RDO ships Cinder "
           "(`openstack-cinder-api.service`, system site-packages), Keystone in front "
           "(the probe and our health checks carry a token); the manual restart and "
           "status are ",
    "legacy": "systemd-nspawn containers with Python 2.7 and Cinder Train (15.6.0) in "
              "the system site-packages, noauth; the manual restart and status are ",
    "devstack": "systemd-nspawn containers laid out as DevStack (uWSGI "
                "`devstack@c-api.service`, the checkout /opt/stack/cinder installed -e, "
                "MariaDB), Keystone in front; no fast restart on our side (refused under "
                "uWSGI); the manual restart and status are ",
}


def report(results: list[Row], steps: dict[str, Steps], kinds: list[Kind],
           args: argparse.Namespace, load_before: tuple[float, ...]) -> None:
    """Print the results (and with ``--write``, write them, keeping the hand-written part)."""
    load_after = os.getloadavg()
    lines = [*report_heading(kinds, args, load_before, load_after),
             *table_lines(results, kinds), *step_lines(steps, kinds), *raw_lines(results)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        previous = args.write.read_text() if args.write.exists() else ""
        args.write.write_text(with_kept_sections(text, previous))


def report_heading(kinds: list[Kind], args: argparse.Namespace,
                   load_before: tuple[float, ...], load_after: tuple[float, ...]) -> list[str]:
    """When and where it was measured, how to reproduce it, what the two sides are."""
    options = (f"--runs {args.runs}" + (f" --kind {args.kind}" if args.kind != "all" else "")
               + (f" --tree {args.tree}" if args.tree != "whole" else "")
               + "".join(f" --only {row}" for row in (args.only or ())))
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), {args.runs} runs per "
        "side, the two sides alternating run by run; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after. Reproduce with:",
        "",
        f"    .venv/bin/python bench/bench.py {options} --write bench/RESULTS.md",
        "",
        ("Every row edits one file of a whole Cinder checkout of the controller's release "
         "(its installed `cinder/` package without `__pycache__`, the repo's feature tree "
         "laid over it), except the growth rows, which edit one file of trees of about 20, "
         "1,500 and 6,000 files." if args.tree == "whole" else
         "Every row edits one file of the feature's overlay (`--tree patch`): "
         "`cinder_patch/cinder` with the release tree of the controller's Cinder laid "
         "over it."),
        "",
        "Ours runs on controllers in fast-restart mode (`invoke fast-restart on`); the manual "
        "commands (`rsync -avz -e ssh <tree>/ root@ctl:<site-packages>/cinder/`, a restart "
        "and a status over ssh, then polling until a request sees the edit) run on identical "
        "controllers as installed. Per kind:",
        "",
    ]
    for kind in kinds:
        lines.append(f"- **{kind.name}**: {DESCRIBED[kind.name]}{kind.manual_commands}.")
    return lines


def table_lines(results: list[Row], kinds: list[Kind]) -> list[str]:
    """The table: a line per row, then per kind whether ours grows less than rsync."""
    lines = [
        "",
        "| kind | comparison | ours | median | baseline | median | ratio | target "
        "| spread ours / base |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        ratio = statistics.median(row.ours) / statistics.median(row.base)
        goal = ("information" if row.target is None else
                f"≤ {row.target} ({'met' if ratio <= row.target else 'NOT met'})")
        lines.append(f"| {row.kind} | {row.name} | {row.ours_label} "
                     f"| {statistics.median(row.ours):.3f} s | {row.base_label} "
                     f"| {statistics.median(row.base):.3f} s | {ratio:.2f} | {goal} "
                     f"| {spread(row.ours)} / {spread(row.base)} |")
    for kind in kinds:
        grown = [row for row in results if row.kind == kind.name
                 and row.name.startswith("growth:")]
        if len(grown) == 3:
            ours_growth = statistics.median(grown[2].ours) - statistics.median(grown[1].ours)
            rsync_growth = statistics.median(grown[2].base) - statistics.median(grown[1].base)
            verdict = "met" if ours_growth < rsync_growth else "NOT met"
            lines.append(f"| {kind.name} | growth from the whole tree to the largest "
                         f"(medians) | ours | {ours_growth:+.3f} s | rsync "
                         f"| {rsync_growth:+.3f} s | — | ours grows less ({verdict}) | |")
    return lines


def step_lines(steps: dict[str, Steps], kinds: list[Kind]) -> list[str]:
    """"Where the time goes": per kind that has any, the median of each step of each row."""
    lines = ["", "## Where the time goes", "",
             "Medians of each step over the runs of a row, in seconds (the loop's steps as it "
             "reports them; the manual ones timed around each command)."]
    for kind in kinds:
        seen_rows = steps[kind.name].seen
        if not seen_rows:
            continue
        lines += ["", f"### {kind.name}", ""]
        for name, seen in seen_rows.items():
            notes = steps[kind.name].notes.get(name, {})
            lines.append(f"- **{name}**: " + "; ".join(
                f"{step} {statistics.median(values):.3f}" for step, values in seen.items())
                + "".join(f" ({text}: {count} run(s))" for text, count in notes.items()))
    return lines


def raw_lines(results: list[Row]) -> list[str]:
    """Every run's seconds, both sides, row by row."""
    lines = ["", "## Raw seconds", ""]
    for row in results:
        lines.append(f"- {row.kind}, {row.name}: ours {', '.join(f'{x:.3f}' for x in row.ours)}; "
                     f"baseline {', '.join(f'{x:.3f}' for x in row.base)}")
    return lines


#: in a results file, what follows this line is written by hand (notes, the chaos
#: run, earlier runs) and kept when ``--write`` replaces the figures above it
KEEP_MARK = "<!-- bench.py --write keeps what follows -->"


def with_kept_sections(report: str, previous: str) -> str:
    """``report``, then what ``previous`` holds from :data:`KEEP_MARK` on (if it has one)."""
    mark = previous.find(KEEP_MARK)
    return report if mark < 0 else f"{report}\n{previous[mark:]}"


if __name__ == "__main__":
    main()
