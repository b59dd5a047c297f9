"""Chaos run: kill cinder-devloop at random moments, then check that nothing is lost.

    .venv/bin/python bench/chaos.py [--kind supervisord|rdo|legacy|all] [--runs 100]
                                    [--seed 17] [--max-minutes 40] [--json FILE]
                                    [--write bench/RESULTS.md]

Each kind of controller (the supervisord sandbox, the rdo and the legacy
container) is booted with the project's own sandbox code in a fresh
directory of its own under /tmp, and stopped by PID (``down``) at the end.
Against it, ``--runs`` times, a seeded random operation runs as a user
types it: ``invoke deploy --no-restart`` of a small tree (one call,
deploy/controller/send.py) or of a tree with a symlink (rsync), ``invoke loop``, or
``invoke rollback``; the two versions of each tree alternate. At a random
moment within the operation's usual duration the tool is killed with
SIGKILL (its whole process group, as a closed terminal does), or its SSH
connection is dropped (the controller-side sshd processes serving it are
killed by PID), or, harsher, every process of its SSH session on the
controller is killed (the helper writing the files too, as a crash would),
or the disk fills up: the package's directories the trees write to and the
deploys' directory (backups and records) are small tmpfs mounts of their
own (mounted in the controller's namespace for the run, unmounted after),
and at that moment one or both are filled to the last byte; the tool then
runs on to its end, which must be exit 0 or one ``error:`` line, with no
temporary copy left behind (the space is freed before the checks).
Then, once no process of that session is left on the controller:

* every file of the cinder package is either the bytes it had before the
  operation or the bytes the operation meant to leave (sha256; no stray
  temporary file);
* every file that differs from the package as installed belongs to a deploy
  record that is applied (or ``applying``);
* a record left ``applying`` is named by ``invoke status``;
* an interrupted operation is recovered, by ``invoke rollback`` or by running
  it again, and the package then matches the state before or after it byte
  for byte.

At the end every deploy is rolled back and the package must be as installed.
Only loopback and the project's own network namespaces are used.
"""
from __future__ import annotations

import argparse
import collections
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

#: set on SIGINT/SIGTERM: every kind ends its current run, cleans up and stops
STOP = threading.Event()
#: the operations and how often each is drawn
OPS = {"deploy-small": 3, "deploy-rsync": 3, "loop": 1, "rollback": 3}
#: how often each way of cutting the tool off is drawn
KILLS = {"sigkill-tool": 3, "drop-ssh": 2, "kill-session": 1, "fill-disk": 2}
#: the small filesystems the disk filling fills: (where, size)
MOUNT_BYTES = {"package": 16 << 20, "deploys": 256 << 20}
SMALL_FILES = 10
RSYNC_FILES = 300
REPLACED = "version.py"     # an installed file both trees replace (a comment appended)
PACKAGE = "devloop_chaos"   # the package the trees add to cinder/


# --- files ---------------------------------------------------------------------

_LEFTOVER = re.compile(r"^\.devloop-restore-\d+-(?P<restore>.+)$|^\.(?P<put>.+)\.devloop-\d+$"
                       r"|^\.(?P<rsync>.+)\.[A-Za-z0-9]{6}$")


def leftover_of(rel: str) -> str | None:
    """The file whose temporary copy ``rel`` is (restore.py's, receive_tree.py's, rsync's)."""
    directory, _, name = rel.rpartition("/")
    match = _LEFTOVER.match(name)
    if not match:
        return None
    base = next(group for group in match.groups() if group)
    return f"{directory}/{base}" if directory else base


