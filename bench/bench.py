"""Benchmarks of cinder-devloop against sandbox controllers, side by side with
the commands a developer types by hand. Medians of N runs, alternating the
two sides run by run so that machine noise hits both alike.

    .venv/bin/python bench/bench.py [--runs 7] [--kind supervisord|rdo|legacy|devstack|all]
                                    [--tree whole|patch] [--only ROW ...]
                                    [--write bench/RESULTS.md]

Every row edits one file of a source tree. By default (``--tree whole``)
that tree is what a developer really deploys: a whole Cinder checkout of
the controller's release, made by copying the controller's installed
``cinder/`` package (without ``__pycache__``, mtimes kept) and laying the
repo's feature tree over it; ``--tree patch`` is the 19-file overlay alone.
The ``growth`` row deploys one changed file in trees of about 20, 1,500 and
6,000 files (the feature tree; the whole tree; the whole tree and three
more copies of it), ours against rsync, to show how each cost grows.

The same rows run on each kind of controller, one kind after the other
(a kind is a set of controllers and how a developer restarts cinder-api on
them by hand):

* ``supervisord``: up to eight sandbox controllers under
  /opt/cinder-devloop/bench (the first installs cinder once, the others
  hard-link-clone its venv); the manual restart is ``supervisorctl``;
* ``rdo``: up to four systemd-nspawn containers under
  /opt/cinder-devloop/bench-rdo, laid out as RDO ships Cinder, Keystone in
  front; the manual restart is ``systemctl restart
  openstack-cinder-api.service``; the fleet rows run 2 + 2 (each container
  runs Keystone and cinder-api, on 2 cores);
* ``legacy``: two systemd-nspawn containers under
  /opt/cinder-devloop/bench-legacy, Python 2.7 and Cinder Train, noauth;
  the manual restart is ``systemctl restart openstack-cinder-api.service``;
  no fleet rows.
* ``devstack``: the same under /opt/cinder-devloop/bench-devstack, laid out
  as DevStack (uWSGI ``devstack@c-api.service``, the checkout
  /opt/stack/cinder, MariaDB); our side cannot use fast restart there
  (refused under uWSGI), so both sides restart uWSGI.

The first half of a kind's controllers is switched to fast restart and runs
our tasks, the second half stays as installed and gets the manual commands,
so a manual restart restarts cinder-api itself. At the end (also on Ctrl-C,
a kill or an error) fast restart is turned off again and the controllers
are stopped by the sandbox's own ``down``.
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
from deploy.sandbox import SandboxLayout, rdo  # noqa: E402
from deploy.sandbox.common import free_port  # noqa: E402
from deploy.sandbox import devstack  # noqa: E402
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
# the last commit before "healthy means the sent code is serving" (issue 13)
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
    # a kill ends the run the way Ctrl-C does: through the finally that stops the controllers
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


def bench_kind(kind: Kind, wanted: set[str], runs: int, results: list[Row],
               steps: Steps, tree: str = "whole") -> None:
    """The ``wanted`` rows on ``kind``'s controllers, brought up here and stopped at the end."""
    if not wanted:
        return
    fleet = bool(wanted & {"fleet", "fleet-vs-one"})
    ours_ctl = kind.ours[:kind.fleet_size] if fleet else kind.ours[:1]
    manual_ctl = kind.manual[:kind.fleet_size] if "fleet" in wanted else kind.manual[:1]
    chosen = ours_ctl + manual_ctl
    env = kind.env
    work = Path(tempfile.mkdtemp(prefix=f"devloop-bench-{kind.name}-"))
    source = work / "cinder"
    probe = source / "devloop_bench" / "probe.py"
    first, manual_first = ours_ctl[0], manual_ctl[0]
    fleet_label = f"{len(ours_ctl)} controllers"

    def add(row: tuple[str, str, str, list[float], list[float], float | None]) -> None:
        results.append(Row(kind.name, *row))

    def task(*words: str) -> str:
        """``invoke WORDS`` from a cold shell (with the kind's clouds.yaml)."""
        return run([*INVOKE, *words], env)

    fast: list[Path] = []       # inventories switched to fast restart, switched off at the end
    try:
        for layout in chosen:
            kind.up(layout)
        if tree == "whole":
            whole_tree(kind, first, source)
        else:
            shutil.copytree(feature_tree(kind), source)
        (source / "devloop_bench").mkdir()
        probe.write_text("EDIT = None\n")
        print(f"--> bench {kind.name}: source tree {source}: {count_files(source)} files",
              file=sys.stderr)
        kind.prepare(chosen, work)
        env = kind.env
        one = write_inventory(work / "one.yaml", source, kind, ours_ctl[:1])
        fleet_hosts = write_inventory(work / "fleet.yaml", source, kind, ours_ctl)
        everything = write_inventory(work / "all.yaml", source, kind, chosen)
        task("deploy", "--inventory", str(everything), "db-sync", "--inventory",
             str(everything))
        if kind.fast_restart:
            fast.append(fleet_hosts)
            task("fast-restart", "on", "--inventory", str(fleet_hosts))
        for layout in chosen:
            check_probe(kind, layout)

        def edit(tree: Path = source) -> None:
            (tree / "devloop_bench" / "probe.py").write_text(f"EDIT = {uuid.uuid4().hex!r}\n")

        aliases: list[str] = []

        def save(tree: Path) -> None:
            alias = f"bench-{uuid.uuid4().hex[:8]}"
            aliases.append(alias)
            (tree / "api" / "contrib" / "devloop_bench_ext.py").write_text(extension(alias))

        def by_hand(layout: Layout, tree: Path, row: str | None = None) -> None:
            """What the developer types: rsync, ssh restart, ssh status, then poll."""
            commands = [("rsync", rsync_argv(kind, tree, layout))] + [
                (f"ssh {action}", ssh_argv(kind, layout, kind.service(layout, action)))
                for action in ("restart", "status")]
            for name, argv in commands:
                seconds = timed(lambda: run(argv))
                if row:
                    steps.add(row, name, seconds)
            seconds = timed(lambda: wait_serving(kind, layout, aliases[-1]))
            if row:
                steps.add(row, "poll until served", seconds)

        if "no-restart" in wanted:
            # one changed file, no restart, vs plain rsync -avz -e ssh (same controller)
            def ours_sync() -> None:
                started = time.perf_counter()
                text = task("deploy", "--inventory", str(one), "--no-restart", "-v")
                steps.from_output("no-restart", text)
                steps.add("no-restart", "wall", time.perf_counter() - started)

            ours, manual = side_by_side(runs, ours_sync,
                                        lambda: run(rsync_argv(kind, source, first)), before=edit)
            add(("one changed file, no restart", "invoke deploy --no-restart",
                            "rsync -avz -e ssh", ours, manual, 1.2))

        if "growth" in wanted:
            # one changed file in trees of ~20, ~1,500 and ~6,000 files: how each cost grows
            small = work / "growth-small" / "cinder"
            shutil.copytree(feature_tree(kind), small)
            medium = work / "growth-whole" / "cinder"
            if tree == "whole":
                shutil.copytree(source, medium)
            else:
                whole_tree(kind, first, medium)
            large = work / "growth-large" / "cinder"
            shutil.copytree(medium, large)
            for index in range(1, GROWTH_COPIES + 1):
                shutil.copytree(medium, large / f"devloop_copy{index}",
                                ignore=shutil.ignore_patterns("devloop_*"))
            for grown in (small, medium, large):
                grown_probe = grown / "devloop_bench" / "probe.py"
                grown_probe.parent.mkdir(exist_ok=True)
                grown_probe.write_text("EDIT = None\n")
                hosts = write_inventory(work / f"{grown.parent.name}.yaml", grown, kind,
                                        ours_ctl[:1])
                # untimed: the tree laid on both controllers by rsync (the large tree's
                # 4,500 new .py files are not worth compiling for this row), then each
                # side's first comparison of the whole tree (ours keeps its record)
                for layout in (first, manual_first):
                    run(rsync_argv(kind, grown, layout))
                task("deploy", "--inventory", str(hosts), "--no-restart")

                def grown_edit(path: Path = grown_probe) -> None:
                    path.write_text(f"EDIT = {uuid.uuid4().hex!r}\n")

                def grown_ours(hosts: Path = hosts) -> None:
                    task("deploy", "--inventory", str(hosts), "--no-restart")

                def grown_rsync(tree: Path = grown) -> None:
                    run(rsync_argv(kind, tree, manual_first))

                ours, manual = side_by_side(runs, grown_ours, grown_rsync, before=grown_edit)
                add((f"growth: one changed file of {count_files(grown):,} files, no restart",
                     "invoke deploy --no-restart", "rsync -avz -e ssh", ours, manual, None))

        if "loop" in wanted:
            # edit to serving: the new code answers over HTTP; one shot from a cold shell
            def ours_loop() -> None:
                started = time.perf_counter()
                text = task("loop", "--inventory", str(one))
                wall = time.perf_counter() - started
                seconds = timed(lambda: wait_serving(kind, first, aliases[-1]))
                steps.from_output("loop", text, wall)
                steps.add("loop", "poll until served", seconds)

            ours, manual = side_by_side(runs, ours_loop,
                                        lambda: by_hand(manual_first, source, "manual"),
                                        before=lambda: save(source))
            add(("edit to serving (new code answers over HTTP)", "invoke loop",
                            "rsync; ssh restart; ssh status; poll", ours, manual, 0.6))

        if wanted & {"watch", "watch-sync"}:
            # `invoke watch` already running (connection open). The manual side works
            # from its own copy of the tree, out of the watcher's sight.
            manual_tree = work / "manual" / "cinder"
            shutil.copytree(source, manual_tree)
            watcher = Watcher(one, env)
            try:
                target = kind.cinder_dir(first) / "devloop_bench" / "probe.py"

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
                    for index in range(runs):
                        if index % 2:
                            manual.append(timed(manual_side))
                        ours.append(ours_side())
                        if not index % 2:
                            manual.append(timed(manual_side))
                    return ours, manual

                if "watch-sync" in wanted:
                    ours, manual = alternate(
                        watched_side(saved_to_controller, "watch-sync"),
                        lambda: (edit(manual_tree),
                                 run(rsync_argv(kind, manual_tree, manual_first))))
                    add(("with invoke watch running: save -> file on the controller",
                                    "save -> on the controller", "rsync -avz -e ssh",
                                    ours, manual, 0.5))

                if "watch" in wanted:
                    def watched() -> None:
                        save(source)
                        wait_serving(kind, first, aliases[-1])

                    def by_hand_copy() -> None:
                        save(manual_tree)
                        by_hand(manual_first, manual_tree)

                    mark = len(watcher.lines)
                    ours, manual = alternate(watched_side(watched, "watch"), by_hand_copy)
                    steps.from_output("watch", "".join(watcher.lines[mark:]))
                    add(("edit to serving, with invoke watch running",
                                    "save -> served", "rsync; ssh restart; ssh status; poll",
                                    ours, manual, 0.4))
            finally:
                watcher.stop()

        if "fleet" in wanted:
            # N controllers with restart vs N manual sequences run in parallel
            def ours_fleet() -> None:
                started = time.perf_counter()
                task("deploy", "--inventory", str(fleet_hosts))
                wall = time.perf_counter() - started

                def all_served() -> None:
                    for layout in ours_ctl:
                        wait_serving(kind, layout, aliases[-1])

                seconds = timed(all_served)
                # (invoke deploy reports no per-step times; loop and watch do)
                steps.add("fleet", "wall of the deploy", wall)
                steps.add("fleet", "poll until all served", seconds)

            def manual_fleet() -> None:
                failed: list[BaseException] = []

                def one_by_hand(layout: Layout) -> None:
                    try:
                        by_hand(layout, source, "manual fleet")
                    except BaseException as exc:      # SystemExit from run(): report it here
                        failed.append(exc)

                threads = [threading.Thread(target=one_by_hand, args=(layout,))
                           for layout in manual_ctl]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                if failed:
                    raise failed[0]

            ours, manual = side_by_side(runs, ours_fleet, manual_fleet,
                                        before=lambda: save(source))
            add((f"{fleet_label} with restart, to serving", f"invoke deploy ({len(ours_ctl)})",
                 f"{len(manual_ctl)} manual sequences in parallel", ours, manual, 1.2))

        if "fleet-vs-one" in wanted:
            ours, manual = side_by_side(
                runs, lambda: task("deploy", "--inventory", str(fleet_hosts)),
                lambda: task("deploy", "--inventory", str(one)), before=edit)
            add((f"deploy with restart: {fleet_label} vs 1 (information)",
                 fleet_label, "1 controller", ours, manual, None))

        if "list" in wanted:
            # start-up: invoke --list with the project's tasks vs an empty tasks file
            empty = work / "empty"
            empty.mkdir()
            # (a tasks file with no task at all makes --list fail: one no-op task)
            (empty / "tasks.py").write_text("from invoke import task\n\n\n@task\ndef noop(c):\n"
                                            "    pass\n")
            ours, manual = side_by_side(
                runs, lambda: task("--list"),
                lambda: run([sys.executable, "-m", "invoke", "--search-root", str(empty), "--list"]))
            add(("invoke --list: project tasks vs an empty tasks file", "project tasks",
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
                runs, lambda: task("deploy", "--inventory", str(one)),
                lambda: run([sys.executable, "-m", "invoke", "--search-root", str(before),
                             "deploy", "--inventory", str(one)], env), before=change)
            add(("deploy with restart, after vs before the health checks",
                            "with checks", f"at {BEFORE_HEALTH_CHECKS}", ours, manual, 1.1))
    finally:
        for inventory in fast:
            try:
                task("fast-restart", "off", "--inventory", str(inventory))
            except SystemExit as exc:
                print(exc, file=sys.stderr)
        for layout in chosen:
            try:
                (kind.cinder_dir(layout) / "api" / "contrib" / "devloop_bench_ext.py").unlink(
                    missing_ok=True)
            except (OSError, StopIteration):      # never brought up
                pass
            kind.down(layout)
        shutil.rmtree(work, ignore_errors=True)


def spread(values: list[float]) -> str:
    """min-max around the median, as a percentage of the median: how noisy a side was."""
    middle = statistics.median(values)
    return f"{100 * (max(values) - min(values)) / middle:.0f}%"


def report(results: list[Row], steps: dict[str, Steps], kinds: list[Kind],
           args: argparse.Namespace, load_before: tuple[float, ...]) -> None:
    load_after = os.getloadavg()
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
    described = {
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
    for kind in kinds:
        lines.append(f"- **{kind.name}**: {described[kind.name]}{kind.manual_commands}.")
    lines += [
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
    lines += ["", "## Where the time goes", "",
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
    lines += ["", "## Raw seconds", ""]
    for row in results:
        lines.append(f"- {row.kind}, {row.name}: ours {', '.join(f'{x:.3f}' for x in row.ours)}; "
                     f"baseline {', '.join(f'{x:.3f}' for x in row.base)}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        previous = args.write.read_text() if args.write.exists() else ""
        args.write.write_text(with_kept_sections(text, previous))


#: in a results file, what follows this line is written by hand (notes, the chaos
#: run, earlier runs) and kept when ``--write`` replaces the figures above it
KEEP_MARK = "<!-- bench.py --write keeps what follows -->"


def with_kept_sections(report: str, previous: str) -> str:
    """``report``, then what ``previous`` holds from :data:`KEEP_MARK` on (if it has one)."""
    mark = previous.find(KEEP_MARK)
    return report if mark < 0 else f"{report}\n{previous[mark:]}"


if __name__ == "__main__":
    main()
