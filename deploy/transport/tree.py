"""Which entries of the source tree are code, and so are sent: one set of rules for every way.

A deploy sends the source tree's files and symlinks, less what is not code,
in this order (the first rule that matches names the reason):

1. the inventory's ``excludes``, rsync patterns (default ``.vscode/``, ``.git/``,
   ``__pycache__/``, ``*.pyc``, ``.tox/``);
2. :data:`NOT_CODE`, whatever the inventory says: editors' droppings (backups
   ``*~``, swap files ``*.swp``, vim's write probe ``4913``, autosaves
   ``#*#``, locks ``.#*``, temporary files) and every dot name (``.env``,
   ``.idea/``, ``.mypy_cache/``): Python imports no module whose name starts
   with a dot, and Cinder's package holds no such file, so a dot name is a
   local file (a secret, a tool's state), never code;
3. in a git checkout, what git ignores there (``.gitignore``,
   ``.git/info/exclude``, ``core.excludesFile``), asked of git itself
   (``git ls-files --others --ignored --exclude-standard --directory``); a
   tracked file is code, even where an ignore rule matches it.

The one-call path, rsync (given the exact list), ``watch`` and ``--dry-run``
(which lists what was left out, and why) all read these rules here. A tree
on a devbox is listed by rsync there: it applies 1 and 2 as its
``--exclude`` patterns and the tree's ``.gitignore`` files with its
``dir-merge`` filter, and skips a link out of the tree (``--safe-links``).

A symlink is sent as a link (rsync's ``--links``) when it points within the
tree: its text is relative and, followed from where it stands (through the
tree's other links), never leaves the tree, nor reaches a path left out. A
link that points anywhere else (``zz/s.py -> /etc/shadow``) is refused before
anything is sent: the controller would get a link to its own file of that
name, not the code that was checked. See docs/tasks.md, "What a deploy
does".
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from deploy.base import output
from deploy.base.errors import SourceTreeError

#: (size, mtime in nanoseconds) of one file
Stat = tuple[int, int]

#: left out whatever the inventory says: (rsync pattern, why)
NOT_CODE: tuple[tuple[str, str], ...] = (
    ("*~", "an editor's backup"),
    ("*.swp", "an editor's swap file"),
    ("*.swo", "an editor's swap file"),
    ("*.swx", "an editor's swap file"),
    ("4913", "vim's write probe"),
    ("#*#", "an editor's autosave"),
    (".#*", "an editor's lock"),
    ("*___jb_tmp___", "an editor's temporary file"),
    ("*___jb_old___", "an editor's temporary file"),
    (".*", "a dot name, not code"),
)

EXCLUDES, BUILT_IN, GIT, SPECIAL = "excludes", "not code", "git", "special"
_HOPS = 40            # links followed while resolving one (as the kernel's ELOOP)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an entry is left out: which rule (``kind``), its pattern, in words."""

    kind: str
    pattern: str = ""
    why: str = ""

    def __str__(self) -> str:
        if self.kind == GIT:
            return "ignored by git"
        if self.kind == SPECIAL:
            return "not a regular file"
        if self.kind == EXCLUDES:
            return f"the inventory's excludes: {self.pattern}"
        return f"{self.pattern}: {self.why}"


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An entry of the tree that is not sent (a directory's ``rel`` ends with ``/``)."""

    rel: str
    reason: Reason


class _Patterns:
    """rsync ``--exclude`` patterns, compiled once.

    A pattern without a slash matches any name (``*.pyc``); a trailing slash
    matches directories only (``__pycache__/``); any other slash anchors it
    at the top of the tree (``/sub/dir/``, ``sub/top.txt``).
    """

    def __init__(self, patterns: Iterable[tuple[str, Reason]]) -> None:
        self.rules: list[tuple[str, bool, re.Pattern[str], Reason]] = []
        for pattern, reason in patterns:
            directory_only = pattern.endswith("/")
            body = pattern[:-1] if directory_only else pattern
            anchored = "/" in body
            self.rules.append((("path" if anchored else "name"), directory_only,
                               re.compile(translate(body.lstrip("/"))), reason))
        names = [rule[2].pattern for rule in self.rules if rule[0] == "name" and not rule[1]]
        dirs = [rule[2].pattern for rule in self.rules if rule[0] == "name"]
        paths = [rule[2].pattern for rule in self.rules if rule[0] == "path"]
        never = r"(?!)"
        # one regex per class, for the common answer (no match) at scan speed
        self._any_name = re.compile("|".join(names) or never)
        self._any_dir = re.compile("|".join(dirs) or never)
        self._any_path = re.compile("|".join(paths)) if paths else None

    def match(self, name: str, rel: str, directory: bool) -> Reason | None:
        if not ((self._any_dir if directory else self._any_name).match(name)
                or (self._any_path is not None and self._any_path.match(rel))):
            return None
        for where, directory_only, regex, reason in self.rules:
            if directory_only and not directory:
                continue
            if regex.match(name if where == "name" else rel):
                return reason
        return None


class Rules:
    """What is left out of a tree, and why: the inventory's excludes, :data:`NOT_CODE`, git."""

    def __init__(self, excludes: Sequence[str] = (), ignored: Iterable[str] = ()) -> None:
        self.excludes = tuple(excludes)
        self._patterns = _Patterns(
            [(p, Reason(EXCLUDES, p)) for p in self.excludes]
            + [(p, Reason(BUILT_IN, p, why)) for p, why in NOT_CODE])
        #: what git ignores: files (``a/b.log``) and whole directories (``build/``)
        self.ignored = frozenset(ignored)

    @classmethod
    def of(cls, source: Path, excludes: Sequence[str]) -> "Rules":
        """The rules for the local tree ``source``: git is asked what it ignores there."""
        return cls(excludes, git_ignored(source))

    def why(self, rel: str, directory: bool = False) -> Reason | None:
        """Why the entry ``rel`` is left out, its parents aside; None: it is code."""
        name = rel.rpartition("/")[2]
        reason = self._patterns.match(name, rel, directory)
        if reason is None and self.ignored and (rel + "/" if directory else rel) in self.ignored:
            reason = Reason(GIT)
        return reason

    def left_out(self, rel: str) -> Reason | None:
        """Why the file ``rel`` is left out, its parent directories included; None: it is code."""
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            reason = self.why("/".join(parts[:depth]), directory=True)
            if reason is not None:
                return reason
        return self.why(rel)


#: a tree rsync lists itself (on a devbox) is filtered by its .gitignore files too,
#: and skips a symlink that points out of it (rsync's own check; here it is refused)
DEVBOX_FILTERS = ("--filter=:- .gitignore", "--safe-links")


def rsync_excludes(excludes: Sequence[str]) -> list[str]:
    """The inventory's ``excludes`` and :data:`NOT_CODE`, as rsync's ``--exclude`` patterns.

    For a tree rsync lists itself (on a devbox), with :data:`DEVBOX_FILTERS`
    (git itself is not asked there).
    """
    return [*excludes, *(pattern for pattern, _ in NOT_CODE)]


_warned_git: set[str] = set()


def git_ignored(source: Path) -> frozenset[str]:
    """What git ignores under ``source``, relative to it; empty outside a git checkout.

    Untracked files only (a tracked file is never ignored); a directory
    whose every file is ignored is one entry, ``dir/``. When git cannot
    answer (not installed, a checkout it refuses to read), only the other
    rules apply, and the first time says so.
    """
    argv = ["git", "-C", str(source), "ls-files", "-z", "--others", "--ignored",
            "--exclude-standard", "--directory", "--", "."]
    try:
        proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return frozenset()
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" not in message and str(source) not in _warned_git:
            _warned_git.add(str(source))
            first = message.splitlines()[0] if message else f"exit {proc.returncode}"
            output.warn(f"git cannot say what {source} ignores "
                        f"({first.removeprefix('fatal: ')}); "
                        f"only the excludes and the built-in rules apply")
        return frozenset()
    names = {os.fsdecode(name) for name in proc.stdout.split(b"\0") if name}
    names.discard("./")     # the tree itself lies in an ignored directory: its own files count
    return frozenset(names)


@dataclass
class Tree:
    """The local tree as a deploy sends it: its files and links, and what it leaves out."""

    root: Path
    rules: Rules = field(default_factory=Rules)
    files: dict[str, Stat] = field(default_factory=dict)
    #: symlinks: relative path -> the link's text
    links: dict[str, str] = field(default_factory=dict)
    left_out: list[LeftOut] = field(default_factory=list)

    def entries(self) -> list[str]:
        """Every file and link sent, sorted."""
        return sorted([*self.files, *self.links])

    def not_code(self) -> list[LeftOut]:
        """What was left out by a rule other than the inventory's excludes."""
        return [entry for entry in self.left_out if entry.reason.kind != EXCLUDES]

    def refuse_links_out(self) -> None:
        """Refuse a link that points out of the tree, or to a path left out of it.

        Raises:
            SourceTreeError: the first such link, named with where it points.
        """
        for rel in sorted(self.links):
            text = self.links[rel]
            where = resolve_link(rel, self.links)
            if where is None:
                raise SourceTreeError(
                    f"{shown(str(self.root))}/{shown(rel)}: a symlink to {shown(text)}, outside "
                    f"the source tree; nothing was sent (a link is sent only when it points "
                    f"within the tree)")
            reason = self.rules.left_out(where) if where else None
            if reason is not None:
                raise SourceTreeError(
                    f"{shown(str(self.root))}/{shown(rel)}: a symlink to {shown(text)}, which "
                    f"is left out of the deploy ({reason}); nothing was sent")


def shown(rel: str) -> str:
    """``rel`` as one printable line: control characters and bytes that are not UTF-8
    escaped (``\\n``, ``\\xe9``), and so a backslash as ``\\\\`` in such a name."""
    if rel.isprintable():
        return rel
    out = []
    for char in rel:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:               # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1] if code < 0x80 else f"\\u{code:04x}")
    return "".join(out)


def scan(source: Path, rules: Rules) -> Tree:
    """Every file and symlink of the tree that is code, with (size, mtime); and what is not.

    Nothing is followed: a symlink to a directory is a link. An entry that is
    neither a file, a directory nor a link (a FIFO, a socket) is left out.

    Raises:
        SourceTreeError: a directory cannot be read.
    """
    tree = Tree(Path(source), rules)
    stack = [("", str(source))]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue                                # removed while scanned
        except OSError as exc:
            raise SourceTreeError(f"{shown(directory)}/: cannot read this directory "
                                  f"({exc.strerror}); nothing was sent") from None
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                info = None if is_dir else entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            reason = rules.why(rel, directory=is_dir)
            if reason is not None:
                tree.left_out.append(LeftOut(rel + "/" if is_dir else rel, reason))
            elif is_dir:
                stack.append((rel + "/", entry.path))
            elif info is not None and stat.S_ISLNK(info.st_mode):
                tree.links[rel] = os.readlink(entry.path)
            elif info is not None and stat.S_ISREG(info.st_mode):
                tree.files[rel] = (info.st_size, info.st_mtime_ns)
            else:
                tree.left_out.append(LeftOut(rel, Reason(SPECIAL)))
    tree.left_out.sort(key=lambda entry: entry.rel)
    return tree


def read_tree(source: Path, excludes: Sequence[str]) -> Tree:
    """:func:`scan` the local tree ``source`` with its rules (git asked what it ignores).

    Raises:
        SourceTreeError: a directory cannot be read.
    """
    return scan(source, Rules.of(source, excludes))


def resolve_link(rel: str, links: Mapping[str, str]) -> str | None:
    """Where the link ``rel`` leads within the tree (a relative path, "" for its top),
    following the tree's other ``links``; None when it leaves the tree (or loops)."""
    parts = rel.split("/")[:-1]
    pending = links[rel].split("/")
    if links[rel].startswith("/"):
        return None
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
        here = "/".join(parts)
        if here in links:
            hops += 1
            text = links[here]
            if hops > _HOPS or text.startswith("/"):
                return None
            parts.pop()
            pending = text.split("/") + pending
    return "/".join(parts)


def link_target_file(tree: Tree, rel: str) -> str | None:
    """The file of the tree the link ``rel`` leads to; None if it leads to no file of it
    (a directory, or a file the controller has and the tree does not)."""
    where = resolve_link(rel, tree.links)
    return where if where in tree.files else None


def read_file(path: Path) -> tuple[bytes, Stat]:
    """The bytes of the regular file ``path``, never through a symlink, and its (size, mtime).

    Read from one open file, and read again if it changed meanwhile, so the
    bytes and the (size, mtime) belong together.

    Raises:
        SourceTreeError: it cannot be read, is no longer a regular file, or
            changed each of three times it was read.
    """
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            what = "it became a symlink" if exc.errno == errno.ELOOP else exc.strerror
            raise SourceTreeError(f"{shown(str(path))}: cannot read this file ({what}); "
                                  f"nothing was sent") from None
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise SourceTreeError(f"{shown(str(path))}: no longer a regular file; "
                                      f"nothing was sent")
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            after = os.fstat(fd)
        except OSError as exc:
            raise SourceTreeError(f"{shown(str(path))}: cannot read this file "
                                  f"({exc.strerror}); nothing was sent") from None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) \
                and len(data) == after.st_size:
            return data, (after.st_size, after.st_mtime_ns)
    raise SourceTreeError(f"{shown(str(path))}: changed while it was read, three times; "
                          f"nothing was sent (deploy again once it is saved)")