def digest(path: Path) -> str:
    """sha256 of a file's bytes, or the target of a symlink."""
    if path.is_symlink():
        return "-> " + os.readlink(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Snapshotter:
    """Digests of every file of a tree (no bytecode), re-hashing only what changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[tuple[int, ...], str]] = {}

    def __call__(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for directory, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in dirs + names:
                path = Path(directory, name)
                if name.endswith((".pyc", ".pyo")) or (name in dirs and not path.is_symlink()):
                    continue
                info = path.lstat()
                key = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
                rel = path.relative_to(self.root).as_posix()
                cached = self._cache.get(rel)
                if cached is None or cached[0] != key:
                    cached = (key, digest(path))
                    self._cache[rel] = cached
                found[rel] = cached[1]
        return found


def make_tree(base: Path, version: str, installed: bytes, rng: random.Random, *,
              rsync: bool) -> dict[str, str]:
    """Write one version of a tree under ``base/cinder``; its digests by path."""
    tree = base / "cinder"
    package = tree / (PACKAGE + ("_rsync" if rsync else ""))
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"# chaos tree {version}\n")
    count = RSYNC_FILES if rsync else SMALL_FILES
    for index in range(count):
        padding = "".join(f"# {rng.getrandbits(64):016x}\n" for _ in range(rng.randint(5, 120)))
        (package / f"m{index:03d}.py").write_text(
            f"VERSION = {version!r}\nVALUE = {rng.getrandbits(32)}\n{padding}")
    # a file only this version has
    (package / f"only_{version.lower()}.py").write_text(f"ONLY = {version!r}\n")
    if rsync:   # a symlink: the tree needs rsync; its target differs per version
        (package / "alias.py").symlink_to("m000.py" if version == "A" else "m001.py")
    (tree / REPLACED).write_bytes(installed + f"\n# devloop chaos {version}"
                                  f"{' rsync' if rsync else ''}\n".encode())
    return {path.relative_to(tree).as_posix(): digest(path)
            for path in sorted(tree.rglob("*")) if path.is_symlink() or path.is_file()}


# --- processes -------------------------------------------------------------------

def _procs() -> list[tuple[int, int, str]]:
    """(pid, ppid, comm) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        found.append((int(entry.name), ppid, comm))
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def _is_pyenv(pid: int) -> bool:
    try:
        return b"pyenv" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Controller:
    """What the chaos run needs of a controller handle (tests/integration/controllers.py)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.kind = handle.kind
        self.address, self.port = handle.ssh_address

    def env(self) -> dict[str, str]:
        clouds = getattr(self.handle.layout, "clouds_file", None)
        return {"OS_CLIENT_CONFIG_FILE": str(clouds)} if clouds else {}

    def sshd_listener(self) -> int | None:
        """The PID of the controller's listening sshd."""
        if self.kind == "supervisord":
            from deploy.sandbox.common import pid_from

            layout = self.handle.layout
            return pid_from(layout.sshd_pidfile, str(layout.sshd_config))
        leader = self.handle.instance.leader()
        for pid, ppid, comm in _procs():
            if ppid == leader and comm == "sshd":
                return pid
        return None

    def session_processes(self) -> list[int]:
        """Every process a client's SSH session to this controller runs (by SSH_CONNECTION)."""
        listener = self.sshd_listener()
        found = []
        for pid, ppid, comm in _procs():
            if ppid == listener and comm == "sshd":
                found.append(pid)      # the per-connection sshd
                continue
            words = _environ(pid).get("SSH_CONNECTION", "").split()
            if len(words) == 4 and words[2] == self.address and words[3] == str(self.port):
                found.append(pid)
        return found

    def kill_session(self) -> int:
        """SIGKILL every process of the SSH sessions to this controller; how many.

        Spared: a login shell's ``pyenv rehash`` (root's .bashrc on this
        machine runs it for each ssh command) and what it runs; killed, it
        leaves a lock that makes every ssh session on the machine wait 60 s.
        """
        parents = {pid: ppid for pid, ppid, _ in _procs()}
        victims = [pid for pid in self.session_processes()
                   if not _is_pyenv(pid) and not _is_pyenv(parents.get(pid, 0))]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)

    def view(self, path: str) -> Path:
        """``path`` on the controller as this machine reads it, mounts of its own included.

        A container's mounts live in its own namespace; its root as its PID 1
        sees it (``/proc/PID/root``) shows them.
        """
        if self.kind == "supervisord":
            return Path(path)
        return Path(f"/proc/{self.handle.instance.leader()}/root") / path.lstrip("/")

    def mount_small(self, path: str, size: int) -> None:
        """A tmpfs of ``size`` bytes at ``path`` on the controller (created if missing)."""
        for argv in (["mkdir", "-p", "--", path],
                     ["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "devloop-chaos",
                      path]):
            result = self.handle.run(argv)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")

    def unmount(self, path: str) -> None:
        self.handle.run(["umount", "--lazy", "--", path])
        self.handle.run(["rmdir", "--", path])

    def fill(self, path: str) -> None:
        """Take every free byte of ``path``'s filesystem (a file ``.devloop-filler`` in it)."""
        fd = os.open(self.view(path) / ".devloop-filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
        finally:
            os.close(fd)

    def unfill(self, path: str) -> None:
        (self.view(path) / ".devloop-filler").unlink(missing_ok=True)

    def drop_connections(self) -> int:
        """Kill the controller-side sshd processes serving connections; how many."""
        listener = self.sshd_listener()
        victims = [pid for pid, ppid, comm in _procs() if ppid == listener and comm == "sshd"]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)


# --- one run of the tool -----------------------------------------------------------

@dataclass
class ToolRun:
    argv: list[str]
    lines: list[str] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)   # when each line came, from the start
    rc: int | None = None
    seconds: float = 0.0
    cut: str = ""          # how it was cut off ("" if it ended by itself)


def run_tool(argv: list[str], env: dict[str, str], *, kill_after: float | None = None,
             after_lines: int = 0,
             how: str = "", controller: Controller | None = None,
             fill: Callable[[], None] | None = None,
             timeout: float = 240.0) -> ToolRun:
    """Run ``python -m invoke ARGV``; cut it off (``how``) ``kill_after`` seconds after it
    printed ``after_lines`` lines (``fill-disk``: ``fill`` runs then, and the tool on)."""
    run = ToolRun(argv)
    assert how != "fill-disk" or fill is not None
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **env})
    assert proc.stdout is not None

    def read() -> None:
        for line in proc.stdout:
            run.offsets.append(time.monotonic() - started)
            run.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if kill_after is not None:
            while len(run.lines) < after_lines and proc.poll() is None:
                time.sleep(0.005)
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                if how == "fill-disk" and fill is not None:
                    fill()
                    run.cut = how
                elif how in ("kill-session", "drop-ssh") and controller is not None:
                    # the controller-side session dies whole (sshd and what it runs),
                    # or its sshd only; the connection may not be open yet: cut it
                    # once it is (not cut if the tool ends first)
                    cut = controller.kill_session if how == "kill-session" else \
                        controller.drop_connections
                    while proc.poll() is None:
                        if cut():
                            run.cut = how
                            break
                        time.sleep(0.02)
                else:
                    run.cut = how
                    os.killpg(proc.pid, signal.SIGKILL)
        try:
            run.rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.cut = run.cut + "+hung"
            os.killpg(proc.pid, signal.SIGKILL)
            run.rc = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
    run.seconds = time.monotonic() - started
    return run


_PATHISH = re.compile(r"\S*/\S*")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_DEPLOY_ID = re.compile(r"\b(\d{8}T\d{6}(\.\d{3})?Z|NTNZ)-[0-9a-f]*\S*")


def bucket(point: str) -> str:
    """One name per step, whatever the ids, services and states it printed."""
    point = _DEPLOY_ID.sub("ID", point)
    point = re.sub(r"restart (openstack-cinder-api\.service|cinder-api)", "restart the service",
                   point)
    step, _, detail = point.partition(" / ")
    if "pid N" in detail or "API HTTP" in detail:
        detail = "service state shown"
    return f"{step} / {detail}" if detail else step


def disk_error(line: str) -> str:
    """What a full disk's error line says, its ids, paths and sizes elided."""
    text = re.sub(r"^error: \S+: ", "", line.strip())
    text = _DEPLOY_ID.sub("ID", text)
    text = re.sub(r"\d+(\.\d+)? (bytes|KiB|MiB|GiB)", "N", _PATHISH.sub("…", text))
    return text.split(" (", 1)[0] if text.startswith("replacing the files failed") else text


def kill_point(run: ToolRun) -> str:
    """The step the tool was in when cut off, from its progress output up to then."""
    if not run.cut:
        return "not cut"
    # a killed tool writes nothing more; one whose connection dropped ends
    # with its error: what it printed before that is where it was
    seen = [line.rstrip() for line in run.lines if line.strip()]
    for index, line in enumerate(seen):
        if line.startswith(("error:", "Traceback")):
            seen = seen[:index]
            break
    steps = [line for line in seen if line.startswith("--> ")]
    if not steps:
        return "starting (no progress line yet)"
    step = steps[-1].split(": ", 1)[-1]
    text = _NUMBER.sub("N", _PATHISH.sub("…", step))
    last = seen[-1]
    if last.startswith("    ") and not last.startswith("    ["):
        text += " / " + _NUMBER.sub("N", _PATHISH.sub("…", last.strip()))[:60]
    return bucket(text)


# --- the run over one controller ---------------------------------------------------

@dataclass
class Summary:
    kind: str
    seed: int
    runs: int = 0
    cuts: collections.Counter = field(default_factory=collections.Counter)
    points: collections.Counter = field(default_factory=collections.Counter)
    states: collections.Counter = field(default_factory=collections.Counter)
    ops: collections.Counter = field(default_factory=collections.Counter)
    status_checked: int = 0
    #: temporary copies a writer killed mid-file left beside a file (removed by recovery)
    leftovers: int = 0
    #: disk fillings, by what was filled ("package", "deploys", "both")
    filled: collections.Counter = field(default_factory=collections.Counter)
    #: the error lines a full disk ended in, by kind (ids and sizes elided)
    disk_errors: collections.Counter = field(default_factory=collections.Counter)
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, "runs": self.runs,
                "ops": dict(self.ops), "cuts": dict(self.cuts), "points": dict(self.points),
                "states": dict(self.states), "status_checked": self.status_checked,
                "leftovers": self.leftovers, "filled": dict(self.filled),
                "disk_errors": dict(self.disk_errors),
                "lost": self.lost, "problems": self.problems, "seconds": round(self.seconds)}