_STAGING = "devloop-send-"


@contextmanager
def staging() -> Iterator[Path]:
    """A private directory (0700, in ``$TMPDIR``) to :func:`stage` into; removed after.

    Those a killed run left (its PID in the name is gone) are removed first,
    so copies of a tree do not pile up.
    """
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{_STAGING}*-*"):
        pid = old.name[len(_STAGING):].partition("-")[0]
        try:
            info = old.lstat()
            if not pid.isdigit() or info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    with tempfile.TemporaryDirectory(prefix=f"{_STAGING}{os.getpid()}-") as directory:
        yield Path(directory)


def stage(tree: Tree, rels: Iterable[str], into: Path) -> dict[str, Stat]:
    """Copy the files and links ``rels`` of ``tree`` into the private directory ``into``.

    What a deploy then checks and sends is this copy: a file saved again
    meanwhile in the tree cannot slip in unchecked. Each copy keeps its
    file's mtime, and each directory its own. Returns (size, mtime) of
    each file copied, as read.

    Raises:
        SourceTreeError: a file cannot be read (see :func:`read_file`).
    """
    copied: dict[str, Stat] = {}
    directories: set[str] = set()
    for rel in rels:
        dest = into / rel
        parent = rel.rpartition("/")[0]
        while parent and parent not in directories:
            directories.add(parent)
            parent = parent.rpartition("/")[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in tree.links:
            os.symlink(tree.links[rel], dest)
            continue
        data, copied[rel] = read_file(tree.root / rel)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.utime(dest, ns=(copied[rel][1], copied[rel][1]))
    # deepest first: making an entry in a directory changes its time
    for rel in sorted(directories | {""}, key=lambda d: d.count("/") + (d != ""), reverse=True):
        try:
            info = os.stat(tree.root / rel, follow_symlinks=False)
        except OSError:
            continue
        os.utime(into / rel, ns=(info.st_atime_ns, info.st_mtime_ns))
    return copied