class Chaos:
    """The chaos run against one controller, with its own trees and inventories."""

    def __init__(self, handle: Any, work: Path, seed: int, log: Callable[[str], None]) -> None:
        self.ctl = Controller(handle)
        self.handle = handle
        self.work = work
        self.rng = random.Random(f"{seed}-{handle.kind}")
        self.summary = Summary(handle.kind, seed)
        self.log = log
        self.cinder = self.ctl.view(handle.cinder_path)
        self.snapshot = Snapshotter(self.cinder)
        self.deploys = self.ctl.view(handle.state_dir) / "deploys"
        #: where the disk filling strikes: small filesystems of their own
        self.mounts = {"package": [f"{handle.cinder_path}/{PACKAGE}",
                                   f"{handle.cinder_path}/{PACKAGE}_rsync"],
                       "deploys": [f"{handle.state_dir}/deploys"]}
        self.filled: list[str] = []
        installed = (self.cinder / REPLACED).read_bytes()
        self.trees: dict[str, dict[str, str]] = {}
        self.inventories: dict[str, Path] = {}
        for name, rsync in (("small", False), ("rsync", True)):
            for version in ("A", "B"):
                key = f"{name}-{version}"
                self.trees[key] = make_tree(work / key, version, installed, self.rng,
                                            rsync=rsync)
                inventory = work / f"{key}.yaml"
                inventory.write_text(yaml.safe_dump(
                    {"source": str(work / key / "cinder"),
                     "controllers": {"ctl": handle.entry()}}, sort_keys=False))
                self.inventories[key] = inventory
        #: each operation's first run, not cut: when it prints what
        self.timing: dict[str, ToolRun] = {}
        self.reported: set[str] = set()

    # -- the controller's state --

    def records(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in sorted(self.deploys.glob("*/record.json")):
            found[path.parent.name] = json.loads(path.read_text())
        return found

    def applied(self, records: dict[str, dict[str, Any]]) -> list[str]:
        return [rid for rid, rec in sorted(records.items())
                if rec.get("state") in ("applied", "applying")]

    def quiesce(self, deadline: float = 120.0) -> None:
        """Wait until no process of a cut-off session runs on the controller."""
        end = time.monotonic() + deadline
        while self.ctl.session_processes():
            if time.monotonic() > end:
                left = self.ctl.session_processes()
                self.problem(f"session processes still running {deadline:.0f} s after the "
                             f"cut: {left}; killed")
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            time.sleep(0.1)

    def problem(self, text: str) -> None:
        self.summary.problems.append(text)
        self.log(f"PROBLEM {text}")

    # -- expectations --

    def after_rollback(self, before: dict[str, str],
                       records: dict[str, dict[str, Any]]) -> tuple[dict[str, str], str | None]:
        applied = self.applied(records)
        if not applied:
            return dict(before), None
        record = records[applied[-1]]
        expected = dict(before)
        backup = self.ctl.view(record["backup"])
        proven = record.get("backups")        # (none in a record made before they were)
        for rel in record.get("replaced", []):
            if rel in (proven if isinstance(proven, dict) else {}) or \
                    proven is None and os.path.lexists(backup / rel):
                expected[rel] = digest(backup / rel)
        for rel in record.get("added", []):
            expected.pop(rel, None)
        return expected, applied[-1]

    def check(self, label: str, before: dict[str, str], after: dict[str, str],
              pristine: dict[str, str], cut: str = "") -> dict[str, str]:
        """The invariants after a (maybe cut) operation; the tree as found.

        After a full disk (``cut``), the tool ended by itself: no temporary copy may be left.
        """
        now = self.snapshot()
        records = self.records()
        covered = set()
        for rid in self.applied(records):
            covered |= set(records[rid].get("added", [])) | set(records[rid].get("replaced", []))
        # a writer killed mid-file leaves its temporary copy beside the file, never
        # over it; counted apart, and the recovery must remove it
        left = {rel for rel in now if rel not in before and rel not in after
                and leftover_of(rel) in covered}
        self.summary.leftovers += len(left)
        bad = [f"{rel}: a temporary copy left after a full disk" for rel in sorted(left)
               if cut == "fill-disk"]
        for rel in sorted(set(before) | set(after) | set(now) - left):
            if now.get(rel) not in (before.get(rel), after.get(rel)):
                bad.append(f"{rel}: {now.get(rel, 'absent')[:12]} is neither the old "
                           f"({before.get(rel, 'absent')[:12]}) nor the new "
                           f"({after.get(rel, 'absent')[:12]})")
        for rel in sorted(set(now) | set(pristine)):
            if now.get(rel) != pristine.get(rel) and rel not in covered and rel not in left:
                bad.append(f"{rel}: differs from the installed package and no applied "
                           f"record lists it")
        for line in bad:
            if line not in self.reported:     # a file found again is counted once
                self.reported.add(line)
                self.summary.lost += 1
                self.problem(f"{label}: {line}")
        return now

    def status_names(self, label: str, interrupted: list[str]) -> None:
        run = run_tool(["status", "--inventory", str(self.inventories["small-A"])],
                       self.ctl.env())
        text = "".join(run.lines)
        self.summary.status_checked += 1
        for rid in interrupted:
            if not re.search(rf"interrupted.*{re.escape(rid)}|{re.escape(rid)}.*interrupted",
                             text, re.IGNORECASE):
                self.problem(f"{label}: invoke status does not name the interrupted deploy "
                             f"{rid}:\n{text}")

    # -- one iteration --

    def choose(self, current: dict[str, str], applied: int) -> str:
        weights = dict(OPS)
        if applied == 0:
            weights["rollback"] = 0
        elif applied > 4:
            weights["rollback"] *= 3
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def tree_for(self, op: str, current: dict[str, str]) -> str:
        """The version of the op's tree the controller does not have, so it changes something."""
        name = "rsync" if op == "deploy-rsync" else "small"
        has_a = all(current.get(rel) == sha for rel, sha in self.trees[f"{name}-A"].items())
        return f"{name}-{'B' if has_a else 'A'}"

    def argv(self, op: str, tree: str | None) -> list[str]:
        if op == "rollback":
            restart = self.rng.random() < 0.15
            return ["rollback", "--inventory", str(self.inventories["small-A"]),
                    *([] if restart else ["--no-restart"])]
        inventory = ["--inventory", str(self.inventories[tree])]
        return ["loop", *inventory] if op == "loop" else ["deploy", "--no-restart", *inventory]

    def iteration(self, index: int, pristine: dict[str, str],
                  forced: str | None = None) -> None:
        before = self.snapshot()
        records_before = self.records()
        op = forced or self.choose(before, len(self.applied(records_before)))
        tree = None
        if op == "rollback":
            after, target = self.after_rollback(before, records_before)
            if target is None:
                op = "deploy-small"
        if op != "rollback":
            tree = self.tree_for(op, before)
            after, target = {**before, **self.trees[tree]}, None
        argv = self.argv(op, tree)
        # a moment of the timing run, uniform over its work (sometimes over its
        # start-up, before the first line), told as "so long after its Nth
        # line": a slower start-up this time does not shift the cut
        timing = self.timing.get(op)
        after_lines, delay = 0, 0.0
        if timing:
            offsets = timing.offsets
            if self.rng.random() < 0.15:
                delay = self.rng.uniform(0.0, offsets[0])
            else:
                moment = self.rng.uniform(offsets[0], timing.seconds)
                after_lines = sum(1 for offset in offsets if offset <= moment)
                delay = moment - offsets[after_lines - 1]
        how = self.rng.choices(list(KILLS), list(KILLS.values()))[0]
        where = self.rng.choice(["package", "deploys", "both"])
        label = f"#{index} {op}{' ' + tree if tree else ''}"
        calibrating = timing is None    # the first of each: timed, not cut
        run = run_tool(argv, self.ctl.env(), kill_after=None if calibrating else delay,
                       after_lines=after_lines, how=how, controller=self.ctl,
                       fill=lambda: self.fill(where))
        self.unfill()
        self.summary.runs += 1
        self.summary.ops[op] += 1
        if calibrating and run.rc == 0 and run.lines:
            self.timing[op] = run
        if run.cut.endswith("+hung"):
            self.problem(f"{label}: the tool did not end within 240 s of the cut:\n"
                         + "".join(run.lines[-8:]))
        if not run.cut and run.rc != 0:
            self.problem(f"{label}: not cut off, yet failed (exit {run.rc}):\n"
                         + "".join(run.lines[-8:]))
        if run.cut == "fill-disk":
            self.summary.filled[where] += 1
            errors = [index for index, line in enumerate(run.lines)
                      if line.startswith("error:")]
            # one line: nothing follows it (no detail, no traceback)
            if run.rc != 0 and (len(errors) != 1 or errors[0] != len(run.lines) - 1
                                or any("Traceback" in line for line in run.lines)):
                self.problem(f"{label}: a full disk ({where}) did not end in one error line "
                             f"(exit {run.rc}):\n" + "".join(run.lines[-8:]))
            if run.rc != 0 and len(errors) == 1:
                self.summary.disk_errors[disk_error(run.lines[errors[0]])] += 1
        point = kill_point(run)
        self.summary.cuts[run.cut or ("none (timing run)" if calibrating
                                      else "none (ended first)")] += 1
        self.summary.points[f"{op}: {point}"] += 1
        self.quiesce()
        now = self.check(label, before, after, pristine, run.cut)
        records = self.records()
        new = [rid for rid in records if rid not in records_before]
        interrupted = [rid for rid, rec in records.items() if rec.get("state") == "applying"
                       and (rid in new or rid == target)]
        if interrupted:
            self.status_names(label, interrupted)
        state = self.recover(label, op, argv, before, after, now, new, target, records)
        self.summary.states[state] += 1
        self.log(f"{label}: cut {run.cut or '-'} {delay:.2f} s after line {after_lines} "
                 f"at [{point}] "
                 f"exit {run.rc}; {state}")

    def recover(self, label: str, op: str, argv: list[str], before: dict[str, str],
                after: dict[str, str], now: dict[str, str], new: list[str],
                target: str | None, records: dict[str, dict[str, Any]]) -> str:
        """Bring an interrupted operation to an end; what was found and done."""
        applying = [rid for rid in new if records[rid].get("state") == "applying"]
        if op == "rollback":
            done = target is not None and records[target].get("state") == "rolled back"
            if done and now == after:
                return "clean new (rolled back)"
            if not done and now == before:
                return "clean old (nothing undone)"
            if done:   # rolled back, yet not as expected: a second rollback would undo more
                self.problem(f"{label}: rolled back, but the tree is not as its record says")
                self.summary.lost += 1
                return "rolled back, not as recorded"
            self.run_ok(label, ["rollback", "--no-restart", "--inventory",
                                str(self.inventories["small-A"])])
            self.expect(label, after, "the rollback's end")
            return "interrupted, recovered by running rollback again"
        if now == after and not applying:
            return "clean new (deploy complete)"
        if now == before and not new:
            return "clean old (nothing sent)"
        kind = "half-applied" if now not in (before, after) else \
            ("applying, nothing replaced yet" if now == before else "applying, all files new")
        if any(rel not in before and rel not in after for rel in now):
            kind += ", a temporary copy left"
        if self.rng.random() < 0.5:
            self.run_ok(label, ["rollback", "--no-restart", "--inventory",
                                str(self.inventories["small-A"])])
            self.expect(label, before, "the state before the deploy")
            return f"interrupted ({kind}), recovered by rollback"
        self.run_ok(label, argv)
        self.expect(label, after, "the deployed tree")
        return f"interrupted ({kind}), recovered by deploying again"

    def run_ok(self, label: str, argv: list[str]) -> None:
        run = run_tool(argv, self.ctl.env())
        if run.rc != 0:
            self.problem(f"{label}: recovery `invoke {' '.join(argv[:2])}` failed "
                         f"(exit {run.rc}):\n" + "".join(run.lines[-8:]))

    def expect(self, label: str, wanted: dict[str, str], what: str) -> None:
        now = self.snapshot()
        if now != wanted:
            differ = sorted(rel for rel in set(now) | set(wanted)
                            if now.get(rel) != wanted.get(rel))
            self.summary.lost += len(differ)
            self.problem(f"{label}: after recovery the tree is not {what}: {differ[:10]}")

    # -- the small filesystems the disk filling fills --

    def fill(self, where: str) -> None:
        for name in (["package", "deploys"] if where == "both" else [where]):
            for path in self.mounts[name]:
                self.filled.append(path)
                self.ctl.fill(path)

    def unfill(self) -> None:
        while self.filled:
            self.ctl.unfill(self.filled.pop())

    def mount(self) -> None:
        """The trees' directories in the package and the deploys' directory, on tmpfs mounts.

        (Mounted over an empty deploys' directory of this run's controller;
        another's records, if any, are hidden until the end.)
        """
        for name, paths in self.mounts.items():
            for path in paths:
                self.ctl.mount_small(path, MOUNT_BYTES[name])

    def unmount(self) -> None:
        for paths in self.mounts.values():
            for path in paths:
                self.ctl.unmount(path)

    def run(self, runs: int, max_seconds: float, ops: list[str] | None = None) -> Summary:
        self.mount()
        try:
            return self._run(runs, max_seconds, ops)
        finally:
            self.unfill()
            self.unmount()

    def _run(self, runs: int, max_seconds: float, ops: list[str] | None = None) -> Summary:
        started = time.monotonic()
        pristine = self.snapshot()
        first = self.applied(self.records())
        try:
            for index in range(runs):
                if STOP.is_set():
                    self.log(f"stopped after {index} runs")
                    break
                if time.monotonic() - started > max_seconds:
                    self.log(f"time limit reached after {index} runs")
                    break
                self.iteration(index, pristine, ops[index % len(ops)] if ops else None)
        finally:
            # undo every deploy this run made: the package as it was before it
            self.quiesce()
            to = first[-1] if first else "original"
            if self.applied(self.records())[-1:] != first[-1:]:
                self.run_ok("end", ["rollback", "--to", to, "--inventory",
                                    str(self.inventories["small-A"])])
            self.expect("end", pristine, "the package as it was before the chaos run")
            self.summary.seconds = time.monotonic() - started
        return self.summary


# --- booting, reporting --------------------------------------------------------------

def boot(kind: str, base: Path) -> tuple[Any, Callable[[], None]]:
    """A controller handle of ``kind`` in ``base``, and how to take it down (by PID)."""
    from deploy.sandbox import SandboxLayout, legacy, rdo, supervisord
    from tests.integration.controllers import LegacyController, RdoController, SupervisordController
    from tests.support import free_port

    tag = os.urandom(2).hex()
    if kind == "supervisord":
        layout = SandboxLayout(base / "controller", free_port(), free_port(), name=f"chaos-{tag}")
        module, handle = supervisord, SupervisordController(layout)
    elif kind == "rdo":
        layout = rdo.RdoLayout(base / "controller", name=f"chaos-rdo-{tag}")
        module, handle = rdo, RdoController(layout)
    else:
        layout = legacy.LegacyLayout(base / "controller", name=f"chaos-leg-{tag}")
        module, handle = legacy, LegacyController(layout)
    try:
        module.up(layout)
    except BaseException:
        module.down(layout, purge=True)
        raise
    return handle, lambda: module.down(layout, purge=True)


def chaos_on(kind: str, runs: int, seed: int, max_seconds: float) -> Summary:
    base = Path(tempfile.mkdtemp(prefix=f"devloop-chaos-{kind}-"))
    base.chmod(0o755)
    lock = threading.Lock()

    def log(text: str) -> None:
        with lock:
            print(f"[{kind}] {text}", flush=True)

    try:
        handle, down = boot(kind, base)
        try:
            work = base / "work"
            work.mkdir()
            return Chaos(handle, work, seed, log).run(runs, max_seconds)
        finally:
            down()
    finally:
        shutil.rmtree(base, ignore_errors=True)


#: what building and running the chaos run found, each fixed with a spec (kept in the report)
FOUND = [
    "A symlink that rsync deployed was in no record (`parse_changes` read only "
    "`>f` items, not `cL`): `rollback --to original` left it behind, and status did not "
    "count it. Now a new or re-pointed symlink is a change, and `restore.py` puts a "
    "replaced one back as a symlink (it used to copy what the link pointed at). "
    "Specs: `test_a_new_or_repointed_symlink_is_a_change_so_a_rollback_can_undo_it`, "
    "`test_restore_puts_back_a_replaced_symlink_as_the_symlink_it_was`.",
    "`invoke status` showed an interrupted deploy like a finished one. It now has an "
    "`interrupted` line naming each record left `applying`. Spec: "
    "`test_status_names_each_interrupted_deploy_and_how_to_undo_it`.",
    "A writer killed on the controller mid-file (the whole SSH session killed) leaves its "
    "temporary copy beside the target, never over it: `.NAME.devloop-PID` "
    "(receive_tree.py), `.devloop-restore-PID-NAME` (restore.py: seen on the supervisord "
    "sandbox, a rollback cut while restoring), `.NAME.XXXXXX` (rsync's receiver). The "
    "rollback now removes them first (that one was gone after the recovery), and so does "
    "the next deploy of that file (receive_tree.py; for rsync the `applying` record's "
    "call, deploy/remote/begin_deploy.py). The table counts such copies apart from lost "
    "files; each must be gone after the recovery. Specs: "
    "`test_restore_first_removes_what_writers_killed_mid_file_left_beside_the_deploys_files`, "
    "`test_the_copy_a_killed_call_was_writing_is_removed_by_the_next_call`, "
    "`test_begin_deploy_backs_up_records_then_removes_what_killed_writers_left`.",
    "A disk that filled while a deploy wrote its backups left a backup cut short that the "
    "record listed, and `invoke rollback` wrote it over the intact file; one that filled "
    "while the files were written left 2 of 3 replaced, a partial temporary copy, and a "
    "remote traceback. Now each backup is proven (size and sha256, read back) and "
    "recorded before anything is replaced, the one call writes every new file before it "
    "renames any, rsync's deploy checks the room first and sends only the recorded files, "
    "a failure after that is undone at once (or names the rollback to run), and a "
    "rollback refuses a damaged backup. Specs: `tests/integration/test_full_disk.py`, "
    "`test_a_damaged_backup_is_refused_and_nothing_changes`.",
    "An rsync that failed over the open connection (its receiver out of disk) came out as "
    "the relay's own broken-pipe traceback, not what the receiver said: the relay and its "
    "shim now pass the receiver's message and exit code on. Spec: "
    "`test_the_disk_filling_while_rsync_writes_loses_nothing_and_names_the_rollback`.",
]


def markdown(summaries: list[Summary], commands: list[str],
             finished: float | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(finished))
    lines = ["## Chaos run: killed at any point, or out of disk, nothing is lost", "",
             f"Finished {when} on {os.uname().nodename} ({os.cpu_count()} cores). Reproduce with:",
             "", *[f"    {command}" for command in commands], "",
             "Per kind, seeded random operations (`deploy --no-restart` of a small tree, which "
             "goes in one call, or of a tree with a symlink, which goes through rsync; "
             "`loop`; `rollback`). The first of each is timed, not cut; each later one is "
             "cut at a random moment of that run's work (sometimes of its start-up), told "
             "as so long after the line it had printed then: SIGKILL to the tool's process "
             "group; or the controller-side sshd "
             "processes serving its connection killed by PID; or (harsher than a user's "
             "kill, as a controller-side crash) every process of its SSH session on the "
             "controller, the helper writing the files included; or the disk filled: the "
             "package's directories the trees write to and the deploys' directory (backups, "
             "records) are small tmpfs mounts for the run, and one or both are filled to the "
             "last byte, the tool running on to its end, which must be exit 0 or one "
             "`error:` line and no temporary copy left (the space is freed before the "
             "checks). After each: every file of "
             "the cinder package old or new bytes (sha256), every changed file in an "
             "applied record, `invoke status` naming a record left `applying`, and the "
             "interrupted operation recovered (rollback, or run again) to the state before "
             "or after it byte for byte. At the end every deploy is rolled back and the "
             "package must be as installed.", "",
             "| kind | runs | tool killed (SIGKILL) | SSH dropped (sshd killed) | "
             "whole session killed | disk filled (package / deploys / both) | "
             "not cut (timing run / ended first) | status checked | "
             "temporary copies left, then removed | lost | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s.kind} | {s.runs} | {s.cuts.get('sigkill-tool', 0)} | "
                     f"{s.cuts.get('drop-ssh', 0)} | {s.cuts.get('kill-session', 0)} | "
                     f"{s.cuts.get('fill-disk', 0)} ({s.filled.get('package', 0)} / "
                     f"{s.filled.get('deploys', 0)} / {s.filled.get('both', 0)}) | "
                     f"{s.cuts.get('none (timing run)', 0)} / "
                     f"{s.cuts.get('none (ended first)', 0)} | "
                     f"{s.status_checked} | {s.leftovers} | **{s.lost}** | {s.seconds / 60:.1f} |")
    lines += ["", "States found after each run, cut or not:", "",
              "| state | " + " | ".join(s.kind for s in summaries) + " |",
              "|---|" + "---|" * len(summaries)]
    for state in sorted({k for s in summaries for k in s.states}):
        lines.append(f"| {state} | " + " | ".join(str(s.states.get(state, 0))
                                                   for s in summaries) + " |")
    lines += ["", "What a full disk ended in (the error line, ids, paths and sizes elided; "
              "the others ended with exit 0), runs over all kinds:", "",
              "| error line | runs |", "|---|---|"]
    errors: collections.Counter = collections.Counter()
    for s in summaries:
        errors.update(s.disk_errors)
    for error, count in sorted(errors.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| {error.replace('|', '/')} | {count} |")
    lines += ["", "Where the tool was when cut off (its last progress line; paths and "
              "numbers elided), runs over all kinds:", "", "| operation: step | runs |",
              "|---|---|"]
    points: collections.Counter = collections.Counter()
    for s in summaries:
        for point, count in s.points.items():
            points[bucket(point)] += count
    for point, count in sorted(points.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| {point.replace('|', '/')} | {count} |")
    problems = [p for s in summaries for p in s.problems]
    lines += ["", "Found, and fixed:", ""] + [f"- {text}" for text in FOUND]
    lines += ["", f"Problems in this run: {len(problems)}."]
    lines += [f"- {p.splitlines()[0]}" for p in problems[:20]]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put ``text`` in place of the file's chaos section (or at its end)."""
    old = path.read_text() if path.exists() else ""
    head, marker, rest = old.partition("## Chaos run")
    tail = ""
    if marker:
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
    path.write_text(head.rstrip("\n") + "\n\n" + text + ("\n" + tail if tail else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="all", choices=["supervisord", "rdo", "legacy", "all"])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--max-minutes", type=float, default=40.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="no run: report what earlier runs' --json files hold "
                             "(a kind in several: the last file's)")
    parser.add_argument("--command", action="append",
                        help="with --from-json: the command(s) those runs were, to reproduce")
    args = parser.parse_args()
    command = (f".venv/bin/python bench/chaos.py --kind {args.kind} --runs {args.runs} "
               f"--seed {args.seed} --max-minutes {args.max_minutes:g}"
               + (f" --write {args.write}" if args.write else ""))
    if args.from_json:
        by_kind = {data["kind"]: Summary(**{**data, **{
            key: collections.Counter(data.get(key, {}))
            for key in ("ops", "cuts", "points", "states", "filled", "disk_errors")}})
            for path in args.from_json for data in json.loads(path.read_text())}
        summaries = [by_kind[kind] for kind in ("supervisord", "rdo", "legacy") if kind in by_kind]
        text = markdown(summaries, args.command or [command],
                        max(path.stat().st_mtime for path in args.from_json))
        if args.write:
            write_section(args.write, text)
        print(text)
        return 0
    kinds = ["supervisord", "rdo", "legacy"] if args.kind == "all" else [args.kind]
    results: dict[str, Summary] = {}
    errors: dict[str, BaseException] = {}

    def one(kind: str) -> None:
        try:
            results[kind] = chaos_on(kind, args.runs, args.seed, args.max_minutes * 60)
        except BaseException as exc:   # reported below; the other kinds go on
            errors[kind] = exc

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: STOP.set())
    threads = [threading.Thread(target=one, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summaries = [results[k] for k in kinds if k in results]
    text = markdown(summaries, [command])
    print(text)
    if args.json:
        args.json.write_text(json.dumps([s.to_json() for s in summaries], indent=2))
    if args.write and summaries:
        write_section(args.write, text)
    for kind, exc in errors.items():
        print(f"error: {kind}: {exc}", file=sys.stderr)
    return 1 if errors or any(s.lost or s.problems for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
